import type { Command } from 'commander';
import { MeshdError } from '../errors';
import type { SyncPg } from '../ledger/pg/bridge';
import type { Database as Sqlite } from 'better-sqlite3';
import { printer } from './output';

/**
 * `meshd ledger migrate --to postgres`: moving from one host to several (docs/operations.md,
 * Several hosts). Copies the SQLite ledger, row for row and id for id, into the empty
 * PostgreSQL ledger that `ledger.postgres` names, in one transaction that commits only when
 * every table's count and the messages' counts by mailbox, direction and state agree.
 */

type Row = Record<string, unknown>;
const BATCH = 500;

export interface MigrateReport {
  from: string;
  /** Rows copied, by table. */
  tables: Record<string, number>;
}

/** The tables both ledgers have (messages first: the others point at it), without their version bookkeeping. */
function tablesToCopy(sqlite: Sqlite, pg: SyncPg): string[] {
  const inSqlite = new Set((sqlite.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Row[]).map((r) => r.name as string));
  const inPg = pg.rows("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'").map((r) => r.table_name as string);
  const both = inPg.filter((t) => inSqlite.has(t) && t !== 'schema_version').sort();
  return [...both.filter((t) => t === 'messages'), ...both.filter((t) => t !== 'messages')];
}

function quote(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function copyTable(sqlite: Sqlite, pg: SyncPg, table: string): number {
  const pgColumns = pg.rows('SELECT column_name, data_type, is_identity FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1', [table]);
  const sqliteColumns = new Set((sqlite.prepare(`PRAGMA table_info(${quote(table)})`).all() as Row[]).map((r) => r.name as string));
  const missing = pgColumns.map((c) => c.column_name as string).filter((c) => !sqliteColumns.has(c));
  if (missing.length) throw new MeshdError('LEDGER_MIGRATE_SCHEMA', `the SQLite ledger's ${table} table has no column ${missing.join(', ')}`, 'run the same meshd version against both ledgers', 'config');
  const columns = pgColumns.map((c) => c.column_name as string);
  const json = new Set(pgColumns.filter((c) => c.data_type === 'json' || c.data_type === 'jsonb').map((c) => c.column_name as string));
  const list = columns.map(quote).join(', ');
  // json_populate_recordset turns each JSON value into the column's type: SQLite's 0/1 into boolean, ISO text into timestamptz.
  const insert = `INSERT INTO ${quote(table)} (${list}) OVERRIDING SYSTEM VALUE SELECT ${list} FROM json_populate_recordset(NULL::${quote(table)}, $1::json)`;
  let batch: Row[] = [];
  let copied = 0;
  const flush = () => {
    if (batch.length) pg.query(insert, [JSON.stringify(batch)]);
    copied += batch.length;
    batch = [];
  };
  for (const row of sqlite.prepare(`SELECT ${list} FROM ${quote(table)} ORDER BY rowid`).iterate() as Iterable<Row>) {
    for (const c of json) if (typeof row[c] === 'string') row[c] = JSON.parse(row[c] as string);
    batch.push(row);
    if (batch.length === BATCH) flush();
  }
  flush();
  // The next id PostgreSQL hands out follows the copied ones.
  for (const c of pgColumns.filter((col) => col.is_identity === 'YES')) {
    pg.query(`SELECT setval(pg_get_serial_sequence($1, $2), max_id) FROM (SELECT max(${quote(c.column_name as string)}) AS max_id FROM ${quote(table)}) m WHERE max_id IS NOT NULL`, [table, c.column_name]);
  }
  return copied;
}

/** Counts that must agree after the copy: every table's rows, and messages by mailbox, direction and state. */
function checks(count: (sql: string) => Row[], tables: string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const t of tables) out.set(`${t} rows`, Number(count(`SELECT count(*) AS n FROM ${quote(t)}`)[0].n));
  for (const r of count('SELECT mailbox, direction, state, count(*) AS n FROM messages GROUP BY mailbox, direction, state')) {
    out.set(`messages ${r.mailbox} ${r.direction} ${r.state}`, Number(r.n));
  }
  return out;
}

