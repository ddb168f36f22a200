import { Command, CommanderError } from 'commander';
import { MeshdError } from '../errors';
import { problemLines, type ConfigProblem } from '../config/problems';
import { redactString } from '../log';
import { EXIT, exitCodeFor } from './exit';
import { writeJson, writeLines } from './output';
import { version } from '../version';
import * as certsCommands from './certs';
import * as configCommands from './config';
import * as demoCommands from './demo';
import * as ledgerCommands from './ledger';
import * as meshCommands from './mesh';
import * as runCommands from './run';
import * as simCommands from './sim';
import * as transformCommands from './transform';
import * as uiCommands from './ui';

/**
 * The command tree. Each group module registers its commands and loads its heavy
 * dependencies lazily inside the action, so `meshd --help` stays fast.
 */
const GROUPS: Array<{ register(program: Command): void }> = [meshCommands, transformCommands, ledgerCommands, runCommands, certsCommands, configCommands, simCommands, demoCommands, uiCommands];

export function buildProgram(): Command {
  const program = new Command('meshd')
    .description('MESH mailbox daemon and CLI: send, receive, track and transform NHS MESH messages')
    .version(version, '-V, --version')
    .option('-c, --config <file>', 'config file (default: $MESHD_CONFIG, then ./config/meshd.yaml)')
    .option('-m, --mailbox <id>', 'mailbox to act for (default: the only mailbox in the config)')
    .option('--json', 'machine-readable output on stdout')
    .option('--log-level <level>', 'error | warn | info | debug')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const group of GROUPS) group.register(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
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
