import { expect } from 'chai';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

  it('says why a message received whole was not delivered: the same content again is a duplicate, named in text and JSON', async () => {
    const send = async () => {
      const r = await runMeshd(['--config', env.configPath[SENDER], '--json', 'send', '--to', RECEIVER, '--workflow', 'TEST_WORKFLOW', join(env.dir, 'same.txt')]);
      expect(r.code, r.stderr).to.equal(0);
      return JSON.parse(r.stdout).messageId as string;
    };
    writeFileSync(join(env.dir, 'same.txt'), 'PATIENT B 9991000127');
    const first = await send();
    expect((await runMeshd(['--config', env.configPath[RECEIVER], 'receive', '--id', first, '--no-ack'])).code).to.equal(0);
    // Delivered before, acknowledged now: shown with where it was delivered.
    const ackOnly = await runMeshd(['--config', env.configPath[RECEIVER], 'receive', '--id', first]);
    expect(ackOnly.stdout).to.equal(`${first} ${join(env.folder(RECEIVER, 'in'), `${first}.dat`)}\n`);
    const again = await send();
    const text = await runMeshd(['--config', env.configPath[RECEIVER], 'receive', '--id', again, '--no-ack']);
    expect(text.code, text.stderr).to.equal(0);
    expect(text.stdout).to.match(new RegExp(`^${again} not delivered: the same message was received before \\(ledger row \\d+\\); not delivered again\n$`));
    const json = await runMeshd(['--config', env.configPath[RECEIVER], '--json', 'receive', '--id', again]);
    expect(json.code, json.stderr).to.equal(0);
    const out = JSON.parse(json.stdout);
    expect(out.messages).to.deep.equal([]);
    expect(out.notDelivered).to.have.length(1);
    expect(out.notDelivered[0]).to.include({ messageId: again, code: 'DUPLICATE', acknowledged: true });
    expect(readdirSync(env.folder(RECEIVER, 'in')).filter((n) => n.endsWith('.dat'))).to.deep.equal([`${first}.dat`]);
  });
});
