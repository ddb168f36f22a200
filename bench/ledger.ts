import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { openLedger, purgeInSteps, type LedgerStore } from '../src/ledger';

/**
 * A big ledger: ROWS messages (default 1,000,000, MESHD_BENCH_LEDGER_ROWS) with two events each,
 * spread over two years, mostly settled, as a busy mailbox pair leaves them. Times, beside the
 * same on an empty ledger in the same run: opening the ledger, what `meshd status` and
 * `meshd ledger list --state failed` read, the daemon's due-work queries, the CLI commands
 * themselves, and a retention purge of 100,000 settled rows with the longest event-loop stall
 * it causes. Goal: each query ≤ 100 ms, purge ≤ 5 s, no stall > 100 ms.
 */
const MESHD = resolve(__dirname, '..', '..', 'bin', 'meshd.js');
const MAILBOXES = ['X26ABC1', 'X26ABC2'];
const DAY = 86_400_000;

/** Fills `file` (already migrated) with `rows` messages straight through SQL: seconds, not minutes. Claim ids begin with their time, as newClaimId makes them. */
export function fill(file: string, rows: number, now: number): void {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.function('pick_state', { deterministic: true }, (i: number, dir: string) => {
    const r = i % 1000;
    if (dir === 'out') return r < 30 ? 'failed' : r < 40 ? 'sent' : r < 42 ? 'undeliverable' : r < 43 ? 'queued' : 'acknowledged';
    return r < 5 ? 'quarantined' : r < 6 ? 'delivered' : 'acknowledged';
  });
  const at = (expr: string) => `strftime('%Y-%m-%dT%H:%M:%fZ', (${now} - (${expr})) / 1000.0, 'unixepoch')`;
  db.transaction(() => {
    db.exec(`
      WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${rows})
      INSERT INTO messages (direction, mailbox, peer, workflow_id, message_id, local_id, file_name, payload_path, size_bytes,
                            state, created_at, updated_at, acknowledged_at, claim_id)
      SELECT d, CASE WHEN i % 4 < 2 THEN '${MAILBOXES[0]}' ELSE '${MAILBOXES[1]}' END, 'X26PEER', 'TEST_WORKFLOW',
             printf('2026%010d_%06X', i, i % 16777215), 'local-' || i, 'm' || i || '.csv',
             CASE WHEN d = 'out' THEN '/var/lib/meshd/sent/m' ELSE '/srv/mesh/in/m' END || i || '.csv', 2048,
             pick_state(i, d), ${at(`(${rows} - i) * (730.0 * ${DAY} / ${rows})`)}, ${at(`(${rows} - i) * (730.0 * ${DAY} / ${rows}) - 60000`)},
             -- Received and settled (acknowledged or quarantined): acknowledged to MESH when last updated.
             CASE WHEN d = 'in' AND pick_state(i, d) != 'delivered' THEN ${at(`(${rows} - i) * (730.0 * ${DAY} / ${rows}) - 60000`)} END,
             printf('%012x', CAST(${now} - (${rows} - i) * (730.0 * ${DAY} / ${rows}) AS INTEGER)) || lower(hex(randomblob(10)))
      FROM (SELECT i, CASE WHEN i % 2 = 0 THEN 'out' ELSE 'in' END AS d FROM n);
      INSERT INTO events (message_row_id, at, type, from_state, to_state)
        SELECT id, created_at, 'created', NULL, CASE direction WHEN 'out' THEN 'queued' ELSE 'receiving' END FROM messages;
      INSERT INTO events (message_row_id, at, type, from_state, to_state)
        SELECT id, updated_at, 'transition', NULL, state FROM messages;
    `);
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}

function timeChild(args: string[]): Promise<number> {
  const t0 = process.hrtime.bigint();
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [MESHD, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, MESHD_LOG_LEVEL: 'warn' } });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => (code === 0 ? res(Number(process.hrtime.bigint() - t0) / 1e6) : rej(new Error(`meshd ${args.join(' ')}: ${stderr.slice(-400)}`))));
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function timeMs(fn: () => unknown, runs = 5): number {
  const xs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    xs.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return +median(xs).toFixed(1);
}

/** What `meshd status` asks per mailbox (src/cli/ledger.ts). */
function statusQueries(ledger: LedgerStore, mailbox: string): void {
  ledger.mailboxStatus(mailbox);
  ledger.countsByState(mailbox, 'out');
  ledger.countsByState(mailbox, 'in');
  ledger.oldest(mailbox, 'out', ['claiming', 'queued', 'uploading', 'needs_review']);
  ledger.oldest(mailbox, 'out', ['sent']);
  ledger.oldest(mailbox, 'in', ['delivered']);
  ledger.countOverdueAcks(mailbox, new Date());
}

