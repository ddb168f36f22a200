import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { MIGRATIONS, openLedger, purgeInSteps, runMigrations, type SqliteLedger } from '../../src/ledger';
import { PURGE_BATCH, nextBatchRows } from '../../src/ledger/sqlite-ledger';
import { MeshdError } from '../../src/errors';

/**
 * What keeps a big ledger fast (migration 5, docs/performance.md) must never change an answer:
 * counts by state from message_counts equal a count of the rows, the oldest row is the oldest,
 * a purge in steps removes what a purge in one go removes, and the integrity check runs when due.
 */
const OLD = new Date('2025-01-01T00:00:00Z');
const NOW = new Date('2026-11-24T00:00:00Z');

function rawCounts(file: string, mailbox: string, direction: string): Record<string, number> {
  const db = new Database(file, { readonly: true });
  try {
    const rows = db.prepare('SELECT state, COUNT(*) AS n FROM messages WHERE mailbox = ? AND direction = ? GROUP BY state').all(mailbox, direction) as Array<{ state: string; n: number }>;
    return Object.fromEntries(rows.map((r) => [r.state, r.n]));
  } finally {
    db.close();
  }
}

describe('a big ledger: counts, oldest, purge in steps, integrity check', () => {
  let dir: string;
  let file: string;
  let clock: Date;
  let ledger: SqliteLedger;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshd-ledger-big-'));
    file = path.join(dir, 'meshd.db');
    clock = OLD;
    ledger = openLedger(file, { now: () => clock });
  });
  afterEach(() => {
    ledger.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Outbound rows walked to sent, acknowledged and failed; inbound to delivered and acknowledged. */
  function traffic(mailbox: string, n: number): void {
    ledger.transaction(() => {
      for (let i = 0; i < n; i++) {
        const out = ledger.insertMessage({ direction: 'out', mailbox, state: 'queued', payloadPath: `/sent/${mailbox}-${i}` });
        if (i % 3 === 0) ledger.transition(out.id, 'failed');
        else {
          ledger.transition(out.id, 'sent', { patch: { messageId: `${mailbox}-out-${i}` } });
          if (i % 3 === 1) ledger.transition(out.id, 'acknowledged');
        }
        const inbound = ledger.insertMessage({ direction: 'in', mailbox, state: 'receiving', messageId: `${mailbox}-in-${i}` });
        ledger.transition(inbound.id, 'delivered', { patch: { payloadPath: `/in/${mailbox}-${i}` } });
        if (i % 2 === 0) ledger.transition(inbound.id, 'acknowledged');
      }
    });
  }

  it('counts by state from message_counts exactly as a count of the rows, through inserts, moves and purges', () => {
    traffic('X26ABC1', 30);
    traffic('X26ABC2', 7);
    const check = () => {
      for (const mb of ['X26ABC1', 'X26ABC2']) for (const dir of ['out', 'in'] as const) expect(ledger.countsByState(mb, dir), `${mb} ${dir}`).to.deep.equal(rawCounts(file, mb, dir));
    };
    check();
    expect(ledger.countsByState()).to.deep.equal({ failed: 13, sent: 12, acknowledged: 12 + 19, delivered: 18 });
    clock = NOW;
    expect(ledger.purge({ olderThan: new Date('2026-01-01T00:00:00Z'), payloadsOnly: false, now: NOW }).rows).to.equal(13 + 12 + 19);
    check();
    expect(ledger.countsByState('X26ABC1', 'out')).to.deep.equal({ sent: 10 });
  });

  it('migrates a version-4 ledger with rows: message_counts starts from the rows already there', () => {
    ledger.close();
    const old = path.join(dir, 'v4.db');
    const db = new Database(old);
    db.pragma('journal_mode = WAL');
    runMigrations(db, old, MIGRATIONS.filter((m) => m.version <= 4));
    const insert = db.prepare("INSERT INTO messages (direction, mailbox, state, created_at, updated_at) VALUES (?, 'X26ABC1', ?, '2025-01-01', '2025-01-01')");
    for (const [dir, state, n] of [['out', 'sent', 3], ['out', 'failed', 2], ['in', 'delivered', 4]] as const) for (let i = 0; i < n; i++) insert.run(dir, state);
    db.close();
    ledger = openLedger(old);
    expect(ledger.countsByState('X26ABC1', 'out')).to.deep.equal({ sent: 3, failed: 2 });
    expect(ledger.countsByState('X26ABC1', 'in')).to.deep.equal({ delivered: 4 });
  });

  it('finds the oldest row over several states, ties broken by id', () => {
    const a = ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued' });
    clock = new Date('2025-01-02T00:00:00Z');
    const b = ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'claiming' });
    ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'claiming' });
    expect(ledger.oldest('X26ABC1', 'out', ['claiming', 'queued'])?.id).to.equal(a.id);
    expect(ledger.oldest('X26ABC1', 'out', ['claiming'])?.id).to.equal(b.id);
    expect(ledger.oldest('X26ABC1', 'out', ['sent'])).to.equal(undefined);
    expect(ledger.oldest('X26ABC2', 'out', ['queued'])).to.equal(undefined);
  });

  it('purges in steps of one batch exactly what one purge removes, and says when it is done', () => {
    ledger.transaction(() => {
      for (let i = 0; i < 1200; i++) {
        const row = ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued', payloadPath: `/sent/${i}` });
        ledger.transition(row.id, 'failed');
      }
    });
    clock = NOW;
    const cutoff = new Date('2026-01-01T00:00:00Z');
    const first = ledger.purge({ olderThan: cutoff, payloadsOnly: true, now: NOW, maxBatches: 1 });
    expect(first.done).to.equal(false);
    expect(first.payloads).to.have.length(PURGE_BATCH);
    const payloads = [...first.payloads];
    let rows = 0;
    let calls = 1;
    for (let r = first; !r.done; calls++) {
      r = ledger.purge({ olderThan: cutoff, payloadsOnly: false, now: NOW, maxBatches: 1 });
      payloads.push(...r.payloads);
      rows += r.rows;
    }
    expect(new Set(payloads).size).to.equal(1200);
    expect(rows).to.equal(1200);
    expect(calls).to.be.greaterThan(3);
    expect(ledger.countsByState()).to.deep.equal({});
  });

  it('purgeInSteps removes everything due unless told to stop, and returns what it removed before stopping', async () => {
    ledger.transaction(() => {
      for (let i = 0; i < 3 * PURGE_BATCH; i++) ledger.transition(ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued', payloadPath: `/sent/${i}` }).id, 'failed');
    });
    clock = NOW;
    const opts = { olderThan: new Date('2026-01-01T00:00:00Z'), payloadsOnly: false, now: NOW };
    const stopped = await purgeInSteps(ledger, opts, () => true);
    expect(stopped.payloads).to.have.length(PURGE_BATCH);
    expect(stopped.rows).to.equal(PURGE_BATCH);
    const rest = await purgeInSteps(ledger, opts);
    expect(rest.rows).to.equal(2 * PURGE_BATCH);
    expect(new Set([...stopped.payloads, ...rest.payloads]).size).to.equal(3 * PURGE_BATCH);
    expect(ledger.list({})).to.deep.equal([]);
  });

  it('sizes purge batches to the time one takes, within bounds', () => {
    expect(nextBatchRows(250, 5)).to.equal(500);
    expect(nextBatchRows(250, 25)).to.equal(250);
    expect(nextBatchRows(250, 100)).to.equal(125);
    expect(nextBatchRows(4000, 1)).to.equal(4000);
    expect(nextBatchRows(50, 1000)).to.equal(50);
  });

  describe('integrity check at open', () => {
    const lastOk = () => {
      const db = new Database(file, { readonly: true });
      try {
        return (db.prepare('SELECT last_ok_at FROM integrity_checks WHERE id = 1').get() as { last_ok_at: string } | undefined)?.last_ok_at;
      } finally {
        db.close();
      }
    };
    const setLastOk = (at: string) => {
      const db = new Database(file);
      db.prepare('UPDATE integrity_checks SET last_ok_at = ? WHERE id = 1').run(at);
      db.close();
    };

    it('full records each passing check; daily checks only when the last one is a day old or from the future; none never', () => {
      ledger.close();
      const first = lastOk();
      expect(Date.now() - Date.parse(first!)).to.be.lessThan(60_000);
      setLastOk('2026-01-01T00:00:00.000Z');
      openLedger(file, { integrity: 'none' }).close();
      expect(lastOk()).to.equal('2026-01-01T00:00:00.000Z');
      openLedger(file, { integrity: 'daily' }).close();
      const checked = lastOk()!;
      expect(checked).to.not.equal('2026-01-01T00:00:00.000Z');
      openLedger(file, { integrity: 'daily' }).close();
      expect(lastOk()).to.equal(checked);
      setLastOk('2999-01-01T00:00:00.000Z');
      openLedger(file, { integrity: 'daily' }).close();
      expect(lastOk()).to.not.equal('2999-01-01T00:00:00.000Z');
      setLastOk('2026-01-01T00:00:00.000Z');
      ledger = openLedger(file, { integrity: 'full' });
      expect(lastOk()).to.not.equal('2026-01-01T00:00:00.000Z');
    });

    it('daily still refuses a corrupted ledger that was never checked', () => {
      ledger.transaction(() => {
        for (let i = 0; i < 400; i++) ledger.insertMessage({ direction: 'in', mailbox: 'X26ABC1', state: 'receiving', messageId: `M${i}`, subject: 'x'.repeat(200) });
      });
      ledger.close();
      const db = new Database(file);
      db.prepare('DELETE FROM integrity_checks').run();
      db.pragma('wal_checkpoint(TRUNCATE)');
      db.close();
      const bytes = fs.readFileSync(file);
      const pageSize = bytes.readUInt16BE(16);
      // The last pages hold message rows and indexes; the schema at the front stays readable.
      for (let i = bytes.length - pageSize * 6; i < bytes.length - pageSize; i++) bytes[i] = (i * 7919) & 0xff;
      fs.writeFileSync(file, bytes);
      let err: unknown;
      try {
        ledger = openLedger(file, { integrity: 'daily' });
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(MeshdError);
      expect((err as MeshdError).code).to.equal('LEDGER_CORRUPT');
      ledger = openLedger(path.join(dir, 'fresh.db'));
    });
  });
});
