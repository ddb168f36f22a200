import { promises as fsp, mkdtempSync, rmSync, writeFileSync, type Stats } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * The message path's small file calls alone, this build beside another's
 * (MESHD_BENCH_BASELINE=<its dist>), pass by pass in turn, 2,000 files of 2 KB with 16 in flight
 * as meshd runs them, timed in CPU (user + system, all threads) per file:
 *   - claimReads: what claiming a file reads of it: its lstat at the scan of out/, again at the
 *     claim, then its facts (opened without following links, fstat, made 0600, read, sha256,
 *     closed). A build without src/safe-fs-batch.js makes its lstat calls through fs.promises.
 *   - controlWrites: the control file filed beside a sent payload (writeFileAtomic: an exclusive
 *     temp file, written, fsync'd, closed, renamed into place; the folder not synced).
 * docs/performance.md §1.
 */
const FILES = 2000;
const IN_FLIGHT = 16;
const PASSES = 7;

type Calls = {
  lstat: (path: string) => Promise<Stats>;
  fileFacts: (path: string, opts: { mode?: number; keepBytesUpTo?: number }) => Promise<unknown>;
  writeFileAtomic: (target: string, data: string, mode: number, syncDir: boolean) => Promise<void>;
};

function loadBuild(dist: string): Calls {
  /* eslint-disable @typescript-eslint/no-require-imports -- a build chosen at run time */
  const { fileFacts } = require(join(dist, 'src', 'transfer', 'spool.js')) as Pick<Calls, 'fileFacts'>;
  const { writeFileAtomic } = require(join(dist, 'src', 'safe-fs.js')) as Pick<Calls, 'writeFileAtomic'>;
  let lstat: Calls['lstat'] = (path) => fsp.lstat(path);
  try {
    lstat = (require(join(dist, 'src', 'safe-fs-batch.js')) as { lstatBatched: Calls['lstat'] }).lstatBatched;
  } catch {
    // an older build: fs.promises
  }
  /* eslint-enable @typescript-eslint/no-require-imports */
  return { lstat, fileFacts, writeFileAtomic };
}

/** CPU µs per file of `step` over FILES files, IN_FLIGHT at a time. */
async function cpuPerFile(step: (i: number) => Promise<unknown>): Promise<number> {
  const c0 = process.cpuUsage();
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < FILES) await step(next++);
    }),
  );
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / FILES;
}

function claimRead(calls: Calls, dir: string): (i: number) => Promise<unknown> {
  return async (i) => {
    const path = join(dir, `f${i}.dat`);
    await calls.lstat(path);
    await calls.lstat(path);
    return calls.fileFacts(path, { mode: 0o600, keepBytesUpTo: 1024 * 1024 });
  };
}

const CONTROL = `<DTSControl><Version>1.0</Version><AddressType>DTS</AddressType><MessageType>Data</MessageType>${'<StatusRecord/>'.repeat(8)}</DTSControl>`;

function controlWrite(calls: Calls, dir: string, pass: number): (i: number) => Promise<unknown> {
  return (i) => calls.writeFileAtomic(join(dir, `p${pass}-${i}.ctl`), CONTROL, 0o640, false);
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];

export async function runFileCallsBench(): Promise<Record<string, unknown>> {
  const builds: Array<[string, Calls]> = [['this build', loadBuild(resolve(__dirname, '..'))]];
  if (process.env.MESHD_BENCH_BASELINE) builds.push(['baseline', loadBuild(resolve(process.env.MESHD_BENCH_BASELINE))]);
  const dir = mkdtempSync(join(tmpdir(), 'meshd-bench-file-calls-'));
  try {
    const data = Buffer.alloc(2048, 'x');
    for (let i = 0; i < FILES; i++) writeFileSync(join(dir, `f${i}.dat`), data, { mode: 0o640 });
    const times = new Map(builds.map(([name]) => [name, { claimReads: [] as number[], controlWrites: [] as number[] }]));
    // A warm-up pass each (JIT, the worker's start), then passes in turn.
    for (let pass = 0; pass <= PASSES; pass++) {
      for (const [name, calls] of builds) {
        const reads = await cpuPerFile(claimRead(calls, dir));
        const ctlDir = mkdtempSync(join(dir, 'ctl-'));
        const writes = await cpuPerFile(controlWrite(calls, ctlDir, pass));
        rmSync(ctlDir, { recursive: true, force: true });
        if (pass === 0) continue;
        times.get(name)!.claimReads.push(reads);
        times.get(name)!.controlWrites.push(writes);
      }
    }
    const summary = (t: number[]) => ({ cpuMicrosPerFile: Math.round(median(t)), range: [Math.round(Math.min(...t)), Math.round(Math.max(...t))] });
    const result: Record<string, unknown> = { files: FILES, inFlight: IN_FLIGHT, passes: PASSES };
    for (const [name, t] of times) result[name] = { claimReads: summary(t.claimReads), controlWrites: summary(t.controlWrites) };
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
