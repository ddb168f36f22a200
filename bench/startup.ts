import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse, stringify } from '../test/support/yaml';
import { startSimulator } from '../src/sim';

/**
 * Start-up: `meshd --help` and `meshd run --once` with nothing to do (against the simulator,
 * this process), median of several runs, beside `node -e 0` measured in the same run (the
 * floor no Node.js CLI gets under). Goals: both ≤ 300 ms. Where the environment sets
 * NODE_EXTRA_CA_CERTS, a second series runs without it (`withoutExtraCaCerts`), as a host
 * without it would start. Run it under another Node.js by that Node's `node dist/bench/run.js
 * startup` (docs/performance.md §2).
 */
const MESHD = resolve(__dirname, '..', '..', 'bin', 'meshd.js');

export function timeChild(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const t0 = process.hrtime.bigint();
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => (code === 0 ? res(Number(process.hrtime.bigint() - t0) / 1e6) : rej(new Error(`${args.join(' ')} exited ${code}: ${stderr.slice(-500)}`))));
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function runStartupBench(runs = 7): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'meshd-bench-startup-'));
  const sim = await startSimulator({ dir: join(dir, 'sim') });
  try {
    const doc = parse(readFileSync(sim.client('X26ABC1').configPath, 'utf8'));
    doc.log = { level: 'warn' };
    const config = join(dir, 'meshd.yaml');
    writeFileSync(config, stringify(doc));
    // The compile cache (Node.js 22.1+, src/compile-cache.ts) in this run's own folder, filled
    // by the first, unmeasured run, as a timer's runs after its first would find it.
    const cache = join(dir, 'cache');
    mkdirSync(cache, { mode: 0o700 });
    const env: NodeJS.ProcessEnv = { ...process.env, MESHD_LOG_LEVEL: 'warn', CACHE_DIRECTORY: cache };
    const series = async (e: NodeJS.ProcessEnv) => {
      await timeChild([MESHD, '--config', config, 'run', '--once'], e);
      const node: number[] = [];
      const help: number[] = [];
      const once: number[] = [];
      for (let i = 0; i < runs; i++) {
        node.push(await timeChild(['-e', '0'], e));
        help.push(await timeChild([MESHD, '--help'], e));
        once.push(await timeChild([MESHD, '--config', config, 'run', '--once'], e));
      }
      return { nodeMs: Math.round(median(node)), helpMs: Math.round(median(help)), runOnceIdleMs: Math.round(median(once)) };
    };
    const r = await series(env);
    // NODE_EXTRA_CA_CERTS makes Node.js 20 read and parse that bundle at every start, before any
    // of meshd's code runs (~90 ms here for 144 certificates); a host without it does not pay it.
    const { NODE_EXTRA_CA_CERTS: extraCaCerts, ...withoutCaEnv } = env;
    const withoutExtraCaCerts = extraCaCerts ? await series(withoutCaEnv) : undefined;
    const compileCache = readdirSync(cache).length > 0;
    return {
      runs,
      node: process.version,
      compileCache,
      nodeExtraCaCerts: extraCaCerts ?? null,
      ...r,
      ...(withoutExtraCaCerts && { withoutExtraCaCerts }),
      goals: { helpUnder300ms: r.helpMs < 300, runOnceIdleAtMost300ms: r.runOnceIdleMs <= 300 },
    };
  } finally {
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
