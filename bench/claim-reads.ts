import { promises as fsp, mkdtempSync, rmSync, writeFileSync, type Stats } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * What claiming a small file reads of it, alone: the file's lstat at the scan of out/, again at
 * the claim, then its spool copy's facts (opened without following links, fstat, made 0600,
 * read, sha256, closed), for 2,000 files of 2 KB, 16 in flight as meshd runs them. Timed in CPU
 * (user + system, all threads) per file. MESHD_BENCH_BASELINE=<another build's dist> runs that
 * build's fileFacts beside this one's, pass by pass in turn; a build without
 * src/safe-fs-batch.js makes its lstat calls through fs.promises, as meshd did before it.
 * docs/performance.md §1.
 */
const FILES = 2000;
const IN_FLIGHT = 16;
const PASSES = 7;

type Reads = { lstat: (path: string) => Promise<Stats>; fileFacts: (path: string, opts: { mode?: number; keepBytesUpTo?: number }) => Promise<unknown> };

function loadBuild(dist: string): Reads {
  /* eslint-disable @typescript-eslint/no-require-imports -- a build chosen at run time */
  const { fileFacts } = require(join(dist, 'src', 'transfer', 'spool.js')) as Pick<Reads, 'fileFacts'>;
  let lstat: Reads['lstat'] = (path) => fsp.lstat(path);
  try {
    lstat = (require(join(dist, 'src', 'safe-fs-batch.js')) as { lstatBatched: Reads['lstat'] }).lstatBatched;
  } catch {
    // an older build: fs.promises
  }
  /* eslint-enable @typescript-eslint/no-require-imports */
  return { lstat, fileFacts };
}

async function cpuPerFile(reads: Reads, dir: string): Promise<number> {
  const c0 = process.cpuUsage();
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < FILES) {
        const path = join(dir, `f${next++}.dat`);
        await reads.lstat(path);
        await reads.lstat(path);
        await reads.fileFacts(path, { mode: 0o600, keepBytesUpTo: 1024 * 1024 });
      }
    }),
  );
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / FILES;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];

export async function runClaimReadsBench(): Promise<Record<string, unknown>> {
  const builds: Array<[string, Reads]> = [['this build', loadBuild(resolve(__dirname, '..'))]];
  if (process.env.MESHD_BENCH_BASELINE) builds.push(['baseline', loadBuild(resolve(process.env.MESHD_BENCH_BASELINE))]);
  const dir = mkdtempSync(join(tmpdir(), 'meshd-bench-claim-reads-'));
  try {
    const data = Buffer.alloc(2048, 'x');
    for (let i = 0; i < FILES; i++) writeFileSync(join(dir, `f${i}.dat`), data, { mode: 0o640 });
    const times = new Map(builds.map(([name]) => [name, [] as number[]]));
    // A warm-up pass each (JIT, the worker's start), then passes in turn.
    for (let pass = 0; pass <= PASSES; pass++) {
      for (const [name, reads] of builds) {
        const micros = await cpuPerFile(reads, dir);
        if (pass > 0) times.get(name)!.push(micros);
      }
    }
    const result: Record<string, unknown> = { files: FILES, inFlight: IN_FLIGHT, passes: PASSES };
    for (const [name, t] of times) result[name] = { cpuMicrosPerFile: Math.round(median(t)), range: [Math.round(Math.min(...t)), Math.round(Math.max(...t))] };
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
