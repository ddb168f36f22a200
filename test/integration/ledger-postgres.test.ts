import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { MeshdError } from '../../src/errors';
import { MIGRATIONS, SqliteLedger, ledgerPath, openStore } from '../../src/ledger';
import { SyncPg } from '../../src/ledger/pg/bridge';
import { PgLedger, openPgLedger } from '../../src/ledger/pg/pg-ledger';
import { PG_MIGRATIONS, runPgMigrations } from '../../src/ledger/pg/schema';
import { pgBinDir, pgCluster } from './support/postgres';

/** What only the PostgreSQL ledger has: shared migrations, several processes, a server that can be away. */

function caught(fn: () => unknown): MeshdError {
  try {
    fn();
  } catch (err) {
    if (err instanceof MeshdError) return err;
    throw err;
  }
  throw new Error('expected a MeshdError');
}

function versions(url: string): number[] {
  const db = new SyncPg(url);
  try {
    return db.rows('SELECT version FROM schema_version ORDER BY version').map((r) => r.version as number);
  } finally {
    db.close();
  }
}

describe('PostgreSQL ledger', () => {
  let url: string;
  beforeEach(async () => {
    url = await (await pgCluster()).freshDatabase();
  });

  it('has a migration for every SQLite schema version, under the same numbers', () => {
    expect(PG_MIGRATIONS.map((m) => m.version)).to.deep.equal(MIGRATIONS.map((m) => m.version));
  });

  it('is migrated once when several hosts start together (advisory lock)', async () => {
    const modulePath = path.resolve(__dirname, '../../src/ledger/pg/pg-ledger');
    const script = `require(${JSON.stringify(modulePath)}).openPgLedger(process.env.URL).close();`;
    const run = () =>
      new Promise<void>((resolve, reject) => {
        const p = spawn(process.execPath, ['-e', script], { env: { ...process.env, URL: url } });
        let err = '';
        p.stderr.on('data', (d) => (err += d));
        p.on('close', (status) => (status === 0 ? resolve() : reject(new Error(err))));
      });
    await Promise.all([run(), run(), run(), run()]);
    expect(versions(url)).to.deep.equal(PG_MIGRATIONS.map((m) => m.version));
  });

  it('applies a failing migration not at all, keeping the earlier ones', () => {
    openPgLedger(url).close();
    const db = new SyncPg(url);
    try {
      const bad = [...PG_MIGRATIONS, { version: 99, sql: 'CREATE TABLE half_done (id int); SELECT 1 / 0;' }];
      expect(caught(() => runPgMigrations(db, 'test', { migrations: bad })).code).to.equal('LEDGER_MIGRATION_FAILED');
      expect(db.rows("SELECT to_regclass('half_done') AS t")[0].t).to.equal(null);
    } finally {
      db.close();
    }
    expect(versions(url)).to.deep.equal(PG_MIGRATIONS.map((m) => m.version));
  });

  it('refuses a database written by a newer meshd', () => {
    openPgLedger(url).close();
    const db = new SyncPg(url);
    db.query('INSERT INTO schema_version (version, applied_at) VALUES (999, now())');
    db.close();
    expect(caught(() => openPgLedger(url)).code).to.equal('LEDGER_TOO_NEW');
  });

  it('leaves an empty database alone when asked not to create the ledger', () => {
    const err = caught(() => openPgLedger(url, { create: false }));
    expect(err.code).to.equal('LEDGER_MISSING');
    const db = new SyncPg(url);
    try {
      expect(db.rows("SELECT to_regclass('schema_version') AS t")[0].t).to.equal(null);
    } finally {
      db.close();
    }
    openPgLedger(url).close();
    openPgLedger(url, { create: false }).close();
  });

  it('reports a server it cannot reach as LEDGER_UNAVAILABLE, never showing the password', async () => {
    const { adminUrl } = await pgCluster();
    const port = Number(new URL(adminUrl).port);
    const net = await import('node:net');
    const free = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    expect(free).to.not.equal(port);
    const err = caught(() => openPgLedger(`postgresql://meshd:s3cret-pw@127.0.0.1:${free}/meshd`));
    expect(err.code).to.equal('LEDGER_UNAVAILABLE');
    expect(err.message + (err.hint ?? '')).to.not.include('s3cret-pw');
  });

  it('is the ledger meshd opens when ledger.postgres is set, with nothing written in dataDir', () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshd-pg-choice-'));
    try {
      const pg = openStore({ dataDir, ledger: { postgres: url } });
      expect(pg).to.be.instanceOf(PgLedger);
      pg.close();
      expect(fs.readdirSync(dataDir)).to.deep.equal([]);
      const sqlite = openStore({ dataDir, ledger: {} });
      expect(sqlite).to.be.instanceOf(SqliteLedger);
      sqlite.close();
      expect(fs.existsSync(ledgerPath(dataDir))).to.equal(true);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('serves the ledger commands from PostgreSQL, and refuses the SQLite-only restore', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshd-pg-cli-'));
    try {
      const ledger = openPgLedger(url);
      const row = ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued', peer: 'X26ABC2', workflowId: 'TEST_WORKFLOW', fileName: 'in-postgres.csv' });
      ledger.close();
      const config = path.join(dir, 'meshd.yaml');
      fs.writeFileSync(
        config,
        ['environment: local', 'url: http://127.0.0.1:1', 'sharedKey: TestOnlySharedKey', 'dataDir: ./var', 'ledger:', '  postgres: { env: MESHD_TEST_PG }', 'mailboxes:', '  - id: X26ABC1', '    password: TestOnlyPassword1', '    folder: ./mailboxes/X26ABC1', ''].join('\n'),
      );
      const meshd = (...args: string[]) =>
        new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
          const bin = path.resolve(__dirname, '../../../bin/meshd.js');
          execFile(process.execPath, [bin, '--config', config, ...args], { env: { ...process.env, MESHD_CONFIG: '', MESHD_TEST_PG: url } }, (err, stdout, stderr) =>
            resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
          );
        });
      const list = await meshd('ledger', 'list', '--json');
      expect(list.code, list.stderr).to.equal(0);
      expect((JSON.parse(list.stdout) as { messages: Array<{ id: number; fileName: string }> }).messages.map((r) => [r.id, r.fileName])).to.deep.equal([[row.id, 'in-postgres.csv']]);
      expect(fs.existsSync(path.join(dir, 'var', 'meshd.db'))).to.equal(false);
      const restore = await meshd('ledger', 'restore', path.join(dir, 'backup.db'), '--json');
      expect(restore.code).to.not.equal(0);
      expect((JSON.parse(restore.stdout) as { error: { code: string } }).error.code).to.equal('LEDGER_IS_POSTGRES');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reconnects after its connection is cut (a call caught in the cut fails LEDGER_UNAVAILABLE)', () => {
    const ledger = openPgLedger(url);
    const admin = new SyncPg(url);
    try {
      const row = ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued' });
      admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'meshd' AND pid <> pg_backend_pid()");
      // The worker may learn of the cut before the next call (and reconnect) or during it (and fail it).
      try {
        ledger.get(row.id);
      } catch (err) {
        expect((err as MeshdError).code).to.equal('LEDGER_UNAVAILABLE');
      }
      expect(ledger.get(row.id)!.id).to.equal(row.id);
    } finally {
      admin.close();
      ledger.close();
    }
  });

  it('names the missing package when the PostgreSQL server binaries are not installed', () => {
    expect(() => pgBinDir('/nonexistent/postgresql')).to.throw(/apt-get install postgresql/);
  });
});
