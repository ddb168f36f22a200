import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { ledgerPath, openLedger, type SqliteLedger } from '../../src/ledger';
import { runMeshd } from '../support/cli';

/** Values from outside that try to forge lines and drive the terminal (clear screen, set title, C1 CSI). */
const HOSTILE_FILE = 'report.csv\nID  DIR  FORGED ROW\r\x1b[2J\x1b]0;owned\x07\x7f\u009b31m\u0085.csv';
const HOSTILE_ERROR = 'refused\n  ATTENTION: forged\x1b[31m';
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029]/;

describe('CLI hardening (as a process)', function () {
  this.timeout(60_000);
  let dir: string;
  let config: string;

  function meshd(...args: string[]) {
    return runMeshd(['--config', config, ...args], { env: { MESHD_CONFIG: '' } });
  }

  function withStore<T>(fn: (l: SqliteLedger) => T, now?: Date): T {
    const l = openLedger(ledgerPath(path.join(dir, 'var')), now ? { now: () => now } : {});
    try {
      return fn(l);
    } finally {
      l.close();
    }
  }

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshd-cli-hardening-'));
    config = path.join(dir, 'meshd.yaml');
    fs.mkdirSync(path.join(dir, 'certs'));
    for (const f of ['ca.pem', 'client.crt', 'client.key']) fs.writeFileSync(path.join(dir, 'certs', f), '');
    fs.writeFileSync(
      config,
      ['environment: local', 'url: https://127.0.0.1:1', 'sharedKey: TestOnlySharedKey', 'tls: { ca: ./certs/ca.pem, cert: ./certs/client.crt, key: ./certs/client.key }', 'dataDir: ./var', 'mailboxes:', '  - id: X26ABC1', '    password: TestOnlyPassword1', '    folder: ./mailboxes/X26ABC1', ''].join('\n'),
    );
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  describe('output cannot be forged by values', () => {
    let id: number;
    beforeEach(() => {
      withStore((l) => {
        const row = l.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued', peer: 'X26ABC2', workflowId: 'TEST_WORKFLOW', fileName: HOSTILE_FILE });
        l.transition(row.id, 'failed', { patch: { errorCode: 'MESH_REJECTED', errorText: HOSTILE_ERROR } });
        l.setMailboxStatus('X26ABC1', { lastPollAt: new Date(), lastPollOk: false, lastPollError: HOSTILE_ERROR });
        id = row.id;
      });
    });

    for (const args of [['ledger', 'list'], ['ledger', 'show', '1'], ['status']]) {
      it(`meshd ${args.join(' ')} escapes control characters for people and keeps JSON exact`, async () => {
        const text = await meshd(...args);
        expect(text.code, text.stderr).to.equal(0);
        expect(text.stdout).not.to.match(RAW_CONTROL);
        expect(text.stdout).not.to.match(/^ID {2}DIR {2}FORGED ROW|^ {2}ATTENTION: forged/m);
        if (args[0] === 'ledger') expect(text.stdout).to.include('report.csv\\nID  DIR  FORGED');
        const json = await meshd(...args, '--json');
        expect(json.stdout).not.to.match(RAW_CONTROL);
        const parsed = JSON.parse(json.stdout);
        if (args[1] === 'list') expect(parsed.messages[0]).to.include({ id, fileName: HOSTILE_FILE, errorText: HOSTILE_ERROR });
        if (args[1] === 'show') expect(parsed.message).to.include({ id, fileName: HOSTILE_FILE });
        if (args[0] === 'status') expect(parsed.mailboxes[0].lastPoll.error).to.equal(HOSTILE_ERROR);
      });
    }

    it('escapes values in error messages on stderr', async () => {
      const r = await meshd('ledger', 'show', 'X\n  what to do: forged\x1b[2J');
      expect(r.code).to.equal(1);
      expect(r.stderr).to.include('X\\n  what to do: forged\\x1b[2J');
      expect(r.stderr.split('\n').filter((l) => l.startsWith('  what to do:'))).to.have.length(1);
    });
  });

  describe('ledger purge', () => {
    const LONG_AGO = new Date(Date.now() - 90 * 86_400_000);
    const mailbox = (...parts: string[]) => path.join(dir, 'mailboxes', 'X26ABC1', ...parts);
    function file(p: string, content = 'synthetic'): string {
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.writeFileSync(p, content);
      return p;
    }
    /** An old outbound row filed at `payloadPath`, in a state whose payload purge deletes. */
    function oldRow(payloadPath: string, state: 'failed' | 'sent'): void {
      withStore((l) => {
        const row = l.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued', peer: 'X26ABC2', workflowId: 'TEST_WORKFLOW', fileName: path.basename(payloadPath) });
        if (state === 'sent') l.transition(row.id, 'uploading', { patch: { messageId: `20261124100000000000_${row.id}` } });
        l.transition(row.id, state, { patch: { payloadPath } });
      }, LONG_AGO);
    }

    it("removes the purged payloads' .ctl and .reason files with them", async () => {
      oldRow(file(mailbox('failed', 'refused.csv')), 'failed');
      file(mailbox('failed', 'refused.csv.ctl'));
      file(mailbox('failed', 'refused.csv.reason'), 'MESH_REJECTED: refused\n');
      oldRow(file(mailbox('sent', 'batch.dat')), 'sent');
      file(mailbox('sent', 'batch.ctl'));
      const other = file(mailbox('sent', 'other.csv'));
      const r = await meshd('ledger', 'purge', '--older-than', '30d', '--json');
      expect(r.code, r.stderr).to.equal(0);
      expect(JSON.parse(r.stdout)).to.include({ payloadsDeleted: 2, companionsDeleted: 3, payloadsMissing: 0 });
      expect(fs.readdirSync(mailbox('failed'))).to.deep.equal([]);
      expect(fs.readdirSync(mailbox('sent'))).to.deep.equal(['other.csv']);
      expect(fs.existsSync(other)).to.equal(true);
    });

    it('never follows a symlink: a payload or companion that is one is left, with its target, and reported', async () => {
      const victim = file(path.join(dir, 'elsewhere', 'victim.txt'), 'not meshd\'s');
      const victim2 = file(path.join(dir, 'elsewhere', 'victim2.txt'), 'not meshd\'s either');
      fs.mkdirSync(mailbox('failed'), { recursive: true });
      fs.symlinkSync(victim, mailbox('failed', 'swapped.csv'));
      oldRow(mailbox('failed', 'swapped.csv'), 'failed');
      oldRow(file(mailbox('failed', 'real.csv')), 'failed');
      fs.symlinkSync(victim2, mailbox('failed', 'real.csv.reason'));
      const r = await meshd('ledger', 'purge', '--older-than', '30d', '--json');
      expect(r.code).to.equal(1);
      const out = JSON.parse(r.stdout);
      expect(out).to.include({ payloadsDeleted: 1, companionsDeleted: 0 });
      expect(out.failures.map((f: { file: string }) => f.file).sort()).to.deep.equal([mailbox('failed', 'real.csv.reason'), mailbox('failed', 'swapped.csv')]);
      expect(out.failures[0].error).to.include('symlink');
      expect(fs.readFileSync(victim, 'utf8')).to.equal("not meshd's");
      expect(fs.readFileSync(victim2, 'utf8')).to.equal("not meshd's either");
      expect(fs.lstatSync(mailbox('failed', 'swapped.csv')).isSymbolicLink()).to.equal(true);
      expect(fs.existsSync(mailbox('failed', 'real.csv'))).to.equal(false);
    });
  });
});
