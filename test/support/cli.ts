import { spawn } from 'node:child_process';
import { resolve } from 'node:path';

/** The one way tests run the meshd CLI as a process (dist/test/support → repo root). */
export const MESHD = resolve(__dirname, '..', '..', '..', 'bin', 'meshd.js');

export interface RunResult {
  /** Exit code, or null when a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Added to this process's environment. */
  env?: NodeJS.ProcessEnv;
  /** Written to the child's stdin, which is then closed (default: no stdin). */
  stdin?: Buffer | string;
  /** SIGKILL after this long. */
  killAfterMs?: number;
  /** Send this signal after this long. */
  signalAfterMs?: [NodeJS.Signals, number];
  /** SIGTERM when this aborts (e.g. once the test sees the daemon at the wanted point). */
  terminateOn?: AbortSignal;
  /** SIGTERM once what the process wrote to stderr so far passes this test (no fixed sleep). */
  terminateWhen?: (stderr: string) => boolean;
}

export function runMeshd(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [MESHD, ...args], { env: { ...process.env, ...opts.env }, stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out = child.stdout!;
    const err = child.stderr!;
    let stdout = '';
    let stderr = '';
    out.on('data', (d) => (stdout += d));
    let asked = false;
    err.on('data', (d) => {
      stderr += d;
      if (!asked && opts.terminateWhen?.(stderr)) {
        asked = true;
        child.kill('SIGTERM');
      }
    });
    if (opts.stdin !== undefined) child.stdin!.end(opts.stdin);
    const timers: NodeJS.Timeout[] = [];
    if (opts.killAfterMs !== undefined) timers.push(setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs));
    if (opts.signalAfterMs) timers.push(setTimeout(() => child.kill(opts.signalAfterMs![0]), opts.signalAfterMs[1]));
    opts.terminateOn?.addEventListener('abort', () => child.kill('SIGTERM'));
    child.on('exit', (code, signal) => {
      timers.forEach(clearTimeout);
      // 'exit' can come before the pipes drain: wait for both to close.
      let open = 2;
      const closed = () => --open === 0 && done({ code, signal, stdout, stderr });
      for (const stream of [out, err]) {
        if (stream.closed) closed();
        else stream.on('close', closed);
      }
    });
  });
}
