import { expect } from 'chai';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from '../support/yaml';
import { loadConfig } from '../../src/config';
import { Daemon } from '../../src/daemon/daemon';
import { silentLogger } from '../../src/log';
import { meshPortFor } from '../../src/transfer/mesh-port';
import { controlFile, dropFile, RECEIVER, SENDER, startDaemonEnv, type DaemonEnv } from './support/daemon-env';

describe('several mailboxes in one process', function () {
  this.timeout(60_000);
  let env: DaemonEnv;
  before(async () => {
    env = await startDaemonEnv();
  });
  after(async () => env?.close());

  it('serves two mailboxes, each with its own client certificate, from one config and one ledger', async () => {
    const a = parse(readFileSync(env.configPath[SENDER], 'utf8'));
    const b = parse(readFileSync(env.configPath[RECEIVER], 'utf8'));
    a.mailboxes.push({ ...b.mailboxes[0], tls: { cert: b.tls.cert, key: b.tls.key } });
    const path = join(env.dir, 'both.yaml');
    writeFileSync(path, stringify(a));
    const config = await loadConfig(path);
    expect(config.mailboxes.map((m) => m.id)).to.deep.equal([SENDER, RECEIVER]);
    expect(config.mailboxes[1].tls).to.deep.equal({ cert: b.tls.cert, key: b.tls.key });

    dropFile(env.folder(SENDER, 'out'), 'both.dat', 'one process, two mailboxes');
    dropFile(env.folder(SENDER, 'out'), 'both.ctl', controlFile(RECEIVER, 'TEST_WORKFLOW'));
    const daemon = await Daemon.open(config, { log: silentLogger, meshFor: (m) => meshPortFor(config, m.id, silentLogger) });
    const reports = await daemon.runOnce();
    const rows = daemon.ledger.list({});
    await daemon.stop();
    expect(reports.map((r) => [r.mailbox, r.sent, r.delivered, r.errors.length])).to.deep.equal([
      [SENDER, 1, 0, 0],
      [RECEIVER, 0, 1, 0],
    ]);
    expect(rows.map((r) => `${r.mailbox}:${r.direction}:${r.state}`).sort()).to.deep.equal([`${SENDER}:out:sent`, `${RECEIVER}:in:acknowledged`]);
    const inDir = env.folder(RECEIVER, 'in');
    const dat = readdirSync(inDir).find((n) => n.endsWith('.dat'))!;
    expect(readFileSync(join(inDir, dat), 'utf8')).to.equal('one process, two mailboxes');
  });

  it('polls the mailboxes side by side, sharing one certificate', async () => {
    const a = parse(readFileSync(env.configPath[SENDER], 'utf8'));
    const b = parse(readFileSync(env.configPath[RECEIVER], 'utf8'));
    // Both mailboxes on the sender's certificate: the simulator accepts any certificate it signed.
    a.mailboxes.push({ ...b.mailboxes[0] });
    const path = join(env.dir, 'shared-cert.yaml');
    writeFileSync(path, stringify(a));
    const config = await loadConfig(path);
    let inFlight = 0;
    let most = 0;
    const order: string[] = [];
    let release!: () => void;
    const bothIn = new Promise<void>((r) => (release = r));
    const daemon = await Daemon.open(config, {
      log: silentLogger,
      meshFor: (m) => {
        const port = meshPortFor(config, m.id, silentLogger);
        return {
          ...port,
          async listInbox() {
            order.push(`list ${m.id}`);
            most = Math.max(most, ++inFlight);
            // Wait (at most 5 s) for the other mailbox's poll: only concurrent polls both get here.
            if (inFlight === 2) release();
            await Promise.race([bothIn, new Promise((r) => setTimeout(r, 5000))]);
            try {
              return await port.listInbox();
            } finally {
              inFlight--;
            }
          },
          async track(id) {
            order.push(`track ${m.id}`);
            return port.track(id);
          },
        };
      },
    });
    try {
      const reports = await daemon.runOnce();
      expect(reports.map((r) => [r.mailbox, r.errors.length])).to.deep.equal([
        [SENDER, 0],
        [RECEIVER, 0],
      ]);
      // Status is written for all mailboxes together at the end of each stage, and is there when the cycle ends.
      for (const mb of [SENDER, RECEIVER]) {
        const st = daemon.ledger.mailboxStatus(mb);
        expect([st?.lastPollOk, !!st?.lastPollAt, !!st?.lastTrackingAt], mb).to.deep.equal([true, true, true]);
      }
    } finally {
      await daemon.stop();
    }
    expect(most).to.equal(2);
    expect(order.slice(0, 2).sort()).to.deep.equal([`list ${SENDER}`, `list ${RECEIVER}`]);
  });
});
