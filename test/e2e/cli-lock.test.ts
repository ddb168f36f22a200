import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { MESHD, RECEIVER, runMeshd, startDaemonEnv, type DaemonEnv } from '../integration/support/daemon-env';

/** Starts `meshd run` and resolves once it logs DAEMON_STARTED (it holds the lock by then). */
function startDaemon(configPath: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [MESHD, '--config', configPath, 'run'], { env: { ...process.env, MESHD_LOG_FORMAT: 'json' }, stdio: ['ignore', 'ignore', 'pipe'] });
  return new Promise((resolve, reject) => {
    let stderr = '';
    child.stderr!.on('data', (d) => {
      stderr += d;
      if (stderr.includes('"DAEMON_STARTED"')) resolve(child);
    });
    child.on('exit', (code) => reject(new Error(`meshd run exited ${code} before starting: ${stderr}`)));
  });
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
}

describe('single instance lock (two real processes)', function () {
  this.timeout(60_000);
  let env: DaemonEnv;
  let first: ChildProcess | undefined;
  before(async () => {
    env = await startDaemonEnv();
  });
  afterEach(async () => {
    if (first && first.exitCode === null && first.signalCode === null) {
      first.kill('SIGKILL');
      await exited(first);
    }
  });
  after(async () => env?.close());

  it('cannot be renamed away: a second meshd run is refused after every file in the data dir is moved', async () => {
    first = await startDaemon(env.configPath[RECEIVER]);
    const dataDir = (await env.config(RECEIVER)).dataDir;
    // The attack on a lock file: move it aside (was: mv meshd.lock meshd.lock.moved).
    for (const name of readdirSync(dataDir)) renameSync(join(dataDir, name), join(dataDir, `${name}.moved`));
    const second = await runMeshd(['--config', env.configPath[RECEIVER], '--json', 'run', '--once']);
    expect(second.code, second.stderr).to.equal(3);
    expect(JSON.parse(second.stdout).error.code).to.equal('ALREADY_RUNNING');
    // Put the data dir back: a ledger missing beside other files is refused at start (LEDGER_MISSING).
    for (const name of readdirSync(dataDir)) if (name.endsWith('.moved')) renameSync(join(dataDir, name), join(dataDir, name.slice(0, -'.moved'.length)));
  });

  it('is released by the kernel when the daemon is killed with SIGKILL', async () => {
    first = await startDaemon(env.configPath[RECEIVER]);
    first.kill('SIGKILL');
    await exited(first);
    const next = await runMeshd(['--config', env.configPath[RECEIVER], 'run', '--once']);
    expect(next.code, next.stderr).to.equal(0);
  });

  it('refuses to start without a lock when flock(1) cannot be run, naming it', async () => {
    const r = await runMeshd(['--config', env.configPath[RECEIVER], '--json', 'run', '--once'], { env: { PATH: '/nonexistent' } });
    expect(r.code, r.stderr).to.equal(3);
    const error = JSON.parse(r.stdout).error;
    expect(error.code).to.equal('LOCK_FAILED');
    expect(error.hint).to.include('flock');
  });
});
