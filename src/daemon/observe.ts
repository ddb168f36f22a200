import { readFileSync } from 'node:fs';
import { certificateStatus, type CertificateStatus } from '../certs/status';
import { minIntervalMinutes } from '../config/cron';
import { MeshdError } from '../errors';
import { MESH_ENDPOINTS, type MeshEndpoint } from '../mesh/protocol';
import type { MailboxStatus } from '../ledger';
import type { Logger } from '../log';
import type { MeshPort } from '../transfer/context';
import { version } from '../version';
import type { Daemon } from './daemon';
import { evaluateReadiness, startHealthServer, type HealthServer, type Readiness } from './health';
import { createMetrics, recordCertificateExpiry, recordSuccessfulPoll, setMessageCounts, type Metrics } from './metrics';

/**
 * What a sysadmin sees of a running daemon: Prometheus metrics, /readyz, certificate expiry
 * warnings, and a warning when an unacknowledged inbox message nears MESH's 5-day expiry.
 */
const DAY_MS = 86_400_000;
/** MESH drops unacknowledged messages after 5 days and reports them undelivered: warn from 3. */
const INBOX_AGE_WARN_MS = 3 * DAY_MS;

/** Wraps a MESH port so every call is counted by endpoint and outcome, with bytes and chunks. */
export function meteredPort(port: MeshPort, metrics: Metrics, mailbox: string): MeshPort {
  const count = async <T>(endpoint: MeshEndpoint, call: () => Promise<T>): Promise<T> => {
    try {
      const result = await call();
      metrics.meshRequests.inc({ endpoint, status: 'ok' });
      return result;
    } catch (err) {
      metrics.meshRequests.inc({ endpoint, status: err instanceof MeshdError ? err.code : 'error' });
      throw err;
    }
  };
  return {
    handshake: () => count('handshake', () => port.handshake()),
    listInbox: () => count('inbox', () => port.listInbox()),
    download: (id, sink) =>
      count('download', async () => {
        const r = await port.download(id, sink);
        metrics.bytes.inc({ mailbox, direction: 'received' }, r.bytes);
        metrics.chunks.inc({ mailbox, direction: 'received' }, Math.max(1, r.chunks));
        if (r.meta.messageType === 'REPORT') metrics.reports.inc({ mailbox, code: r.meta.statusCode ?? 'unknown' });
        return r;
      }),
    acknowledge: (id) => count('ack', () => port.acknowledge(id)),
    send: (payload, headers, progress, resume) =>
      count('send', async () => {
        const r = await port.send(payload, headers, progress, resume);
        metrics.bytes.inc({ mailbox, direction: 'sent' }, r.bytes);
        metrics.chunks.inc({ mailbox, direction: 'sent' }, r.chunks - (resume?.chunksDone ?? 0));
        return r;
      }),
    track: (id) => count('tracking', () => port.track(id)),
  };
}

/**
 * Refusals that a sysadmin should see as a rate, by the ledger code the log event carries
 * (a file or message refused or set aside; nothing keys on message text).
 */
export const REFUSAL_CODES: ReadonlySet<string> = new Set([
  'NOT_REGULAR_FILE',
  'SPOOL_ORPHAN',
  'SPOOL_MISMATCH',
  'SPOOL_MISSING',
  'FILE_CHANGED',
  'POISON',
  'TOO_LARGE_TO_CONVERT',
  // What a message means (docs/ledger.md, "Business semantics"): set aside, or its ACK is late.
  'STALE_EVENT',
  'DUPLICATE_ID_CONFLICT',
  'EVENT_TIME_CONFLICT',
  'ACK_OVERDUE',
]);

/** The endpoint field of a MESH_RETRY event, in the one vocabulary (protocol.ts MESH_ENDPOINTS). */
function endpointOf(fields: Record<string, unknown> | undefined): MeshEndpoint | 'unknown' {
  const e = fields?.endpoint;
  return (MESH_ENDPOINTS as readonly unknown[]).includes(e) ? (e as MeshEndpoint) : 'unknown';
}

/**
 * Counts structured log events as metrics, from their code and fields, never their text: the
 * MESH client's MESH_RETRY events by their `endpoint`, and every warning or error whose `code`
 * field is a refusal. Keeps the client and the pipelines free of metrics.
 */
export function countingLogger(log: Logger, metrics: Metrics): Logger {
  const refusal = (fields: Record<string, unknown> | undefined) => {
    const code = fields?.code;
    if (typeof code === 'string' && REFUSAL_CODES.has(code)) metrics.refusals.inc({ code });
  };
  const wrap = (inner: Logger): Logger => ({
    ...inner,
    warn(event, message, fields) {
      if (event === 'MESH_RETRY') metrics.retries.inc({ endpoint: endpointOf(fields) });
      refusal(fields);
      inner.warn(event, message, fields);
    },
    error(event, message, fields) {
      refusal(fields);
      inner.error(event, message, fields);
    },
    child: (fields) => wrap(inner.child(fields)),
  });
  return wrap(log);
}

/** The last poll's reason when it stopped for lack of disk space (IN_DISK_LOW), else undefined. */
export function diskLowReason(status: MailboxStatus | undefined): string | undefined {
  return status && !status.lastPollOk && status.lastPollError?.startsWith('IN_DISK_LOW:') ? status.lastPollError : undefined;
}