/** What one daemon cycle asks of the ledger before any work: due sends, tracking, inbound leftovers. */
function dueQueries(ledger: LedgerStore, mailbox: string, now: Date): void {
  ledger.due(mailbox, 'out', ['queued', 'uploading'], now, 100);
  ledger.due(mailbox, 'out', ['sent'], now, 100);
  ledger.overdueAcks(mailbox, now, 500);
  // As recoverInbound asks: settled states only for rows not yet acknowledged to MESH.
  for (const state of ['delivered', 'receiving'] as const) Array.from(ledger.iterate({ mailbox, direction: 'in', state }));
  for (const state of ['quarantined', 'duplicate', 'stale', 'needs_review'] as const) Array.from(ledger.iterate({ mailbox, direction: 'in', state, unacknowledged: true }));
  for (const state of ['claiming', 'uploading', 'queued'] as const) Array.from(ledger.iterate({ mailbox, direction: 'out', state }));
  // As recoverOutbound asks (migration 9): sent and failed rows only when marked for filing.
  for (const state of ['sent', 'failed'] as const) Array.from(ledger.iterate({ mailbox, direction: 'out', state, recoveryMark: 'filing' }));
}

async function measureLedger(dir: string, rows: number, now: number): Promise<Record<string, number>> {
  const dataDir = join(dir, 'var');
  const file = join(dataDir, 'meshd.db');
  openLedger(file).close();
  const filled = Date.now();
  if (rows > 0) fill(file, rows, now);
  const fillMs = Date.now() - filled;
  const config = join(dir, 'meshd.yaml');
  // Nothing is sent: status and list only read the ledger.
  writeFileSync(config, `dataDir: ${dataDir}\nenvironment: local\nurl: http://127.0.0.1:9\nmailboxes:\n${MAILBOXES.map((m) => `  - id: ${m}\n    folder: ${join(dir, m)}\n`).join('')}`);

  // full: `meshd run` at start and commands that write; daily: `run --once` after the day's
  // check has passed (the first open here records it); none: commands that only read.
  const openFullMs = timeMs(() => openLedger(file, { create: false }).close(), 1);
  const openDailyMs = timeMs(() => openLedger(file, { create: false, integrity: 'daily' }).close(), 3);
  const openReadOnlyMs = timeMs(() => openLedger(file, { create: false, integrity: 'none' }).close(), 3);
  const ledger = openLedger(file, { integrity: 'none' });
  try {
    const at = new Date(now);
    const r = {
      fillMs,
      openFullMs,
      openDailyMs,
      openReadOnlyMs,
      statusQueriesMs: timeMs(() => MAILBOXES.forEach((m) => statusQueries(ledger, m))),
      listFailedMs: timeMs(() => ledger.list({ state: 'failed' })),
      dueQueriesMs: timeMs(() => MAILBOXES.forEach((m) => dueQueries(ledger, m, at))),
    };
    const cli = { statusCliMs: 0, listFailedCliMs: 0 };
    const status: number[] = [];
    const list: number[] = [];
    for (let i = 0; i < 3; i++) {
      status.push(await timeChild(['--config', config, 'status']));
      list.push(await timeChild(['--config', config, 'ledger', 'list', '--state', 'failed']));
    }
    cli.statusCliMs = Math.round(median(status));
    cli.listFailedCliMs = Math.round(median(list));
    return { ...r, ...cli, ...(rows > 0 ? await measurePurge(ledger, now, rows) : {}) };
  } finally {
    ledger.close();
  }
}

/** Purges the oldest 100,000 (at most a tenth) settled rows while a 10 ms timer watches the event loop. */
async function measurePurge(ledger: LedgerStore, now: number, rows: number): Promise<Record<string, number>> {
  const settled = (ledger as unknown as { db: Database.Database }).db;
  const cutoffRow = settled.prepare("SELECT updated_at FROM messages WHERE state IN ('acknowledged', 'failed', 'undeliverable', 'quarantined') ORDER BY updated_at LIMIT 1 OFFSET ?").get(Math.min(100_000, Math.floor(rows / 10))) as { updated_at: string };
  let worstStall = 0;
  let last = Date.now();
  const watch = setInterval(() => {
    const t = Date.now();
    worstStall = Math.max(worstStall, t - last - 10);
    last = t;
  }, 10);
  const t0 = Date.now();
  const cpu0 = process.cpuUsage();
  // As the daemon's retention does it: one batch at a time, the event loop free in between.
  const result = await purgeInSteps(ledger, { olderThan: new Date(cutoffRow.updated_at), payloadsOnly: false, now: new Date(now) });
  const purgeMs = Date.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await new Promise((r) => setTimeout(r, 20));
  clearInterval(watch);
  // CPU beside wall time: the purge is SQLite's index work, and the wall clock also holds the
  // disk's writeback (of the fill, on a fresh ledger), which moves it by half from run to run.
  return { purgedRows: result.rows, purgeMs, purgeCpuMs: Math.round((cpu.user + cpu.system) / 1000), purgeWorstStallMs: worstStall };
}

export async function runLedgerBench(rows = Number(process.env.MESHD_BENCH_LEDGER_ROWS ?? 1_000_000)): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'meshd-bench-ledger-'));
  const now = Date.now();
  try {
    const empty = await measureLedger(join(dir, 'empty'), 0, now);
    const big = await measureLedger(join(dir, 'big'), rows, now);
    const worstQuery = Math.max(big.statusQueriesMs, big.listFailedMs, big.dueQueriesMs);
    return {
      rows,
      empty,
      big,
      goals: { queriesAtMost100ms: worstQuery <= 100, purge100kAtMost5s: big.purgeMs <= 5000, purgeStallAtMost100ms: big.purgeWorstStallMs <= 100 },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
