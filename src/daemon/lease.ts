import { createHash } from 'node:crypto';
import os from 'node:os';
import { MeshdError } from '../errors';
import type { SyncPg } from '../ledger/pg/bridge';
import type { WriteFence } from '../ledger/pg/pg-ledger';
import { type PgMigration, runPgMigrations } from '../ledger/pg/schema';

/**
 * Hosts and mailbox leases for several meshd hosts sharing a PostgreSQL ledger (issue 15).
 * MESH allows one client per mailbox, so each mailbox is worked by one host at a time, under a
 * lease: an owner, an expiry and a fencing number that grows with every new lease. Leases are
 * spread over the live hosts by rendezvous hashing and taken over when they expire. Every
 * ledger write for a mailbox checks the writer's fencing number in its own transaction
 * (writeFence), so a host that was paused past its lease can never commit for it again.
 * Expiry runs on the database's clock, so hosts' clocks need not agree.
 */

/** Hosts and leases keep their own migration list (lease_schema_version), apart from the ledger's. */
export const LEASE_MIGRATIONS: readonly PgMigration[] = [
  {
    version: 1,
    sql: `
      -- One sequence for all leases: a new lease always gets a larger number than any before it.
      CREATE SEQUENCE lease_fence;
      CREATE TABLE hosts (
        id           text PRIMARY KEY,
        started_at   timestamptz NOT NULL,
        heartbeat_at timestamptz NOT NULL
      );
      CREATE TABLE leases (
        mailbox     text PRIMARY KEY,
        owner       text        NOT NULL,
        fence       bigint      NOT NULL,
        acquired_at timestamptz NOT NULL,
        expires_at  timestamptz NOT NULL
      );
    `,
  },
];

export const DEFAULT_LEASE_SECONDS = 30;

export interface LeaseOptions {
  /** This host's id (config node.id; default hostname-pid). */
  hostId: string;
  /** Default 30; renewed every third of it. */
  leaseSeconds?: number;
  /** Tests only: a clock instead of the database's. */
  now?: () => Date;
}

export interface GainedLease {
  mailbox: string;
  fence: number;
  /** Another host held it before: run the same recovery as after a restart. */
  takenOver: boolean;
}

export interface LeaseChanges {
  gained: GainedLease[];
  /** Taken over by another host while this one held it: stop work on these. */
  lost: string[];
  /**
   * Still held (and renewed) but now another live host's, or no longer configured: stop work on
   * these, then release() each, so the next owner never polls while this host still does.
   */
  handBack: string[];
}

export function defaultHostId(): string {
  return `${os.hostname()}-${process.pid}`;
}

/**
 * The live host a mailbox belongs to: the highest hash of (host, mailbox). When a host joins or
 * leaves, only the mailboxes it wins or held move.
 */
export function rendezvousOwner(mailbox: string, hosts: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = -1n;
  for (const host of hosts) {
    const score = createHash('sha256').update(host).update('\0').update(mailbox).digest().readBigUInt64BE(0);
    if (score > bestScore || (score === bestScore && best !== undefined && host < best)) {
      best = host;
      bestScore = score;
    }
  }
  return best;
}

export function leaseLost(hostId: string, mailbox: string): MeshdError {
  return new MeshdError(
    'LEASE_LOST',
    `host ${hostId} no longer holds the lease on mailbox ${mailbox}; the ledger write was refused`,
    'another host has taken the mailbox over; this host stops work on it',
    'failure',
  );
}

export class LeaseManager {
  readonly hostId: string;
  readonly leaseSeconds: number;
  /** mailbox → fencing number of the lease this host holds. */
  private readonly held = new Map<string, number>();

  constructor(
    private readonly db: SyncPg,
    private readonly opts: LeaseOptions,
  ) {
    this.hostId = opts.hostId;
    this.leaseSeconds = opts.leaseSeconds ?? DEFAULT_LEASE_SECONDS;
    runPgMigrations(db, 'the lease tables', { migrations: LEASE_MIGRATIONS, versionTable: 'lease_schema_version' });
  }

  /** How often tick() should run. */
  get renewEveryMs(): number {
    return (this.leaseSeconds * 1000) / 3;
  }

  /** The fencing number of this host's lease on the mailbox, if it holds one. */
  fenceOf(mailbox: string): number | undefined {
    return this.held.get(mailbox);
  }

  /** `now` as SQL: the test clock, else the database's. */
  private now(): string | null {
    return this.opts.now ? this.opts.now().toISOString() : null;
  }

  private rows(sql: string, params: unknown[]) {
    return this.db.rows(sql.replaceAll('@now', 'COALESCE($1::timestamptz, now())'), [this.now(), ...params]);
  }

  /** Registers this host, or records that it is still alive. */
  heartbeat(): void {
    this.rows('INSERT INTO hosts (id, started_at, heartbeat_at) VALUES ($2, @now, @now) ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at', [this.hostId]);
  }

  /** Hosts that heartbeated within one lease period, by id. */
  liveHosts(): string[] {
    return this.rows('SELECT id FROM hosts WHERE heartbeat_at > @now - make_interval(secs => $2) ORDER BY id', [this.leaseSeconds]).map((r) => r.id as string);
  }

