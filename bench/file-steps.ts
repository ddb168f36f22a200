import { closeSync, constants, fchmodSync, fsyncSync, lstatSync, mkdtempSync, openSync, promises as fsp, renameSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker, isMainThread, parentPort } from 'node:worker_threads';

/**
 * The floor under a received message's file work, on this machine: the steps a delivery makes
 * (a new `.part` opened exclusively, 2 KB written, fsync'd, renamed into place, made 0640,
 * closed, checked) and a directory fsync per batch of 16, with no ledger, no network and no
 * parsing. Timed in CPU (user + system) per message, three ways side by side, in turn:
 *   - async: through fs.promises, 16 messages in flight, as meshd does them;
 *   - oneWorker, fourWorkers: the same calls made synchronously in worker threads, one
 *     hand-over per 16 messages (fewer trips through libuv's pool: the idea this tests);
 *   - sync: one message after another on the main thread (no hand-over at all; the kernel's
 *     share, and what no daemon serving many mailboxes can do on its event loop).
 * docs/performance.md §1 ("the file steps' own cost").
 */
const MESSAGES = 2000;
const BATCH = 16;
const ROUNDS = 3;
const CREATE = constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW;

/** A received file's steps, synchronously: also the daemon benchmark's probe of the disk's new-file rate. */
export function stepsSync(dir: string, i: number, data: Buffer): void {
  const part = join(dir, `m${i}.part`);
  const done = join(dir, `m${i}.dat`);
  const fd = openSync(part, CREATE, 0o600);
  writeSync(fd, data);
  fsyncSync(fd);
  renameSync(part, done);
  fchmodSync(fd, 0o640);
  closeSync(fd);
  lstatSync(done);
}

async function stepsAsync(dir: string, i: number, data: Buffer): Promise<void> {
  const part = join(dir, `m${i}.part`);
  const done = join(dir, `m${i}.dat`);
  const fh = await fsp.open(part, CREATE, 0o600);
  await fh.write(data);
  await fh.sync();
  await fsp.rename(part, done);
  await fh.chmod(0o640);
  await fh.close();
  await fsp.lstat(done);
}

export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  fsyncSync(fd);
  closeSync(fd);
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  await fh.sync();
  await fh.close();
}

if (!isMainThread) {
  parentPort!.on('message', ({ dir, from, data }: { dir: string; from: number; data: Uint8Array }) => {
    const bytes = Buffer.from(data);
    for (let i = from; i < from + BATCH; i++) stepsSync(dir, i, bytes);
    fsyncDirSync(dir);
    parentPort!.postMessage(from);
  });
}

/** How each way runs: worker threads only for the worker ways. */
const MODES = { async: 0, oneWorker: 1, fourWorkers: 4, sync: 0 } as const;
type Mode = keyof typeof MODES;

async function runMode(mode: Mode, data: Buffer): Promise<{ perSecond: number; cpuMicros: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'meshd-bench-files-'));
  // Started before the clock: a daemon would keep them.
  const workers = Array.from({ length: MODES[mode] }, () => new Worker(__filename));
  try {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    if (mode === 'async') {
      for (let b = 0; b < MESSAGES; b += BATCH) {
        await Promise.all(Array.from({ length: BATCH }, (_, k) => stepsAsync(dir, b + k, data)));
        await fsyncDir(dir);
      }
    } else if (mode === 'sync') {
      for (let b = 0; b < MESSAGES; b += BATCH) {
        for (let k = 0; k < BATCH; k++) stepsSync(dir, b + k, data);
        fsyncDirSync(dir);
      }
    } else {
      let next = 0;
      const batchOn = (w: Worker) =>
        new Promise<void>((resolve) => {
          w.once('message', () => resolve());
          w.postMessage({ dir, from: next, data });
          next += BATCH;
        });
      await Promise.all(workers.map(async (w) => {
        while (next < MESSAGES) await batchOn(w);
      }));
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(c0);
    return { perSecond: Math.round(MESSAGES / seconds), cpuMicros: Math.round((cpu.user + cpu.system) / MESSAGES) };
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function runFileStepsBench(): Promise<Record<string, unknown>> {
  const data = Buffer.alloc(2048, 'x');
  const modes = Object.keys(MODES) as Mode[];
  const runs = new Map<Mode, Array<{ perSecond: number; cpuMicros: number }>>(modes.map((m) => [m, []]));
  for (let round = 0; round < ROUNDS; round++) for (const mode of modes) runs.get(mode)!.push(await runMode(mode, data));
  const result: Record<string, unknown> = { messages: MESSAGES, rounds: ROUNDS };
  for (const [mode, rs] of runs) {
    result[mode] = { perSecond: median(rs.map((r) => r.perSecond)), cpuMicrosPerMessage: median(rs.map((r) => r.cpuMicros)) };
  }
  return result;
}