export async function migrateToPostgres(sqliteFile: string, url: string): Promise<MigrateReport> {
  const { openLedger } = await import('../ledger');
  const { openPgLedger } = await import('../ledger/pg/pg-ledger');
  const { SyncPg: Pg } = await import('../ledger/pg/bridge');
  const { default: Database } = await import('better-sqlite3');
  // Opening each store first brings both to this version's schema (SQLite also checks its pages).
  openLedger(sqliteFile, { create: false }).close();
  openPgLedger(url).close();
  const sqlite = new Database(sqliteFile, { readonly: true, fileMustExist: true });
  const pg = new Pg(url);
  try {
    const tables = tablesToCopy(sqlite, pg);
    pg.query('BEGIN');
    try {
      const occupied = tables.filter((t) => Number(pg.rows(`SELECT count(*) AS n FROM ${quote(t)}`)[0].n) > 0);
      if (occupied.length) {
        throw new MeshdError('LEDGER_NOT_EMPTY', `the PostgreSQL ledger already holds rows (${occupied.join(', ')}); meshd copies only into an empty one`, 'point ledger.postgres at a new, empty database', 'usage');
      }
      const report: MigrateReport = { from: sqliteFile, tables: {} };
      for (const t of tables) report.tables[t] = copyTable(sqlite, pg, t);
      const want = checks((sql) => sqlite.prepare(sql).all() as Row[], tables);
      const got = checks((sql) => pg.rows(sql), tables);
      const differ = [...new Set([...want.keys(), ...got.keys()])].filter((k) => want.get(k) !== got.get(k));
      if (differ.length) {
        throw new MeshdError('LEDGER_MIGRATE_MISMATCH', `the copy does not match the SQLite ledger: ${differ.map((k) => `${k}: ${want.get(k) ?? 0} → ${got.get(k) ?? 0}`).join('; ')}`, 'nothing was committed; report this as a bug', 'failure');
      }
      pg.query('COMMIT');
      return report;
    } catch (err) {
      try {
        pg.query('ROLLBACK');
      } catch {
        // The connection is gone: the server has rolled back already.
      }
      throw err;
    }
  } finally {
    pg.close();
    sqlite.close();
  }
}

export function registerMigrate(group: Command): void {
  group
    .command('migrate')
    .description('copy the SQLite ledger in dataDir into the empty PostgreSQL ledger that ledger.postgres names, and verify the counts (daemon stopped)')
    .requiredOption('--to <backend>', 'the ledger to copy into: postgres')
    .option('--from <file>', 'the SQLite ledger to copy (default: meshd.db in dataDir)')
    .action(async (opts: { to: string; from?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals() as { config?: string; json?: boolean };
      if (opts.to !== 'postgres') throw new MeshdError('USAGE', `--to ${opts.to}: meshd can copy a ledger only to postgres`, 'meshd ledger migrate --to postgres', 'usage');
      const path = await import('node:path');
      const { findConfigPath, loadConfig } = await import('../config');
      const { acquireInstanceLock } = await import('../daemon/lock');
      const { ledgerPath } = await import('../ledger');
      const config = await loadConfig(findConfigPath(g.config), process.env, { skipSecrets: true });
      if (!config.ledger.postgres) {
        throw new MeshdError('LEDGER_NOT_POSTGRES', `${config.configPath} names no PostgreSQL ledger`, 'set ledger.postgres to the new database first (docs/operations.md, Several hosts)', 'usage');
      }
      const from = opts.from ? path.resolve(opts.from) : ledgerPath(config.dataDir);
      // A single-host daemon holds the data dir's lock: the copy must not race its writes.
      const lock = acquireInstanceLock(config.dataDir);
      try {
        const report = await migrateToPostgres(from, config.ledger.postgres);
        printer(g.json === true)(report, [`ledger copied from ${from} to PostgreSQL; counts verified`, ...Object.entries(report.tables).map(([t, n]) => `  ${t.padEnd(16)}${n}`)]);
      } finally {
        lock.release();
      }
    });
}