  /**
   * One round: heartbeat, renew every lease held, take the configured mailboxes that are this
   * host's by rendezvous over the live hosts once free or expired, and name those to hand back.
   */
  tick(mailboxes: readonly string[]): LeaseChanges {
    this.heartbeat();
    const live = this.liveHosts();
    const changes: LeaseChanges = { gained: [], lost: [], handBack: [] };
    const configured = new Set(mailboxes);
    for (const mailbox of [...this.held.keys()]) {
      if (!this.renew(mailbox)) changes.lost.push(mailbox);
      else if (!configured.has(mailbox) || rendezvousOwner(mailbox, live) !== this.hostId) changes.handBack.push(mailbox);
    }
    for (const mailbox of mailboxes) {
      if (this.held.has(mailbox) || changes.lost.includes(mailbox)) continue;
      if (rendezvousOwner(mailbox, live) === this.hostId) {
        const gained = this.acquire(mailbox);
        if (gained) changes.gained.push(gained);
      }
    }
    return changes;
  }

  /** Takes the mailbox's lease if it is free, expired or already this host's; a new fencing number each time. */
  acquire(mailbox: string): GainedLease | undefined {
    this.db.query('BEGIN');
    try {
      const [current] = this.rows('SELECT owner, expires_at <= @now AS expired FROM leases WHERE mailbox = $2 FOR UPDATE', [mailbox]);
      let gained: GainedLease | undefined;
      if (!current) {
        const [row] = this.rows(
          `INSERT INTO leases (mailbox, owner, fence, acquired_at, expires_at)
           VALUES ($2, $3, nextval('lease_fence'), @now, @now + make_interval(secs => $4))
           ON CONFLICT (mailbox) DO NOTHING RETURNING fence`,
          [mailbox, this.hostId, this.leaseSeconds],
        );
        if (row) gained = { mailbox, fence: row.fence as number, takenOver: false };
      } else if (current.expired === true || current.owner === this.hostId) {
        const [row] = this.rows(
          `UPDATE leases SET owner = $3, fence = nextval('lease_fence'), acquired_at = @now, expires_at = @now + make_interval(secs => $4)
           WHERE mailbox = $2 RETURNING fence`,
          [mailbox, this.hostId, this.leaseSeconds],
        );
        gained = { mailbox, fence: row.fence as number, takenOver: current.owner !== this.hostId };
      }
      this.db.query('COMMIT');
      if (gained) this.held.set(mailbox, gained.fence);
      return gained;
    } catch (err) {
      this.db.query('ROLLBACK');
      throw err;
    }
  }

  /** Extends this host's lease; false (and forgotten) if another host has taken it since. */
  renew(mailbox: string): boolean {
    const fence = this.held.get(mailbox);
    if (fence === undefined) return false;
    const [row] = this.rows('UPDATE leases SET expires_at = @now + make_interval(secs => $4) WHERE mailbox = $2 AND owner = $3 AND fence = $5 RETURNING fence', [
      mailbox,
      this.hostId,
      this.leaseSeconds,
      fence,
    ]);
    if (!row) this.held.delete(mailbox);
    return row !== undefined;
  }

  /** Hands the lease back at once (it expires now), for the next owner to take. */
  release(mailbox: string): void {
    const fence = this.held.get(mailbox);
    this.held.delete(mailbox);
    if (fence !== undefined) this.rows('UPDATE leases SET expires_at = @now WHERE mailbox = $2 AND owner = $3 AND fence = $4', [mailbox, this.hostId, fence]);
  }

  /** On a clean stop: every lease handed back and the host row removed, so the others rebalance at once. */
  leave(): void {
    for (const mailbox of [...this.held.keys()]) this.release(mailbox);
    this.db.rows('DELETE FROM hosts WHERE id = $1', [this.hostId]);
  }

  /**
   * For PgLedger.setWriteFence: a write for a mailbox commits only while this host's lease on it
   * is the current one. FOR SHARE holds the lease row until the write commits, so a takeover
   * waits for it, and every write after the takeover is refused.
   */
  readonly writeFence: WriteFence = (mailbox, query) => {
    const fence = this.held.get(mailbox);
    const [row] = fence === undefined ? [] : query('SELECT fence FROM leases WHERE mailbox = $1 AND owner = $2 FOR SHARE', [mailbox, this.hostId]);
    if (!row || Number(row.fence) !== fence) throw leaseLost(this.hostId, mailbox);
  };
}

export interface HostsView {
  /** Every registered host; `live` if it heartbeated within one lease period. */
  hosts: Array<{ id: string; startedAt: string; heartbeatAt: string; live: boolean }>;
  /** mailbox → its lease; `expired` once no host renews it (the next owner may take it). */
  leases: Record<string, { owner: string; fence: number; expiresAt: string; expired: boolean }>;
}

/** For `meshd status`: hosts and leases as the database sees them now, on its clock. Empty before any host ran. */
export function readHosts(db: SyncPg, leaseSeconds: number): HostsView {
  const [{ exists }] = db.rows("SELECT to_regclass('leases') IS NOT NULL AS exists");
  if (!exists) return { hosts: [], leases: {} };
  const hosts = db.rows('SELECT id, started_at, heartbeat_at, heartbeat_at > now() - make_interval(secs => $1) AS live FROM hosts ORDER BY id', [leaseSeconds]);
  const leases = db.rows('SELECT mailbox, owner, fence, expires_at, expires_at <= now() AS expired FROM leases ORDER BY mailbox');
  return {
    hosts: hosts.map((h) => ({ id: h.id as string, startedAt: h.started_at as string, heartbeatAt: h.heartbeat_at as string, live: h.live as boolean })),
    leases: Object.fromEntries(leases.map((l) => [l.mailbox as string, { owner: l.owner as string, fence: Number(l.fence), expiresAt: l.expires_at as string, expired: l.expired as boolean }])),
  };
}
