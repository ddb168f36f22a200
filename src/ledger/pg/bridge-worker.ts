import { type MessagePort, workerData } from 'node:worker_threads';
import pg from 'pg';
import { isConnectionFailure } from './bridge';

/**
 * The async half of SyncPg (bridge.ts): runs node-postgres on its own event loop while the main
 * thread waits. One connection: the main thread blocks on every call, so it never has two
 * statements in flight, and BEGIN … COMMIT must stay on the connection that began it.
 */

interface Request {
  sql?: string;
  params?: unknown[];
  close?: boolean;
}

const { url, port, state, statementTimeoutMs } = workerData as {
  url: string;
  port: MessagePort;
  state: Int32Array;
  statementTimeoutMs: number;
};

// Row ids and counts are int8: numbers, as SQLite gives them (exact up to 2^53).
pg.types.setTypeParser(20, (v) => Number(v));

let client: pg.Client | undefined;
/**
 * The connection was lost inside a transaction: the server has rolled it back, so the rest of
 * it must fail too, not run on a new connection outside any transaction, until its COMMIT or
 * ROLLBACK (which fails as well) ends it.
 */
let lostTransaction = false;
/** Longest a transaction may sit between statements before the server ends it. */
const IDLE_IN_TRANSACTION_MS = 10_000;
/** A server that refuses connections (restarting) is waited for this long before a call fails. */
const RECONNECT_WAIT_MS = 8_000;

function lose(c: pg.Client | undefined): void {
  if (!c || client !== c) return;
  if (c.getTransactionStatus() !== 'I') lostTransaction = true;
  client = undefined;
}

function endsTransaction(sql: string | undefined): boolean {
  return /^\s*(COMMIT|ROLLBACK)\s*$/i.test(sql ?? '');
}

async function connection(): Promise<pg.Client> {
  if (client) return client;
  const deadline = Date.now() + RECONNECT_WAIT_MS;
  for (;;) {
    try {
      return await connect();
    } catch (err) {
      if (!isConnectionFailure((err as { code?: string }).code) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

async function connect(): Promise<pg.Client> {
  const c = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: 10_000,
    statement_timeout: statementTimeoutMs,
    // A transaction here never waits on anything but the database, so one left idle means the
    // process is paused (GC, SIGSTOP, a split): the server ends it and frees its row locks, so
    // another host's lease takeover is not held up by a host that lost its lease.
    idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_MS,
    application_name: 'meshd',
  });
  // A broken connection is dropped here and reopened by the next call; the call in flight fails.
  const drop = (): void => lose(c);
  c.on('error', drop);
  c.on('end', drop);
  await c.connect();
  await c.query("SET TIME ZONE 'UTC'");
  client = c;
  return c;
}

/** Times leave as the ISO strings the SQLite ledger stores; everything else as pg parsed it. */
function plain(rows: Array<Record<string, unknown>>): Array<Record<string, unknown>> {
  for (const row of rows) {
    for (const [k, v] of Object.entries(row)) if (v instanceof Date) row[k] = v.toISOString();
  }
  return rows;
}

function reply(message: unknown): void {
  port.postMessage(message);
  Atomics.store(state, 0, 1);
  Atomics.notify(state, 0);
}

// A bug here must not leave the caller waiting out its timeout: the error goes back as the reply.
process.on('uncaughtException', (err) => reply({ error: { message: `ledger worker failed: ${err.message}` } }));

port.on('message', (req: Request) => {
  void (async () => {
    try {
      if (req.close) {
        const c = client;
        client = undefined;
        await c?.end();
        reply({ rows: [] });
        return;
      }
      if (lostTransaction) {
        if (endsTransaction(req.sql)) lostTransaction = false;
        throw Object.assign(new Error('the connection to PostgreSQL was lost during this transaction, which the server rolled back'), { code: '08006' });
      }
      const c = await connection();
      const result = await c.query({ text: req.sql!, values: req.params ?? [] });
      reply({ rows: plain(result.rows ?? []), rowCount: result.rowCount ?? 0 });
    } catch (err) {
      const e = err as { message?: string; code?: string; constraint?: string };
      // The query can fail before the client reports its end: drop it now so the next call reconnects.
      if (isConnectionFailure(e.code) && client) {
        const c = client;
        lose(c);
        // A failed COMMIT or ROLLBACK is the end of its transaction: no later statement belongs to it.
        if (endsTransaction(req.sql)) lostTransaction = false;
        c.end().catch(() => undefined);
      }
      reply({ error: { message: e.message ?? String(err), code: e.code, constraint: e.constraint } });
    }
  })();
});
