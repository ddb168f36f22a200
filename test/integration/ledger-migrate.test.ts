import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { stringify } from '../support/yaml';
import { ledgerPath, openLedger } from '../../src/ledger';
import { openPgLedger } from '../../src/ledger/pg/pg-ledger';
import { runMeshd } from '../support/cli';
import { pgCluster } from './support/postgres';

/** `meshd ledger migrate --to postgres`: from one host's SQLite ledger to a shared PostgreSQL one. */
describe('meshd ledger migrate --to postgres', function () {
  this.timeout(60_000);
  let dir: string;
  let url: string;
  let configPath: string;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'meshd-migrate-'));
    url = await (await pgCluster()).freshDatabase();
    configPath = join(dir, 'meshd.yaml');
    const config = { environment: 'local', url: 'http://127.0.0.1:8700', sharedKey: 'k', dataDir: join(dir, 'var'), ledger: { postgres: url }, mailboxes: [{ id: 'X26ABC1', password: 'p' }] };
    writeFileSync(configPath, stringify(config));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** A small SQLite ledger with every kind of row: messages in several states, events, status, an appointment. */
  function fillSqlite(): void {
    const ledger = openLedger(ledgerPath(join(dir, 'var')), { now: () => new Date('2026-11-20T10:00:00.000Z') });
    try {
      for (let i = 0; i < 7; i++) {
        const row = ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued', localId: `m${i}`, fileName: `m${i}.dat`, compress: i % 2 === 0 });
        if (i % 3 === 0) ledger.transition(row.id, 'uploading');
        ledger.recordEvent(row.id, 'note', { i, nested: { ok: true } });
      }
      const inbound = ledger.insertMessage({ direction: 'in', mailbox: 'X26ABC1', state: 'delivered', messageId: '20261120100000000000_ABCDEF' });
      ledger.transition(inbound.id, 'acknowledged');
      ledger.setMailboxStatus('X26ABC1', { lastPollAt: new Date('2026-11-20T10:00:00.000Z'), lastPollOk: true, lastPollError: null });
      ledger.recordAppointment('appt-1', 'in', { eventKind: 'booked', trigger: 'S12', startAt: '2026-12-01T09:00:00.000Z', status: 'booked', at: new Date('2026-11-20T10:00:00.000Z'), messageRowId: inbound.id });
    } finally {
      ledger.close();
    }
  }

  it('copies every row, id for id, verifies the counts, and PostgreSQL carries on after the copied ids', async () => {
    fillSqlite();
    const r = await runMeshd(['--config', configPath, '--json', 'ledger', 'migrate', '--to', 'postgres']);
    expect(r.code, r.stderr).to.equal(0);
    const report = JSON.parse(r.stdout) as { tables: Record<string, number> };
    expect(report.tables).to.include({ messages: 8, mailbox_status: 1, appointments: 1 });
    expect(report.tables.events).to.be.greaterThan(8);

    const sqlite = openLedger(ledgerPath(join(dir, 'var')));
    const pg = openPgLedger(url);
    try {
      const rows = sqlite.list({ limit: 100 });
      expect(pg.list({ limit: 100 })).to.deep.equal(rows);
      for (const row of rows) expect(pg.events(row.id), `events of ${row.id}`).to.deep.equal(sqlite.events(row.id));
      expect(pg.mailboxStatus('X26ABC1')).to.deep.equal(sqlite.mailboxStatus('X26ABC1'));
      expect(pg.getAppointment('appt-1')).to.deep.equal(sqlite.getAppointment('appt-1'));
      const next = pg.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued' });
      expect(next.id).to.be.greaterThan(Math.max(...rows.map((x) => x.id)));
    } finally {
      sqlite.close();
      pg.close();
    }

    // A second copy into the now full database is refused, and changes nothing.
    const again = await runMeshd(['--config', configPath, 'ledger', 'migrate', '--to', 'postgres']);
    expect(again.code).to.equal(2);
    expect(again.stderr).to.match(/LEDGER_NOT_EMPTY|already holds rows/);
  });

  it('refuses while a daemon holds the data dir, and without ledger.postgres', async () => {
    fillSqlite();
    const { acquireInstanceLock } = await import('../../src/daemon/lock');
    const lock = acquireInstanceLock(join(dir, 'var'));
    try {
      const r = await runMeshd(['--config', configPath, 'ledger', 'migrate', '--to', 'postgres']);
      expect(r.code).to.equal(3);
      expect(r.stderr).to.match(/already running/);
    } finally {
      lock.release();
    }
    writeFileSync(configPath, stringify({ environment: 'local', url: 'http://127.0.0.1:8700', sharedKey: 'k', dataDir: join(dir, 'var'), mailboxes: [{ id: 'X26ABC1', password: 'p' }] }));
    const none = await runMeshd(['--config', configPath, 'ledger', 'migrate', '--to', 'postgres']);
    expect(none.code).to.equal(2);
    expect(none.stderr).to.match(/names no PostgreSQL ledger/);
  });
});
