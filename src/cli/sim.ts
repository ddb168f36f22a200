import type { Command } from 'commander';
import { MeshdError } from '../errors';
import { writeJson, writeLines } from './output';

/**
 * `meshd sim`: a local MESH simulator (HTTPS + mutual TLS) with its own CA, certificates,
 * secrets and ready-to-use client configs. src/sim is loaded inside the action so
 * `meshd --help` stays fast.
 */

interface SimCliOptions {
  port: string;
  dir: string;
  mailboxes: string;
  workflows?: string;
  faults?: string;
  seed: string;
}

function integer(name: string, value: string, min: number, max: number): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!(n >= min && n <= max)) throw new MeshdError('SIM_BAD_ARGUMENT', `--${name} must be an integer from ${min} to ${max}, got "${value}"`, undefined, 'usage');
  return n;
}

function list(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

export function register(program: Command): void {
  program
    .command('sim')
    .description('run a local MESH simulator (HTTPS, mutual TLS, MESH API v2) with its own certificates and ready client configs')
    .option('--port <port>', 'port to listen on (127.0.0.1)', '8700')
    .option('--dir <dir>', 'state folder: pki/, secrets/, clients/<MAILBOX>.yaml, store/', './sim')
    .option('--mailboxes <ids>', 'comma-separated mailbox ids to simulate', 'X26ABC1,X26ABC2')
    .option('--workflows <ids>', 'extra workflow ids every mailbox may use (TEST_WORKFLOW, TEST_WORKFLOW_ACK always allowed)')
    .option('--faults <spec>', 'fault injection, e.g. "send:503=0.1,download:reset=0.1,*:latency=20" (docs/simulator.md)')
    .option('--seed <n>', 'seed for fault injection', '1')
    .action(async (opts: SimCliOptions, cmd: Command) => {
      const globals = cmd.optsWithGlobals() as { json?: boolean; logLevel?: string };
      const json = globals.json === true;
      const port = integer('port', opts.port, 0, 65535);
      const seed = integer('seed', opts.seed, 0, 2 ** 32 - 1);
      const { startSimulator } = await import('../sim');
      const { createLogger } = await import('../log');
      const level = globals.logLevel === 'error' || globals.logLevel === 'warn' || globals.logLevel === 'debug' ? globals.logLevel : 'info';
      const logger = createLogger({ level });
      const mailboxes = list(opts.mailboxes) ?? [];
      // Listen for the stop signals before announcing, so a caller that stops us as soon as it
      // reads the announcement cannot race the handler.
      const stopped = new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      const sim = await startSimulator({ dir: opts.dir, port, mailboxes, workflows: list(opts.workflows), faults: opts.faults, seed, logger });
      const configs = Object.fromEntries(mailboxes.map((mb) => [mb.toUpperCase(), sim.client(mb).configPath]));
      if (json) {
        writeJson({ url: sim.url, port: sim.port, dir: sim.dir, ca: sim.pki.ca, configs });
      } else {
        writeLines([`MESH simulator listening at ${sim.url}`, `CA certificate: ${sim.pki.ca}`, ...Object.entries(configs).map(([mb, path]) => `config for ${mb}: ${path}`), 'Press Ctrl+C to stop.']);
      }
      await stopped;
      await sim.close();
      if (!json) writeLines('MESH simulator stopped');
    });
}
