import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { ledgerPath, openLedger, type SqliteLedger } from '../../src/ledger';
import { runMeshd } from '../support/cli';

const LONG_AGO = new Date(Date.now() - 90 * 86_400_000);

describe('meshd status and meshd ledger (CLI as a process)', function () {
  this.timeout(60000);
  let dir: string;
  let config: string;
  let db: string;
  let ids: Record<string, number>;

  function meshd(...args: string[]) {
    return runMeshd(['--config', config, ...args], { env: { MESHD_CONFIG: '' } });
  }

  async function json(...args: string[]): Promise<any> {
    const r = await meshd(...args, '--json');
    expect(r.code, r.stderr).to.equal(0);
    return JSON.parse(r.stdout);
  }

  function withStore<T>(fn: (l: SqliteLedger) => T, now?: Date): T {
    const l = openLedger(db, now ? { now: () => now } : {});
    try {
      return fn(l);
    } finally {
      l.close();
    }
  }

  function payload(name: string): string {
    const p = path.join(dir, 'files', name);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, 'MSH|synthetic\r');
    return p;
  }

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshd-cli-ledger-'));
    fs.mkdirSync(path.join(dir, 'certs'));
    for (const f of ['ca.pem', 'client.crt', 'client.key']) fs.writeFileSync(path.join(dir, 'certs', f), '');
    config = path.join(dir, 'meshd.yaml');
    fs.writeFileSync(
      config,
      [
        'environment: local',
        'url: https://127.0.0.1:1',
        'sharedKey: TestOnlySharedKey',
        'tls:',
        '  ca: ./certs/ca.pem',
        '  cert: ./certs/client.crt',
        '  key: ./certs/client.key',
        'dataDir: ./var',
        'mailboxes:',
        '  - id: X26ABC1',
        '    password: TestOnlyPassword1',
        '    folder: ./mailboxes/X26ABC1',
        '',
      ].join('\n'),
    );
    db = ledgerPath(path.join(dir, 'var'));
    ids = {};
    // Old rows: settled ones are purgeable, the needs_review one never is.
    withStore((l) => {
      const failed = l.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued', peer: 'X26ABC2', workflowId: 'TEST_WORKFLOW', fileName: 'old.csv', payloadPath: payload('old-failed.dat') });
      l.transition(failed.id, 'failed', { patch: { errorCode: 'MESH_REJECTED', errorText: 'recipient refused the workflow' } });
      ids.oldFailed = failed.id;
      const review = l.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued', peer: 'X26ABC2', workflowId: 'TEST_WORKFLOW', fileName: 'review.csv', payloadPath: payload('review.dat') });
      l.transition(review.id, 'needs_review', { patch: { errorCode: 'MESH_SEND_AMBIGUOUS' } });
      ids.review = review.id;
    }, LONG_AGO);
    withStore((l) => {
      const sent = l.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued', peer: 'X26ABC2', workflowId: 'OTHER_WORKFLOW', fileName: 'new, "quoted".csv' });
      l.transition(sent.id, 'uploading', { patch: { messageId: '20261124100000000000_AAAAAA' } });
      l.transition(sent.id, 'sent');
      ids.sent = sent.id;
      const inbound = l.insertMessage({ direction: 'in', mailbox: 'X26ABC1', state: 'receiving', peer: 'X26ABC2', messageId: '20261124100000000000_BBBBBB' });
      l.transition(inbound.id, 'delivered');
      ids.delivered = inbound.id;
      l.setMailboxStatus('X26ABC1', { lastPollAt: new Date(), lastPollOk: false, lastPollError: 'MESH_TRANSIENT: 503 from MESH' });
    });
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  describe('status', () => {
    it('reports per mailbox: last poll, counts by state, oldest waiting and unacknowledged (--json)', async () => {
      const out = await json('status');
      expect(out.mailboxes).to.have.length(1);
      const m = out.mailboxes[0];
      expect(m.mailbox).to.equal('X26ABC1');
      expect(m.lastPoll).to.include({ ok: false, error: 'MESH_TRANSIENT: 503 from MESH' });
      expect(m.lastHandshakeAt).to.equal(null);
      expect(m.counts).to.deep.equal({ out: { failed: 1, needs_review: 1, sent: 1 }, in: { delivered: 1 } });
      expect(m.oldestWaitingToSend).to.include({ id: ids.review, state: 'needs_review' });
      expect(m.oldestSentUnacknowledged).to.include({ id: ids.sent });
      expect(m.oldestDeliveredUnacknowledged).to.include({ id: ids.delivered });
    });

    it('tells a person what needs attention', async () => {
      const r = await meshd('status');
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.include('X26ABC1').and.include('FAILED: MESH_TRANSIENT').and.include('need review');
    });

    it('refuses clearly when there is no ledger, without creating one', async () => {
      fs.rmSync(path.join(dir, 'var'), { recursive: true });
      const r = await meshd('status', '--json');
      expect(r.code).to.equal(1);
      expect(JSON.parse(r.stdout).error.code).to.equal('LEDGER_MISSING');
      expect(fs.existsSync(db)).to.equal(false);
    });

    it('refuses a mailbox that is not in the config', async () => {
      const r = await meshd('--mailbox', 'X26ZZZ9', 'status');
      expect(r.code).to.equal(2);
      expect(r.stderr).to.include('X26ZZZ9');
    });
  });

  describe('ledger list and show', () => {
    it('lists newest first with filters, using the state names', async () => {
      const all = await json('ledger', 'list');
      expect(all.messages.map((m: any) => m.id)).to.deep.equal([ids.delivered, ids.sent, ids.review, ids.oldFailed]);
      expect((await json('ledger', 'list', '--state', 'needs_review')).messages.map((m: any) => m.id)).to.deep.equal([ids.review]);
      expect((await json('ledger', 'list', '--direction', 'in')).messages.map((m: any) => m.id)).to.deep.equal([ids.delivered]);
      expect((await json('ledger', 'list', '--workflow', 'OTHER_WORKFLOW')).messages.map((m: any) => m.id)).to.deep.equal([ids.sent]);
      expect((await json('ledger', 'list', '--since', '7d')).messages.map((m: any) => m.id)).to.deep.equal([ids.delivered, ids.sent]);
      expect((await json('ledger', 'list', '--limit', '1')).messages).to.have.length(1);
    });

    it('prints a table for people and refuses bad filters as usage errors', async () => {
      const r = await meshd('ledger', 'list');
      expect(r.stdout.split('\n')[0]).to.match(/^ID\s+DIR\s+MAILBOX\s+STATE/);
      expect(r.stdout).to.include('needs_review').and.include('MESH_REJECTED: recipient refused');
      for (const bad of [['--state', 'lost'], ['--direction', 'up'], ['--limit', '0'], ['--since', 'last tuesday']]) {
        const b = await meshd('ledger', 'list', ...bad);
        expect(b.code, bad.join(' ')).to.equal(2);
      }
    });

    it('shows one message with its history, by row id or MESH message id', async () => {
      const byId = await json('ledger', 'show', String(ids.sent));
      expect(byId.message).to.include({ id: ids.sent, state: 'sent', messageId: '20261124100000000000_AAAAAA' });
      expect(byId.events.map((e: any) => e.toState)).to.deep.equal(['queued', 'uploading', 'sent']);
      const byMessageId = await json('ledger', 'show', '20261124100000000000_BBBBBB');
      expect(byMessageId.message.id).to.equal(ids.delivered);
      const text = await meshd('ledger', 'show', String(ids.sent));
      expect(text.stdout).to.include('history:').and.include('uploading → sent');
      const missing = await meshd('ledger', 'show', 'NO_SUCH_ID', '--json');
      expect(missing.code).to.equal(1);
      expect(JSON.parse(missing.stdout).error.code).to.equal('LEDGER_NOT_FOUND');
    });
  });

  describe('ledger retry and resolve', () => {
    it('retries a failed outbound message: queued again with attempts reset, recorded', async () => {
      const out = await json('ledger', 'retry', String(ids.oldFailed), '--note', 'workflow now registered');
      expect(out.message).to.include({ state: 'queued', attempts: 0, errorCode: null });
      const events = withStore((l) => l.events(ids.oldFailed));
      expect(events.at(-1)).to.deep.include({ type: 'operator_retry', fromState: 'failed', toState: 'queued' });
      expect(events.at(-1)!.detail).to.include({ note: 'workflow now registered' });
    });

    it('refuses to retry a message in another state, saying why', async () => {
      const r = await meshd('ledger', 'retry', String(ids.sent));
      expect(r.code).to.equal(1);
      expect(r.stderr).to.include('cannot be retried');
      const review = await meshd('ledger', 'retry', String(ids.review));
      expect(review.stderr).to.include('meshd ledger resolve');
      expect(withStore((l) => l.get(ids.sent)!.state)).to.equal('sent');
    });

    it('refuses to retry when the payload is gone', async () => {
      fs.rmSync(path.join(dir, 'files', 'old-failed.dat'));
      const r = await meshd('ledger', 'retry', String(ids.oldFailed), '--json');
      expect(r.code).to.equal(1);
      expect(JSON.parse(r.stdout).error.code).to.equal('LEDGER_CONFLICT');
    });

    it('resolves needs_review as sent with the MESH id and note', async () => {
      const out = await json('ledger', 'resolve', String(ids.review), '--as', 'sent', '--note', 'seen in MESH tracking', '--message-id', '20261124100000000000_CCCCCC');
      expect(out.message).to.include({ state: 'sent', messageId: '20261124100000000000_CCCCCC' });
      expect(withStore((l) => l.events(ids.review).at(-1)!.detail)).to.deep.equal({ as: 'sent', note: 'seen in MESH tracking', messageId: '20261124100000000000_CCCCCC' });
    });

    it('resolves needs_review as failed, and refuses other states, bad outcomes and a missing note', async () => {
      expect((await json('ledger', 'resolve', String(ids.review), '--as', 'failed', '--note', 'not in MESH')).message.state).to.equal('failed');
      expect((await meshd('ledger', 'resolve', String(ids.sent), '--as', 'failed', '--note', 'x')).code).to.equal(1);
      expect((await meshd('ledger', 'resolve', String(ids.review), '--as', 'maybe', '--note', 'x')).code).to.equal(2);
      expect((await meshd('ledger', 'resolve', String(ids.review), '--as', 'sent')).code).to.equal(2);
    });
  });

  describe('ledger purge, export and backup', () => {
    it('purges settled rows older than the age and deletes their payload files, never rows still in play', async () => {
      const out = await json('ledger', 'purge', '--older-than', '30d');
      expect(out).to.include({ rows: 1, payloadsDeleted: 1, payloadsMissing: 0 });
      expect(fs.existsSync(path.join(dir, 'files', 'old-failed.dat'))).to.equal(false);
      expect(fs.existsSync(path.join(dir, 'files', 'review.dat'))).to.equal(true);
      const left = withStore((l) => l.list({}).map((r) => r.id));
      expect(left).to.have.members([ids.review, ids.sent, ids.delivered]);
    });

    it('with --payloads-only keeps the rows and forgets the payload', async () => {
      const out = await json('ledger', 'purge', '--older-than', '30d', '--payloads-only');
      expect(out).to.include({ rows: 0, payloadsDeleted: 1 });
      expect(withStore((l) => l.get(ids.oldFailed)!.payloadPath)).to.equal(null);
    });

    it('uses the configured retention when no age is given', async () => {
      // Defaults: payloads 30 days, rows 365 days: the 90-day-old failed row keeps its row, loses its payload.
      const out = await json('ledger', 'purge');
      expect(out).to.include({ rows: 0, payloadsDeleted: 1 });
      expect(withStore((l) => l.get(ids.oldFailed)!.state)).to.equal('failed');
    });

    it('exports CSV with a header and quoting, and JSON as an array', async () => {
      const csv = await meshd('ledger', 'export', '--format', 'csv');
      expect(csv.code, csv.stderr).to.equal(0);
      const lines = csv.stdout.trimEnd().split('\r\n');
      expect(lines[0].split(',').slice(0, 3)).to.deep.equal(['id', 'direction', 'mailbox']);
      expect(lines).to.have.length(5);
      expect(csv.stdout).to.include('"new, ""quoted"".csv"');
      const rows = JSON.parse((await meshd('ledger', 'export', '--format', 'json', '--since', '7d')).stdout);
      expect(rows.map((r: any) => r.id)).to.deep.equal([ids.sent, ids.delivered]);
      expect((await meshd('ledger', 'export', '--format', 'xml')).code).to.equal(2);
    });

    it('backs up to an openable 0600 copy', async () => {
      const target = path.join(dir, 'backups', 'meshd-backup.db');
      fs.mkdirSync(path.dirname(target));
      const out = await json('ledger', 'backup', target);
      expect(out.backup).to.equal(target);
      expect(fs.statSync(target).mode & 0o777).to.equal(0o600);
      const copy = openLedger(target, { create: false });
      try {
        expect(copy.list({}).map((r) => r.id)).to.have.members(Object.values(ids));
      } finally {
        copy.close();
      }
    });
  });
});
