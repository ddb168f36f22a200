import { spawn } from 'node:child_process';
import { closeSync, fsyncSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse, stringify } from '../test/support/yaml';
import { startSimulator } from '../src/sim';
import { fsyncDirSync, stepsSync } from './file-steps';

/**
 * Daemon throughput: N small (2 KB) messages sent, then received, by `meshd run --once`
 * child processes against the simulator (this process), with the ledger and fsync'd files.
 * Beside it, measured in the same run for scale: the disk's raw fsync rate, its raw rate of new
 * durable files, and the simulator's raw HTTPS request rate, with meshd's rates as a fraction of
 * each; and the CPU each message cost meshd and the simulator, with the rate the machine's cores
 * allow at that cost. Goal:
 * ≥ 1,000/s each way.
 * MESHD_BENCH_PAYLOAD=hl7 sends HL7 v2 instead of plain text (the receiver's guarded path).
 */
const MESHD = resolve(__dirname, '..', '..', 'bin', 'meshd.js');
/** MESHD_BENCH_PROFILE=<dir>: each `meshd run --once` writes a CPU profile there (`node --cpu-prof`). */
const PROFILE = process.env.MESHD_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.MESHD_BENCH_PROFILE}`] : [];

/** One `meshd` child: wall time, and the CPU time (user + system, all threads) of the child and of this process (the simulator). */
export interface RunResult {
  ms: number;
  code: number | null;
  stderr: string;
  meshdCpuMs: number | undefined;
  simulatorCpuMs: number;
}

function run(args: string[]): Promise<RunResult> {
  const t0 = process.hrtime.bigint();
  const sim0 = process.cpuUsage();
  const children0 = childrenCpuMs();
  return new Promise((res) => {
    const child = spawn(process.execPath, [...PROFILE, MESHD, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, MESHD_LOG_LEVEL: 'warn' } });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => {
      const sim = process.cpuUsage(sim0);
      const children1 = childrenCpuMs();
      res({
        ms: Number(process.hrtime.bigint() - t0) / 1e6,
        code,
        stderr,
        meshdCpuMs: children0 === undefined || children1 === undefined ? undefined : children1 - children0,
        simulatorCpuMs: (sim.user + sim.system) / 1000,
      });
    });
  });
}

/**
 * CPU time of this process's finished children (Linux: cutime + cstime of /proc/self/stat, in
 * clock ticks of 10 ms), so a child's CPU is known without wrapping it in time(1). Only one child
 * runs at a time here, so the difference across a run is that child's.
 */
function childrenCpuMs(): number | undefined {
  try {
    // Fields after the command name, which is in parentheses and may hold spaces: cutime and cstime are the 14th and 15th.
    const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
    return (Number(fields[13]) + Number(fields[14])) * 10;
  } catch {
    return undefined;
  }
}

/**
 * CPU per message of one side, meshd's and the simulator's, and the rate the machine's cores
 * could give if that CPU were all that limited it: what 1,000/s would need is then plain.
 */
export function cpuPerMessage(r: RunResult, count: number): Record<string, number> | undefined {
  if (r.meshdCpuMs === undefined) return undefined;
  const meshd = r.meshdCpuMs / count;
  const simulator = r.simulatorCpuMs / count;
  const cores = availableParallelism();
  return {
    meshdMs: +meshd.toFixed(2),
    simulatorMs: +simulator.toFixed(2),
    ceilingPerSecond: Math.round((cores * 1000) / (meshd + simulator)),
    meshdAloneCeilingPerSecond: Math.round((cores * 1000) / meshd),
  };
}

/** 4 KiB write + fsync in a loop for `ms`: the disk's raw durable-write rate. */
function fsyncRate(dir: string, ms = 2000): number {
  const file = join(dir, 'fsync-probe');
  const fd = openSync(file, 'w');
  const block = Buffer.alloc(4096, 1);
  let n = 0;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    writeSync(fd, block, 0, block.length, 0);
    fsyncSync(fd);
    n++;
  }
  closeSync(fd);
  rmSync(file);
  return n / (ms / 1000);
}

/**
 * The disk's raw rate of new durable files, in a new folder of `dir`: `count` files each taken
 * through a received file's steps (bench/file-steps.ts: created exclusively, 2 KB written,
 * fsync'd, renamed into place, made 0640, closed, checked), then one fsync of the folder. Unlike
 * `fsyncRate`, each file is a new inode, which a message costs meshd once sent and twice received.
 * On ext4 without a journal, creating a file skips every inode of its block group freed in the
 * last 60–360 s, so this rate falls after a mass deletion (a test run, an earlier benchmark's
 * clean-up) and recovers minutes later (docs/performance.md §1, stop 35). The files are left for
 * the benchmark's clean-up: deleting them would slow what follows.
 */
function createRate(dir: string, count = 500): { perSecond: number; cpuMicros: number } {
  const folder = mkdtempSync(join(dir, 'create-probe-'));
  const data = Buffer.alloc(2048, 1);
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) stepsSync(folder, i, data);
  fsyncDirSync(folder);
  const cpu = process.cpuUsage(cpu0);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  return { perSecond: Math.round((count / ms) * 1000), cpuMicros: Math.round((cpu.user + cpu.system) / count) };
}

/**
 * The simulator's raw request rate for `ms`: GET _ping over keep-alive mTLS, 16 at a time (as
 * many as meshd's uploads), no meshd code in the way. What no meshd send can beat.
 */
async function rawHttpsRate(url: string, tls: { ca: Buffer; cert: Buffer; key: Buffer }, ms = 2000): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: 16, ...tls });
  let n = 0;
  const end = Date.now() + ms;
  const one = () =>
    new Promise<void>((res, rej) => {
      const req = httpsRequest(`${url}/messageexchange/_ping`, { agent }, (r) => {
        r.resume();
        r.on('end', () => res());
      });
      req.on('error', rej);
      req.end();
    });
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (Date.now() < end) {
        await one();
        n++;
      }
    }),
  );
  agent.destroy();
  return n / (ms / 1000);
}

/**
 * A 2 KB payload, numbered: plain text (nothing parses it), or an HL7 v2 ADT^A04 with its own
 * MSH-10 (read for its business id on both sides; the receiver parses it one at a time under the
 * poison guard, docs/architecture.md).
 */
function smallPayload(kind: 'text' | 'hl7', i: number): Buffer {
  const n = String(i).padStart(8, '0');
  if (kind === 'text') {
    const body = Buffer.alloc(2048, 'x');
    body.write(`${n}\n`, 0);
    return body;
  }
  const head = `MSH|^~\\&|BENCH|X26ABC1|MESHD|X26ABC2|20261201120000||ADT^A04^ADT_A01|BENCH${n}|P|2.4\rEVN|A04|20261201120000\rPID|1||9990000${n.slice(-3)}^^^NHS^NH||SYNTHETIC^PATIENT${n}||19800101|U\r`;
  return Buffer.from(head + `NTE|1||${'x'.repeat(Math.max(0, 2048 - head.length - 10))}\r`, 'latin1');
}

/**
 * Two mailboxes on a fresh simulator; `count` 2 KB files in the sender's out/ (`payload`: plain
 * text, the default, or HL7 v2); `ledger` sets each config's ledger section.
 */
export async function smallMessageSetup(count: number, ledger?: (mailbox: string) => Promise<Record<string, unknown>>, payload: 'text' | 'hl7' = 'text') {
  const dir = mkdtempSync(join(tmpdir(), 'meshd-bench-daemon-'));
  const sim = await startSimulator({ dir: join(dir, 'sim') });
  const configs: Record<string, string> = {};
  for (const mb of ['X26ABC1', 'X26ABC2']) {
    const doc = parse(readFileSync(sim.client(mb).configPath, 'utf8'));
    doc.schedule = { ...(doc.schedule ?? {}), settleSeconds: 0 };
    doc.log = { level: 'warn' };
    if (ledger) doc.ledger = { ...(doc.ledger ?? {}), ...(await ledger(mb)) };
    if (mb === 'X26ABC1') doc.mailboxes[0].routes = [{ direction: 'out', match: '*.txt', to: 'X26ABC2', workflow: 'TEST_WORKFLOW' }];
    configs[mb] = join(dir, `${mb}.yaml`);
    writeFileSync(configs[mb], stringify(doc));
  }
  const out = join(sim.dir, 'mailboxes', 'X26ABC1', 'out');
  mkdirSync(out, { recursive: true });
  for (let i = 0; i < count; i++) writeFileSync(join(out, `m${i}.txt`), smallPayload(payload, i));
  /** One `run --once` on each side: the sends, then the receives. */
  const sendAndReceive = async () => {
    const send = await run(['--config', configs.X26ABC1, 'run', '--once']);
    if (send.code !== 0) throw new Error(`send run failed: ${send.stderr.slice(-500)}`);
    const receive = await run(['--config', configs.X26ABC2, 'run', '--once']);
    if (receive.code !== 0) throw new Error(`receive run failed: ${receive.stderr.slice(-500)}`);
    return { send, receive, delivered: sim.messages().filter((m) => m.status === 'acknowledged').length };
  };
  const close = async () => {
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  };
  return { dir, sim, configs, sendAndReceive, close };
}

export async function runDaemonBench(
  count = Number(process.env.MESHD_BENCH_MESSAGES ?? 10_000),
  payload: 'text' | 'hl7' = process.env.MESHD_BENCH_PAYLOAD === 'hl7' ? 'hl7' : 'text',
): Promise<Record<string, unknown>> {
  const { dir, sim, configs, sendAndReceive, close } = await smallMessageSetup(count, undefined, payload);
  try {
    const rawFsync = fsyncRate(dir);
    const c1 = parse(readFileSync(configs.X26ABC1, 'utf8'));
    const rawHttps = await rawHttpsRate(sim.url, { ca: readFileSync(c1.tls.ca), cert: readFileSync(c1.tls.cert), key: readFileSync(c1.tls.key) });
    // Measured just before the run: what creating a file costs on this disk at this moment.
    const rawCreate = createRate(dir);
    const { send, receive, delivered } = await sendAndReceive();
    const ledgerBytes = (mb: string) => {
      const db = join(sim.dir, 'var', mb, 'meshd.db');
      let size = 0;
      for (const suffix of ['', '-wal']) {
        try {
          size += statSync(db + suffix).size;
        } catch {
          /* no WAL left */
        }
      }
      return size;
    };
    return {
      messages: count,
      payload,
      delivered,
      sendPerSecond: Math.round(count / (send.ms / 1000)),
      receivePerSecond: Math.round(count / (receive.ms / 1000)),
      sendSeconds: +(send.ms / 1000).toFixed(2),
      receiveSeconds: +(receive.ms / 1000).toFixed(2),
      ledgerBytesSender: ledgerBytes('X26ABC1'),
      ledgerBytesReceiver: ledgerBytes('X26ABC2'),
      rawFsyncPerSecond: Math.round(rawFsync),
      rawHttpsPerSecond: Math.round(rawHttps),
      rawCreatePerSecond: rawCreate.perSecond,
      rawCreateCpuMicros: rawCreate.cpuMicros,
      // meshd's rates as a share of what this machine can do at all, measured in the same run.
      sendFractionOfRawHttps: +(count / (send.ms / 1000) / rawHttps).toFixed(2),
      sendFractionOfFsync: +(count / (send.ms / 1000) / rawFsync).toFixed(2),
      receiveFractionOfFsync: +(count / (receive.ms / 1000) / rawFsync).toFixed(2),
      // A message sent makes one new file (its control file), a message received two (payload, control file).
      sendFractionOfCreate: +(count / (send.ms / 1000) / rawCreate.perSecond).toFixed(2),
      receiveFractionOfCreate: +((2 * count) / (receive.ms / 1000) / rawCreate.perSecond).toFixed(2),
      // CPU per message of meshd (the child, all its threads) and of the simulator (this process),
      // and the rates this machine's cores would allow at that cost: ceilingPerSecond with the
      // simulator sharing the cores, meshdAloneCeilingPerSecond with a MESH that costs nothing.
      cores: availableParallelism(),
      sendCpu: cpuPerMessage(send, count),
      receiveCpu: cpuPerMessage(receive, count),
      goals: { send1000PerSecond: count / (send.ms / 1000) >= 1000, receive1000PerSecond: count / (receive.ms / 1000) >= 1000 },
    };
  } finally {
    await close();
  }
}

if (require.main === module) {
  runDaemonBench().then((r) => console.log(JSON.stringify(r, null, 2)), (e) => {
    console.error(e);
    process.exit(1);
  });
}
