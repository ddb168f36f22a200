import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import Database from 'better-sqlite3';
import { MIGRATIONS, newClaimId, openLedger, runMigrations, type LedgerStore } from '../../src/ledger';
import { SyncPg } from '../../src/ledger/pg/bridge';
import { openPgLedger } from '../../src/ledger/pg/pg-ledger';
import { PG_MIGRATIONS, runPgMigrations } from '../../src/ledger/pg/schema';
import { pgCluster } from './support/postgres';

/**
 * Migration 9: a send is recorded `sent` already marked `filing`, so start-up recovery reads only
 * marked rows. A sent row an earlier meshd left with its payload still in its own spool copy is
 * marked by the migration; no other row is.
 */
const DATA = '/srv/meshd';
const claims = Array.from({ length: 5 }, () => newClaimId());
/** [state, payload path, marked after the migration] of rows whose claim ids are claims[i]. */
const ROWS: Array<[string, string | null, boolean]> = [
  ['sent', `${DATA}/spool/X26ABC1/${claims[0]}.dat`, true], // stopped before filing
  ['sent', '/mail/X26ABC1/sent/report.csv', false], // filed
  ['sent', `${DATA}/spool/X26ABC1/${claims[0]}.dat`, false], // another row's spool copy
  ['acknowledged', `${DATA}/spool/X26ABC1/${claims[3]}.dat`, false], // not sent any more
  ['sent', null, false],
];

/** Opened (which runs migration 9), the ledger holds each row's mark as ROWS says; then closed. */
function expectMarks(ledger: LedgerStore, ids: number[]): void {
  try {
    expect(ids.map((id) => ledger.get(id)!.recoveryMark)).to.deep.equal(ROWS.map(([, , marked]) => (marked ? 'filing' : null)));
  } finally {
    ledger.close();
  }
}

describe('ledger migration 9: sent rows left in the spool are marked filing', function () {
  this.timeout(60_000);

  it('SQLite', () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshd-m9-'));
    try {
      const file = join(dir, 'meshd.db');
      const db = new Database(file);
      db.pragma('journal_mode = WAL');
      runMigrations(db, file, MIGRATIONS.filter((m) => m.version <= 8));
      const insert = db.prepare("INSERT INTO messages (direction, mailbox, state, claim_id, payload_path, created_at, updated_at) VALUES ('out', 'X26ABC1', ?, ?, ?, '2026-11-01', '2026-11-01')");
      const ids = ROWS.map(([state, path], i) => Number(insert.run(state, claims[i], path).lastInsertRowid));
      db.close();
      expectMarks(openLedger(file), ids);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('PostgreSQL', async () => {
    const url = await (await pgCluster()).freshDatabase();
    const db = new SyncPg(url);
    let ids: number[];
    try {
      runPgMigrations(db, 'test', { create: true, migrations: PG_MIGRATIONS.filter((m) => m.version <= 8) });
      ids = ROWS.map(([state, path], i) =>
        Number(db.rows("INSERT INTO messages (direction, mailbox, state, claim_id, payload_path, created_at, updated_at) VALUES ('out', 'X26ABC1', $1, $2, $3, now(), now()) RETURNING id", [state, claims[i], path])[0].id),
      );
    } finally {
      db.close();
    }
    expectMarks(openPgLedger(url), ids);
  });
});
