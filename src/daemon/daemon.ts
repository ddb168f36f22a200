import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { MailboxConfig, MeshdConfig } from '../config/types';
import { MeshdError, type ErrorKind } from '../errors';
import { deletePurgedFiles, openStore, purgeInSteps, type LedgerStore, type MailboxStatusPatch } from '../ledger';
import type { Logger } from '../log';
import type { MailboxContext, MeshPort, TransformFn } from '../transfer/context';
import { prepareFolders, removeWriteDebris } from '../transfer/folders';
import { mapLimit } from '../transfer/pool';
import { receiveCycle, recoverInbound } from '../transfer/inbound';
import { recoverOutbound, sendCycle } from '../transfer/outbound';
import { trackingCycle } from '../transfer/tracking';
import type { PgLedger, WriteFence } from '../ledger/pg/pg-ledger';
import { withCrashHook } from './crash-hook';

/**
 * The daemon's work for a set of mailboxes: one cycle = handshake if due, send, receive,
 * follow-up. `meshd run --once` runs one; `meshd run` schedules the stages with node-cron
 * (src/daemon/service.ts). One stage failing for one mailbox is logged and recorded in
 * mailbox_status; it never stops the others.
 */

const HANDSHAKE_EVERY_MS = 24 * 3_600_000;
/** Errors that cut a stage between steps as a crash would: the mailbox's recovery runs again before its next stage. */
const CUT_MID_STAGE = new Set(['LEDGER_UNAVAILABLE', 'FILE_WORKER_FAILED']);
/**
 * Mailboxes worked on at once. Their work is mostly waiting on MESH and on fsync, so a few
 * side by side hide each other's latency; more would only queue on the disk and two cores
 * (docs/performance.md: 200 idle mailboxes).
 */
export const MAILBOX_CONCURRENCY = 16;

export interface DaemonOptions {
  log: Logger;
  now?: () => Date;
  /** Builds the MESH connection for a mailbox (the real client by default; tests may pass others). */
  meshFor: (mailbox: MailboxConfig) => MeshPort;
  /** Converts payloads for routes that ask for it. */
  transform?: TransformFn;
  /** Told when a conversion fails in whole or in part (metrics). */
  onTransformFailure?: (mailbox: string, direction: 'in' | 'out') => void;
  /** The ledger's integrity check at open (src/ledger/open.ts): every start by default, daily for `run --once`. */
  integrity?: 'full' | 'daily';
  /** Told after every stage (metrics, readiness). */
  afterStage?: (mailbox: string, stage: Stage, ok: boolean, ms: number) => void;
  /**
   * Several hosts (src/daemon/hosts.ts): a mailbox is worked only while this says so (this host
   * holds its lease); every ledger write for it passes `writeFence`, and a write refused there
   * (LEASE_LOST) is reported to `onLeaseLost`.
   */
  leases?: { works: (mailbox: string) => boolean; writeFence: WriteFence; onLeaseLost: (mailbox: string) => void };
}

export interface CycleReport {
  mailbox: string;
  handshake?: boolean;
  claimed: number;
  sent: number;
  listed: number;
  delivered: number;
  acknowledged: number;
  tracked: number;
  errors: Array<{ stage: string; code: string; kind?: ErrorKind; message: string }>;
}

export type Stage = 'handshake' | 'send' | 'receive' | 'tracking';

export class Daemon {
  readonly ledger: LedgerStore;
  private readonly contexts: MailboxContext[] = [];
  private stopRequested = false;
  /** Stages in flight, so a scheduled stage never overlaps itself and shutdown can wait. */
  private readonly running = new Map<string, Promise<unknown>>();
  /** Mailbox status waiting for flushStatus(), merged per mailbox. */
  private readonly pendingStatus = new Map<string, MailboxStatusPatch>();
  /** Mailbox sides whose recovery has run in this process. */
  private readonly recovery = new Map<string, Promise<number>>();
  private readonly repeatedAcksTaken = new Set<string>();

  private constructor(
    readonly config: MeshdConfig,
    private readonly options: DaemonOptions,
  ) {
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    const store = openStore(config, { integrity: options.integrity ?? 'full' });
    if (options.leases) {
      if (!config.ledger.postgres) throw new MeshdError('LEASES_NEED_POSTGRES', 'mailbox leases need the PostgreSQL ledger (ledger.postgres)');
      (store as PgLedger).setWriteFence(options.leases.writeFence);
    }
    this.ledger = withCrashHook(store);
  }

