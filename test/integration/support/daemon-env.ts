import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse, stringify } from '../../support/yaml';
import { loadConfig } from '../../../src/config';
import type { MeshdConfig } from '../../../src/config/types';
import { Daemon } from '../../../src/daemon/daemon';
import { silentLogger } from '../../../src/log';
import { startSimulator, type Simulator } from '../../../src/sim';
import { meshPortFor } from '../../../src/transfer/mesh-port';
import { MESHD, runMeshd as runCli, type RunOptions, type RunResult } from '../../support/cli';

export { MESHD, type RunResult };

/** Repo root from dist/test/integration/support. */
export const ROOT = resolve(__dirname, '..', '..', '..', '..');

export const SENDER = 'X26ABC1';
export const RECEIVER = 'X26ABC2';

export interface DaemonEnv {
  dir: string;
  sim: Simulator;
  /** Config files with test tweaks (routes, settle 0, small chunks), per mailbox. */
  configPath: Record<string, string>;
  folder(mailbox: string, sub: 'in' | 'out' | 'sent' | 'failed' | 'temp'): string;
  config(mailbox: string): Promise<MeshdConfig>;
  /** An in-process daemon for one mailbox (close it with daemon.stop()). */
  /** `now` drives the daemon (and, unless clientClock says otherwise, the MESH tokens). */
  daemon(mailbox: string, opts?: { now?: () => Date; clientClock?: () => Date; fastRetries?: boolean }): Promise<Daemon>;
  close(): Promise<void>;
}

export interface EnvOptions {
  chunkSize?: number;
  faults?: string;
  seed?: number;
  /** Extra keys merged into each mailbox entry. */
  mailbox?: Record<string, Record<string, unknown>>;
  /** Extra top-level keys merged into each config. */
  top?: Record<string, unknown>;
  /** Workflow ids the simulator allows besides TEST_WORKFLOW and TEST_WORKFLOW_ACK. */
  workflows?: string[];
}

export async function startDaemonEnv(opts: EnvOptions = {}): Promise<DaemonEnv> {
  const dir = mkdtempSync(join(tmpdir(), 'meshd-daemon-'));
  const sim = await startSimulator({ dir: join(dir, 'sim'), faults: opts.faults, seed: opts.seed ?? 1, workflows: opts.workflows });
  const configPath: Record<string, string> = {};
  for (const mb of [SENDER, RECEIVER]) {
    const doc = parse(readFileSync(sim.client(mb).configPath, 'utf8'));
    doc.transfer = { ...(doc.transfer ?? {}), chunkSize: opts.chunkSize ?? 64 * 1024 };
    doc.schedule = { ...(doc.schedule ?? {}), settleSeconds: 0 };
    doc.retry = { attempts: 4, initialDelayMs: 10, maxDelayMs: 50, maxTotalMs: 5000 };
    Object.assign(doc, opts.top ?? {});
    Object.assign(doc.mailboxes[0], opts.mailbox?.[mb] ?? {});
    configPath[mb] = join(dir, `${mb}.yaml`);
    writeFileSync(configPath[mb], stringify(doc));
  }
  const folder = (mb: string, sub: string) => join(sim.dir, 'mailboxes', mb, sub);
  const config = (mb: string) => loadConfig(configPath[mb]);
  return {
    dir,
    sim,
    configPath,
    folder,
    config,
    async daemon(mb, o = {}) {
      const cfg = await config(mb);
      const overrides = { clock: o.clientClock ?? o.now, ...(o.fastRetries ? { sleep: async () => undefined } : {}) };
      return Daemon.open(cfg, { log: silentLogger, now: o.now, meshFor: (m) => meshPortFor(cfg, m.id, silentLogger, overrides) });
    },
    async close() {
      await sim.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Writes a file into out/ with an mtime in the past, as if it had been there a while. */
export function dropFile(dir: string, name: string, content: string | Buffer, ageMs = 60_000): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  writeFileSync(path, content);
  const t = new Date(Date.now() - ageMs);
  utimesSync(path, t, t);
  return path;
}

export function controlFile(to: string, workflow: string, extra = ''): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<DTSControl><MessageType>Data</MessageType><To_DTS>${to}</To_DTS><WorkflowId>${workflow}</WorkflowId>${extra}</DTSControl>\n`;
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The CLI as a process, with JSON logs (the tests read log events from stderr). */
export function runMeshd(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return runCli(args, { ...opts, env: { MESHD_LOG_FORMAT: 'json', ...opts.env } });
}
