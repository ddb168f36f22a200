import { spawn } from 'node:child_process';
import path from 'node:path';
import { expect } from 'chai';
import { MeshdError } from '../../src/errors';
import { LeaseManager, rendezvousOwner } from '../../src/daemon/lease';
import { SyncPg } from '../../src/ledger/pg/bridge';
import { openPgLedger, type PgLedger } from '../../src/ledger/pg/pg-ledger';
import { pgCluster } from './support/postgres';

/** Hosts and mailbox leases on a real PostgreSQL: spread, rebalance, failover and fencing. */

const MAILBOXES = ['X26ABC1', 'X26ABC2', 'X26ABC3', 'X26ABC4', 'X26ABC5', 'X26ABC6', 'X26ABC7', 'X26ABC8'];
const LEASE = 30;

describe('mailbox leases (PostgreSQL)', () => {
  let url: string;
  let clock: Date;
  const closers: Array<() => void> = [];

  beforeEach(async () => {
    url = await (await pgCluster()).freshDatabase();
    clock = new Date('2026-11-01T09:00:00.000Z');
  });
  afterEach(() => {
    for (const close of closers.splice(0).reverse()) close();
  });

  const later = (seconds: number) => (clock = new Date(clock.getTime() + seconds * 1000));

  function host(hostId: string): LeaseManager {
    const db = new SyncPg(url);
    closers.push(() => db.close());
    return new LeaseManager(db, { hostId, leaseSeconds: LEASE, now: () => clock });
  }

  /** host-a and host-b, each holding its rendezvous share of MAILBOXES. */
  function twoSettledHosts(): [LeaseManager, LeaseManager] {
    const a = host('host-a');
    const b = host('host-b');
    for (let round = 0; round < 2; round++) {
      for (const h of [a, b]) for (const m of h.tick(MAILBOXES).handBack) h.release(m);
    }
    return [a, b];
  }

  function ledgerFor(manager: LeaseManager): PgLedger {
    const ledger = openPgLedger(url, { now: () => clock });
    closers.push(() => ledger.close());
    ledger.setWriteFence(manager.writeFence);
    return ledger;
  }

  /** mailbox → owner, as the leases table says (unexpired leases only). */
  function owners(): Record<string, string> {
    const db = new SyncPg(url);
    try {
      const rows = db.rows('SELECT mailbox, owner FROM leases WHERE expires_at > $1 ORDER BY mailbox', [clock.toISOString()]);
      return Object.fromEntries(rows.map((r) => [r.mailbox, r.owner]));
    } finally {
      db.close();
    }
  }

  it('spreads mailboxes by rendezvous hashing: a host leaving moves only its own mailboxes', () => {
    const many = Array.from({ length: 200 }, (_, i) => `X26M${String(i).padStart(3, '0')}`);
    const three = ['host-a', 'host-b', 'host-c'];
    const before = new Map(many.map((m) => [m, rendezvousOwner(m, three)]));
    for (const h of three) expect([...before.values()].filter((o) => o === h).length, h).to.be.greaterThan(30);
    const after = new Map(many.map((m) => [m, rendezvousOwner(m, ['host-a', 'host-c'])]));
    for (const m of many) if (before.get(m) !== 'host-b') expect(after.get(m), m).to.equal(before.get(m));
    expect(rendezvousOwner('X26ABC1', [])).to.equal(undefined);
  });

  it('gives every mailbox to exactly one host, and rebalances when a second host joins', () => {
    const a = host('host-a');
    const first = a.tick(MAILBOXES);
    expect(first.gained.map((g) => g.mailbox)).to.deep.equal(MAILBOXES);
    expect(first.gained.every((g) => !g.takenOver)).to.equal(true);

    const b = host('host-b');
    expect(b.tick(MAILBOXES).gained, 'b waits while a holds unexpired leases').to.deep.equal([]);
    const handBack = a.tick(MAILBOXES).handBack;
    const forB = MAILBOXES.filter((m) => rendezvousOwner(m, ['host-a', 'host-b']) === 'host-b');
    expect(handBack).to.deep.equal(forB);
    expect(forB.length).to.be.within(1, MAILBOXES.length - 1);
    // Until host-a has stopped work on them and released them, host-b must not poll them.
    expect(b.tick(MAILBOXES).gained).to.deep.equal([]);
    for (const m of handBack) a.release(m);
    const gained = b.tick(MAILBOXES).gained;
    expect(gained.map((g) => g.mailbox)).to.deep.equal(forB);
    expect(gained.every((g) => g.takenOver)).to.equal(true);
    const expected = Object.fromEntries(MAILBOXES.map((m) => [m, rendezvousOwner(m, ['host-a', 'host-b'])]));
    expect(owners()).to.deep.equal(expected);
    // Steady state: renewals only.
    later(LEASE / 3);
    expect(a.tick(MAILBOXES)).to.deep.equal({ gained: [], lost: [], handBack: [] });
    expect(b.tick(MAILBOXES)).to.deep.equal({ gained: [], lost: [], handBack: [] });
  });

  it('takes a dead host’s mailboxes over when its leases expire, with larger fencing numbers', () => {
    const [a, b] = twoSettledHosts();
    const ofA = MAILBOXES.filter((m) => owners()[m] === 'host-a');
    const oldFences = new Map(ofA.map((m) => [m, a.fenceOf(m)!]));
    // host-a stops heartbeating; within one lease period nothing moves.
    later(LEASE - 1);
    expect(b.tick(MAILBOXES).gained).to.deep.equal([]);
    later(2);
    const gained = b.tick(MAILBOXES).gained;
    expect(gained.map((g) => g.mailbox)).to.deep.equal(ofA);
    for (const g of gained) {
      expect(g.takenOver).to.equal(true);
      expect(g.fence).to.be.greaterThan(oldFences.get(g.mailbox)!);
    }
    expect(new Set(Object.values(owners()))).to.deep.equal(new Set(['host-b']));
  });

  it('refuses every ledger write of a host that lost its lease, and the host learns it lost the mailbox', () => {
    const a = host('host-a');
    a.tick(['X26ABC1']);
    const ledgerA = ledgerFor(a);
    const row = ledgerA.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued' });
    const other = ledgerA.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued' });
    expect(ledgerA.transition(row.id, 'uploading').state).to.equal('uploading');
    // A write for a mailbox this host holds no lease on is refused too.
    expect(() => ledgerA.insertMessage({ direction: 'out', mailbox: 'X26ABC9', state: 'queued' })).to.throw(MeshdError).with.property('code', 'LEASE_LOST');

    // host-a pauses past its lease; host-b takes the mailbox over.
    later(LEASE + 1);
    const b = host('host-b');
    expect(b.tick(['X26ABC1']).gained).to.deep.equal([{ mailbox: 'X26ABC1', fence: b.fenceOf('X26ABC1'), takenOver: true }]);
    const ledgerB = ledgerFor(b);

    // host-a wakes up: nothing it writes for X26ABC1 commits.
    const writes: Array<[string, () => unknown]> = [
      ['transition', () => ledgerA.transition(row.id, 'sent')],
      ['update', () => ledgerA.update(row.id, { chunksDone: 1 })],
      ['setMark', () => ledgerA.setMark(other.id, 'post_in_flight')],
      ['recordEvent', () => ledgerA.recordEvent(row.id, 'note')],
      ['insertMessage', () => ledgerA.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued' })],
      ['setMailboxStatus', () => ledgerA.setMailboxStatus('X26ABC1', { lastPollOk: true })],
    ];
    for (const [name, write] of writes) expect(write, name).to.throw(MeshdError).with.property('code', 'LEASE_LOST');
    expect(ledgerB.get(row.id)).to.include({ state: 'uploading', chunksDone: 0 });
    expect(ledgerB.get(other.id)).to.include({ state: 'queued', recoveryMark: null });
    expect(ledgerB.events(row.id).map((e) => e.type)).to.deep.equal(['created', 'transition']);
    expect(ledgerB.list({})).to.have.length(2);
    expect(ledgerB.mailboxStatus('X26ABC1')).to.equal(undefined);
    // The new holder writes normally.
    expect(ledgerB.transition(row.id, 'queued').state).to.equal('queued');

    expect(a.tick(['X26ABC1'])).to.deep.equal({ gained: [], lost: ['X26ABC1'], handBack: [] });
    expect(a.fenceOf('X26ABC1')).to.equal(undefined);
  });

  it('renews a lease that expired while no one took it (the fencing number is unchanged)', () => {
    const a = host('host-a');
    a.tick(['X26ABC1']);
    const fence = a.fenceOf('X26ABC1');
    later(LEASE + 5);
    expect(a.tick(['X26ABC1'])).to.deep.equal({ gained: [], lost: [], handBack: [] });
    expect(a.fenceOf('X26ABC1')).to.equal(fence);
    expect(owners()).to.deep.equal({ X26ABC1: 'host-a' });
  });

  it('hands everything back on a clean stop, so another host takes over at once', () => {
    const [a, b] = twoSettledHosts();
    a.leave();
    const gained = b.tick(MAILBOXES).gained.map((g) => g.mailbox);
    expect(gained.length).to.be.greaterThan(0);
    expect(owners()).to.deep.equal(Object.fromEntries(MAILBOXES.map((m) => [m, 'host-b'])));
    // Mailboxes dropped from the config are handed back too.
    expect(b.tick(MAILBOXES.slice(1)).handBack).to.deep.equal([MAILBOXES[0]]);
  });

  it('makes a takeover wait for a write in progress, which then commits before it', async () => {
    // host-a, in its own process, holds the lease and writes inside a transaction that stays open
    // a while; host-b takes the expired lease meanwhile. The takeover must wait for that commit.
    const dist = path.resolve(__dirname, '../../src');
    const script = `
      const { SyncPg } = require(${JSON.stringify(dist + '/ledger/pg/bridge')});
      const { LeaseManager } = require(${JSON.stringify(dist + '/daemon/lease')});
      const { openPgLedger } = require(${JSON.stringify(dist + '/ledger/pg/pg-ledger')});
      const now = () => new Date(${JSON.stringify(clock.toISOString())});
      const a = new LeaseManager(new SyncPg(process.env.URL), { hostId: 'host-a', leaseSeconds: ${LEASE}, now });
      a.tick(['X26ABC1']);
      const ledger = openPgLedger(process.env.URL, { now });
      ledger.setWriteFence(a.writeFence);
      ledger.transaction(() => {
        ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued', localId: 'written-by-a' });
        process.stdout.write('written');
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1500);
      });
      ledger.close();
      process.exit(0);`;
    const child = spawn(process.execPath, ['-e', script], { env: { ...process.env, URL: url } });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('written') && resolve());
      void exited.then(() => reject(new Error(`host-a exited early: ${err}`)));
    });
    later(LEASE + 1);
    const b = host('host-b');
    const gained = b.acquire('X26ABC1');
    expect(gained).to.include({ mailbox: 'X26ABC1', takenOver: true });
    // Had the takeover not waited, host-a's row would not be committed yet.
    const ledgerB = ledgerFor(b);
    expect(ledgerB.list({}).map((r) => r.localId)).to.deep.equal(['written-by-a']);
    expect(await exited, err).to.equal(0);
  });
});