  /** Whether this process works the mailbox now: always, unless leases say otherwise. */
  works(mailbox: string): boolean {
    return this.options.leases?.works(mailbox) ?? true;
  }

  /** Recovery runs again before the mailbox's next stages, as after a restart (a takeover). */
  recoverAgain(mailbox: string): void {
    this.recovery.delete(mailbox);
    this.repeatedAcksTaken.delete(mailbox);
  }

  /** Resolves once no stage of the mailbox is in flight. */
  async idle(mailbox: string): Promise<void> {
    await Promise.allSettled([...this.running].filter(([key]) => key.startsWith(`${mailbox}:`)).map(([, work]) => work));
  }

  static async open(config: MeshdConfig, options: DaemonOptions): Promise<Daemon> {
    const d = new Daemon(config, options);
    try {
      for (const mailbox of config.mailboxes) {
        const folders = await prepareFolders(mailbox.folder);
        const spool = join(config.dataDir, 'spool', mailbox.id);
        mkdirSync(spool, { recursive: true, mode: 0o700 });
        d.contexts.push({
          config,
          mailbox,
          folders,
          spool,
          ledger: d.ledger,
          mesh: options.meshFor(mailbox),
          log: options.log.child({ mailbox: mailbox.id }),
          now: options.now ?? (() => new Date()),
          reported: new Set(),
          stopping: () => d.stopRequested || !d.works(mailbox.id),
          transform: observedTransform(options.transform ?? defaultTransform(d.ledger, options.now ?? (() => new Date())), mailbox.id, options.onTransformFailure),
        });
      }
    } catch (err) {
      d.ledger.close();
      throw err;
    }
    return d;
  }

  get mailboxes(): MailboxContext[] {
    return this.contexts;
  }

  get stopping(): boolean {
    return this.stopRequested;
  }

  /** Runs one stage for one mailbox unless it is already running; errors are recorded, not thrown. */
  async runStage(ctx: MailboxContext, stage: Stage, report?: CycleReport): Promise<void> {
    const key = `${ctx.mailbox.id}:${stage}`;
    if (this.stopRequested || !this.works(ctx.mailbox.id) || this.running.has(key)) return;
    const started = Date.now();
    let ok = true;
    const work = this.stage(ctx, stage, report).catch((err) => {
      ok = false;
      const e = err instanceof MeshdError ? err : undefined;
      const code = e?.code ?? 'STAGE_FAILED';
      report?.errors.push({ stage, code, kind: e?.kind, message: (err as Error).message });
      if (code === 'LEASE_LOST') this.options.leases?.onLeaseLost(ctx.mailbox.id);
      // A ledger connection lost, or the file-system worker ended, mid-stage leaves the mailbox
      // as a crash would: recover before its next stage.
      if (CUT_MID_STAGE.has(code) && stage !== 'handshake' && stage !== 'tracking') this.recoverAgain(ctx.mailbox.id);
      if (stage === 'receive') {
        this.noteStatus(ctx.mailbox.id, { lastPollAt: ctx.now(), lastPollOk: false, lastPollError: `${code}: ${(err as Error).message}` });
      }
      const level = e?.kind === 'auth' || e?.kind === 'config' ? 'error' : 'warn';
      ctx.log[level]('STAGE_FAILED', `${stage} failed: ${(err as Error).message}`, { stage, code, hint: e?.hint });
    });
    this.running.set(key, work);
    try {
      await work;
    } finally {
      this.running.delete(key);
      this.options.afterStage?.(ctx.mailbox.id, stage, ok, Date.now() - started);
    }
  }

  /**
   * Half-done work only outlives a crash, so recovery (transfer/inbound/recover.ts, then
   * transfer/outbound/recover.ts) runs once per process and mailbox, before either side's first
   * cycle: the receive side writes business ACKs into the spool, which the send side's recovery
   * would otherwise take for orphans. Returns acknowledgements the receive side repeated, once.
   */
  private async recoverOnce(ctx: MailboxContext, direction: 'in' | 'out'): Promise<number> {
    const id = ctx.mailbox.id;
    let recovery = this.recovery.get(id);
    if (!recovery) {
      recovery = (async () => {
        await removeWriteDebris(ctx.folders, ctx.log);
        const repeated = await recoverInbound(ctx);
        await recoverOutbound(ctx);
        return repeated;
      })();
      this.recovery.set(id, recovery);
      recovery.catch(() => this.recovery.delete(id)); // tried again next cycle
    }
    const repeated = await recovery;
    if (direction !== 'in' || this.repeatedAcksTaken.has(id)) return 0;
    this.repeatedAcksTaken.add(id);
    return repeated;
  }

