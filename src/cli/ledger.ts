import type { Command } from 'commander';
import type { MeshdConfig } from '../config/types';
import type { Direction, EventRow, LedgerStore, MessageRow, MessageState } from '../ledger';
import { MeshdError } from '../errors';
import { escapeControl } from '../safe-text';
import { registerMigrate } from './ledger-migrate';
import { registerRestore } from './ledger-restore';
import { printer } from './output';

/**
 * `meshd status` and `meshd ledger …`: what a sysadmin reads and does to the ledger.
 * Heavy modules (config, better-sqlite3) load inside the actions so `meshd --help` stays fast.
 */

interface LedgerCli {
  config: MeshdConfig;
  /** --mailbox as a filter (upper-cased, checked against the config); absent = every mailbox. */
  mailbox?: string;
  json: boolean;
  ledger: LedgerStore;
  print(result: unknown, text: string | string[]): void;
}

function usage(message: string, hint?: string): MeshdError {
  return new MeshdError('USAGE', message, hint, 'usage');
}

/**
 * Loads the config and opens the existing ledger. Not cliContext(): these commands span every
 * mailbox, so --mailbox is an optional filter rather than a required choice.
 */
async function openCli(cmd: Command, integrity: 'full' | 'none'): Promise<LedgerCli> {
  const g = cmd.optsWithGlobals() as { config?: string; mailbox?: string; json?: boolean };
  const { findConfigPath, loadConfig } = await import('../config');
  const { openStore } = await import('../ledger');
  // These commands read the ledger only: secrets (often systemd credentials) need not be reachable.
  const config = await loadConfig(findConfigPath(g.config), process.env, { skipSecrets: true });
  let mailbox: string | undefined;
  if (g.mailbox) {
    mailbox = g.mailbox.toUpperCase();
    if (!config.mailboxes.some((m) => m.id === mailbox)) {
      throw usage(`mailbox ${mailbox} is not in ${config.configPath}`, `use one of: ${config.mailboxes.map((m) => m.id).join(', ')}`);
    }
  }
  const json = g.json === true;
  // create: false, so that `sudo meshd status` on a fresh host never leaves a root-owned ledger behind.
  const ledger = openStore(config, { create: false, integrity });
  return { config, mailbox, json, ledger, print: printer(json) };
}

/**
 * `read` commands (status, list, show, export) skip the full integrity check, which reads every
 * page of a big ledger: they change nothing, and SQLite reports any corrupt page they touch.
 * Commands that write check it first (docs/performance.md).
 */
async function withLedger(cmd: Command, fn: (c: LedgerCli) => Promise<void> | void, access: 'read' | 'write' = 'write'): Promise<void> {
  const c = await openCli(cmd, access === 'read' ? 'none' : 'full');
  try {
    await fn(c);
  } finally {
    c.ledger.close();
  }
}

// ---------------------------------------------------------------------------------------
// Text formatting for people

function when(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return 'never';
  const ms = now - Date.parse(iso);
  const short = iso.replace('T', ' ').replace(/\.\d{3}Z$/, 'Z');
  if (ms < 0) return short;
  const ago = ms < 90_000 ? `${Math.round(ms / 1000)}s` : ms < 5_400_000 ? `${Math.round(ms / 60_000)}m` : ms < 172_800_000 ? `${Math.round(ms / 3_600_000)}h` : `${Math.round(ms / 86_400_000)}d`;
  return `${short} (${ago} ago)`;
}

function counts(c: Partial<Record<MessageState, number>>): string {
  const parts = Object.entries(c).map(([s, n]) => `${s} ${n}`);
  return parts.length ? parts.join(', ') : 'none';
}

function table(headers: string[], cells: string[][]): string[] {
  // Escaped before measuring, so the columns line up with what is printed.
  const rows = cells.map((r) => r.map(escapeControl));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)];
}

function cut(text: string | null, max: number): string {
  if (!text) return '-';
  return text.length > max ? text.slice(0, max - 1) + '…' : text;
}

function brief(row: MessageRow | undefined): { id: number; state: MessageState; createdAt: string; messageId: string | null } | null {
  return row ? { id: row.id, state: row.state, createdAt: row.createdAt, messageId: row.messageId } : null;
}

