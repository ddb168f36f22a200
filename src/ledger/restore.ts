import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { MeshdError } from '../errors';
import { PRIVATE_FILE_MODE, tempPathFor } from '../safe-fs';
import { SCHEMA_VERSION } from './schema';

/**
 * Installs a ledger copy (made by `meshd ledger backup`) as `<dataDir>/meshd.db`. The copy is
 * checked first (a SQLite file, integrity ok, a schema this meshd understands); the ledger it
 * replaces, with its -wal and -shm, is moved aside (never deleted, and a stale WAL is never
 * applied to the restored file). The caller holds the instance lock and reconciles the spool.
 */
export function installLedgerCopy(source: string, file: string, now = new Date()): { replacedDir?: string } {
  checkLedgerCopy(source);
  const dir = path.dirname(file);
  const stamp = now.toISOString().replace(/[:.]/g, '');
  const aside = path.join(dir, 'replaced', stamp);
  let moved = false;
  for (const suffix of ['', '-wal', '-shm']) {
    if (!fs.existsSync(file + suffix)) continue;
    fs.mkdirSync(aside, { recursive: true, mode: 0o700 });
    fs.renameSync(file + suffix, path.join(aside, path.basename(file) + suffix));
    moved = true;
  }
  const temp = tempPathFor(file);
  const input = fs.openSync(source, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  const output = fs.openSync(temp, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW | fs.constants.O_WRONLY, PRIVATE_FILE_MODE);
  try {
    fs.fchmodSync(output, PRIVATE_FILE_MODE);
    const buf = Buffer.allocUnsafe(1024 * 1024);
    for (let n; (n = fs.readSync(input, buf, 0, buf.length, null)) > 0; ) fs.writeSync(output, buf, 0, n);
    fs.fsyncSync(output);
  } finally {
    fs.closeSync(input);
    fs.closeSync(output);
  }
  fs.renameSync(temp, file);
  const d = fs.openSync(dir, fs.constants.O_RDONLY);
  try {
    fs.fsyncSync(d);
  } finally {
    fs.closeSync(d);
  }
  return moved ? { replacedDir: aside } : {};
}

function checkLedgerCopy(source: string): void {
  const refuse = (why: string, cause?: unknown) =>
    new MeshdError('LEDGER_RESTORE_REFUSED', `${source} cannot be restored: ${why}`, 'give a file written by `meshd ledger backup`; the current ledger was left as it is', 'input', { cause });
  let st: fs.Stats;
  try {
    st = fs.lstatSync(source);
  } catch (err) {
    throw refuse((err as Error).message, err);
  }
  if (!st.isFile()) throw refuse('it is not a regular file');
  let db: Database.Database | undefined;
  try {
    db = new Database(source, { readonly: true, fileMustExist: true });
    const check = db.pragma('integrity_check') as Array<{ integrity_check: string }>;
    if (check.length !== 1 || check[0].integrity_check !== 'ok') throw refuse(`its integrity check failed (${check[0]?.integrity_check ?? 'no answer'})`);
    const version = (db.prepare('SELECT MAX(version) AS v FROM schema_version').get() as { v: number | null }).v ?? 0;
    if (version > SCHEMA_VERSION) throw refuse(`it has schema version ${version}; this meshd understands up to ${SCHEMA_VERSION}`);
    db.prepare('SELECT COUNT(*) FROM messages').get();
  } catch (err) {
    if (err instanceof MeshdError) throw err;
    throw refuse(`it is not a meshd ledger (${(err as Error).message})`, err);
  } finally {
    db?.close();
  }
}
