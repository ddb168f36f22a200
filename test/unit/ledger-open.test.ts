import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { BUSY_TIMEOUT_MS, MIGRATIONS, SCHEMA_VERSION, ledgerPath, newClaimId, openLedger, runMigrations } from '../../src/ledger';
import { MeshdError } from '../../src/errors';

function caught(fn: () => unknown): MeshdError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(MeshdError);
    return err as MeshdError;
  }
  throw new Error('expected a MeshdError');
}

const mode = (file: string) => fs.statSync(file).mode & 0o777;

describe('ledger open and migrations', () => {
  let dir: string;
  let file: string;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshd-ledger-open-'));
    file = ledgerPath(dir);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('puts the ledger at <dataDir>/meshd.db', () => {
    expect(ledgerPath('/var/lib/meshd')).to.equal('/var/lib/meshd/meshd.db');
  });

  it('creates every table STRICT on a fresh file and records each migration once', () => {
    openLedger(file).close();
    const db = new Database(file, { readonly: true });
    const tables = db.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string; sql: string }>;
    db.close();
    const names = tables.map((t) => t.name);
    expect(names).to.include.members(['messages', 'events', 'appointments', 'mailbox_status', 'schema_version']);
    // sqlite_sequence is SQLite's own bookkeeping for AUTOINCREMENT; every table of ours is STRICT.
    for (const t of tables.filter((t) => t.name !== 'sqlite_sequence')) expect(t.sql, t.name).to.match(/\)\s*STRICT\s*$/);
  });

  it('never reuses a row id, even after the newest rows are deleted', () => {
    const ledger = openLedger(file);
    const a = ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued' });
    const b = ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued' });
    ledger.close();
    const db = new Database(file);
    db.pragma('foreign_keys = OFF');
    db.prepare("UPDATE purge_guard SET active = 1").run();
    db.prepare('DELETE FROM events WHERE message_row_id = ?').run(b.id);
    db.prepare('DELETE FROM messages WHERE id = ?').run(b.id);
    db.close();
    const again = openLedger(file);
    const c = again.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued' });
    again.close();
    expect(c.id).to.be.greaterThan(b.id);
    expect(a.claimId).to.match(/^[0-9a-f]{32}$/);
    expect(new Set([a.claimId, b.claimId, c.claimId]).size).to.equal(3);
  });

  it('claim ids sort by the time they were made (purge deletes from one end of their index) and keep 80 random bits', () => {
    const t = Date.parse('2026-12-01T12:00:00Z');
    const ids = [newClaimId(t + 1), newClaimId(t), newClaimId(t), newClaimId(t + 60_000)];
    for (const id of ids) expect(id).to.match(/^[0-9a-f]{32}$/);
    expect(ids[1].slice(0, 12)).to.equal(t.toString(16).padStart(12, '0'));
    expect(ids[1]).to.not.equal(ids[2]);
    expect(ids[0] > ids[1] && ids[0] > ids[2] && ids[3] > ids[0]).to.equal(true);
  });

  it('migrates a version-1 ledger: rows, events and appointment links kept, ids never reused, claim ids given', () => {
    const db = new Database(file);
    runMigrations(db, file, MIGRATIONS.slice(0, 1));
    db.pragma('foreign_keys = ON');
    const at = '2026-11-01T00:00:00.000Z';
    db.prepare("INSERT INTO messages (id, direction, mailbox, state, created_at, updated_at) VALUES (7, 'out', 'X26ABC1', 'queued', ?, ?)").run(at, at);
    db.prepare("INSERT INTO events (message_row_id, at, type) VALUES (7, ?, 'claimed')").run(at);
    db.prepare("INSERT INTO appointments (appointment_key, direction, event_kind, at, message_row_id) VALUES ('k', 'out', 'booked', ?, 7)").run(at);
    db.close();
    const ledger = openLedger(file);
    const row = ledger.get(7)!;
    expect(row.state).to.equal('queued');
    expect(row.claimId).to.match(/^[0-9a-f]{32}$/);
    expect(ledger.events(7)).to.have.length(1);
    expect(ledger.getAppointment('k')!.lastSent!.messageRowId).to.equal(7);
    expect(ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued' }).id).to.equal(8);
    ledger.close();
  });

  it('is idempotent when reopened: no migration runs twice and data survives', () => {
    const first = openLedger(file);
    first.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued' });
    first.close();
    const second = openLedger(file);
    expect(second.list({})).to.have.length(1);
    second.close();
    const db = new Database(file, { readonly: true });
    const versions = db.prepare('SELECT version FROM schema_version ORDER BY version').all() as Array<{ version: number }>;
    db.close();
    expect(versions.map((v) => v.version)).to.deep.equal(MIGRATIONS.map((m) => m.version));
    expect(versions.at(-1)!.version).to.equal(SCHEMA_VERSION);
  });

  it('refuses a ledger written by a newer meshd', () => {
    openLedger(file).close();
    const db = new Database(file);
    db.prepare('INSERT INTO schema_version (version, applied_at) VALUES (?, ?)').run(SCHEMA_VERSION + 1, new Date().toISOString());
    db.close();
    const err = caught(() => openLedger(file));
    expect(err.code).to.equal('LEDGER_TOO_NEW');
    expect(err.message).to.include(String(SCHEMA_VERSION + 1));
  });

  it('applies each migration in its own transaction: a failing one leaves no trace and earlier ones stay', () => {
    const db = new Database(file);
    const migrations = [
      { version: 1, sql: 'CREATE TABLE a (x INTEGER) STRICT;' },
      { version: 2, sql: 'CREATE TABLE b (x INTEGER) STRICT; CREATE TABLE broken (' },
    ];
    expect(() => runMigrations(db, file, migrations)).to.throw();
    const names = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string }>).map((r) => r.name);
    const versions = (db.prepare('SELECT version FROM schema_version').all() as Array<{ version: number }>).map((r) => r.version);
    db.close();
    expect(names).to.include('a');
    expect(names).to.not.include('b');
    expect(versions).to.deep.equal([1]);
  });

  it('uses WAL, synchronous=FULL, foreign keys and a busy timeout', () => {
    const ledger = openLedger(file);
    const db = (ledger as unknown as { db: Database.Database }).db;
    expect(db.pragma('journal_mode', { simple: true })).to.equal('wal');
    expect(db.pragma('synchronous', { simple: true })).to.equal(2);
    expect(db.pragma('foreign_keys', { simple: true })).to.equal(1);
    expect(db.pragma('busy_timeout', { simple: true })).to.equal(BUSY_TIMEOUT_MS);
    ledger.close();
  });

  it('keeps the journals of nested writes in memory: no temp file is opened however many pages a batch touches', () => {
    const ledger = openLedger(file);
    for (let i = 0; i < 200; i++) ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued', fileName: `seed-${i}.dat` });
    const tempFiles = () => fs.readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return /etilqs_/.test(fs.readlinkSync(`/proc/self/fd/${fd}`));
      } catch {
        return false; // closed while listing
      }
    });
    let during: string[] = [];
    // A batch as the daemon commits it: each write its own savepoint, every row's indexes touched.
    ledger.transaction(() => {
      for (const row of ledger.list({ direction: 'out', limit: 200 })) ledger.transition(row.id, 'uploading', { from: ['queued'], patch: { messageId: `MID-${row.id}` } });
      during = tempFiles();
    });
    expect(during).to.deep.equal([]);
    ledger.close();
  });

  it('keeps the database, -wal and -shm files at mode 0600 even under a permissive umask', () => {
    const old = process.umask(0o022);
    try {
      const ledger = openLedger(file);
      ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued' });
      for (const f of [file, file + '-wal', file + '-shm']) expect(mode(f), path.basename(f)).to.equal(0o600);
      ledger.close();
    } finally {
      process.umask(old);
    }
  });

  it('tightens an existing ledger file that is readable by others', () => {
    openLedger(file).close();
    fs.chmodSync(file, 0o644);
    openLedger(file).close();
    expect(mode(file)).to.equal(0o600);
  });

  it('refuses to create a ledger when asked not to (read-only commands)', () => {
    const err = caught(() => openLedger(file, { create: false }));
    expect(err.code).to.equal('LEDGER_MISSING');
    expect(fs.existsSync(file)).to.equal(false);
  });

  it('refuses a corrupted copy with LEDGER_CORRUPT and points at backups', () => {
    const ledger = openLedger(file);
    ledger.transaction(() => {
      for (let i = 0; i < 400; i++) {
        ledger.insertMessage({ direction: 'in', mailbox: 'X26ABC1', state: 'receiving', messageId: `M${i}`, subject: 'x'.repeat(200) });
      }
    });
    ledger.close();
    const copy = path.join(dir, 'copy.db');
    fs.copyFileSync(file, copy);
    const bytes = fs.readFileSync(copy);
    const pageSize = bytes.readUInt16BE(16);
    // Scribble over the middle of the file (b-tree pages) but keep the header valid.
    const start = pageSize * 3;
    for (let i = start; i < Math.min(bytes.length, start + pageSize * 4); i++) bytes[i] = (i * 7919) & 0xff;
    fs.writeFileSync(copy, bytes);
    const err = caught(() => openLedger(copy));
    expect(err.code).to.equal('LEDGER_CORRUPT');
    expect(err.hint).to.include('meshd ledger backup');
  });

  it('refuses a file that is not a database at all with LEDGER_CORRUPT', () => {
    fs.writeFileSync(file, 'this is not an SQLite database, just some text '.repeat(200), { mode: 0o600 });
    expect(caught(() => openLedger(file)).code).to.equal('LEDGER_CORRUPT');
  });
});
