import type { MeshdConfig } from '../config/types';
import type { SyncPg } from '../ledger/pg/bridge';
import type { WriteFence } from '../ledger/pg/pg-ledger';
import type { Logger } from '../log';
import type { Daemon } from './daemon';
import { defaultHostId, LeaseManager } from './lease';

/**
 * `meshd run` as one of several hosts on a PostgreSQL ledger (docs/operations.md, Several
 * hosts): the lease rounds of lease.ts on a timer, and which mailboxes the daemon may work.
 * A mailbox is worked only between gaining its lease and losing or handing it back; a host
 * that gains a mailbox another host held runs the same recovery as after a restart.
 */

export type LeaseChange = 'gained' | 'taken_over' | 'lost' | 'released';

export class HostLeases {
  /** Mailboxes the daemon works now. */
  private readonly working = new Set<string>();
  /** Mailboxes gained, waiting for stages left from an earlier lease of this host to end. */
  private readonly beginning = new Map<string, Promise<void>>();
  /** Mailboxes being handed back, waiting for their stages to reach a checkpoint. */
  private readonly handingBack = new Set<string>();
  private daemon: Daemon | undefined;
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<void> | undefined;

  private constructor(
    private readonly manager: LeaseManager,
    private readonly db: SyncPg,
    private readonly mailboxes: readonly string[],
    private readonly log: Logger,
    private readonly onChange: (change: LeaseChange, mailbox: string, held: number) => void,
  ) {}

  /** Registers this host (config node.id, else hostname-pid) with its own database connection. */
  static open(config: MeshdConfig, log: Logger, onChange: (change: LeaseChange, mailbox: string, held: number) => void = () => undefined): HostLeases {
    // Loaded here: a run on SQLite never needs the bridge or its worker thread.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { SyncPg: Pg } = require('../ledger/pg/bridge') as typeof import('../ledger/pg/bridge');
    const db = new Pg(config.ledger.postgres!);
    try {
      const manager = new LeaseManager(db, { hostId: hostIdOf(config), leaseSeconds: config.node.leaseSeconds });
      manager.heartbeat();
      return new HostLeases(manager, db, config.mailboxes.map((m) => m.id), log, onChange);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  get hostId(): string {
    return this.manager.hostId;
  }

  /** For DaemonOptions.leases. */
  readonly forDaemon = {
    works: (mailbox: string): boolean => this.working.has(mailbox),
    writeFence: ((mailbox, query) => this.manager.writeFence(mailbox, query)) as WriteFence,
    onLeaseLost: (mailbox: string): void => this.stopWork(mailbox, 'a ledger write for it was refused: another host holds its lease now'),
  };

  /** A first lease round now, then one every leaseSeconds / 3 (without `rounds`: one only, for `run --once`). */
  async start(daemon: Daemon, rounds = true): Promise<void> {
    this.daemon = daemon;
    await this.runRound();
    await Promise.all(this.beginning.values());
    if (rounds) this.timer = setInterval(() => void this.runRound(), this.manager.renewEveryMs);
  }

  /** Rounds never overlap: one that waits on the database is not doubled by the next tick. */
  runRound(): Promise<void> {
    this.round ??= this.leaseRound().finally(() => (this.round = undefined));
    return this.round;
  }

  private async leaseRound(): Promise<void> {
    let changes;
    try {
      changes = this.manager.tick(this.mailboxes);
    } catch (err) {
      // The database is down or restarting: keep working what is held (a takeover needs the
      // database too, and every write is fenced); the next round reconnects.
      this.log.warn('LEASE_ROUND_FAILED', `lease round failed: ${(err as Error).message}`, { host: this.hostId });
      return;
    }
    for (const mailbox of changes.lost) this.stopWork(mailbox, 'another host has taken its lease over');
    // Neither waits in the round: a stage that takes long to reach a checkpoint must not hold up renewals.
    for (const { mailbox, fence, takenOver } of changes.gained) {
      if (!this.beginning.has(mailbox)) this.beginning.set(mailbox, this.begin(mailbox, fence, takenOver).finally(() => this.beginning.delete(mailbox)));
    }
    for (const mailbox of changes.handBack) if (!this.handingBack.has(mailbox)) void this.handBack(mailbox);
  }

  /** Works a newly leased mailbox, once any stage left from an earlier lease has ended. */
  private async begin(mailbox: string, fence: number, takenOver: boolean): Promise<void> {
    await this.daemon!.idle(mailbox);
    // Lost or handed back meanwhile: not this host's to work.
    if (this.manager.fenceOf(mailbox) !== fence || this.handingBack.has(mailbox)) return;
    if (takenOver) this.daemon!.recoverAgain(mailbox);
    this.working.add(mailbox);
    this.onChange(takenOver ? 'taken_over' : 'gained', mailbox, this.working.size);
    this.log.info('LEASE_GAINED', `this host now works mailbox ${mailbox}${takenOver ? ' (taken over from another host; recovery runs first)' : ''}`, { host: this.hostId, mailbox, fence, takenOver });
  }

  /** Stops work on the mailbox, lets its stages reach a checkpoint, then gives the lease up for its new owner. */
  private async handBack(mailbox: string): Promise<void> {
    this.handingBack.add(mailbox);
    this.working.delete(mailbox);
    try {
      await this.daemon!.idle(mailbox);
      this.manager.release(mailbox);
      this.working.delete(mailbox);
      this.onChange('released', mailbox, this.working.size);
      this.log.info('LEASE_RELEASED', `mailbox ${mailbox} handed back for another host`, { host: this.hostId, mailbox });
    } catch (err) {
      // It then expires by itself.
      this.log.warn('LEASE_ROUND_FAILED', `could not hand mailbox ${mailbox} back: ${(err as Error).message}`, { host: this.hostId, mailbox });
    } finally {
      this.handingBack.delete(mailbox);
    }
  }

  private stopWork(mailbox: string, why: string): void {
    if (!this.working.delete(mailbox)) return;
    this.onChange('lost', mailbox, this.working.size);
    this.log.warn('LEASE_LOST', `stopped work on mailbox ${mailbox}: ${why}`, { host: this.hostId, mailbox, code: 'LEASE_LOST' });
  }

  /** After the daemon has stopped: no more rounds; every lease handed back at once and the host row removed. */
  async leave(): Promise<void> {
    clearInterval(this.timer);
    await this.round;
    this.working.clear();
    try {
      this.manager.leave();
      this.log.info('LEASES_RELEASED', 'every mailbox lease handed back', { host: this.hostId });
    } catch (err) {
      this.log.warn('LEASE_ROUND_FAILED', `could not hand the leases back (they expire by themselves): ${(err as Error).message}`, { host: this.hostId });
    } finally {
      this.db.close();
    }
  }
}

/** This process's host id: MESHD_NODE_ID or config node.id (both in config.node.id), else hostname-pid. */
export function hostIdOf(config: MeshdConfig): string {
  return config.node.id ?? defaultHostId();
}
