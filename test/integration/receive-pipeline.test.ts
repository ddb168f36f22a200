import { expect } from 'chai';
import { existsSync, readdirSync } from 'node:fs';
import { Daemon } from '../../src/daemon/daemon';
import { silentLogger } from '../../src/log';
import { meshPortFor } from '../../src/transfer/mesh-port';
import { dropFile, RECEIVER, SENDER, startDaemonEnv, type DaemonEnv } from './support/daemon-env';

/**
 * The receive side over several batches (128 messages each), through the real simulator: at
 * most 16 requests in flight, and no acknowledgement sent before its message's delivery is
 * committed. The port is the real one, wrapped only to watch the calls.
 */
describe('receive pipeline across batches (real simulator over mTLS, real SQLite)', function () {
  this.timeout(120_000);
  const COUNT = 300;
  let env: DaemonEnv;

  before(async () => {
    env = await startDaemonEnv({ mailbox: { [SENDER]: { routes: [{ direction: 'out', match: '*.txt', to: RECEIVER, workflow: 'TEST_WORKFLOW' }] } } });
    for (let i = 0; i < COUNT; i++) dropFile(env.folder(SENDER, 'out'), `m${i}.txt`, `message ${i}\n`);
    const sender = await env.daemon(SENDER);
    try {
      expect((await sender.runOnce())[0]).to.include({ sent: COUNT });
    } finally {
      await sender.stop();
    }
  });
  after(async () => env.close());

  it('receives 300 messages with at most 16 requests at once, each acknowledged only after its delivery is committed', async () => {
    const config = await env.config(RECEIVER);
    const seen = { inFlight: 0, maxInFlight: 0, acksBeforeCommit: [] as string[] };
    const daemon = await Daemon.open(config, {
      log: silentLogger,
      meshFor: (m) => {
        const port = meshPortFor(config, m.id, silentLogger);
        const watched = async <T>(work: () => Promise<T>): Promise<T> => {
          seen.maxInFlight = Math.max(seen.maxInFlight, ++seen.inFlight);
          try {
            return await work();
          } finally {
            seen.inFlight--;
          }
        };
        return {
          ...port,
          close: () => port.close(),
          listInbox: () => port.listInbox(),
          download: (id, sink) => watched(() => port.download(id, sink)),
          acknowledge: (id) => {
            // What a crash now would find: the row delivered and its file in in/.
            const row = daemon.ledger.findByMessageId(RECEIVER, 'in', id);
            if (row?.state !== 'delivered' || !row.payloadPath || !existsSync(row.payloadPath)) seen.acksBeforeCommit.push(id);
            return watched(() => port.acknowledge(id));
          },
        };
      },
    });
    let report;
    try {
      report = (await daemon.runOnce())[0];
    } finally {
      await daemon.stop();
    }
    expect(report).to.include({ listed: COUNT, delivered: COUNT, acknowledged: COUNT });
    expect(report.errors).to.deep.equal([]);
    expect(seen.acksBeforeCommit).to.deep.equal([]);
    expect(seen.maxInFlight).to.be.at.most(16);
    expect(seen.maxInFlight, 'requests side by side').to.be.greaterThan(1);
    expect(readdirSync(env.folder(RECEIVER, 'in')).filter((n) => n.endsWith('.dat'))).to.have.length(COUNT);
    expect(env.sim.messages().filter((m) => m.recipient === RECEIVER && m.status === 'acknowledged')).to.have.length(COUNT);
  });
});
