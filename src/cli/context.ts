import type { Command } from 'commander';
import type { MailboxConfig, MeshdConfig } from '../config/types';
import { MeshdError } from '../errors';
import type { Logger, LogLevel } from '../log';
import { printer } from './output';

/**
 * What every MESH command needs from the global options (--config, --mailbox, --json,
 * --log-level): the loaded config, the chosen mailbox, a logger on stderr, and `print`
 * which writes the result to stdout as JSON or as text for a person.
 */
export interface CliContext {
  config: MeshdConfig;
  mailbox: MailboxConfig;
  json: boolean;
  log: Logger;
  /** humanText: one element per line; control characters in it are escaped. */
  print(result: unknown, humanText: string | string[]): void;
}

const LEVELS: LogLevel[] = ['error', 'warn', 'info', 'debug'];

export async function cliContext(cmd: Command): Promise<CliContext> {
  const g = cmd.optsWithGlobals() as { config?: string; mailbox?: string; json?: boolean; logLevel?: string };
  if (g.logLevel !== undefined && !LEVELS.includes(g.logLevel as LogLevel)) {
    throw new MeshdError('USAGE', `--log-level must be one of ${LEVELS.join(', ')}`, undefined, 'usage');
  }
  // Loaded here, not at the top, so `meshd --help` does not pay for yaml and winston.
  const { findConfigPath, loadConfig, selectMailbox } = await import('../config');
  const { createLogger } = await import('../log');
  const config = await loadConfig(findConfigPath(g.config));
  const mailbox = selectMailbox(config, g.mailbox);
  const json = g.json === true;
  const envLevel = LEVELS.find((l) => l === process.env.MESHD_LOG_LEVEL);
  const log = createLogger({
    // --log-level, then $MESHD_LOG_LEVEL (handy under a wrapper), then the config file.
    level: (g.logLevel as LogLevel | undefined) ?? envLevel ?? config.log.level,
    format: config.log.format === 'auto' ? undefined : config.log.format,
  }).child({ mailbox: mailbox.id });
  return { config, mailbox, json, log, print: printer(json) };
}
