import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { MessageState, openLedger, type SqliteLedger } from '../../src/ledger';
import { MeshdError } from '../../src/errors';

const T0 = new Date('2026-11-01T09:00:00.000Z');

describe('ledger store', () => {
  let dir: string;
  let file: string;
  let clock: Date;
  let ledger: SqliteLedger;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshd-ledger-store-'));
    file = path.join(dir, 'meshd.db');
    clock = T0;
    ledger = openLedger(file, { now: () => clock });
  });
  afterEach(() => {
    ledger.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const queued = (extra: Record<string, unknown> = {}) =>
    ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued', peer: 'X26ABC2', workflowId: 'TEST_WORKFLOW', ...extra });

  describe('rows', () => {
    it('stores every field and reads it back in the same shape', () => {
      const row = queued({
        localId: 'L1',
        subject: 'registrations',
        fileName: 'reg.csv',
        payloadPath: '/spool/1.dat',
        sizeBytes: 1234,
        sha256: 'ab'.repeat(32),
        chunkSize: 20 * 1024 * 1024,
        chunksTotal: 1,
        compress: true,
        transform: 'csv>fhir-r4',
        nextAttemptAt: new Date('2026-11-01T10:00:00Z'),
      });
      expect(ledger.get(row.id)).to.deep.equal(row);
      expect(row).to.include({
        direction: 'out',
        mailbox: 'X26ABC1',
        state: 'queued',
        messageType: 'DATA',
        compress: true,
        chunksDone: 0,
        attempts: 0,
        transform: 'csv>fhir-r4',
        nextAttemptAt: '2026-11-01T10:00:00.000Z',
        createdAt: T0.toISOString(),
        updatedAt: T0.toISOString(),
      });
    });

    it('records a creation event with the initial state', () => {
      const row = queued();
      const [ev] = ledger.events(row.id);
      expect(ev).to.include({ type: 'created', fromState: null, toState: 'queued', at: T0.toISOString() });
    });

    it('updates fields without a state change and records the event if given', () => {
      const row = queued();
      clock = new Date(T0.getTime() + 1000);
      const updated = ledger.update(row.id, { chunksDone: 2, chunksTotal: 5 }, { type: 'chunk_sent', detail: { chunk: 2 } });
      expect(updated).to.include({ chunksDone: 2, chunksTotal: 5, state: 'queued', updatedAt: clock.toISOString() });
      expect(ledger.events(row.id).at(-1)).to.include({ type: 'chunk_sent', fromState: null, toState: null });
    });

    it('refuses to change state, identity or stamps through update()', () => {
      const row = queued();
      for (const field of ['state', 'id', 'direction', 'mailbox', 'createdAt', 'bogus']) {
        expect(() => ledger.update(row.id, { [field]: 'x' } as never), field).to.throw(MeshdError).with.property('code', 'LEDGER_BAD_FIELD');
      }
      expect(ledger.get(row.id)!.state).to.equal('queued');
    });

    it('keeps one row per MESH message id per mailbox and direction', () => {
      queued({ messageId: 'M1' });
      expect(() => queued({ messageId: 'M1' })).to.throw(MeshdError).with.property('code', 'LEDGER_DUPLICATE');
      const other = queued();
      expect(() => ledger.update(other.id, { messageId: 'M1' })).to.throw(MeshdError).with.property('code', 'LEDGER_DUPLICATE');
      // The same id may exist once per direction (a message sent to our own mailbox) and per mailbox.
      ledger.insertMessage({ direction: 'in', mailbox: 'X26ABC1', state: 'receiving', messageId: 'M1' });
      ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC9', state: 'queued', messageId: 'M1' });
      // Many rows may still lack an id.
      queued();
      queued();
      expect(ledger.list({ limit: 100 })).to.have.length(6);
    });

    it('finds rows by MESH id, by numeric row id, and by either through findByRef', () => {
      const a = queued({ messageId: '20261101090000000000_ABC123' });
      expect(ledger.findByMessageId('X26ABC1', 'out', '20261101090000000000_ABC123')!.id).to.equal(a.id);
      expect(ledger.findByMessageId('X26ABC1', 'in', '20261101090000000000_ABC123')).to.equal(undefined);
      expect(ledger.findByRef(String(a.id))!.id).to.equal(a.id);
      expect(ledger.findByRef('20261101090000000000_ABC123')!.id).to.equal(a.id);
      expect(ledger.findByRef('nope')).to.equal(undefined);
      expect(ledger.findByRef('424242')).to.equal(undefined);
    });
  });

  describe('events', () => {
    it('are append-only: the database refuses UPDATE and DELETE', () => {
      const row = queued();
      ledger.recordEvent(row.id, 'note', { text: 'hello' });
      ledger.close();
      const db = new Database(file);
      expect(() => db.prepare("UPDATE events SET type = 'forged'").run()).to.throw(/append-only/);
      expect(() => db.prepare('DELETE FROM events').run()).to.throw(/append-only/);
      expect((db.prepare('SELECT COUNT(*) AS n FROM events').get() as { n: number }).n).to.equal(2);
      db.close();
      ledger = openLedger(file, { now: () => clock });
    });

    it('refuses an event for a row that does not exist', () => {
      expect(() => ledger.recordEvent(77, 'note')).to.throw(MeshdError).with.property('code', 'LEDGER_NOT_FOUND');
    });
  });

  describe('queries', () => {
    it('lists with filters, newest first, and a limit', () => {
      const a = queued({ workflowId: 'W1' });
      clock = new Date('2026-11-02T00:00:00Z');
      const b = queued({ workflowId: 'W2' });
      const c = ledger.insertMessage({ direction: 'in', mailbox: 'X26ABC2', state: 'receiving', workflowId: 'W1' });
      expect(ledger.list({}).map((r) => r.id)).to.deep.equal([c.id, b.id, a.id]);
      expect(ledger.list({ direction: 'out' }).map((r) => r.id)).to.deep.equal([b.id, a.id]);
      expect(ledger.list({ mailbox: 'X26ABC2' }).map((r) => r.id)).to.deep.equal([c.id]);
      expect(ledger.list({ workflow: 'W1' }).map((r) => r.id)).to.deep.equal([c.id, a.id]);
      expect(ledger.list({ state: 'receiving' }).map((r) => r.id)).to.deep.equal([c.id]);
      expect(ledger.list({ since: new Date('2026-11-01T12:00:00Z') }).map((r) => r.id)).to.deep.equal([c.id, b.id]);
      expect(ledger.list({ limit: 1 }).map((r) => r.id)).to.deep.equal([c.id]);
      expect([...ledger.iterate({ direction: 'out' })].map((r) => r.id)).to.deep.equal([a.id, b.id]);
    });

    it('counts rows by state, per mailbox and direction', () => {
      queued();
      queued();
      const f = queued();
      ledger.transition(f.id, 'failed');
      ledger.insertMessage({ direction: 'in', mailbox: 'X26ABC1', state: 'delivered' });
      ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC9', state: 'queued' });
      expect(ledger.countsByState()).to.deep.equal({ queued: 3, failed: 1, delivered: 1 });
      expect(ledger.countsByState('X26ABC1')).to.deep.equal({ queued: 2, failed: 1, delivered: 1 });
      expect(ledger.countsByState('X26ABC1', 'in')).to.deep.equal({ delivered: 1 });
    });

    it('finds the oldest row waiting in given states', () => {
      const a = queued();
      clock = new Date(T0.getTime() + 60_000);
      queued();
      expect(ledger.oldest('X26ABC1', 'out', ['queued'])!.id).to.equal(a.id);
      expect(ledger.oldest('X26ABC1', 'out', ['sent'])).to.equal(undefined);
    });

    it('returns due rows: in the given states with no next attempt or one at or before now, in due order', () => {
      const now = new Date('2026-11-01T12:00:00Z');
      const later = queued({ nextAttemptAt: new Date('2026-11-01T13:00:00Z') });
      const exact = queued({ nextAttemptAt: now });
      const earlier = queued({ nextAttemptAt: new Date('2026-11-01T11:00:00Z') });
      const immediate = queued();
      const elsewhere = ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC9', state: 'queued' });
      const failed = queued();
      ledger.transition(failed.id, 'failed');
      const due = ledger.due('X26ABC1', 'out', [MessageState.Queued], now, 10).map((r) => r.id);
      expect(due).to.deep.equal([immediate.id, earlier.id, exact.id]);
      expect(due).to.not.include(later.id).and.not.include(elsewhere.id).and.not.include(failed.id);
      expect(ledger.due('X26ABC1', 'out', ['queued', 'failed'], now, 10)).to.have.length(4);
      expect(ledger.due('X26ABC1', 'out', ['queued'], now, 2)).to.have.length(2);
    });
  });

  describe('concurrent moves', () => {
    it('lets exactly one of two connections move the same row out of queued', () => {
      const row = queued();
      const other = openLedger(file, { now: () => clock });
      try {
        const won = ledger.transition(row.id, 'uploading', { from: ['queued'] });
        expect(won.state).to.equal('uploading');
        expect(() => other.transition(row.id, 'uploading', { from: ['queued'] })).to.throw(MeshdError).with.property('code', 'LEDGER_CONFLICT');
        expect(ledger.events(row.id).filter((e) => e.toState === 'uploading')).to.have.length(1);
      } finally {
        other.close();
      }
    });
  });

  describe('transactions', () => {
    it('groups writes in one commit and rolls all of them back on error', () => {
      expect(() =>
        ledger.transaction(() => {
          queued();
          queued();
          throw new Error('boom');
        }),
      ).to.throw('boom');
      expect(ledger.list({})).to.have.length(0);
      const ids = ledger.transaction(() => [queued().id, queued().id]);
      expect(ledger.list({}).map((r) => r.id).sort()).to.deep.equal(ids.sort());
    });

    it('lets transitions and updates join an outer transaction, all or nothing', () => {
      const a = queued();
      const b = queued();
      expect(() =>
        ledger.transaction(() => {
          ledger.transition(a.id, 'uploading', { patch: { messageId: 'MA' } });
          ledger.update(b.id, { attempts: 1 });
          ledger.transition(b.id, 'sent');
          ledger.transition(b.id, 'queued'); // illegal: the whole batch rolls back
        }),
      ).to.throw(MeshdError);
      expect(ledger.get(a.id)).to.include({ state: 'queued', messageId: null });
      expect(ledger.get(b.id)).to.include({ state: 'queued', attempts: 0 });
      expect(ledger.events(a.id)).to.have.length(1);
      ledger.transaction(() => {
        ledger.transition(a.id, 'uploading');
        ledger.transition(b.id, 'sent');
      });
      expect([ledger.get(a.id)!.state, ledger.get(b.id)!.state]).to.deep.equal(['uploading', 'sent']);
    });
  });

  describe('appointments', () => {
    it('remembers the last event sent and received per appointment key', () => {
      expect(ledger.getAppointment('RVJ:F123')).to.equal(undefined);
      const row = queued();
      ledger.recordAppointment('RVJ:F123', 'out', { eventKind: 'booked', trigger: 'S12', startAt: new Date('2026-12-01T09:30:00Z'), status: 'booked', messageRowId: row.id });
      ledger.recordAppointment('RVJ:F123', 'in', { eventKind: 'rescheduled', trigger: 'S13', at: new Date('2026-11-01T10:00:00Z') });
      const rec = ledger.getAppointment('RVJ:F123')!;
      expect(rec.lastSent).to.deep.equal({ eventKind: 'booked', trigger: 'S12', startAt: '2026-12-01T09:30:00.000Z', status: 'booked', at: T0.toISOString(), messageRowId: row.id });
      expect(rec.lastReceived).to.include({ eventKind: 'rescheduled', trigger: 'S13', messageRowId: null });
    });

    it('replaces the record with a newer event but never with an older one', () => {
      ledger.recordAppointment('K', 'out', { eventKind: 'booked', at: new Date('2026-11-01T10:00:00Z') });
      ledger.recordAppointment('K', 'out', { eventKind: 'cancelled', at: new Date('2026-11-01T11:00:00Z') });
      ledger.recordAppointment('K', 'out', { eventKind: 'rescheduled', at: new Date('2026-11-01T10:30:00Z') });
      expect(ledger.getAppointment('K')!.lastSent!.eventKind).to.equal('cancelled');
    });
  });

  describe('mailbox status', () => {
    it('keeps the last poll, handshake and tracking per mailbox, merging patches', () => {
      expect(ledger.mailboxStatus('X26ABC1')).to.equal(undefined);
      ledger.setMailboxStatus('X26ABC1', { lastPollAt: T0, lastPollOk: false, lastPollError: 'MESH_TRANSIENT: 503' });
      ledger.setMailboxStatus('X26ABC1', { lastHandshakeAt: new Date('2026-11-01T06:00:00Z') });
      expect(ledger.mailboxStatus('X26ABC1')).to.deep.equal({
        mailbox: 'X26ABC1',
        lastPollAt: T0.toISOString(),
        lastPollOk: false,
        lastPollError: 'MESH_TRANSIENT: 503',
        lastHandshakeAt: '2026-11-01T06:00:00.000Z',
        lastTrackingAt: null,
      });
      ledger.setMailboxStatus('X26ABC1', { lastPollOk: true, lastPollError: null });
      expect(ledger.mailboxStatus('X26ABC1')).to.include({ lastPollOk: true, lastPollError: null, lastHandshakeAt: '2026-11-01T06:00:00.000Z' });
      expect(() => ledger.setMailboxStatus('X26ABC1', { password: 'x' } as never)).to.throw(MeshdError);
    });
  });

  it('is usable by a second process while open (WAL readers do not block)', () => {
    queued();
    const r = spawnSync(process.execPath, ['-e', `const D=require('better-sqlite3');const d=new D(${JSON.stringify(file)},{readonly:true});process.stdout.write(String(d.prepare('select count(*) n from messages').get().n));`], {
      cwd: path.resolve(__dirname, '../../..'),
      encoding: 'utf8',
    });
    expect(r.stdout).to.equal('1');
  });
});