export interface Observer {
  /** Refresh gauges from the ledger and re-check certificates; called after stages and on a timer. */
  refresh(): void;
  pollSucceeded(mailbox: string, at: Date): void;
  checkCertificates(): void;
  close(): Promise<void>;
}

export async function startObserver(daemon: Daemon, metrics: Metrics, log: Logger, now: () => Date = () => new Date()): Promise<Observer> {
  const { config, ledger } = daemon;
  const pollIntervalMs = (minIntervalMinutes(config.schedule.poll) ?? 5) * 60_000;
  const certificates = new Map<string, CertificateStatus>();
  // Last successful poll per mailbox: from the ledger at start, then as polls succeed.
  const lastSuccess = new Map<string, Date>();
  for (const m of config.mailboxes) {
    const st = ledger.mailboxStatus(m.id);
    if (st?.lastPollOk && st.lastPollAt) {
      lastSuccess.set(m.id, new Date(st.lastPollAt));
      metrics.lastSuccessfulPoll.set({ mailbox: m.id }, Math.floor(Date.parse(st.lastPollAt) / 1000));
    }
  }
  const warnedAging = new Set<number>();

  const checkCertificates = () => {
    for (const m of config.mailboxes) {
      const path = m.tls?.cert ?? config.tls.cert;
      if (!path) continue;
      try {
        const status = certificateStatus(readFileSync(path), now());
        certificates.set(m.id, status);
        recordCertificateExpiry(metrics, m.id, status.notAfter, now());
        if (status.expired) log.error('CERT_EXPIRED', 'the client certificate has expired: MESH will refuse every request', { mailbox: m.id, notAfter: status.notAfter.toISOString() });
        else if (status.expiresSoon) log.warn('CERT_EXPIRES_SOON', `the client certificate expires in ${status.daysLeft} days`, { mailbox: m.id, notAfter: status.notAfter.toISOString() });
      } catch (err) {
        log.error('CERT_UNREADABLE', `cannot read the client certificate: ${(err as Error).message}`, { mailbox: m.id });
        certificates.set(m.id, { subject: '', notAfter: new Date(0), daysLeft: 0, expired: true, expiresSoon: true } as CertificateStatus);
      }
    }
  };

  const refresh = () => {
    const t = now();
    const counts = [];
    for (const m of config.mailboxes) {
      for (const direction of ['in', 'out'] as const) {
        for (const [state, count] of Object.entries(ledger.countsByState(m.id, direction))) counts.push({ mailbox: m.id, direction, state, count: count ?? 0 });
      }
      metrics.diskLow.set({ mailbox: m.id }, diskLowReason(ledger.mailboxStatus(m.id)) ? 1 : 0);
      const c = ledger.countsByState(m.id, 'out');
      metrics.queueDepth.set({ mailbox: m.id }, (c.queued ?? 0) + (c.uploading ?? 0) + (c.claiming ?? 0));
      const oldest = ledger.oldest(m.id, 'in', ['receiving', 'delivered']);
      const age = oldest ? t.getTime() - Date.parse(oldest.createdAt) : 0;
      metrics.oldestUnacknowledgedAge.set({ mailbox: m.id }, Math.floor(age / 1000));
      if (oldest && age >= INBOX_AGE_WARN_MS && !warnedAging.has(oldest.id)) {
        warnedAging.add(oldest.id);
        log.warn('INBOX_MESSAGE_AGING', 'a received message is still unacknowledged after 3 days; MESH expires it at 5 days and reports it undelivered', {
          mailbox: m.id,
          messageId: oldest.messageId,
          state: oldest.state,
        });
      }
    }
    setMessageCounts(metrics, counts);
  };

  const readiness = (): Readiness =>
    evaluateReadiness({
      now: now(),
      ledgerOpen: !daemon.stopping,
      pollIntervalMs,
      // With several hosts, only the mailboxes this one works now.
      mailboxes: config.mailboxes
        .filter((m) => daemon.works(m.id))
        .map((m) => ({
          id: m.id,
          lastSuccessfulPoll: lastSuccess.get(m.id),
          certificate: certificates.get(m.id),
          diskLow: diskLowReason(ledger.mailboxStatus(m.id)),
          stale: ledger.countsByState(m.id, 'in').stale ?? 0,
          ackOverdue: ledger.countOverdueAcks(m.id, now()),
        })),
    });

  checkCertificates();
  refresh();
  const timers = [setInterval(refresh, 15_000), setInterval(checkCertificates, DAY_MS)];
  for (const t of timers) t.unref();
  let server: HealthServer | undefined;
  if (config.health.port > 0) {
    server = await startHealthServer({ host: config.health.host, port: config.health.port, registry: metrics.registry, readiness });
    log.info('HEALTH_LISTENING', `health and metrics on http://${server.host}:${server.port}/`, { port: server.port });
  }
  return {
    refresh,
    pollSucceeded: (mailbox, at) => void lastSuccess.set(mailbox, at),
    checkCertificates,
    async close() {
      for (const t of timers) clearInterval(t);
      await server?.close();
    },
  };
}

export { createMetrics, recordSuccessfulPoll, version };
