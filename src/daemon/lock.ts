import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { MeshdError } from '../errors';

/**
 * One running instance per data dir. The lock is an exclusive SQLite transaction on
 * `<dataDir>/meshd.lock`: SQLite takes a POSIX advisory lock on the file, which the kernel
 * releases when the process dies, however it dies — so a killed daemon never leaves a stale
 * lock, and there is no PID file to clean up.
 */
export interface InstanceLock {
  release(): void;
}

export function acquireInstanceLock(dataDir: string): InstanceLock {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, 'meshd.lock');
  const db = new Database(path, { timeout: 0 });
  try {
    db.pragma('journal_mode = DELETE');
    db.exec('BEGIN EXCLUSIVE');
  } catch (err) {
    db.close();
    if ((err as { code?: string }).code === 'SQLITE_BUSY') {
      throw new MeshdError(
        'ALREADY_RUNNING',
        `another meshd is already running with data dir ${dataDir}`,
        'stop the other instance first (systemctl stop meshd), or use a different dataDir',
        'config',
      );
    }
    throw err;
  }
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      try {
        db.exec('ROLLBACK');
      } finally {
        db.close();
      }
    },
  };
}
