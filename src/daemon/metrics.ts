import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The daemon's Prometheus instruments, all on one Registry (served at /metrics).
 * Names are documented in docs/operations.md; a rename is a breaking change for dashboards.
 */
export interface Metrics {
  registry: Registry;
  /** Messages in the ledger by mailbox, direction (in|out) and state; refreshed from ledger counts. */
  messages: Gauge<'mailbox' | 'direction' | 'state'>;
  /** Payload bytes moved (direction: sent|received). */
  bytes: Counter<'mailbox' | 'direction'>;
  /** Chunks uploaded or downloaded (direction: sent|received). */
  chunks: Counter<'mailbox' | 'direction'>;
  /** MESH API calls by endpoint (handshake, inbox, download, ack, send, tracking) and outcome: "ok" or a meshd error code. */
  meshRequests: Counter<'endpoint' | 'status'>;
  /** Requests repeated by the retry policy, by endpoint. */
  retries: Counter<'endpoint'>;
  refusals: Counter<'code'>;
  /** Wall time of one poll cycle (list, download, deliver, acknowledge). */
  pollDuration: Histogram<'mailbox'>;
  /** Unix time (seconds) of the last poll that succeeded, per mailbox. */
  lastSuccessfulPoll: Gauge<'mailbox'>;
  /** Seconds until the mailbox's client certificate expires (negative once expired). */
  certificateExpiry: Gauge<'mailbox'>;
  /** Outbound messages waiting to be sent (queued or part-sent). */
  queueDepth: Gauge<'mailbox'>;
  /** Age in seconds of the oldest message in the MESH inbox not yet acknowledged (MESH expires it at 5 days). */
  oldestUnacknowledgedAge: Gauge<'mailbox'>;
  /** REPORT messages received (non-delivery etc.) by MESH error code. */
  reports: Counter<'mailbox' | 'code'>;
  /** Payloads that failed a transform or validation, by direction. */
  transformFailures: Counter<'mailbox' | 'direction'>;
  /** 1 while a mailbox's downloads are paused because free space is below transfer.minFreeBytes. */
  diskLow: Gauge<'mailbox'>;
  /** Several hosts: mailbox leases this host gained, took over, lost or handed back (change). */
  leaseChanges: Counter<'mailbox' | 'change'>;
  /** Several hosts: mailboxes this host works now. */
  leasesHeld: Gauge;
}

export interface MessageCount {
  mailbox: string;
  direction: string;
  state: string;
  count: number;
}

export interface MetricsOptions {
  /** Also export Node process metrics (CPU, memory, event loop lag). Default true. */
  processMetrics?: boolean;
  version?: string;
}

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const info = new Gauge({ name: 'meshd_build_info', help: 'meshd version (value is always 1)', labelNames: ['version'], registers });
  info.set({ version: options.version ?? 'unknown' }, 1);
  return {
    registry,
    messages: new Gauge({ name: 'meshd_messages', help: 'Messages in the ledger by mailbox, direction and state', labelNames: ['mailbox', 'direction', 'state'], registers }),
    bytes: new Counter({ name: 'meshd_payload_bytes_total', help: 'Payload bytes sent or received', labelNames: ['mailbox', 'direction'], registers }),
    chunks: new Counter({ name: 'meshd_chunks_total', help: 'Chunks uploaded or downloaded', labelNames: ['mailbox', 'direction'], registers }),
    meshRequests: new Counter({ name: 'meshd_mesh_requests_total', help: 'MESH API calls by endpoint and outcome (ok or a meshd error code)', labelNames: ['endpoint', 'status'], registers }),
    retries: new Counter({ name: 'meshd_mesh_retries_total', help: 'MESH API requests retried by the retry policy', labelNames: ['endpoint'], registers }),
    refusals: new Counter({ name: 'meshd_refused_total', help: 'Files or messages refused or set aside, by ledger code', labelNames: ['code'], registers }),
    pollDuration: new Histogram({
      name: 'meshd_poll_duration_seconds',
      help: 'Duration of one inbox poll cycle',
      labelNames: ['mailbox'],
      buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600],
      registers,
    }),
    lastSuccessfulPoll: new Gauge({ name: 'meshd_last_successful_poll_timestamp_seconds', help: 'Unix time of the last successful poll', labelNames: ['mailbox'], registers }),
    certificateExpiry: new Gauge({ name: 'meshd_certificate_expiry_seconds', help: 'Seconds until the client certificate expires (negative when expired)', labelNames: ['mailbox'], registers }),
    queueDepth: new Gauge({ name: 'meshd_outbound_queue_depth', help: 'Outbound messages waiting to be sent', labelNames: ['mailbox'], registers }),
    oldestUnacknowledgedAge: new Gauge({
      name: 'meshd_inbox_oldest_unacknowledged_age_seconds',
      help: 'Age of the oldest unacknowledged inbox message (MESH expires it after 5 days)',
      labelNames: ['mailbox'],
      registers,
    }),
    reports: new Counter({ name: 'meshd_reports_received_total', help: 'REPORT messages received, by MESH error code', labelNames: ['mailbox', 'code'], registers }),
    transformFailures: new Counter({ name: 'meshd_transform_failures_total', help: 'Payloads that failed transform or validation', labelNames: ['mailbox', 'direction'], registers }),
    diskLow: new Gauge({ name: 'meshd_disk_space_low', help: 'Downloads paused: free space below transfer.minFreeBytes (1) or not (0)', labelNames: ['mailbox'], registers }),
    leaseChanges: new Counter({ name: 'meshd_lease_changes_total', help: 'Mailbox leases gained, taken over, lost or released by this host', labelNames: ['mailbox', 'change'], registers }),
    leasesHeld: new Gauge({ name: 'meshd_leases_held', help: 'Mailboxes this host holds the lease on and works', registers }),
  };
}

/** Replaces the message gauge with fresh ledger counts, so states that emptied drop to absent. */
export function setMessageCounts(metrics: Metrics, counts: readonly MessageCount[]): void {
  metrics.messages.reset();
  for (const c of counts) metrics.messages.set({ mailbox: c.mailbox, direction: c.direction, state: c.state }, c.count);
}

/** Seconds-based helpers so callers never mix milliseconds into Prometheus values. */
export function recordSuccessfulPoll(metrics: Metrics, mailbox: string, at: Date, durationMs: number): void {
  metrics.lastSuccessfulPoll.set({ mailbox }, Math.floor(at.getTime() / 1000));
  metrics.pollDuration.observe({ mailbox }, durationMs / 1000);
}

export function recordCertificateExpiry(metrics: Metrics, mailbox: string, notAfter: Date, now: Date): void {
  metrics.certificateExpiry.set({ mailbox }, Math.floor((notAfter.getTime() - now.getTime()) / 1000));
}
