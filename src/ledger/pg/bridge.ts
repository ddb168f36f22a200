import path from 'node:path';
import { MessageChannel, type MessagePort, Worker, receiveMessageOnPort } from 'node:worker_threads';
import { MeshdError } from '../../errors';

/**
 * Synchronous PostgreSQL for a synchronous LedgerStore: node-postgres runs in a worker thread
 * (bridge-worker.ts) and the calling thread blocks on Atomics.wait until the reply is posted.
 * See docs/architecture.md (Decisions) for why this and not an async ledger or a native addon.
 */

export type PgRow = Record<string, unknown>;

export interface PgResult {
  rows: PgRow[];
  rowCount: number;
}

/** A statement PostgreSQL refused: `code` is the SQLSTATE (23505 unique violation, …). */
export class PgQueryError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
    readonly constraint: string | undefined,
  ) {
    super(message);
    this.name = 'PgQueryError';
  }
}

export interface SyncPgOptions {
  /** PostgreSQL cancels a statement that runs longer (default 30 s). */
  statementTimeoutMs?: number;
}

export class SyncPg {
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly state = new Int32Array(new SharedArrayBuffer(4));
  private readonly waitMs: number;
  private broken: MeshdError | undefined;
  private closed = false;

  constructor(url: string, opts: SyncPgOptions = {}) {
    const statementTimeoutMs = opts.statementTimeoutMs ?? 30_000;
    // Connecting (10 s) plus the statement, with room: past this the worker is taken for hung.
    this.waitMs = statementTimeoutMs + 20_000;
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = new Worker(path.join(__dirname, 'bridge-worker.js'), {
      workerData: { url, port: port2, state: this.state, statementTimeoutMs },
      transferList: [port2],
    });
    // The worker never keeps the process alive; close() ends it.
    this.worker.unref();
    this.port.unref();
  }

  query(sql: string, params: unknown[] = []): PgResult {
    return this.call({ sql, params });
  }

  /** The rows of a query. */
  rows(sql: string, params: unknown[] = []): PgRow[] {
    return this.call({ sql, params }).rows;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      if (!this.broken) this.call({ close: true }, true);
    } finally {
      void this.worker.terminate();
    }
  }

  private call(req: object, closing = false): PgResult {
    if (this.broken) throw this.broken;
    if (this.closed && !closing) throw new MeshdError('LEDGER_CLOSED', 'the PostgreSQL ledger is closed');
    Atomics.store(this.state, 0, 0);
    this.port.postMessage(req);
    const deadline = Date.now() + this.waitMs;
    let reply: { rows: PgRow[]; rowCount: number; error?: { message: string; code?: string; constraint?: string } } | undefined;
    // A wake-up without a reply is the previous call's notify arriving late (the worker stores,
    // then notifies; this thread may have read that reply and moved on in between): wait again.
    while (!reply && Date.now() < deadline) {
      Atomics.wait(this.state, 0, 0, Math.max(1, deadline - Date.now()));
      reply = receiveMessageOnPort(this.port)?.message as typeof reply;
    }
    if (!reply) {
      this.broken = new MeshdError(
        'LEDGER_UNAVAILABLE',
        `PostgreSQL did not answer within ${Math.round(this.waitMs / 1000)} s`,
        'check that the database server is up and reachable; meshd must be restarted to reconnect',
        'failure',
      );
      void this.worker.terminate();
      throw this.broken;
    }
    if (reply.error) {
      const { message, code, constraint } = reply.error;
      if (isConnectionFailure(code)) {
        throw new MeshdError('LEDGER_UNAVAILABLE', `cannot reach the PostgreSQL ledger: ${message}`, 'check that the database server is up and that ledger.postgres names it; the next call reconnects', 'failure');
      }
      throw new PgQueryError(message, code, constraint);
    }
    return { rows: reply.rows, rowCount: reply.rowCount };
  }
}

/** Network errors (ECONNREFUSED, …) and SQLSTATE classes 08 (connection) and 57P (server shutting down). */
export function isConnectionFailure(code: string | undefined): boolean {
  return code === undefined || !/^[0-9A-Z]{5}$/.test(code) || code.startsWith('08') || code.startsWith('57P');
}
