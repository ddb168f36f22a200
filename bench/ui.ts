import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { loadConfig } from '../src/config';
import { DEFAULTS } from '../src/config/presets';
import { ledgerPath, openLedger } from '../src/ledger';
import { silentLogger } from '../src/log';
import { startUiServer } from '../src/ui/server';

/**
 * The web console over a big ledger: 1,000,000 message rows (one event each, bulk-inserted in one
 * statement), then each messages-page query timed over HTTP with a logged-in session.
 * Goal (issue 14): the messages page answers in ≤ 200 ms.
 */
const GOAL_MS = 200;
const MAILBOX = 'X26ABC1';
const start = Date.parse('2026-01-01T00:00:00Z');

/** One INSERT … SELECT over a generated series: states and directions spread like a busy site. */
function fill(file: string, rows: number): void {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  db.transaction(() => {
    db.prepare(
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < @rows)
       INSERT INTO messages (direction, mailbox, peer, workflow_id, message_id, local_id, subject, message_type, file_name,
         state, created_at, updated_at, claim_id, chunks_done, compress, attempts, processing_starts)
       SELECT CASE WHEN i % 2 = 0 THEN 'out' ELSE 'in' END, @mailbox, 'X26ABC2',
         CASE WHEN i % 3 = 0 THEN 'TEST_WORKFLOW' ELSE 'OTHER_WORKFLOW' END,
         printf('2026%010d_%06d', i, i % 999999), printf('local-%d', i), 'synthetic', 'DATA', printf('file-%d.dat', i),
         CASE WHEN i % 1000 = 7 THEN 'failed' WHEN i % 5000 = 11 THEN 'quarantined' WHEN i % 20000 = 13 THEN 'needs_review'
              ELSE 'acknowledged' END,
         strftime('%Y-%m-%dT%H:%M:%fZ', (@start + i * 25000) / 1000.0, 'unixepoch'),
         strftime('%Y-%m-%dT%H:%M:%fZ', (@start + i * 25000) / 1000.0, 'unixepoch'),
         lower(hex(randomblob(16))), 0, 0, 0, 0
       FROM n`,
    ).run({ rows, mailbox: MAILBOX, start });
    db.prepare(`INSERT INTO events (message_row_id, at, type, from_state, to_state) SELECT id, created_at, 'created', NULL, state FROM messages`).run();
  })();
  db.close();
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export async function runUiBench(rows = Number(process.env.MESHD_BENCH_UI_ROWS ?? 1_000_000)): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'meshd-bench-ui-'));
  try {
    const dataDir = join(dir, 'var');
    mkdirSync(dataDir, { mode: 0o700 });
    const configPath = join(dir, 'meshd.yaml');
    writeFileSync(
      configPath,
      ['environment: local', 'url: http://127.0.0.1:1', 'sharedKey: BenchOnlySharedKey', `dataDir: ${dataDir}`, 'mailboxes:', `  - id: ${MAILBOX}`, '    password: BenchOnlyPassword', `    folder: ${join(dir, 'mb')}`, ''].join('\n'),
    );
    const config = await loadConfig(configPath);
    openLedger(ledgerPath(dataDir)).close();
    let t0 = Date.now();
    fill(ledgerPath(dataDir), rows);
    const fillMs = Date.now() - t0;
    t0 = Date.now();
    const ledger = openLedger(ledgerPath(dataDir), { create: false });
    const openMs = Date.now() - t0;
    const server = await startUiServer({ config, ui: { ...DEFAULTS.ui, port: 0 }, ledger, log: silentLogger });
    try {
      const login = await fetch(server.url, { redirect: 'manual' });
      const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0];
      const base = new URL(server.url).origin;
      // The day at this fraction of the ledger's rows (each row is 25 s after the one before).
      const day = (fraction: number) => new Date(start + rows * fraction * 25_000).toISOString().slice(0, 10);
      const pages: Record<string, string> = {
        newest: '/messages',
        'state=failed': '/messages?state=failed',
        'state=needs_review (rare)': '/messages?state=needs_review',
        'mailbox+direction': `/messages?mailbox=${MAILBOX}&direction=out`,
        workflow: '/messages?workflow=TEST_WORKFLOW',
        'date range (one day, middle)': `/messages?from=${day(0.5)}&to=${day(0.5)}`,
        'date range (one day, oldest)': `/messages?from=${day(0.02)}&to=${day(0.02)}`,
        'date range (most of the ledger)': `/messages?from=${day(0.05)}&to=${day(0.95)}`,
        'local id': `/messages?localId=local-${Math.floor(rows / 2)}`,
        'MESH id': `/messages?messageId=${encodeURIComponent(`2026${String(rows - 5).padStart(10, '0')}_${String((rows - 5) % 999999).padStart(6, '0')}`)}`,
        'page deep (before=half)': `/messages?before=${Math.floor(rows / 2)}`,
        'file name contains (rare match)': `/messages?fileName=file-${rows - 3}.dat`,
        'file name contains (no match: full scan)': '/messages?fileName=no-such-file',
        attention: '/attention',
        overview: '/',
      };
      const results: Record<string, { medianMs: number; maxMs: number; rowsShown: number; withinGoal: boolean }> = {};
      for (const [name, path] of Object.entries(pages)) {
        const times: number[] = [];
        let shown = 0;
        for (let i = 0; i < 11; i++) {
          const t = process.hrtime.bigint();
          const res = await fetch(base + path, { headers: { cookie } });
          const body = await res.text();
          times.push(Number(process.hrtime.bigint() - t) / 1e6);
          if (res.status !== 200) throw new Error(`${path} answered ${res.status}`);
          shown = (body.match(/<tr>\n<td><a href="\/messages\//g) ?? []).length;
        }
        const med = median(times.slice(1)); // the first request warms the statement cache
        results[name] = { medianMs: Math.round(med * 10) / 10, maxMs: Math.round(Math.max(...times.slice(1)) * 10) / 10, rowsShown: shown, withinGoal: med <= GOAL_MS };
      }
      return { rows, goalMs: GOAL_MS, fillMs, openMs, pages: results };
    } finally {
      await server.close();
      ledger.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
