import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

/**
 * One throwaway PostgreSQL cluster per test run: initdb + pg_ctl in a temp dir on a free port,
 * as the `postgres` user when the tests run as root (PostgreSQL refuses to run as root), stopped
 * and removed when the process exits. Missing binaries fail the tests: nothing is skipped.
 */

export interface PgCluster {
  /** Superuser URL of the `postgres` database. */
  adminUrl: string;
  /** A new, empty database; its URL. */
  freshDatabase(): Promise<string>;
  /** Stops the server (clients disconnected) and, after `downMs`, starts it again on the same port. */
  restart(downMs?: number): Promise<void>;
}

let started: Promise<PgCluster> | undefined;

export function pgCluster(): Promise<PgCluster> {
  started ??= start();
  return started;
}

/** The newest installed server's bin dir (Debian: /usr/lib/postgresql/<major>/bin), or PG_BIN. */
export function pgBinDir(root = '/usr/lib/postgresql'): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const majors = fs.existsSync(root) ? fs.readdirSync(root).filter((d) => fs.existsSync(path.join(root, d, 'bin', 'initdb'))) : [];
  if (majors.length === 0) {
    throw new Error(`PostgreSQL server binaries not found under ${root}: install Debian's postgresql package (apt-get install postgresql) or set PG_BIN`);
  }
  majors.sort((a, b) => Number(b) - Number(a));
  return path.join(root, majors[0], 'bin');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim());
  const uid = id('-u');
  if (!Number.isInteger(uid) || uid <= 0) throw new Error('running as root but there is no postgres user to run the test cluster as');
  return { uid, gid: id('-g') };
}

function run(bin: string, args: string[], opts: SpawnSyncOptions): void {
  const r = spawnSync(bin, args, { ...opts, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${path.basename(bin)} failed (${r.status ?? r.signal}): ${String(r.stderr || r.stdout || r.error)}`);
}

async function start(): Promise<PgCluster> {
  const bin = pgBinDir();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshd-pg-'));
  const user = postgresUser();
  if (user) fs.chownSync(dir, user.uid, user.gid);
  const data = path.join(dir, 'data');
  const opts: SpawnSyncOptions = { cwd: dir, ...(user ?? {}), env: { ...process.env, LC_ALL: 'C' } };
  run(path.join(bin, 'initdb'), ['-D', data, '-U', 'meshd_test', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C'], opts);
  const port = await freePort();
  // fsync off: a throwaway cluster; sockets in the temp dir, TCP on loopback only.
  const serverOpts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`;
  run(path.join(bin, 'pg_ctl'), ['start', '-w', '-t', '60', '-D', data, '-l', path.join(dir, 'server.log'), '-o', serverOpts], opts);
  process.once('exit', () => {
    spawnSync(path.join(bin, 'pg_ctl'), ['stop', '-m', 'immediate', '-D', data], { ...opts, stdio: 'ignore' });
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const adminUrl = `postgresql://meshd_test@127.0.0.1:${port}/postgres`;
  let n = 0;
  return {
    adminUrl,
    async freshDatabase() {
      const name = `meshd_t${process.pid}_${++n}`;
      const admin = new pg.Client({ connectionString: adminUrl });
      await admin.connect();
      try {
        await admin.query(`CREATE DATABASE ${name}`);
      } finally {
        await admin.end();
      }
      return `postgresql://meshd_test@127.0.0.1:${port}/${name}`;
    },
    async restart(downMs = 0) {
      run(path.join(bin, 'pg_ctl'), ['stop', '-w', '-m', 'fast', '-D', data], opts);
      await new Promise((r) => setTimeout(r, downMs));
      run(path.join(bin, 'pg_ctl'), ['start', '-w', '-t', '60', '-D', data, '-l', path.join(dir, 'server.log'), '-o', serverOpts], opts);
    },
  };
}
