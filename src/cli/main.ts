import { Command, CommanderError } from 'commander';
import { MeshdError } from '../errors';
import { problemLines, type ConfigProblem } from '../config/problems';
import { redactString } from '../log';
import { EXIT, exitCodeFor } from './exit';
import { writeJson, writeLines } from './output';
import { version } from '../version';

/**
 * The command tree. Each group module registers its commands and loads its heavy
 * dependencies lazily inside the action, so `meshd --help` stays fast. A group module is
 * itself loaded only when its commands are wanted: a command line names one command, and
 * registering all ~30 commands (their modules, commander's objects) cost every `meshd run
 * --once` ~15 ms of its start-up (docs/performance.md, 2. Start-up).
 */
type Group = { register(program: Command): void };
/* eslint-disable @typescript-eslint/no-require-imports -- deliberate: loaded at need, see above */
const GROUPS = {
  mesh: () => require('./mesh') as Group,
  transform: () => require('./transform') as Group,
  ledger: () => require('./ledger') as Group,
  run: () => require('./run') as Group,
  certs: () => require('./certs') as Group,
  config: () => require('./config') as Group,
  sim: () => require('./sim') as Group,
  demo: () => require('./demo') as Group,
  ui: () => require('./ui') as Group,
};
/* eslint-enable @typescript-eslint/no-require-imports */

/** The group that registers each top-level command (test/unit/cli-main.test.ts checks it against the groups). */
export const COMMAND_GROUP: Readonly<Record<string, keyof typeof GROUPS>> = {
  handshake: 'mesh', send: 'mesh', inbox: 'mesh', receive: 'mesh', track: 'mesh', lookup: 'mesh', workflows: 'mesh',
  transform: 'transform', status: 'ledger', ledger: 'ledger', run: 'run', certs: 'certs', config: 'config', sim: 'sim', demo: 'demo', ui: 'ui',
};

/** Before the command, these print the program's help or version: every command is listed. */
const HELP_OPTIONS = new Set(['-h', '--help', '-V', '--version']);
/** The global options that take a value: their value is not the command's name. */
const VALUED_OPTIONS = new Set(['-c', '--config', '-m', '--mailbox', '--log-level']);

/**
 * The top-level command a command line (without node and the script) names, or undefined when
 * it names none we know: help, a typo, nothing. Then every group is registered, so commander's
 * help and its "did you mean" see them all.
 */
export function commandNamed(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--' || HELP_OPTIONS.has(arg)) return undefined;
    if (!arg.startsWith('-')) return Object.hasOwn(COMMAND_GROUP, arg) ? arg : undefined;
    if (VALUED_OPTIONS.has(arg)) i++;
  }
  return undefined;
}

/** The program with every command, or with only the group of `command`. */
export function buildProgram(command?: string): Command {
  const program = new Command('meshd')
    .description('MESH mailbox daemon and CLI: send, receive, track and transform NHS MESH messages')
    .version(version, '-V, --version')
    .option('-c, --config <file>', 'config file (default: $MESHD_CONFIG, then ./config/meshd.yaml)')
    .option('-m, --mailbox <id>', 'mailbox to act for (default: the only mailbox in the config)')
    .option('--json', 'machine-readable output on stdout')
    .option('--log-level <level>', 'error | warn | info | debug')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  const wanted = command === undefined ? Object.values(GROUPS) : [GROUPS[COMMAND_GROUP[command]]];
  for (const load of wanted) load().register(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram(commandNamed(argv.slice(2)));
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version end in a "successful" CommanderError.
      return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    return reportError(err, program.opts().json === true);
  }
}

/** Prints an error for a person (stderr) or a program (stdout JSON) and picks the exit code. */
export function reportError(err: unknown, json: boolean): number {
  const e = err instanceof MeshdError ? err : undefined;
  const message = redactString(err instanceof Error ? err.message : String(err));
  const code = exitCodeFor(e?.kind);
  if (json) {
    writeJson({ error: { code: e?.code ?? 'FAILED', message, hint: e?.hint } });
  }
  // A config error lists its problems one per line: each line is escaped on its own.
  const invalid = (err ?? {}) as { file?: unknown; problems?: ConfigProblem[] };
  const lines =
    Array.isArray(invalid.problems) && typeof invalid.file === 'string'
      ? problemLines(invalid.problems).map((line, i) => redactString(i === 0 ? `meshd: ${invalid.file}: ${line}` : line))
      : [`meshd: ${message}`];
  writeLines(lines, process.stderr);
  if (e?.hint) writeLines(`  what to do: ${e.hint}`, process.stderr);
  // MESHD_DEBUG only: a stack trace is many lines.
  if (!e && process.env.MESHD_DEBUG && err instanceof Error && err.stack) writeLines(redactString(err.stack).split('\n'), process.stderr);
  return code;
}