// ---------------------------------------------------------------------------------------
// meshd status

const WAITING_TO_SEND: MessageState[] = ['claiming', 'queued', 'uploading', 'needs_review'];

function mailboxReport(ledger: LedgerStore, mailbox: string) {
  const status = ledger.mailboxStatus(mailbox);
  return {
    mailbox,
    lastPoll: status?.lastPollAt ? { at: status.lastPollAt, ok: status.lastPollOk, error: status.lastPollError } : null,
    lastHandshakeAt: status?.lastHandshakeAt ?? null,
    lastTrackingAt: status?.lastTrackingAt ?? null,
    counts: { out: ledger.countsByState(mailbox, 'out'), in: ledger.countsByState(mailbox, 'in') },
    oldestWaitingToSend: brief(ledger.oldest(mailbox, 'out', WAITING_TO_SEND)),
    oldestSentUnacknowledged: brief(ledger.oldest(mailbox, 'out', ['sent'])),
    oldestDeliveredUnacknowledged: brief(ledger.oldest(mailbox, 'in', ['delivered'])),
    ackOverdue: ledger.countOverdueAcks(mailbox, new Date()),
  };
}


/** The client certificate's expiry: warned from 30 days out (the daemon warns in its log too). */
async function certificateReport(certPath: string | undefined) {
  if (!certPath) return null;
  try {
    const { readFileSync } = await import('node:fs');
    const { certificateStatus } = await import('../certs/status');
    const s = certificateStatus(readFileSync(certPath));
    return { path: certPath, notAfter: s.notAfter.toISOString(), daysLeft: s.daysLeft, expired: s.expired, expiresSoon: s.expiresSoon };
  } catch (err) {
    return { path: certPath, error: (err as Error).message };
  }
}

function certificateText(c: NonNullable<Awaited<ReturnType<typeof certificateReport>>>): string {
  if ('error' in c) return `client certificate: UNREADABLE (${c.error})`;
  const state = c.expired ? 'EXPIRED: MESH will refuse every request' : c.expiresSoon ? `EXPIRES IN ${c.daysLeft} DAYS: renew it (docs/operations.md)` : `valid, ${c.daysLeft} days left`;
  return `client certificate: ${state} (until ${c.notAfter})`;
}

/** Several hosts (PostgreSQL): the hosts and who holds which mailbox, on the database's own connection. */
async function hostsReport(url: string, leaseSeconds: number) {
  const { SyncPg } = await import('../ledger/pg/bridge');
  const { readHosts } = await import('../daemon/lease');
  const db = new SyncPg(url);
  try {
    return readHosts(db, leaseSeconds);
  } finally {
    db.close();
  }
}

function hostsText(v: Awaited<ReturnType<typeof hostsReport>>): string[] {
  if (v.hosts.length === 0) return ['hosts: none registered (no meshd run has used this database yet)'];
  return ['hosts:', ...v.hosts.map((h) => `  ${escapeControl(h.id).padEnd(28)}${h.live ? 'live' : 'GONE'}, last heartbeat ${when(h.heartbeatAt)}`)];
}

