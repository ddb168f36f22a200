import { closeSync, copyFileSync, fsyncSync, mkdirSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openLedger } from '../src/ledger';
import { cpuPerMessage, smallMessageSetup } from './daemon';
import { fill } from './ledger';

/**
 * Small-message throughput with a big ledger: the daemon benchmark's send and receive of COUNT
 * 2 KB messages (MESHD_BENCH_MESSAGES, default 4,000), once on empty ledgers and once on ledgers
 * already holding ROWS settled rows (MESHD_BENCH_LEDGER_ROWS, default 1,000,000), alternating,
 * twice each. Goal (issue 13, 5): within 10% of the empty ledger's rate. Beside the rates, the
 * same ratio in meshd's CPU per message, which moves less with the machine's other jobs.
 */
const MAILBOXES = ['X26ABC1', 'X26ABC2'];

/** A ledger of `rows` rows, every one settled (as a ledger a year old mostly is), so no run finds old work to do. */
function filledTemplate(dir: string, rows: number): string {
  const file = join(dir, 'template', 'meshd.db');
  openLedger(file).close();
  fill(file, rows, Date.now());
  const db = new Database(file);
  db.exec(`UPDATE messages SET state = CASE state WHEN 'queued' THEN 'failed' ELSE 'acknowledged' END
           WHERE state NOT IN ('acknowledged', 'failed', 'undeliverable', 'quarantined')`);
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  return file;
}

/** Messages a second each way, and meshd's CPU per message each way (ms; moves less with load than rates do). */
interface Rates {
  send: number;
  receive: number;
  sendCpuMs?: number;
  receiveCpuMs?: number;
}

async function rates(count: number, template?: string): Promise<Rates> {
  const setup = await smallMessageSetup(count);
  try {
    if (template) {
      for (const mb of MAILBOXES) {
        const dataDir = join(setup.sim.dir, 'var', mb);
        mkdirSync(dataDir, { recursive: true, mode: 0o700 });
        copyFileSync(template, join(dataDir, 'meshd.db'));
        // On disk before the clock starts: the kernel writing the copy back would slow the runs' fsyncs.
        const fd = openSync(join(dataDir, 'meshd.db'), 'r');
        fsyncSync(fd);
        closeSync(fd);
      }
    }
    const { send, receive, delivered } = await setup.sendAndReceive();
    if (delivered !== count) throw new Error(`${delivered} of ${count} delivered`);
    return {
      send: Math.round(count / (send.ms / 1000)),
      receive: Math.round(count / (receive.ms / 1000)),
      sendCpuMs: cpuPerMessage(send, count)?.meshdMs,
      receiveCpuMs: cpuPerMessage(receive, count)?.meshdMs,
    };
  } finally {
    await setup.close();
  }
}

export async function runBusyLedgerBench(
  rows = Number(process.env.MESHD_BENCH_LEDGER_ROWS ?? 1_000_000),
  count = Number(process.env.MESHD_BENCH_MESSAGES ?? 4_000),
): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'meshd-bench-busy-ledger-'));
  try {
    const template = filledTemplate(dir, rows);
    const empty: Rates[] = [];
    const filled: Rates[] = [];
    for (let i = 0; i < 2; i++) {
      empty.push(await rates(count));
      filled.push(await rates(count, template));
    }
    const sum = (xs: Rates[], k: keyof Rates) => xs.reduce((a, x) => a + (x[k] ?? NaN), 0);
    const ratio = (k: keyof Rates, over = filled, under = empty) => +(sum(over, k) / sum(under, k)).toFixed(2);
    const sendRatio = ratio('send');
    const receiveRatio = ratio('receive');
    return {
      rows,
      messages: count,
      emptyLedger: empty,
      filledLedger: filled,
      sendRateFilledOverEmpty: sendRatio,
      receiveRateFilledOverEmpty: receiveRatio,
      // The same question in CPU: what each message cost meshd on the full ledger over the empty one.
      sendCpuFilledOverEmpty: ratio('sendCpuMs'),
      receiveCpuFilledOverEmpty: ratio('receiveCpuMs'),
      goals: { within10PercentOfEmpty: sendRatio >= 0.9 && receiveRatio >= 0.9 },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
