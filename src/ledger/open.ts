import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { MeshdError } from '../errors';
import { runMigrations } from './schema';

/** How long a writer waits for another process's lock before failing (the daemon and a CLI command may overlap). */
export const BUSY_TIMEOUT_MS = 5000;

const PRIVATE = 0o600;

/**
 * better-sqlite3's addon, named by its path. Left to find it, better-sqlite3 loads the `bindings`
 * package, which reads a stack trace for the package root and tries a dozen paths: ~2 ms of
 * every command's start-up. A build elsewhere than build/Release is still found that way.
 */
const ADDON = ((): string | undefined => {
  try {
    return require.resolve('better-sqlite3/build/Release/better_sqlite3.node');
  } catch {
    return undefined;
  }
})();

export interface OpenOptions {
  /** Create the file if missing (default true). Read-only CLI commands pass false so `sudo meshd status` never leaves a root-owned ledger behind. */
  create?: boolean;
  /**
   * When to run PRAGMA integrity_check, which reads every page (seconds on a big ledger):
   * full (default) on every open; daily when the last passing check recorded in the ledger is
   * over a day old (commands run often, such as `run --once` from a timer); none for commands
   * that only read (SQLite still fails on any corrupt page they touch: SQLITE_CORRUPT).
   * See docs/performance.md.
   */
  integrity?: 'full' | 'daily' | 'none';
}

const CHECK_EVERY_MS = 86_400_000;

/** Whether the open must run a full integrity check (integrity_checks arrives with migration 5). */
function integrityDue(db: Database.Database, mode: OpenOptions['integrity'], now: number): boolean {
  if (mode === 'none') return false;
  if (mode !== 'daily') return true;
  const table = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'integrity_checks'").get();
  const last = table ? (db.prepare('SELECT last_ok_at FROM integrity_checks WHERE id = 1').get() as { last_ok_at: string } | undefined) : undefined;
  const at = last ? Date.parse(last.last_ok_at) : NaN;
  // A clock set back counts as due too.
  return !(at <= now && now - at < CHECK_EVERY_MS);
}

function isCorruption(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB');
}

function corrupt(file: string, detail: string, cause?: unknown): MeshdError {
  return new MeshdError(
    'LEDGER_CORRUPT',
    `ledger ${file} failed its integrity check (${detail}); meshd will not use it`,
    'stop meshd, move the file aside and restore the latest copy made by `meshd ledger backup`',
    'failure',
    { cause },
  );
}

/** Tightens a file we own to 0600 (ledger rows name peers and file paths). */
function makePrivate(file: string): void {
  try {
    const st = fs.statSync(file);
    if ((st.mode & 0o077) !== 0) fs.chmodSync(file, PRIVATE);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/**
 * Opens (creating if allowed) the ledger database: 0600 file, WAL, synchronous=FULL, integrity
 * check, migrations. Any failure closes the handle and throws a MeshdError naming the file.
 */
export function openDatabase(file: string, opts: OpenOptions = {}): Database.Database {
  const exists = fs.existsSync(file);
  if (opts.create !== false && (!exists || fs.statSync(file).size === 0)) refuseLostLedger(file);
  if (!exists) {
    if (opts.create === false) {
      throw new MeshdError('LEDGER_MISSING', `no ledger at ${file}`, 'check dataDir in the config; the daemon creates the ledger on first run');
    }
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    // Create the file ourselves so it is 0600 from the first byte; SQLite gives -wal/-shm the same mode.
    try {
      fs.closeSync(fs.openSync(file, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW | fs.constants.O_WRONLY, PRIVATE));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw ledgerOpenFailed(file, err);
    }
  }
  makePrivate(file);

  let db: Database.Database | undefined;
  try {
    db = new Database(file, { fileMustExist: true, nativeBinding: ADDON });
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.pragma('journal_mode = WAL');
    // FULL: in WAL mode NORMAL may lose the last commits on power loss. A lost commit here could mean a
    // message sent twice or acknowledged but never written, so every commit is fsync'd.
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    // SQLite's own page cache (2 MB) is kept: a 32 MiB one halved page reads on a million-row
    // ledger but, once filled, took a daemon receiving 1 GiB past 150 MB (docs/ledger.md).
    const checked = integrityDue(db, opts.integrity, Date.now());
    if (checked) {
      const check = db.pragma('integrity_check') as Array<{ integrity_check: string }>;
      if (check.length !== 1 || check[0].integrity_check !== 'ok') {
        throw corrupt(file, check.slice(0, 3).map((r) => r.integrity_check).join('; '));
      }
    }
    runMigrations(db, file);
    // Savepoint and statement journals in memory. A ledger write touches some 20 pages (the
    // messages table's indexes): more than SQLite buffers before it spills such a journal to a
    // temp file, which cost about 90 write system calls per message (docs/ledger.md). Set after
    // the migrations, whose index builds sort whole tables and may spill to disk as usual.
    db.pragma('temp_store = MEMORY');
    if (checked) db.prepare('INSERT OR REPLACE INTO integrity_checks (id, last_ok_at) VALUES (1, ?)').run(new Date().toISOString());
    for (const suffix of ['-wal', '-shm']) makePrivate(file + suffix);
    return db;
  } catch (err) {
    db?.close();
    if (err instanceof MeshdError) throw err;
    if (isCorruption(err)) throw corrupt(file, (err as Error).message, err);
    throw ledgerOpenFailed(file, err);
  }
}

/** Names in a data dir that do not mean work was done: the lock, an empty ledger, empty folders. */
const HARMLESS = new Set(['meshd.lock', 'meshd.lock-journal', 'meshd.db']);

/**
 * A missing or empty ledger beside a spool, orphans or other files means the ledger was lost
 * (deleted, truncated, a failed copy): starting afresh would forget what is in flight and could
 * take a left-over spool file for a new message. Only a data dir with nothing in it initialises.
 */
function refuseLostLedger(file: string): void {
  const dir = path.dirname(file);
  const found = firstFile(dir, 3);
  if (!found) return;
  throw new MeshdError(
    'LEDGER_MISSING',
    `${fs.existsSync(file) ? 'the ledger ' + file + ' is empty' : 'there is no ledger at ' + file} but the data dir holds ${path.relative(dir, found)}: meshd will not start a new ledger beside earlier work`,
    'restore the latest backup with `meshd ledger restore FILE`; if this data dir is really to start afresh, move its contents away first',
    'config',
  );
}

/** The first file (not a folder) under `dir` that is not harmless, looking `depth` levels down. */
function firstFile(dir: string, depth: number): string | undefined {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return undefined;
  }
  for (const e of entries) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) {
      const inner = depth > 0 ? firstFile(full, depth - 1) : full;
      if (inner) return inner;
    } else if (!HARMLESS.has(e.name)) return full;
  }
  return undefined;
}

function ledgerOpenFailed(file: string, err: unknown): MeshdError {
  const reason = err instanceof Error ? err.message : String(err);
  return new MeshdError(
    'LEDGER_OPEN_FAILED',
    `cannot open ledger ${file}: ${reason}`,
    'check that the file and its directory exist and belong to the user meshd runs as (mode 0600)',
    'failure',
    { cause: err },
  );
}