function statusText(r: ReturnType<typeof mailboxReport> & { lease?: { owner: string; expiresAt: string; expired: boolean } | null }): string[] {
  const poll = r.lastPoll ? `${when(r.lastPoll.at)} ${r.lastPoll.ok ? 'ok' : `FAILED: ${r.lastPoll.error ?? 'unknown error'}`}` : 'never';
  const old = (b: ReturnType<typeof brief>) => (b ? `#${b.id} ${b.state} since ${when(b.createdAt)}` : 'none');
  const rows: Array<[string, string]> = [
    ['last poll', poll],
    ['last handshake', when(r.lastHandshakeAt)],
    ['last tracking run', when(r.lastTrackingAt)],
    ['outbound', counts(r.counts.out)],
    ['inbound', counts(r.counts.in)],
    ['oldest waiting to send', old(r.oldestWaitingToSend)],
    ['oldest sent, not acked', old(r.oldestSentUnacknowledged)],
    ['oldest received, not acked', old(r.oldestDeliveredUnacknowledged)],
  ];
  if (r.lease !== undefined) rows.unshift(['worked by', r.lease === null ? 'no host yet' : r.lease.expired ? `nobody (lease of ${r.lease.owner} expired ${when(r.lease.expiresAt)})` : `${r.lease.owner} (lease until ${r.lease.expiresAt})`]);
  const lines = [r.mailbox, ...rows.map(([k, v]) => `  ${k.padEnd(28)}${v}`)];
  const review = (r.counts.out.needs_review ?? 0) + (r.counts.in.needs_review ?? 0);
  if (review > 0) lines.push(`  ATTENTION: ${review} message(s) need review: meshd ledger list --state needs_review (docs/ledger.md)`);
  if (r.ackOverdue > 0) lines.push(`  ATTENTION: ${r.ackOverdue} sent message(s) with a business acknowledgement overdue (ACK_OVERDUE): meshd ledger list --state sent`);
  const stale = r.counts.in.stale ?? 0;
  if (stale > 0) lines.push(`  ${stale} received message(s) set aside as stale (older than an event already received): meshd ledger list --state stale`);
  const failed = (r.counts.out.failed ?? 0) + (r.counts.out.undeliverable ?? 0) + (r.counts.in.quarantined ?? 0);
  if (failed > 0) lines.push(`  ${failed} failed/undeliverable/quarantined: meshd ledger list --state failed|undeliverable|quarantined`);
  return lines;
}

// ---------------------------------------------------------------------------------------
// Argument parsing

async function parseFilter(opts: { state?: string; direction?: string; workflow?: string; since?: string; limit?: string }, mailbox?: string) {
  const { isMessageState, parseSince, ALL_STATES } = await import('../ledger');
  if (opts.state !== undefined && !isMessageState(opts.state)) throw usage(`--state ${opts.state} is not a ledger state`, `use one of: ${ALL_STATES.join(', ')}`);
  if (opts.direction !== undefined && opts.direction !== 'in' && opts.direction !== 'out') throw usage('--direction must be in or out');
  let limit: number | undefined;
  if (opts.limit !== undefined) {
    if (!/^\d{1,7}$/.test(opts.limit) || Number(opts.limit) < 1) throw usage('--limit must be a positive whole number');
    limit = Number(opts.limit);
  }
  return {
    state: opts.state as MessageState | undefined,
    direction: opts.direction as Direction | undefined,
    mailbox,
    workflow: opts.workflow,
    since: opts.since !== undefined ? parseSince(opts.since, new Date()) : undefined,
    limit,
  };
}

function findRow(ledger: LedgerStore, ref: string): MessageRow {
  const row = ledger.findByRef(ref);
  if (!row) throw new MeshdError('LEDGER_NOT_FOUND', `no ledger row or MESH message ${ref}`, 'list rows with `meshd ledger list`');
  return row;
}

/** What a row's link to another row means, by its state and direction (docs/ledger.md). */
export function relationText(row: MessageRow): string | undefined {
  if (row.relatedRowId === null) return undefined;
  const n = `#${row.relatedRowId}`;
  if (row.state === 'duplicate') return `duplicate of ${n}, the first copy`;
  if (row.state === 'stale') return `superseded by ${n}, a newer event for the same appointment or patient`;
  if (row.state === 'needs_review' && row.direction === 'in') return `conflicts with ${n}`;
  if (row.state === 'confirmed' || row.state === 'rejected') return `business acknowledgement received as ${n}`;
  return row.direction === 'out' ? `business acknowledgement of ${n}` : `related to ${n}`;
}

function showText(row: MessageRow, events: EventRow[]): string[] {
  const lines = Object.entries(row).map(([k, v]) => `${k.padEnd(16)} ${v === null ? '-' : String(v)}`);
  const relation = relationText(row);
  if (relation) lines.push(`${'link'.padEnd(16)} ${relation}`);
  lines.push('', 'history:');
  for (const e of events) {
    const move = e.fromState || e.toState ? ` ${e.fromState ?? '·'} → ${e.toState ?? '·'}` : '';
    lines.push(`  ${e.at}  ${e.type}${move}${e.detail ? '  ' + JSON.stringify(e.detail) : ''}`);
  }
  return lines;
}

// ---------------------------------------------------------------------------------------
// Registration