  private async stage(ctx: MailboxContext, stage: Stage, report?: CycleReport): Promise<void> {
    const { mailbox } = ctx;
    switch (stage) {
      case 'handshake': {
        await ctx.mesh.handshake();
        this.noteStatus(mailbox.id, { lastHandshakeAt: ctx.now() });
        ctx.log.info('HANDSHAKE_OK', 'handshake with MESH succeeded');
        if (report) report.handshake = true;
        return;
      }
      case 'send': {
        await this.recoverOnce(ctx, 'out');
        const r = await sendCycle(ctx);
        if (report) {
          report.claimed += r.claimed;
          report.sent += r.sent;
        }
        return;
      }
      case 'receive': {
        const started = Date.now();
        const recovered = await this.recoverOnce(ctx, 'in');
        const r = await receiveCycle(ctx);
        r.acknowledged += recovered;
        this.noteStatus(mailbox.id, { lastPollAt: ctx.now(), lastPollOk: true, lastPollError: null });
        // An empty poll is debug: 200 mailboxes polled every minute would otherwise write 288,000 lines a day that say nothing.
        ctx.log[r.listed > 0 ? 'info' : 'debug']('POLL_OK', `inbox polled: ${r.listed} listed, ${r.delivered} delivered`, { ...r, ms: Date.now() - started });
        if (report) {
          report.listed += r.listed;
          report.delivered += r.delivered;
          report.acknowledged += r.acknowledged;
        }
        return;
      }
      case 'tracking': {
        const r = await trackingCycle(ctx);
        this.noteStatus(mailbox.id, { lastTrackingAt: ctx.now() });
        if (report) report.tracked += r.checked;
        return;
      }
    }
  }

  /**
   * Mailbox status (last poll, handshake, follow-up) is written in one transaction for every
   * mailbox that finished a stage in the same turn of the event loop, not one fsync'd commit
   * each: with many mailboxes those commits were most of an idle cycle (docs/performance.md).
   */
  private noteStatus(mailbox: string, patch: MailboxStatusPatch): void {
    this.pendingStatus.set(mailbox, { ...this.pendingStatus.get(mailbox), ...patch });
    if (this.pendingStatus.size === 1) setImmediate(() => this.flushStatus());
  }

  private flushStatus(): void {
    if (this.pendingStatus.size === 0) return;
    // A mailbox handed over since is another host's to record (its write would be refused).
    const batch = [...this.pendingStatus].filter(([mailbox]) => this.works(mailbox));
    this.pendingStatus.clear();
    try {
      this.ledger.transaction(() => {
        for (const [mailbox, patch] of batch) this.ledger.setMailboxStatus(mailbox, patch);
      });
    } catch (err) {
      this.options.log.warn('STATUS_WRITE_FAILED', `could not record mailbox status: ${(err as Error).message}`);
    }
  }

  handshakeDue(ctx: MailboxContext): boolean {
    this.flushStatus();
    const last = this.ledger.mailboxStatus(ctx.mailbox.id)?.lastHandshakeAt;
    return !last || ctx.now().getTime() - Date.parse(last) >= HANDSHAKE_EVERY_MS;
  }

  /**
   * One full cycle for every mailbox: handshake if due, send, receive, follow-up. Each stage runs
   * for all mailboxes side by side (MAILBOX_CONCURRENCY at a time) before the next begins, so a
   * message one mailbox sends to another in this process arrives in the same cycle. Reports
   * keep config order.
   */
  async runOnce(): Promise<CycleReport[]> {
    const reports = this.contexts.map((ctx): CycleReport => ({ mailbox: ctx.mailbox.id, claimed: 0, sent: 0, listed: 0, delivered: 0, acknowledged: 0, tracked: 0, errors: [] }));
    const due = this.contexts.map((ctx) => this.handshakeDue(ctx));
    const all = (stage: Stage, only?: boolean[]) => mapLimit(this.contexts, MAILBOX_CONCURRENCY, async (ctx, i) => (only && !only[i] ? undefined : this.runStage(ctx, stage, reports[i])));
    await all('handshake', due);
    await all('send');
    await all('receive');
    await all('tracking');
    this.flushStatus();
    return reports;
  }

