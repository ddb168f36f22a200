import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { expect } from 'chai';
import { ledgerPath, openLedger, type SqliteLedger } from '../../src/ledger';

/**
 * Questions the daemon asks on every cycle or probe must read what they need, not the whole
 * ledger: their query plans name the index meant for them (docs/performance.md §5). An empty
 * ledger plans as a big one does here: SQLite keeps no statistics for it either way.
 */
describe('ledger query plans', () => {
  let dir: string;
  let ledger: SqliteLedger;
  let prepared: string[];

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshd-ledger-plans-'));
    ledger = openLedger(ledgerPath(dir));
    const db = (ledger as unknown as { db: Database.Database }).db;
    const prepare = db.prepare.bind(db);
    prepared = [];
    db.prepare = ((sql: string) => {
      prepared.push(sql);
      return prepare(sql);
    }) as typeof db.prepare;
  });
  afterEach(() => {
    ledger.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function explain(sql: string): string {
    const db = (ledger as unknown as { db: Database.Database }).db;
    const named = Object.fromEntries((sql.match(/@\w+/g) ?? []).map((p) => [p.slice(1), 'x']));
    const params = Object.keys(named).length ? [named] : Array.from({ length: (sql.match(/\?/g) ?? []).length }, () => 'x');
    return (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as Array<{ detail: string }>).map((r) => r.detail).join('; ');
  }

  function plans(): string[] {
    return [...prepared].map(explain);
  }

  it('reads overdue business acknowledgements from the index of sends still waiting for one', () => {
    ledger.overdueAcks('X26ABC1', new Date(), 10);
    ledger.countOverdueAcks('X26ABC1', new Date());
    const found = plans();
    expect(found).to.have.length(2);
    for (const plan of found) expect(plan).to.match(/^SEARCH messages USING INDEX messages_ack_waiting \(mailbox=\? AND ack_due_at/);
  });

  it('finds what start-up recovery needs in the indexes of rows still in flight, not among every row of a state', () => {
    const rows = (f: Parameters<SqliteLedger['iterate']>[0]) => [...ledger.iterate(f)];
    rows({ mailbox: 'X26ABC1', direction: 'out', state: 'failed', recoveryMark: 'filing' });
    rows({ mailbox: 'X26ABC1', direction: 'in', state: 'quarantined', unacknowledged: true });
    const [marked, unacked] = plans();
    expect(marked).to.match(/^SEARCH messages USING INDEX messages_marked \(mailbox=\? AND direction=\? AND state=\?\)$/);
    expect(unacked).to.match(/^SEARCH messages USING INDEX messages_unacknowledged \(mailbox=\? AND state=\?\)$/);
  });

  it('reads retention batches by the indexes of settled rows and of payload age, sorting nothing', () => {
    const options = { olderThan: new Date(), now: new Date() };
    ledger.purge({ ...options, payloadsOnly: true });
    ledger.purge({ ...options, payloadsOnly: false });
    const selects = prepared.filter((sql) => sql.trim().startsWith('SELECT')).map((sql) => [sql.trim(), explain(sql)] as const);
    const planOf = (start: RegExp) => selects.filter(([sql]) => start.test(sql)).map(([, plan]) => plan);
    const payloads = planOf(/^SELECT id, payload_path, ctl_path FROM messages/);
    expect(payloads).to.have.length(1);
    expect(payloads[0]).to.match(/^SEARCH messages USING INDEX messages_payload_age \(updated_at<\?\)/);
    expect(planOf(/^SELECT id FROM messages/)).to.have.length(1);
    expect(planOf(/^SELECT id FROM messages/)[0]).to.match(/^SEARCH messages USING COVERING INDEX messages_state_updated \(state=\? AND updated_at<\?\)/);
    expect(planOf(/^SELECT payload_path, ctl_path FROM messages/)[0]).to.match(/^SEARCH messages USING INTEGER PRIMARY KEY/);
    for (const [, plan] of selects) expect(plan).to.not.match(/TEMP B-TREE|SCAN messages/);
  });

  it('charts throughput from the index of moves into the states it counts (migration 10), not every event', () => {
    ledger.throughput(new Date(), 'hour');
    const [plan] = plans();
    expect(plan).to.match(/^SEARCH events USING (COVERING )?INDEX events_throughput \(to_state=\? AND at>\?\)/);
    const db = (ledger as unknown as { db: Database.Database }).db;
    const where = db.prepare("SELECT sql FROM sqlite_schema WHERE name = 'events_throughput'").pluck().get() as string;
    expect(where).to.match(/WHERE \(to_state = 'sent' OR to_state = 'delivered' OR to_state = 'failed' OR to_state = 'quarantined' OR to_state = 'undeliverable'\)$/);
    // An IN list of more than two values would build a temporary index at every event written.
    const insert = (db.prepare('EXPLAIN INSERT INTO events (message_row_id, at, type, to_state) VALUES (1, ?, ?, ?)').all('x', 'x', 'x') as Array<{ opcode: string }>).map((r) => r.opcode);
    expect(insert).to.not.include('OpenEphemeral');
  });

  it('answers the work queue from messages_age, by mailbox, direction and state (migration 10 dropped messages_work)', () => {
    const source = (name: string) => {
      const held = (ledger as unknown as Record<string, { source?: string; stmt?: { source: string } }>)[name];
      return held.stmt?.source ?? held.source!;
    };
    expect(explain(source('stmtDue'))).to.match(/^SEARCH messages USING INDEX messages_age \(mailbox=\? AND direction=\? AND state=\?\)/);
    expect(explain(source('stmtOldest'))).to.match(/^SEARCH messages USING INDEX messages_age \(mailbox=\? AND direction=\? AND state=\?\)$/);
  });
});
