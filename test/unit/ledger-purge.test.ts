import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { MessageState, statesFor, SETTLED_STATES, TRANSITIONS, INITIAL_STATES, openLedger, type Direction, type SqliteLedger } from '../../src/ledger';
import { MeshdError } from '../../src/errors';

const OLD = new Date('2025-01-01T00:00:00Z');
const NOW = new Date('2026-11-24T00:00:00Z');
const CUTOFF = new Date('2026-10-01T00:00:00Z');

function pathTo(direction: Direction, target: MessageState): MessageState[] {
  const queue: MessageState[][] = INITIAL_STATES[direction].map((s) => [s]);
  for (;;) {
    const p = queue.shift()!;
    const last = p[p.length - 1];
    if (last === target) return p;
    for (const next of TRANSITIONS[direction][last] ?? []) if (!p.includes(next)) queue.push([...p, next]);
  }
}

describe('ledger purge and backup', () => {
  let dir: string;
  let clock: Date;
  let ledger: SqliteLedger;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshd-ledger-purge-'));
    clock = OLD;
    ledger = openLedger(path.join(dir, 'meshd.db'), { now: () => clock });
  });
  afterEach(() => {
    ledger.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** One old row in every state of every direction, each with a payload path naming it. */
  function everyState(): Map<number, { direction: Direction; state: MessageState }> {
    const made = new Map<number, { direction: Direction; state: MessageState }>();
    for (const direction of ['out', 'in'] as Direction[]) {
      for (const state of statesFor(direction)) {
        const route = pathTo(direction, state);
        const row = ledger.insertMessage({
          direction,
          mailbox: 'X26ABC1',
          state: route[0],
          payloadPath: `/data/${direction}-${state}.dat`,
          ctlPath: `/data/${direction}-${state}.ctl`,
        });
        for (const next of route.slice(1)) ledger.transition(row.id, next);
        made.set(row.id, { direction, state });
      }
    }
    return made;
  }

  it('never purges rows in non-settled states, and deletes settled ones with their events', () => {
    const made = everyState();
    const result = ledger.purge({ olderThan: CUTOFF, payloadsOnly: false, now: NOW });
    const left = new Map(ledger.list({ limit: 1000 }).map((r) => [r.id, r]));
    let settled = 0;
    for (const [id, { direction, state }] of made) {
      if (SETTLED_STATES.includes(state)) {
        settled++;
        expect(left.has(id), `${direction} ${state} purged`).to.equal(false);
        expect(ledger.events(id), `${direction} ${state} events`).to.have.length(0);
      } else {
        expect(left.get(id)?.state, `${direction} ${state} kept`).to.equal(state);
        expect(ledger.events(id).length).to.be.greaterThan(0);
      }
    }
    expect(result.rows).to.equal(settled);
  });

  it('returns only payload copies that are the daemon’s own, never in/ files of delivered messages', () => {
    everyState();
    const { payloads } = ledger.purge({ olderThan: CUTOFF, payloadsOnly: true, now: NOW });
    expect(payloads.sort()).to.deep.equal(
      [
        '/data/out-sent.dat',
        '/data/out-sent.ctl',
        '/data/out-confirmed.dat',
        '/data/out-confirmed.ctl',
        '/data/out-rejected.dat',
        '/data/out-rejected.ctl',
        '/data/out-acknowledged.dat',
        '/data/out-acknowledged.ctl',
        '/data/out-undeliverable.dat',
        '/data/out-undeliverable.ctl',
        '/data/out-failed.dat',
        '/data/out-failed.ctl',
        '/data/in-quarantined.dat',
        '/data/in-quarantined.ctl',
      ].sort(),
    );
    // The store has forgotten them and says so in the history, once a row; rows stay.
    const sent = ledger.list({ state: 'sent' })[0];
    expect(sent.payloadPath).to.equal(null);
    expect(ledger.events(sent.id).at(-1)).to.include({ type: 'payload_purged', at: NOW.toISOString() });
    const cleared = ledger.list({ limit: 1000 }).filter((r) => r.direction === 'out' ? !['claiming', 'queued', 'uploading', 'needs_review'].includes(r.state) : r.state === 'quarantined');
    expect(cleared).to.have.length(7);
    for (const row of cleared) {
      expect(row).to.include({ payloadPath: null, ctlPath: null });
      expect(ledger.events(row.id).filter((e) => e.type === 'payload_purged'), row.state).to.have.length(1);
    }
    expect(ledger.list({ state: 'delivered' })[0].payloadPath).to.equal('/data/in-delivered.dat');
    expect(ledger.list({ state: 'needs_review', direction: 'out' })[0].payloadPath).to.equal('/data/out-needs_review.dat');
    expect(ledger.list({ state: 'needs_review', direction: 'in' })[0].payloadPath, 'a person has yet to decide').to.equal('/data/in-needs_review.dat');
    // Nothing left to return on a second run.
    expect(ledger.purge({ olderThan: CUTOFF, payloadsOnly: true, now: NOW }).payloads).to.deep.equal([]);
  });

  it('a purge of rows alone hands back the same payloads as a payloads-only purge before it, once each', () => {
    everyState();
    const { payloads, rows } = ledger.purge({ olderThan: CUTOFF, payloadsOnly: false, now: NOW });
    expect(rows).to.be.greaterThan(0);
    expect(payloads.length).to.equal(new Set(payloads).size);
    expect(payloads.sort()).to.deep.equal(
      ['sent', 'confirmed', 'rejected', 'acknowledged', 'undeliverable', 'failed'].flatMap((s) => [`/data/out-${s}.dat`, `/data/out-${s}.ctl`]).concat(['/data/in-quarantined.dat', '/data/in-quarantined.ctl']).sort(),
    );
    // The row kept (sent is not settled) has forgotten its payload, and says so.
    const sent = ledger.list({ state: 'sent' })[0];
    expect(sent.payloadPath).to.equal(null);
    expect(ledger.events(sent.id).at(-1)).to.include({ type: 'payload_purged' });
  });

  it('keeps rows and payloads that are newer than the cutoff', () => {
    clock = new Date('2026-11-20T00:00:00Z');
    const row = ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'failed', payloadPath: '/data/new.dat' });
    const result = ledger.purge({ olderThan: CUTOFF, payloadsOnly: false, now: NOW });
    expect(result).to.deep.equal({ rows: 0, payloads: [], done: true });
    expect(ledger.get(row.id)!.payloadPath).to.equal('/data/new.dat');
  });

  it('returns the payloads of purged rows too, and purges in batches', () => {
    ledger.transaction(() => {
      for (let i = 0; i < 1203; i++) ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'failed', payloadPath: `/data/${i}.dat` });
    });
    const result = ledger.purge({ olderThan: CUTOFF, payloadsOnly: false, now: NOW });
    expect(result.rows).to.equal(1203);
    expect(new Set(result.payloads).size).to.equal(1203);
    expect(ledger.list({})).to.have.length(0);
  });

  it('forgets old appointment records with the rows', () => {
    ledger.recordAppointment('OLD', 'out', { eventKind: 'booked' });
    clock = NOW;
    ledger.recordAppointment('NEW', 'out', { eventKind: 'booked' });
    ledger.purge({ olderThan: CUTOFF, payloadsOnly: false, now: NOW });
    expect(ledger.getAppointment('OLD')).to.equal(undefined);
    expect(ledger.getAppointment('NEW')).to.not.equal(undefined);
  });

  it('does what the foreign keys would for purged rows: keys deleted, appointment links cleared, every reference left valid', () => {
    const gone = ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'failed' });
    ledger.setMessageKeys(gone.id, ['X26ABC2|appt:1', 'X26ABC2|patient:9990000018']);
    clock = NOW;
    const kept = ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'failed' });
    ledger.setMessageKeys(kept.id, ['X26ABC2|appt:1']);
    ledger.recordAppointment('APPT-1', 'out', { eventKind: 'booked', messageRowId: gone.id });
    ledger.recordAppointment('APPT-2', 'out', { eventKind: 'booked', messageRowId: kept.id });

    expect(ledger.purge({ olderThan: CUTOFF, payloadsOnly: false, now: NOW }).rows).to.equal(1);

    const db = new Database(ledger.file, { readonly: true });
    try {
      expect(db.prepare('SELECT row_id, key FROM message_keys ORDER BY key').all()).to.deep.equal([{ row_id: kept.id, key: 'X26ABC2|appt:1' }]);
      expect(db.prepare('SELECT appointment_key AS key, message_row_id FROM appointments ORDER BY appointment_key').all()).to.deep.equal([
        { key: 'APPT-1', message_row_id: null },
        { key: 'APPT-2', message_row_id: kept.id },
      ]);
      expect(db.pragma('foreign_key_check')).to.deep.equal([]);
    } finally {
      db.close();
    }
  });

  it('turns foreign-key checks back on after a purge, also one that fails, and keeps them on inside a transaction', () => {
    const db = (ledger as unknown as { db: Database.Database }).db;
    ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'failed' });
    ledger.purge({ olderThan: CUTOFF, payloadsOnly: false, now: NOW });
    expect(db.pragma('foreign_keys', { simple: true })).to.equal(1);

    ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'failed' });
    db.exec("CREATE TEMP TRIGGER fail_purge BEFORE DELETE ON messages BEGIN SELECT RAISE(ABORT, 'disk gone'); END");
    expect(() => ledger.purge({ olderThan: CUTOFF, payloadsOnly: false, now: NOW })).to.throw(/disk gone/);
    expect(db.pragma('foreign_keys', { simple: true })).to.equal(1);
    db.exec('DROP TRIGGER fail_purge');

    // Within an outer transaction the pragma cannot change: the checks stay on and do their own work.
    const row = ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'failed' });
    ledger.setMessageKeys(row.id, ['X26ABC2|appt:2']);
    ledger.transaction(() => {
      expect(ledger.purge({ olderThan: CUTOFF, payloadsOnly: false, now: NOW }).rows).to.equal(2);
      expect(db.pragma('foreign_keys', { simple: true })).to.equal(1);
    });
    expect(db.prepare('SELECT COUNT(*) FROM message_keys').pluck().get()).to.equal(0);
  });

  it('leaves events append-only after a purge (the guard is reset)', () => {
    const row = ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'failed' });
    clock = NOW;
    ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'failed' });
    ledger.purge({ olderThan: CUTOFF, payloadsOnly: false, now: NOW });
    expect(ledger.get(row.id)).to.equal(undefined);
    const file = ledger.file;
    ledger.close();
    const db = new Database(file);
    expect(() => db.prepare('DELETE FROM events').run()).to.throw(/append-only/);
    db.close();
    ledger = openLedger(file, { now: () => clock });
  });

  it('backs up online to an openable 0600 copy, replacing an older backup atomically', async () => {
    const row = ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued', messageId: 'M1' });
    const target = path.join(dir, 'backup.db');
    fs.writeFileSync(target, 'an older backup');
    await ledger.backup(target);
    expect(fs.statSync(target).mode & 0o777).to.equal(0o600);
    expect(fs.readdirSync(dir).filter((f) => f.includes('.tmp'))).to.deep.equal([]);
    const copy = openLedger(target);
    try {
      expect(copy.get(row.id)).to.deep.equal(ledger.get(row.id));
      expect(copy.events(row.id)).to.have.length(1);
    } finally {
      copy.close();
    }
    // The live ledger keeps working after a backup.
    ledger.transition(row.id, 'uploading');
  });

  it('reports a backup to an unwritable place with LEDGER_BACKUP_FAILED', async () => {
    let caught: unknown;
    try {
      await ledger.backup(path.join(dir, 'no', 'such', 'dir', 'b.db'));
    } catch (err) {
      caught = err;
    }
    expect(caught).to.be.instanceOf(MeshdError);
    expect((caught as MeshdError).code).to.equal('LEDGER_BACKUP_FAILED');
  });
});
