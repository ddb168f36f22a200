import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { MeshdError } from '../errors';

/**
 * One running instance per data dir. The lock is flock(2) on the data directory itself: its
 * inode cannot be swapped under a running daemon (renaming a lock file inside it changes
 * nothing), and the kernel releases the lock when the process dies, however it dies, so a
 * killed daemon never leaves a stale lock and there is no PID file to clean up.
 *
 * Node has no flock, so util-linux's flock(1) takes it on our own descriptor, passed as its
 * fd 3: a flock belongs to the open file description, which this process keeps open after the
 * helper exits. The descriptor is close-on-exec, so no child of the daemon inherits the lock.
 */
export interface InstanceLock {
  release(): void;
}

/** flock(1)'s exit status when the lock is held elsewhere (-E), distinct from its own errors (1). */
const HELD = 75;

/**
 * With a node id (several hosts on a PostgreSQL ledger) the lock guards that id instead, on a
 * file `nodes/<id>.lock` in the data dir: processes with different ids may share the data dir,
 * and the leases keep their mailboxes apart; two with the same id would share leases.
 */
export function acquireInstanceLock(dataDir: string, nodeId?: string): InstanceLock {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  let fd: number;
  if (nodeId === undefined) fd = openSync(dataDir, 'r');
  else {
    mkdirSync(join(dataDir, 'nodes'), { recursive: true, mode: 0o700 });
    fd = openSync(join(dataDir, 'nodes', `${nodeId}.lock`), 'a', 0o600);
  }
  const what = nodeId === undefined ? `data dir ${dataDir}` : `node id ${nodeId}`;
  const r = spawnSync('flock', ['--exclusive', '--nonblock', '--conflict-exit-code', String(HELD), '3'], { stdio: ['ignore', 'ignore', 'pipe', fd], encoding: 'utf8' });
  if (r.status !== 0) {
    closeSync(fd);
    if (r.status === HELD) {
      throw new MeshdError(
        'ALREADY_RUNNING',
        `another meshd is already running with ${what}`,
        nodeId === undefined ? 'stop the other instance first (systemctl stop meshd), or use a different dataDir' : 'give each meshd its own node id (MESHD_NODE_ID or node.id), or stop the other one first',
        'config',
      );
    }
    const why = r.error ? ((r.error as NodeJS.ErrnoException).code ?? r.error.message) : r.stderr.trim() || `exit ${r.status ?? r.signal}`;
    throw new MeshdError('LOCK_FAILED', `cannot lock ${what} against a second meshd: flock: ${why}`, 'meshd needs flock(1) on its PATH: install util-linux', 'config');
  }
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      // Closing the only descriptor of the open file description drops the flock.
      closeSync(fd);
    },
  };
}