export function register(program: Command): void {
  program
    .command('status')
    .description('per mailbox: last poll and handshake, counts by state, oldest waiting and unacknowledged messages')
    .action(async (_opts: unknown, cmd: Command) => {
      await withLedger(cmd, async ({ config, mailbox, ledger, print }) => {
        const chosen = config.mailboxes.find((m) => m.id === mailbox) ?? config.mailboxes[0];
        const certificate = await certificateReport(chosen?.tls?.cert ?? config.tls.cert);
        const several = config.ledger.postgres ? await hostsReport(config.ledger.postgres, config.node.leaseSeconds) : undefined;
        const reports = config.mailboxes
          .filter((m) => !mailbox || m.id === mailbox)
          .map((m) => ({ ...mailboxReport(ledger, m.id), ...(several ? { lease: several.leases[m.id] ?? null } : {}) }));
        const text = reports.flatMap((r, i) => (i ? ['', ...statusText(r)] : statusText(r)));
        if (certificate) text.push('', certificateText(certificate));
        if (several) text.push('', ...hostsText(several));
        print({ certificate, mailboxes: reports, ...(several ? { hosts: several.hosts } : {}) }, text);
      }, 'read');
    });

  const group = program.command('ledger').description('read and repair the message ledger (see docs/ledger.md)');

  group
    .command('list')
    .description('list messages, newest first')
    .option('--state <state>', 'only rows in this state (e.g. needs_review, failed, queued)')
    .option('--direction <in|out>', 'only inbound or outbound rows')
    .option('--workflow <id>', 'only this workflow id')
    .option('--since <when>', 'created since an age (7d, 12h) or a date (2026-11-01)')
    .option('--limit <n>', 'at most n rows (default 100)')
    .action(async (opts: Record<string, string | undefined>, cmd: Command) => {
      await withLedger(cmd, async ({ mailbox, ledger, print }) => {
        const rows = ledger.list(await parseFilter(opts, mailbox));
        const text = rows.length
          ? table(
              ['ID', 'DIR', 'MAILBOX', 'STATE', 'PEER', 'WORKFLOW', 'MESSAGE ID', 'FILE', 'UPDATED', 'ERROR'],
              rows.map((r) => [
                String(r.id),
                r.direction,
                r.mailbox,
                r.state,
                r.peer ?? '-',
                r.workflowId ?? '-',
                r.messageId ?? '-',
                cut(r.fileName, 32),
                r.updatedAt.replace('T', ' ').replace(/\.\d{3}Z$/, 'Z'),
                r.errorCode ? cut(`${r.errorCode}: ${r.errorText ?? ''}`, 60) : '-',
              ]),
            )
          : ['no messages match'];
        print({ messages: rows }, text);
      }, 'read');
    });

  group
    .command('show')
    .description('one message with its full history')
    .argument('<ref>', 'ledger row id or MESH message id')
    .action(async (ref: string, _opts: unknown, cmd: Command) => {
      await withLedger(cmd, ({ ledger, print }) => {
        const row = findRow(ledger, ref);
        const events = ledger.events(row.id);
        print({ message: row, events }, showText(row, events));
      }, 'read');
    });

  group
    .command('retry')
    .description('send a failed or undeliverable message again, or reprocess a quarantined one (payload must still exist)')
    .argument('<id>', 'ledger row id or MESH message id')
    .option('--note <text>', 'why, kept in the history')
    .action(async (ref: string, opts: { note?: string }, cmd: Command) => {
      const { retryMessage } = await import('../ledger');
      await withLedger(cmd, ({ ledger, print }) => {
        const row = retryMessage(ledger, findRow(ledger, ref).id, { note: opts.note });
        const next = row.direction === 'out' ? 'the daemon sends it on its next outbound run' : 'the daemon reprocesses it on its next poll';
        print({ message: row }, `message ${row.id} is ${row.state} again; ${next}`);
      });
    });

  group
    .command('resolve')
    .description('settle a needs_review message after checking with MESH or the recipient')
    .argument('<id>', 'ledger row id')
    .requiredOption('--as <outcome>', 'sent (MESH has it) or failed (it never arrived)')
    .requiredOption('--note <text>', 'what was checked, kept in the history')
    .option('--message-id <id>', 'the MESH message id, if known (with --as sent)')
    .action(async (ref: string, opts: { as: string; note: string; messageId?: string }, cmd: Command) => {
      if (opts.as !== 'sent' && opts.as !== 'failed') throw usage('--as must be sent or failed');
      const { resolveReview } = await import('../ledger');
      await withLedger(cmd, ({ ledger, print }) => {
        const row = resolveReview(ledger, findRow(ledger, ref).id, opts.as as 'sent' | 'failed', opts.note, opts.messageId);
        const after = row.state === 'failed' ? '; `meshd ledger retry` sends it again if wanted' : '';
        print({ message: row }, `message ${row.id} resolved as ${row.state}${after}`);
      });
    });

  group
    .command('purge')
    .description('delete old payload copies and settled rows (default: ledger.payloadRetentionDays / rowRetentionDays)')
    .option('--older-than <age>', 'purge what was last updated before this age, e.g. 30d')
    .option('--payloads-only', 'only delete payload copies; keep rows and history')
    .action(async (opts: { olderThan?: string; payloadsOnly?: boolean }, cmd: Command) => {
      const { parseAge } = await import('../ledger');
      const { deletePurgedFiles } = await import('../ledger/operator');
      await withLedger(cmd, ({ config, ledger, print }) => {
        const now = new Date();
        const day = 86_400_000;
        const payloadsOnly = opts.payloadsOnly === true;
        const result = { rows: 0, payloads: [] as string[] };
        if (opts.olderThan !== undefined) {
          const r = ledger.purge({ olderThan: new Date(now.getTime() - parseAge(opts.olderThan, '--older-than')), payloadsOnly, now });
          Object.assign(result, r);
        } else {
          const p = ledger.purge({ olderThan: new Date(now.getTime() - config.ledger.payloadRetentionDays * day), payloadsOnly: true, now });
          result.payloads.push(...p.payloads);
          if (!payloadsOnly) {
            const r = ledger.purge({ olderThan: new Date(now.getTime() - config.ledger.rowRetentionDays * day), payloadsOnly: false, now });
            result.rows = r.rows;
            result.payloads.push(...r.payloads);
          }
        }
        const files = deletePurgedFiles(result.payloads);
        const extra = [files.companionsDeleted ? `, ${files.companionsDeleted} .ctl/.reason file(s)` : '', files.payloadsMissing ? `, ${files.payloadsMissing} already gone` : ''].join('');
        const text = [`purged ${result.rows} row(s); deleted ${files.payloadsDeleted} payload file(s)${extra}`];
        for (const f of files.failures) text.push(`  could not delete ${f.file}: ${f.error}`);
        print({ rows: result.rows, ...files }, text);
        if (files.failures.length) process.exitCode = 1;
      });
    });

  group
    .command('export')
    .description('write rows to stdout as CSV or JSON (oldest first)')
    .requiredOption('--format <csv|json>', 'csv or json')
    .option('--since <when>', 'created since an age (7d) or a date (2026-11-01)')
    .action(async (opts: { format: string; since?: string }, cmd: Command) => {
      if (opts.format !== 'csv' && opts.format !== 'json') throw usage('--format must be csv or json');
      const { exportRows } = await import('../ledger/export');
      await withLedger(cmd, async ({ mailbox, ledger }) => {
        const filter = await parseFilter({ since: opts.since }, mailbox);
        await exportRows(ledger.iterate({ since: filter.since, mailbox }), opts.format as 'csv' | 'json', process.stdout);
      }, 'read');
    });

  group
    .command('backup')
    .description('online copy of the ledger to a file (mode 0600), safe while the daemon runs')
    .argument('<file>', 'where to write the copy (replaced atomically if it exists)')
    .action(async (file: string, _opts: unknown, cmd: Command) => {
      const fs = await import('node:fs');
      const path = await import('node:path');
      await withLedger(cmd, async ({ ledger, print }) => {
        const target = path.resolve(file);
        await ledger.backup(target);
        const bytes = fs.statSync(target).size;
        print({ backup: target, bytes }, `ledger copied to ${target} (${bytes} bytes)`);
      });
    });

  registerRestore(group);
  registerMigrate(group);
}
