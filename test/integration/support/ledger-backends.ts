import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { openLedger, type LedgerStore } from '../../../src/ledger';
import { SyncPg } from '../../../src/ledger/pg/bridge';
import { openPgLedger } from '../../../src/ledger/pg/pg-ledger';
import { pgCluster } from './postgres';

/** One empty ledger of one backend, for one test. */
export interface LedgerFixture {
  open(now: () => Date): LedgerStore;
  /** A statement straight to the database, outside the store (to test what the database itself refuses). */
  raw(sql: string): void;
  cleanup(): void;
}

export interface LedgerBackend {
  name: string;
  fresh(): Promise<LedgerFixture>;
}

export const LEDGER_BACKENDS: readonly LedgerBackend[] = [
  {
    name: 'SQLite',
    async fresh() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshd-contract-'));
      const file = path.join(dir, 'meshd.db');
      return {
        open: (now) => openLedger(file, { now }),
        raw(sql) {
          const db = new Database(file);
          try {
            db.exec(sql);
          } finally {
            db.close();
          }
        },
        cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
      };
    },
  },
  {
    name: 'PostgreSQL',
    async fresh() {
      const url = await (await pgCluster()).freshDatabase();
      return {
        open: (now) => openPgLedger(url, { now }),
        raw(sql) {
          const db = new SyncPg(url);
          try {
            db.query(sql);
          } finally {
            db.close();
          }
        },
        cleanup: () => undefined,
      };
    },
  },
];
