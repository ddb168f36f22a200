import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { openLedger, type SqliteLedger } from '../../src/ledger';

/**
 * What only the SQLite store has to show. Everything both backends promise (rows, states, marks,
 * queries, events, transactions, appointments, retention) is in the contract suite,
 * test/integration/ledger-contract.test.ts, which runs unchanged on SQLite and PostgreSQL.
 */
describe('ledger store (SQLite only)', () => {
  let dir: string;
  let file: string;
  let ledger: SqliteLedger;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshd-ledger-store-'));
    file = path.join(dir, 'meshd.db');
    ledger = openLedger(file);
  });
  afterEach(() => {
    ledger.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('is usable by a second process while open (WAL readers do not block)', () => {
    ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued', peer: 'X26ABC2', workflowId: 'TEST_WORKFLOW' });
    const r = spawnSync(process.execPath, ['-e', `const D=require('better-sqlite3');const d=new D(${JSON.stringify(file)},{readonly:true});process.stdout.write(String(d.prepare('select count(*) n from messages').get().n));`], {
      cwd: path.resolve(__dirname, '../../..'),
      encoding: 'utf8',
    });
    expect(r.stdout).to.equal('1');
  });
});
