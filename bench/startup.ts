import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse, stringify } from '../test/support/yaml';
import { startSimulator } from '../src/sim';

/**
 * Start-up: `meshd --help` and `meshd run --once` with nothing to do (against the simulator,
 * this process), median of several runs, beside `node -e 0` measured in the same run (the
 * floor no Node.js CLI gets under). Goals: both ≤ 300 ms.
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
    const env = { ...process.env, MESHD_LOG_LEVEL: 'warn' };
    // The first cycle creates the ledger and handshakes; the ones timed have nothing to do.
    await timeChild([MESHD, '--config', config, 'run', '--once'], env);
    const node: number[] = [];
    const help: number[] = [];
    const once: number[] = [];
    for (let i = 0; i < runs; i++) {
      node.push(await timeChild(['-e', '0'], env));
      help.push(await timeChild([MESHD, '--help'], env));
      once.push(await timeChild([MESHD, '--config', config, 'run', '--once'], env));
    }
    const r = { nodeMs: Math.round(median(node)), helpMs: Math.round(median(help)), runOnceIdleMs: Math.round(median(once)) };
    return { runs, ...r, goals: { helpUnder300ms: r.helpMs < 300, runOnceIdleAtMost300ms: r.runOnceIdleMs <= 300 } };
  } finally {
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