  /** One stage for every mailbox, MAILBOX_CONCURRENCY at a time (the scheduled runs of `meshd run`). */
  async runStageForAll(stage: Stage): Promise<void> {
    await mapLimit(this.contexts, MAILBOX_CONCURRENCY, (ctx) => this.runStage(ctx, stage));
    this.flushStatus();
  }

  /**
   * Retention (config ledger.*RetentionDays): payload copies in sent/ and failed/ after 30 days,
   * settled rows and their events after a year. Files in in/ belong to the receiving system and
   * are never touched. Returns what was removed.
   */
  async runRetention(now = new Date()): Promise<{ payloads: number; rows: number }> {
    const { payloadRetentionDays, rowRetentionDays } = this.config.ledger;
    const day = 86_400_000;
    const log = this.options.log;
    try {
      // A batch at a time, so a purge of a big ledger never holds up a running cycle for long.
      const stop = () => this.stopRequested;
      const payloads = await purgeInSteps(this.ledger, { olderThan: new Date(now.getTime() - payloadRetentionDays * day), payloadsOnly: true, now }, stop);
      const rows = await purgeInSteps(this.ledger, { olderThan: new Date(now.getTime() - rowRetentionDays * day), payloadsOnly: false, now }, stop);
      const files = [...payloads.payloads, ...rows.payloads];
      // With each payload go its companions (.ctl, .reason); only regular files, never through a link.
      const deleted = deletePurgedFiles(files);
      for (const f of deleted.failures) log.warn('RETENTION_FILE_LEFT', `retention left ${f.file}: ${f.error}`, { file: f.file });
      if (files.length || rows.rows) log.info('RETENTION_PURGED', `retention removed ${files.length} payload file(s) and ${rows.rows} ledger row(s)`, { files: files.length, rows: rows.rows });
      return { payloads: files.length, rows: rows.rows };
    } catch (err) {
      log.error('RETENTION_FAILED', `retention failed: ${(err as Error).message}`);
      return { payloads: 0, rows: 0 };
    }
  }

  /** Stop taking new work; wait (up to `graceMs`) for stages in flight to checkpoint; close the ledger. */
  async stop(graceMs = 25_000): Promise<void> {
    this.stopRequested = true;
    const inFlight = Promise.allSettled([...this.running.values()]);
    await Promise.race([inFlight, new Promise((r) => setTimeout(r, graceMs).unref())]);
    this.flushStatus();
    this.ledger.close();
  }
}

/** Reports conversions that failed (thrown) or quarantined part of a batch, then passes the outcome on. */
function observedTransform(inner: TransformFn, mailbox: string, onFailure?: (mailbox: string, direction: 'in' | 'out') => void): TransformFn {
  if (!onFailure) return inner;
  return async (input, from, to, subject, outFd) => {
    try {
      const result = await inner(input, from, to, subject, outFd);
      if (result.errors.length > 0) onFailure(mailbox, subject.direction);
      return result;
    } catch (err) {
      onFailure(mailbox, subject.direction);
      throw err;
    }
  };
}

/**
 * Transforms through the registry (lazily loaded: it pulls in the FHIR definitions). The
 * ledger's appointments table supplies each appointment's previous state (so a writer can tell
 * SIU S12 from S13/S14) and records what was written, per direction.
 */
function defaultTransform(ledger: LedgerStore, now: () => Date): TransformFn {
  return async (input, from, to, subject, outFd) => {
    const { convert, fileSink } = await import('../transform/convert');
    const result = convert(input, {
      from,
      to,
      previousAppointment: (key) => {
        const record = ledger.getAppointment(key);
        const last = subject.direction === 'out' ? record?.lastSent : record?.lastReceived;
        return last ? { lastEvent: last.eventKind, start: last.startAt ?? undefined, status: last.status ?? undefined } : undefined;
      },
    }, outFd === undefined ? undefined : fileSink(outFd));
    if (subject.rowId > 0) {
      ledger.transaction(() => {
        for (const a of result.appointments) {
          ledger.recordAppointment(a.key, subject.direction, { eventKind: a.event, trigger: a.trigger ?? null, startAt: a.start ?? null, status: a.status ?? null, at: subject.eventTime ? new Date(subject.eventTime) : now(), messageRowId: subject.rowId });
        }
      });
    }
    return result;
  };
}
