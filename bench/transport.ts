import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startSimulator } from '../src/sim';
import { parse, stringify } from '../test/support/yaml';

/**
 * Transport benchmark: a generated CSV-like file sent and received through the simulator over
 * mTLS with gzip, the meshd side as child processes (`meshd send`, `meshd receive`) so their
 * peak RSS can be read; beside it the time of `gzip -6` on the same file. Median of 3 runs
 * (MESHD_BENCH_QUICK=1: 1 run of 32 MiB). Goals: peak RSS ≤ 150 MB; send+receive within 1.0x
 * gzip -6; receive within 2x gzip -d.
 */

const BIN = resolve(__dirname, '..', '..', 'bin', 'meshd.js');
const MiB = 1024 * 1024;
/** MESHD_BENCH_TRANSPORT_MIB: another size (1024 checks peak RSS at 1 GiB). */

interface ProcResult {
  ms: number;
  peakRssKb: number;
  stdout: string;
}

/** Deterministic CSV-like rows (synthetic 999 NHS numbers), written as a stream. */
export async function generateCsv(path: string, bytes: number): Promise<void> {
  let seed = 20261124;
  const rand = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const names = ['SMITH', 'JONES', 'TAYLOR', 'BROWN', 'WILLIAMS', 'WILSON', 'JOHNSON', 'DAVIES', 'PATEL', 'WRIGHT'];
  const given = ['OLIVIA', 'AMELIA', 'ISLA', 'AVA', 'NOAH', 'OLIVER', 'GEORGE', 'ARTHUR', 'MUHAMMAD', 'LEO'];
  const clinics = ['CARDIOLOGY', 'DERMATOLOGY', 'ORTHOPAEDICS', 'DIABETES', 'RESPIRATORY', 'PAEDIATRICS'];
  const out = createWriteStream(path);
  let written = 0;
  const header = 'nhs_number,family_name,given_name,birth_date,postcode,appointment_start,clinic,status\n';
  out.write(header);
  written += header.length;
  while (written < bytes) {
    const lines: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const nhs = `999${String(Math.floor(rand() * 1e7)).padStart(7, '0')}`;
      const dob = `${1930 + Math.floor(rand() * 90)}-${String(1 + Math.floor(rand() * 12)).padStart(2, '0')}-${String(1 + Math.floor(rand() * 28)).padStart(2, '0')}`;
      const pc = `LS${1 + Math.floor(rand() * 28)} ${Math.floor(rand() * 10)}${String.fromCharCode(65 + Math.floor(rand() * 26))}${String.fromCharCode(65 + Math.floor(rand() * 26))}`;
      const at = `2026-${String(1 + Math.floor(rand() * 12)).padStart(2, '0')}-${String(1 + Math.floor(rand() * 28)).padStart(2, '0')}T${String(8 + Math.floor(rand() * 9)).padStart(2, '0')}:${rand() < 0.5 ? '00' : '30'}:00Z`;
      lines.push(`${nhs},${names[Math.floor(rand() * names.length)]},${given[Math.floor(rand() * given.length)]},${dob},${pc},${at},${clinics[Math.floor(rand() * clinics.length)]},${rand() < 0.9 ? 'booked' : 'cancelled'}\n`);
    }
    let block = lines.join('');
    if (written + block.length > bytes) block = block.slice(0, bytes - written);
    written += block.length;
    if (!out.write(block)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((r, j) => out.end((err?: Error | null) => (err ? j(err) : r())));
}

/** Runs a command under /usr/bin/time when present (max RSS), else polls /proc/<pid>/status VmHWM. */
function measure(cmd: string, args: string[], env: NodeJS.ProcessEnv, stdoutFile?: string): Promise<ProcResult> {
  const useTime = existsSync('/usr/bin/time');
  const timeOut = join(tmpdir(), `meshd-bench-time-${process.pid}-${Date.now()}`);
  const argv = useTime ? ['-f', '%M', '-o', timeOut, cmd, ...args] : args;
  const started = process.hrtime.bigint();
  return new Promise((done, fail) => {
    const child = spawn(useTime ? '/usr/bin/time' : cmd, argv, { env, stdio: ['ignore', stdoutFile ? 'pipe' : 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let peak = 0;
    const poll = useTime
      ? undefined
      : setInterval(() => {
          try {
            const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
            if (m) peak = Math.max(peak, Number(m[1]));
          } catch {
            // exited
          }
        }, 20);
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', fail);
    child.on('close', (code) => {
      if (poll) clearInterval(poll);
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (useTime) {
        try {
          peak = Number(readFileSync(timeOut, 'utf8').trim().split('\n').pop());
          rmSync(timeOut, { force: true });
        } catch {
          peak = 0;
        }
      }
      if (code !== 0) return fail(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr.slice(-2000)}`));
      done({ ms, peakRssKb: peak, stdout });
    });
  });
}

async function sha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

function shellTime(command: string): Promise<number> {
  const started = process.hrtime.bigint();
  return new Promise((done, fail) => {
    execFile('sh', ['-c', command], (err) => (err ? fail(err) : done(Number(process.hrtime.bigint() - started) / 1e6)));
  });
}

const gzipTime = (path: string) => shellTime(`gzip -6 -c "${path}" > /dev/null`);
/** gzip -d of the file gzip'd once: what receiving (which gunzips each chunk) is set against. */
const gunzipTime = (gz: string) => shellTime(`gzip -d -c "${gz}" > /dev/null`);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function runTransportBench(): Promise<object> {
  const quick = process.env.MESHD_BENCH_QUICK === '1';
  const sizeBytes = Number(process.env.MESHD_BENCH_TRANSPORT_MIB ?? (quick ? 32 : 256)) * MiB;
  const runs = quick ? 1 : 3;
  const root = mkdtempSync(join(tmpdir(), 'meshd-bench-transport-'));
  const sim = await startSimulator({ dir: join(root, 'sim'), seed: 1, chunkSize: 20 * MiB });
  try {
    const src = join(root, 'payload.csv');
    await generateCsv(src, sizeBytes);
    const srcHash = await sha256(src);
    const gz = `${src}.gz`;
    await shellTime(`gzip -6 -c "${src}" > "${gz}"`);
    const env = { ...process.env, MESHD_LOG_FORMAT: 'json', MESHD_LOG_LEVEL: 'warn' };
    const c1 = sim.client('X26ABC1').configPath;
    const c2 = sim.client('X26ABC2').configPath;

    const send: ProcResult[] = [];
    const receive: ProcResult[] = [];
    const gzip: number[] = [];
    const gunzip: number[] = [];
    for (let i = 0; i < runs; i++) {
      gzip.push(await gzipTime(src));
      gunzip.push(await gunzipTime(gz));
      const s = await measure(process.execPath, [BIN, '--config', c1, '--json', 'send', src, '--to', 'X26ABC2', '--workflow', 'TEST_WORKFLOW'], env);
      send.push(s);
      const id = JSON.parse(s.stdout).messageId as string;
      const outDir = join(root, `in-${i}`);
      // Each run receives as a first receive: on one ledger the same file again is a duplicate, not delivered.
      const recv = join(root, `receiver-${i}.yaml`);
      writeFileSync(recv, stringify({ ...(parse(readFileSync(c2, 'utf8')) as object), dataDir: join(root, `receiver-${i}`) }));
      const r = await measure(process.execPath, [BIN, '--config', recv, '--json', 'receive', '--out', outDir, '--id', id], env);
      receive.push(r);
      const got = await sha256(join(outDir, `${id}.dat`));
      if (got !== srcHash) throw new Error(`run ${i}: received file differs from the sent one`);
      rmSync(outDir, { recursive: true, force: true });
      await sim.reset();
    }
    const sendMs = median(send.map((r) => r.ms));
    const receiveMs = median(receive.map((r) => r.ms));
    const totals = send.map((s, i) => s.ms + receive[i].ms);
    const totalMs = median(totals);
    const gzipMs = median(gzip);
    const peakRssMB = Math.max(...send.map((r) => r.peakRssKb), ...receive.map((r) => r.peakRssKb)) / 1024;
    const ratio = totalMs / gzipMs;
    return {
      name: 'transport',
      sizeMiB: sizeBytes / MiB,
      runs,
      chunkSizeMiB: 20,
      sendMs: Math.round(sendMs),
      receiveMs: Math.round(receiveMs),
      sendPlusReceiveMs: Math.round(totalMs),
      gzip6Ms: Math.round(gzipMs),
      gunzipMs: Math.round(median(gunzip)),
      ratioToGzip6: Number(ratio.toFixed(2)),
      receiveRatioToGunzip: Number((receiveMs / median(gunzip)).toFixed(2)),
      throughputMiBps: Number((sizeBytes / MiB / ((totalMs / 1000) || 1)).toFixed(1)),
      peakRssMB: {
        send: Number((Math.max(...send.map((r) => r.peakRssKb)) / 1024).toFixed(1)),
        receive: Number((Math.max(...receive.map((r) => r.peakRssKb)) / 1024).toFixed(1)),
      },
      goals: { peakRssAtMost150MB: peakRssMB <= 150, sendPlusReceiveWithin1xGzip6: ratio <= 1.0, receiveWithin2xGunzip: receiveMs / median(gunzip) <= 2 },
    };
  } finally {
    await sim.close();
    rmSync(root, { recursive: true, force: true });
  }
}

if (require.main === module) {
  runTransportBench().then(
    (r) => process.stdout.write(JSON.stringify(r, null, 2) + '\n'),
    (err) => {
      process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
