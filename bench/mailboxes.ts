import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse, stringify } from '../test/support/yaml';
import { startSimulator } from '../src/sim';

/**
 * Many mailboxes: one `meshd run --once` for N mailboxes (default 200, MESHD_BENCH_MAILBOXES)
 * sharing one client certificate, against the simulator (this process), nothing waiting. The
 * first cycle creates the ledger and handshakes every mailbox; the second is the steady state
 * the goal is about. Peak RSS from /usr/bin/time. Goals: second cycle ≤ 5 s, RSS ≤ 250 MB.
 * The simulator's PKI (a key pair per mailbox, about a minute to make) is kept in
 * $TMPDIR/meshd-bench-sim-<N> and reused by later runs.
 */
const MESHD = resolve(__dirname, '..', '..', 'bin', 'meshd.js');

function runOnce(config: string): Promise<{ ms: number; peakRssMB: number }> {
  const timeOut = join(tmpdir(), `meshd-bench-mailboxes-time-${process.pid}`);
  const t0 = process.hrtime.bigint();
  return new Promise((res, rej) => {
    const child = spawn('/usr/bin/time', ['-f', '%M', '-o', timeOut, process.execPath, MESHD, '--config', config, 'run', '--once'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, MESHD_LOG_LEVEL: 'warn' },
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (code !== 0) return rej(new Error(`run --once exited ${code}: ${stderr.slice(-800)}`));
      const peakRssMB = Number(readFileSync(timeOut, 'utf8').trim().split('\n').pop()) / 1024;
      rmSync(timeOut, { force: true });
      res({ ms, peakRssMB });
    });
  });
}

export async function runMailboxesBench(count = Number(process.env.MESHD_BENCH_MAILBOXES ?? 200)): Promise<Record<string, unknown>> {
  if (!existsSync('/usr/bin/time')) throw new Error('the mailboxes benchmark needs /usr/bin/time (package time) for peak RSS');
  const ids = Array.from({ length: count }, (_, i) => `X26M${String(i).padStart(3, '0')}`);
  const simDir = join(tmpdir(), `meshd-bench-sim-${count}`);
  const dir = mkdtempSync(join(tmpdir(), 'meshd-bench-mailboxes-'));
  const simStarted = Date.now();
  const sim = await startSimulator({ dir: simDir, mailboxes: ids });
  const simStartMs = Date.now() - simStarted;
  try {
    await sim.reset();
    const first = parse(readFileSync(sim.client(ids[0]).configPath, 'utf8'));
    const doc = {
      ...first,
      dataDir: join(dir, 'var'),
      log: { level: 'warn' },
      mailboxes: ids.map((id) => ({ ...parse(readFileSync(sim.client(id).configPath, 'utf8')).mailboxes[0], folder: join(dir, 'mailboxes', id) })),
    };
    const config = join(dir, 'meshd.yaml');
    writeFileSync(config, stringify(doc));
    const firstCycle = await runOnce(config);
    const idle = await runOnce(config);
    return {
      mailboxes: count,
      simStartMs,
      firstCycleMs: Math.round(firstCycle.ms),
      idleCycleMs: Math.round(idle.ms),
      peakRssMB: +Math.max(firstCycle.peakRssMB, idle.peakRssMB).toFixed(1),
      goals: { idleCycleAtMost5s: idle.ms <= 5000, rssAtMost250MB: Math.max(firstCycle.peakRssMB, idle.peakRssMB) <= 250 },
    };
  } finally {
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
