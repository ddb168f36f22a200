import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config';
import { ledgerPath, openLedger } from '../../src/ledger';
import { startSimulator, type Simulator } from '../../src/sim';
import { runMeshd } from '../support/cli';

function meshd(args: string[], env: NodeJS.ProcessEnv = {}) {
  return runMeshd(args, { env: { MESHD_LOG_FORMAT: 'json', MESHD_LOG_LEVEL: 'info', ...env } });
}

describe('meshd transfer commands (as a process)', function () {
  this.timeout(120_000);
  let root: string;
  let sim: Simulator;
  let c1: string;
  let c2: string;

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'meshd-e2e-mesh-'));
    sim = await startSimulator({ dir: join(root, 'sim'), seed: 3 });
    c1 = sim.client('X26ABC1').configPath;
    c2 = sim.client('X26ABC2').configPath;
  });
  beforeEach(async () => {
    await sim.reset();
    sim.setFaults(undefined);
  });
  after(async () => {
    await sim?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('handshake prints OK and exits 0; it is noted in the ledger when there is one, and never creates one', async () => {
    const db = ledgerPath((await loadConfig(c1)).dataDir);
    let r = await meshd(['--config', c1, 'handshake']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout.trim()).to.equal('handshake OK for X26ABC1');
    expect(existsSync(db)).to.equal(false);
    openLedger(db).close(); // as the first run leaves it
    r = await meshd(['--config', c1, 'handshake']);
    expect(r.code, r.stderr).to.equal(0);
    const status = await meshd(['--config', c1, '--json', 'status']);
    expect(status.code, status.stderr).to.equal(0);
    expect(Date.now() - Date.parse(JSON.parse(status.stdout).mailboxes[0].lastHandshakeAt)).to.be.within(0, 60_000);
  });

  it('send → inbox → receive → track moves a chunked file end to end, byte-identical', async () => {
    const payload = Buffer.concat([Buffer.from('nhs_number,family_name\n9990000018,TESTER\n'.repeat(3000)), randomBytes(20_000)]);
    const src = join(root, 'upload.csv');
    writeFileSync(src, payload);

    const sent = await meshd(['--config', c1, '--json', 'send', src, '--to', 'X26ABC2', '--workflow', 'TEST_WORKFLOW', '--subject', 'reg', '--local-id', 'L1', '--filename', 'upload.csv', '--content-type', 'text/csv', '--chunk-size', '32KiB']);
    expect(sent.code, sent.stderr).to.equal(0);
    const out = JSON.parse(sent.stdout);
    expect(out).to.have.keys(['messageId', 'chunks', 'bytes']);
    expect(out.bytes).to.equal(payload.length);
    expect(out.chunks).to.equal(Math.ceil(payload.length / 32768));
    // Logs go to stderr, never stdout.
    expect(sent.stdout.trim().split('\n')).to.have.length(1);

    const inbox = await meshd(['--config', c2, '--json', 'inbox']);
    expect(JSON.parse(inbox.stdout)).to.deep.equal({ messages: [out.messageId] });
    const inboxText = await meshd(['--config', c2, 'inbox', '--workflow-filter', 'TEST_WORKFLOW']);
    expect(inboxText.stdout.trim()).to.equal(out.messageId);

    const dir = join(root, 'received');
    const rx = await meshd(['--config', c2, '--json', 'receive', '--out', dir]);
    expect(rx.code, rx.stderr).to.equal(0);
    const got = JSON.parse(rx.stdout).messages;
    expect(got).to.have.length(1);
    expect(got[0]).to.include({ messageId: out.messageId, type: 'DATA', acknowledged: true, bytes: payload.length, workflowId: 'TEST_WORKFLOW', from: 'X26ABC1' });
    // As the daemon does: the Java-client control file beside the payload (this mailbox has controlFiles on).
    expect(readdirSync(dir).sort()).to.deep.equal([`${out.messageId}.ctl`, `${out.messageId}.dat`]);
    expect(readFileSync(join(dir, `${out.messageId}.dat`)).equals(payload)).to.equal(true);

    const after = await meshd(['--config', c2, '--json', 'inbox']);
    expect(JSON.parse(after.stdout)).to.deep.equal({ messages: [] });

    const track = await meshd(['--config', c1, '--json', 'track', out.messageId]);
    expect(track.code, track.stderr).to.equal(0);
    expect(JSON.parse(track.stdout)).to.include({ message_id: out.messageId, status: 'acknowledged' });
    const trackText = await meshd(['--config', c1, 'track', out.messageId]);
    expect(trackText.stdout).to.contain('status: acknowledged');
  });

  it('send without --json prints just the message id; --no-compress sends plain chunks', async () => {
    const src = join(root, 'plain.bin');
    writeFileSync(src, randomBytes(5000));
    const r = await meshd(['--config', c1, 'send', src, '--to', 'X26ABC2', '--workflow', 'TEST_WORKFLOW', '--no-compress']);
    expect(r.code, r.stderr).to.equal(0);
    const id = r.stdout.trim();
    expect(id).to.match(/^\S+$/);
    const stored = sim.messages().find((m) => m.id === id)!;
    expect(stored.contentEncoding ?? 'identity').to.not.equal('gzip');
  });

  it('receive defaults to the mailbox in/ folder, takes --id, and --no-ack leaves the message waiting', async () => {
    const src = join(root, 'one.txt');
    writeFileSync(src, 'one message');
    const id = (await meshd(['--config', c1, 'send', src, '--to', 'X26ABC2', '--workflow', 'TEST_WORKFLOW'])).stdout.trim();
    const r = await meshd(['--config', c2, '--json', 'receive', '--id', id, '--no-ack']);
    expect(r.code, r.stderr).to.equal(0);
    const [m] = JSON.parse(r.stdout).messages;
    expect(m.acknowledged).to.equal(false);
    expect(m.path).to.equal(join(root, 'sim', 'mailboxes', 'X26ABC2', 'in', `${id}.dat`));
    expect(readFileSync(m.path, 'utf8')).to.equal('one message');
    expect(JSON.parse((await meshd(['--config', c2, '--json', 'inbox'])).stdout).messages).to.deep.equal([id]);
  });

  it('receive acknowledges REPORTs without writing data files (only their .ctl, as the daemon does)', async () => {
    const reportId = await sim.injectReport({ mailbox: 'X26ABC1', code: '14', description: 'Message not collected by recipient after 5 days', linkedMessageId: 'ORIGINAL1', workflowId: 'TEST_WORKFLOW' });
    const dir = join(root, 'reports');
    const r = await meshd(['--config', c1, 'receive', '--out', dir]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout.trim()).to.equal(`${reportId} REPORT 14 for ORIGINAL1`);
    expect(readdirSync(dir)).to.deep.equal([`${reportId}.ctl`]);
    expect(r.stderr).to.contain('MESH_REPORT_RECEIVED');
  });

  it('lookup and workflows list mailboxes', async () => {
    const l = await meshd(['--config', c1, '--json', 'lookup', 'X26', 'TEST_WORKFLOW']);
    expect(l.code, l.stderr).to.equal(0);
    expect(JSON.parse(l.stdout).results.map((r: { mailboxId: string }) => r.mailboxId)).to.include('X26ABC2');
    const w = await meshd(['--config', c1, 'workflows', 'TEST_WORKFLOW']);
    expect(w.stdout).to.contain('X26ABC1').and.contain('X26ABC2');
  });

  describe('exit codes', () => {
    it('3 for a missing or invalid config, naming the problem', async () => {
      const missing = await meshd(['--config', join(root, 'nope.yaml'), 'handshake']);
      expect(missing.code).to.equal(3);
      expect(missing.stderr).to.contain('does not exist');
      const bad = join(root, 'bad.yaml');
      writeFileSync(bad, readFileSync(c1, 'utf8') + 'bogusKey: 1\n');
      const invalid = await meshd(['--config', bad, '--json', 'handshake']);
      expect(invalid.code).to.equal(3);
      expect(invalid.stderr).to.contain('bogusKey: unknown key');
      expect(JSON.parse(invalid.stdout).error.code).to.equal('CONFIG_INVALID');
    });

    it('finds the config through $MESHD_CONFIG', async () => {
      const r = await meshd(['handshake'], { MESHD_CONFIG: c1 });
      expect(r.code, r.stderr).to.equal(0);
    });

    it('4 when MESH rejects the message (unknown recipient), with the MESH code', async () => {
      const src = join(root, 'x.txt');
      writeFileSync(src, 'x');
      const r = await meshd(['--config', c1, '--json', 'send', src, '--to', 'NOBODY99', '--workflow', 'TEST_WORKFLOW']);
      expect(r.code).to.equal(4);
      expect(JSON.parse(r.stdout).error.code).to.equal('MESH_REJECTED');
      expect(r.stderr).to.contain('MESH code 12');
    });

    it('6 for an authentication failure, without printing the password', async () => {
      const bad = join(root, 'badpw.yaml');
      const pwFile = join(root, 'wrong-password');
      writeFileSync(pwFile, 'Wrong-Password-123\n');
      const text = readFileSync(c1, 'utf8').replace(/password:\n\s+file: .*\n/, `password:\n      file: ${pwFile}\n`);
      expect(text).to.contain(pwFile);
      writeFileSync(bad, text);
      const r = await meshd(['--config', bad, 'handshake']);
      expect(r.code).to.equal(6);
      expect(r.stderr + r.stdout).not.to.contain('Wrong-Password-123');
    });

    it('7 for a file that cannot be read, 2 for a bad --chunk-size', async () => {
      const r = await meshd(['--config', c1, 'send', join(root, 'missing.bin'), '--to', 'X26ABC2', '--workflow', 'TEST_WORKFLOW']);
      expect(r.code).to.equal(7);
      const src = join(root, 'y.txt');
      writeFileSync(src, 'y');
      const big = await meshd(['--config', c1, 'send', src, '--to', 'X26ABC2', '--workflow', 'TEST_WORKFLOW', '--chunk-size', '200MiB']);
      expect(big.code).to.equal(2);
    });

    it('receive gets the other messages, leaves a too-large one waiting and exits 7', async () => {
      const YAML = await import('../support/yaml');
      const cfg = YAML.parse(readFileSync(c2, 'utf8'));
      cfg.transfer.maxMessageBytes = 10_000;
      const small = join(root, 'capped.yaml');
      writeFileSync(small, YAML.stringify(cfg));
      const ok = join(root, 'ok.txt');
      const big = join(root, 'big.txt');
      writeFileSync(ok, 'fits');
      writeFileSync(big, Buffer.alloc(50_000, 'b'));
      const bigId = (await meshd(['--config', c1, 'send', big, '--to', 'X26ABC2', '--workflow', 'TEST_WORKFLOW'])).stdout.trim();
      const okId = (await meshd(['--config', c1, 'send', ok, '--to', 'X26ABC2', '--workflow', 'TEST_WORKFLOW'])).stdout.trim();
      const r = await meshd(['--config', small, '--json', 'receive', '--out', join(root, 'capped-in')]);
      expect(r.code).to.equal(7);
      const out = JSON.parse(r.stdout);
      expect(out.messages.map((m: { messageId: string }) => m.messageId)).to.deep.equal([okId]);
      expect(out.failed).to.have.length(1);
      expect(out.failed[0]).to.include({ messageId: bigId, code: 'MESH_MESSAGE_TOO_LARGE' });
      expect(r.stderr).to.contain(`${bigId} not received`);
      expect(JSON.parse((await meshd(['--config', c2, '--json', 'inbox'])).stdout).messages).to.deep.equal([bigId]);
    });

    it('8 when the first POST outcome is unknown', async () => {
      sim.setFaults('send:reset-after-accept=1');
      const src = join(root, 'z.txt');
      writeFileSync(src, 'z');
      const r = await meshd(['--config', c1, '--json', 'send', src, '--to', 'X26ABC2', '--workflow', 'TEST_WORKFLOW']);
      expect(r.code).to.equal(8);
      expect(JSON.parse(r.stdout).error.code).to.equal('MESH_SEND_AMBIGUOUS');
    });
  });
});
