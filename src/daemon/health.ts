import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { redactString } from '../log';

/**
 * Loopback HTTP for probes and Prometheus: /healthz (the process answers), /readyz (the
 * daemon's own readiness verdict), /metrics. Read-only; no request changes anything.
 */

export interface ReadinessCheck {
  ok: boolean;
  detail?: string;
  /** Something a person should look at that does not stop the service (stale messages, late ACKs). */
  warning?: boolean;
}

export interface Readiness {
  ok: boolean;
  /** Named checks, e.g. ledger, poll:X26ABC1, certificate:X26ABC1. */
  checks: Record<string, ReadinessCheck | boolean | string>;
}

export interface HealthServerOptions {
  host?: string;
  /** 0 picks a free port (tests); the daemon does not start the server when config says 0. */
  port: number;
  registry: Registry;
  readiness: () => Readiness | Promise<Readiness>;
}

export interface HealthServer {
  port: number;
  host: string;
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, contentType: string, body: string, head: boolean): void {
  res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  res.end(head ? undefined : body);
}

const JSON_TYPE = 'application/json; charset=utf-8';

async function handle(req: IncomingMessage, res: ServerResponse, opts: HealthServerOptions): Promise<void> {
  const head = req.method === 'HEAD';
  if (req.method !== 'GET' && !head) {
    res.setHeader('allow', 'GET, HEAD');
    send(res, 405, JSON_TYPE, JSON.stringify({ error: 'method not allowed' }), false);
    return;
  }
  const path = (req.url ?? '/').split('?')[0];
  switch (path) {
    case '/healthz':
      send(res, 200, JSON_TYPE, JSON.stringify({ status: 'ok' }), head);
      return;
    case '/readyz': {
      let verdict: Readiness;
      try {
        verdict = await opts.readiness();
      } catch (err) {
        // A failing check function means we cannot vouch for readiness.
        verdict = { ok: false, checks: { readiness: { ok: false, detail: redactString(err instanceof Error ? err.message : String(err)) } } };
      }
      send(res, verdict.ok ? 200 : 503, JSON_TYPE, JSON.stringify({ status: verdict.ok ? 'ready' : 'not ready', ...verdict }), head);
      return;
    }
    case '/metrics': {
      const body = await opts.registry.metrics();
      send(res, 200, opts.registry.contentType, body, head);
      return;
    }
    default:
      send(res, 404, JSON_TYPE, JSON.stringify({ error: 'not found', endpoints: ['/healthz', '/readyz', '/metrics'] }), head);
  }
}

export function startHealthServer(opts: HealthServerOptions): Promise<HealthServer> {
  const host = opts.host ?? '127.0.0.1';
  const server = createServer((req, res) => {
    handle(req, res, opts).catch(() => {
      if (!res.headersSent) send(res, 500, JSON_TYPE, JSON.stringify({ error: 'internal error' }), false);
      else res.destroy();
    });
  });
  // Probes are tiny; don't let a slow client hold a socket open.
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => {
      server.off('error', reject);
      const port = (server.address() as AddressInfo).port;
      resolve({
        port,
        host,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}

export interface MailboxReadinessInput {
  id: string;
  /** Undefined until the first poll of this mailbox succeeds. */
  lastSuccessfulPoll?: Date;
  /** From certificateStatus(); undefined for a plain-http local simulator. */
  certificate?: { expired: boolean; notAfter: Date; daysLeft: number };
  /** Why downloads are paused for lack of disk space (the last poll's IN_DISK_LOW), if they are. */
  diskLow?: string;
  /** Inbound messages set aside as stale (older than an event already received). */
  stale?: number;
  /** Sent messages whose business ACK is overdue. */
  ackOverdue?: number;
}

export interface ReadinessInput {
  now: Date;
  ledgerOpen: boolean;
  /** Interval of schedule.poll in milliseconds. */
  pollIntervalMs: number;
  mailboxes: MailboxReadinessInput[];
}

/**
 * The readiness rule in one place: the ledger is open, every mailbox's last successful
 * poll is within two poll intervals, no client certificate has expired, and no mailbox has
 * paused downloads because free space fell below transfer.minFreeBytes. The daemon
 * gathers the facts; this decides.
 */
export function evaluateReadiness(input: ReadinessInput): Readiness {
  const checks: Record<string, ReadinessCheck> = {
    ledger: input.ledgerOpen ? { ok: true } : { ok: false, detail: 'ledger is not open' },
  };
  const limitMs = 2 * input.pollIntervalMs;
  for (const m of input.mailboxes) {
    if (!m.lastSuccessfulPoll) {
      checks[`poll:${m.id}`] = { ok: false, detail: 'no successful poll yet' };
    } else {
      const ageS = Math.round((input.now.getTime() - m.lastSuccessfulPoll.getTime()) / 1000);
      const ok = ageS * 1000 <= limitMs;
      checks[`poll:${m.id}`] = { ok, detail: `last successful poll ${ageS}s ago${ok ? '' : ` (limit ${Math.round(limitMs / 1000)}s)`}` };
    }
    if (m.diskLow) checks[`disk:${m.id}`] = { ok: false, detail: m.diskLow };
    // Warnings, not failures: the service runs; a person should look (docs/operations.md).
    if (m.stale) checks[`stale:${m.id}`] = { ok: true, warning: true, detail: `${m.stale} received message(s) set aside as stale: meshd ledger list --state stale` };
    if (m.ackOverdue) checks[`ack:${m.id}`] = { ok: true, warning: true, detail: `${m.ackOverdue} sent message(s) with a business acknowledgement overdue: meshd ledger list --state sent` };
    if (m.certificate) {
      const until = m.certificate.notAfter.toISOString().slice(0, 10);
      checks[`certificate:${m.id}`] = m.certificate.expired
        ? { ok: false, detail: `client certificate expired on ${until}` }
        : { ok: true, detail: `expires ${until} (${m.certificate.daysLeft} days)` };
    }
  }
  return { ok: Object.values(checks).every((c) => c.ok), checks };
}
