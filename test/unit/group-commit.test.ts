import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { groupCommit, openLedger, type SqliteLedger } from '../../src/ledger';
import { backgroundQueue, mutex } from '../../src/transfer/pool';

/** Group commit (src/ledger/group-commit.ts) on a real SQLite ledger, and the lock of src/transfer/pool.ts. */
describe('group commit and the file-name lock', () => {
  let dir: string;
  let file: string;
  let ledger: SqliteLedger;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshd-group-commit-'));
    file = path.join(dir, 'meshd.db');
    ledger = openLedger(file);
  });
  afterEach(() => {
    ledger.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const newRow = () => ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued', fileName: 'a.txt' }).id;
  /** What another connection sees: only committed data. */
  const committedSubject = (id: number) => {
    const db = new Database(file, { readonly: true });
    try {
      return (db.prepare('SELECT subject FROM messages WHERE id = ?').get(id) as { subject: string | null }).subject;
    } finally {
      db.close();
    }
  };

  it('commits writes asked for in the same turn in one transaction, and settles each only once it is committed', async () => {
    const ids = [newRow(), newRow(), newRow()];
    let outer = 0;
    let depth = 0;
    const counting = {
      transaction<T>(fn: () => T): T {
        if (depth === 0) outer++;
        depth++;
        try {
          return ledger.transaction(fn);
        } finally {
          depth--;
        }
      },
    };
    const commit = groupCommit(counting);
    const writes = ids.map((id, i) => commit(() => ledger.update(id, { subject: `s${i}` }).subject));
    expect(ids.map(committedSubject)).to.deep.equal([null, null, null]); // nothing yet: the flush is at the end of the turn
    expect(await Promise.all(writes)).to.deep.equal(['s0', 's1', 's2']);
    expect(outer).to.equal(1);
    expect(ids.map(committedSubject)).to.deep.equal(['s0', 's1', 's2']);
    // A later turn is a new group.
    await commit(() => ledger.update(ids[0], { subject: 'later' }));
    expect(outer).to.equal(2);
  });

  it('rolls back a failing write alone: only its caller fails, the others are committed', async () => {
    const [a, b] = [newRow(), newRow()];
    const commit = groupCommit(ledger);
    const results = await Promise.allSettled([
      commit(() => ledger.update(a, { subject: 'kept' })),
      commit(() => {
        ledger.update(b, { subject: 'rolled back' });
        ledger.transition(b, 'sent', { from: ['uploading'] }); // b is queued: refused
      }),
    ]);
    expect(results.map((r) => r.status)).to.deep.equal(['fulfilled', 'rejected']);
    expect(committedSubject(a)).to.equal('kept');
    expect(committedSubject(b)).to.equal(null);
    expect(ledger.get(b)!.state).to.equal('queued');
  });

  it('the lock runs work one at a time in call order, and a failure does not block what follows', async () => {
    const lock = mutex();
    const log: string[] = [];
    const step = (name: string, ms: number, fail = false) =>
      lock(async () => {
        log.push(`${name} start`);
        await new Promise((r) => setTimeout(r, ms));
        log.push(`${name} end`);
        if (fail) throw new Error(name);
        return name;
      });
    const results = await Promise.allSettled([step('a', 20), step('b', 1, true), step('c', 1)]);
    expect(log).to.deep.equal(['a start', 'a end', 'b start', 'b end', 'c start', 'c end']);
    expect(results.map((r) => r.status)).to.deep.equal(['fulfilled', 'rejected', 'fulfilled']);
  });

  it('the background queue runs work in order, goes on after a failure, and settled() rethrows the first failure after all of it', async () => {
    const queue = backgroundQueue();
    const done: string[] = [];
    const step = (name: string, ms: number, fail = false) => async () => {
      await new Promise((r) => setTimeout(r, ms));
      done.push(name);
      if (fail) throw new Error(name);
    };
    queue.add(step('a', 15));
    queue.add(step('b', 1, true));
    queue.add(step('c', 5));
    queue.add(step('d', 1, true));
    let caught: unknown;
    await queue.settled().catch((err: unknown) => (caught = err));
    expect(done).to.deep.equal(['a', 'b', 'c', 'd']);
    expect((caught as Error).message).to.equal('b');
    const empty = backgroundQueue();
    await empty.settled();
  });
});
