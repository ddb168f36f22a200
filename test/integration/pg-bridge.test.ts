import { expect } from 'chai';
import { MeshdError } from '../../src/errors';
import { SyncPg } from '../../src/ledger/pg/bridge';
import { openPgLedger } from '../../src/ledger/pg/pg-ledger';
import { pgCluster } from './support/postgres';

/** The synchronous PostgreSQL bridge when its connection is cut (a restart, a network split). */
describe('PostgreSQL bridge: a connection cut inside a transaction', () => {
  it('has the server end a transaction left idle (a paused host), so its row locks never hold up a lease takeover', async () => {
    const db = new SyncPg(await (await pgCluster()).freshDatabase());
    try {
      expect(db.rows('SHOW idle_in_transaction_session_timeout')[0].idle_in_transaction_session_timeout).to.equal('10s');
    } finally {
      db.close();
    }
  });

  it('fails the rest of the transaction instead of running it on a new connection outside any transaction', async () => {
    const url = await (await pgCluster()).freshDatabase();
    const ledger = openPgLedger(url);
    const admin = new SyncPg(url);
    try {
      const cut = () => admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'meshd' AND pid <> pg_backend_pid()");
      let thrown: unknown;
      try {
        ledger.transaction(() => {
          ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued', localId: 'before-the-cut' });
          cut();
          ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued', localId: 'after-the-cut' });
        });
      } catch (err) {
        thrown = err;
      }
      expect(thrown).to.be.instanceOf(MeshdError).with.property('code', 'LEDGER_UNAVAILABLE');
      // Neither half committed; the next call reconnects and works.
      expect(ledger.list({}).map((r) => r.localId)).to.deep.equal([]);
      ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued', localId: 'later' });
      expect(ledger.list({}).map((r) => r.localId)).to.deep.equal(['later']);
    } finally {
      admin.close();
      ledger.close();
    }
  });
});
