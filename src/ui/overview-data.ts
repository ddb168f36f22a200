import { readFileSync } from 'node:fs';
import { certificateStatus, type CertificateStatus } from '../certs';
import { minIntervalMinutes } from '../config/cron';
import type { MeshdConfig } from '../config/types';
import { evaluateReadiness, type ReadinessCheck } from '../daemon/health';
import type { LedgerStore, MailboxStatus, MessageRow, MessageState, ThroughputRow, ThroughputUnit } from '../ledger';

/** What the overview page shows, gathered from the ledger, the certificates and the daemon's readiness rule. */

export interface MailboxOverview {
  id: string;
  status: MailboxStatus | undefined;
  counts: { out: Partial<Record<MessageState, number>>; in: Partial<Record<MessageState, number>> };
  oldestSentUnacknowledged: MessageRow | undefined;
  oldestDeliveredUnacknowledged: MessageRow | undefined;
  certificate: CertificateStatus | { error: string } | undefined;
  ready: boolean;
  checks: Record<string, ReadinessCheck>;
}

export interface ThroughputSeries {
  unit: ThroughputUnit;
  /** Every period in the window, oldest first, zero-filled. */
  rows: ThroughputRow[];
}

export interface Overview {
  mailboxes: MailboxOverview[];
  hourly: ThroughputSeries;
  daily: ThroughputSeries;
}

function readCertificate(path: string | undefined, now: Date): CertificateStatus | { error: string } | undefined {
  if (!path) return undefined;
  try {
    return certificateStatus(readFileSync(path), now);
  } catch (err) {
    return { error: (err as Error).message };
  }
}

/** The readiness verdict for one mailbox, by the daemon's own rule, from what the ledger recorded. */
function readiness(config: MeshdConfig, id: string, status: MailboxStatus | undefined, cert: MailboxOverview['certificate'], now: Date) {
  const pollIntervalMs = (minIntervalMinutes(config.schedule.poll) ?? 5) * 60_000;
  const lastSuccessfulPoll = status?.lastPollOk && status.lastPollAt ? new Date(status.lastPollAt) : undefined;
  // An unreadable certificate counts as expired, as the daemon counts it.
  const certificate = cert && 'error' in cert ? { expired: true, notAfter: new Date(0), daysLeft: 0 } : cert;
  const verdict = evaluateReadiness({ now, ledgerOpen: true, pollIntervalMs, mailboxes: [{ id, lastSuccessfulPoll, certificate }] });
  return { ready: verdict.ok, checks: verdict.checks as Record<string, ReadinessCheck> };
}

function series(ledger: LedgerStore, unit: ThroughputUnit, count: number, now: Date): ThroughputSeries {
  const stepMs = unit === 'hour' ? 3_600_000 : 86_400_000;
  const width = unit === 'hour' ? 13 : 10;
  const start = new Date(Math.floor(now.getTime() / stepMs) * stepMs - (count - 1) * stepMs);
  const found = new Map(ledger.throughput(start, unit).map((r) => [r.period, r]));
  const rows: ThroughputRow[] = [];
  for (let i = 0; i < count; i++) {
    const period = new Date(start.getTime() + i * stepMs).toISOString().slice(0, width);
    const r = found.get(period);
    rows.push({ period, sent: r?.sent ?? 0, received: r?.received ?? 0, failed: r?.failed ?? 0 });
  }
  return { unit, rows };
}

export function gatherOverview(config: MeshdConfig, ledger: LedgerStore, now = new Date()): Overview {
  const mailboxes = config.mailboxes.map((m): MailboxOverview => {
    const status = ledger.mailboxStatus(m.id);
    const certificate = readCertificate(m.tls?.cert ?? config.tls.cert, now);
    return {
      id: m.id,
      status,
      counts: { out: ledger.countsByState(m.id, 'out'), in: ledger.countsByState(m.id, 'in') },
      oldestSentUnacknowledged: ledger.oldest(m.id, 'out', ['sent']),
      oldestDeliveredUnacknowledged: ledger.oldest(m.id, 'in', ['delivered']),
      certificate,
      ...readiness(config, m.id, status, certificate, now),
    };
  });
  return { mailboxes, hourly: series(ledger, 'hour', 24, now), daily: series(ledger, 'day', 30, now) };
}
