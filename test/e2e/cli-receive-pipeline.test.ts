import { expect } from 'chai';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ledgerPath, openLedger } from '../../src/ledger';
import { parseControlFile } from '../../src/transfer/ctl';
import { controlFile, dropFile, RECEIVER, runMeshd, SENDER, startDaemonEnv, type DaemonEnv } from '../integration/support/daemon-env';

/**
 * `meshd receive` runs the daemon's receive steps (issue 11, "one path"): the same folders (an
 * upper-case IN/ kept), the same .ctl files, REPORTs applied to the ledger, the same rows.
 */
describe('meshd receive runs the daemon’s steps (as a process)', function () {
  this.timeout(60_000);
  let env: DaemonEnv;
  beforeEach(async () => (env = await startDaemonEnv()));
  afterEach(async () => env.close());

  it('applies a REPORT about a daemon send: the sent row becomes undeliverable, and the REPORT is a .ctl', async () => {
    dropFile(env.folder(SENDER, 'out'), 'appt.dat', 'booking');
    dropFile(env.folder(SENDER, 'out'), 'appt.ctl', controlFile(RECEIVER, 'TEST_WORKFLOW'));
    const d = await env.daemon(SENDER);
    await d.runOnce();
    const sent = d.ledger.list({ direction: 'out' })[0];
    await d.stop();
    expect(sent.state).to.equal('sent');
    const reportId = await env.sim.injectReport({ mailbox: SENDER, code: '14', description: 'Message not collected by recipient after 5 days', linkedMessageId: sent.messageId!, workflowId: 'TEST_WORKFLOW' });

    const r = await runMeshd(['--config', env.configPath[SENDER], '--json', 'receive']);
    expect(r.code, r.stderr).to.equal(0);
    expect(JSON.parse(r.stdout).messages[0]).to.include({ messageId: reportId, type: 'REPORT', statusCode: '14', linkedMessageId: sent.messageId, acknowledged: true });

    const ledger = openLedger(ledgerPath((await env.config(SENDER)).dataDir), { create: false });
    try {
      expect(ledger.get(sent.id)).to.include({ state: 'undeliverable', reportCode: '14' });
      expect(ledger.findByMessageId(SENDER, 'in', reportId)).to.include({ state: 'acknowledged', messageType: 'REPORT', linkedMessageId: sent.messageId });
    } finally {
      ledger.close();
    }
    const inDir = env.folder(SENDER, 'in');
    expect(readdirSync(inDir)).to.deep.equal([`${reportId}.ctl`]);
    expect(parseControlFile(readFileSync(join(inDir, `${reportId}.ctl`)))).to.include({ messageType: 'Report', dtsId: sent.messageId });
  });

  it('keeps an upper-case IN/ and writes the data file and its .ctl there, recorded as the daemon records them', async () => {
    const root = join(env.sim.dir, 'mailboxes', RECEIVER);
    rmSync(join(root, 'in'), { recursive: true, force: true });
    mkdirSync(join(root, 'IN'), { recursive: true });
    dropFile(env.folder(SENDER, 'out'), 'x.dat', 'payload');
    dropFile(env.folder(SENDER, 'out'), 'x.ctl', controlFile(RECEIVER, 'TEST_WORKFLOW', '<LocalId>L-1</LocalId>'));
    const d = await env.daemon(SENDER);
    await d.runOnce();
    const id = d.ledger.list({ direction: 'out' })[0].messageId!;
    await d.stop();

    const r = await runMeshd(['--config', env.configPath[RECEIVER], 'receive']);
    expect(r.code, r.stderr).to.equal(0);
    expect(existsSync(join(root, 'in'))).to.equal(false);
    expect(readdirSync(join(root, 'IN')).sort()).to.deep.equal([`${id}.ctl`, `${id}.dat`]);
    expect(parseControlFile(readFileSync(join(root, 'IN', `${id}.ctl`)))).to.include({ fromDts: SENDER, localId: 'L-1', dtsId: id });
    const ledger = openLedger(ledgerPath((await env.config(RECEIVER)).dataDir), { create: false });
    try {
      expect(ledger.findByMessageId(RECEIVER, 'in', id)).to.include({ state: 'acknowledged', localId: 'L-1', payloadPath: join(root, 'IN', `${id}.dat`) });
    } finally {
      ledger.close();
    }
  });
});
