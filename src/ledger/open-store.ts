import { MeshdError } from '../errors';
import { ledgerPath, openLedger, type LedgerOptions } from './sqlite-ledger';
import type { LedgerStore } from './types';

/** The parts of the config that choose the ledger (config/types.ts MeshdConfig). */
export interface LedgerChoice {
  dataDir: string;
  ledger: { postgres?: string };
}

/** The configured ledger: PostgreSQL when `ledger.postgres` is set, else SQLite in dataDir. */
export function openStore(config: LedgerChoice, opts: LedgerOptions = {}): LedgerStore {
  if (!config.ledger.postgres) return openLedger(ledgerPath(config.dataDir), opts);
  // Loaded only for PostgreSQL: a run on SQLite never needs the bridge or its worker thread.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { openPgLedger } = require('./pg/pg-ledger') as typeof import('./pg/pg-ledger');
  return openPgLedger(config.ledger.postgres, opts);
}

/** For the commands that copy the SQLite file itself (backup restore): refused with PostgreSQL. */
export function requireSqlite(config: LedgerChoice, what: string): void {
  if (config.ledger.postgres) {
    throw new MeshdError('LEDGER_IS_POSTGRES', `${what} works on the SQLite ledger file; this config keeps the ledger in PostgreSQL (ledger.postgres)`, 'use PostgreSQL’s own tools (pg_dump, pg_restore) for its backups', 'usage');
  }
}
