import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { ConfigError, MeshdError } from '../errors';
import { problemLines, type ConfigProblem } from './problems';
import { validateConfig } from './validate';
import type { MailboxConfig, MeshdConfig } from './types';

export type { Environment, MailboxConfig, MeshdConfig, RouteConfig, TlsConfig, TransferConfig, RetryConfig } from './types';
export type { ConfigProblem } from './problems';
export { parseSize } from './size';
export { ENVIRONMENT_URL, MAX_CHUNK_SIZE } from './presets';

/** Every problem in a config file, one line each; `key` is the file path. */
export class ConfigInvalidError extends ConfigError {
  constructor(
    readonly file: string,
    readonly problems: ConfigProblem[],
  ) {
    super(
      file,
      problemLines(problems).join('\n'),
      'fix the keys listed and run `meshd config check`',
    );
  }
}

/** Reads, validates and resolves a config file. Throws ConfigError listing every problem. */
export async function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env, opts: { skipSecrets?: boolean } = {}): Promise<MeshdConfig> {
  const configPath = resolve(path);
  let text: string;
  try {
    text = await readFile(configPath, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(configPath, code === 'ENOENT' ? 'config file does not exist' : `cannot read config file (${code ?? 'error'})`, 'pass --config <file> or set $MESHD_CONFIG');
  }
  const raw = parseYaml(configPath, text);
  const { config, problems } = validateConfig(raw, { configPath, configDir: dirname(configPath), env, skipSecrets: opts.skipSecrets });
  if (problems.list.length > 0) throw new ConfigInvalidError(configPath, problems.list);
  return config;
}

/**
 * The config's one YAML document (null when the file holds none). js-yaml rather than the yaml
 * package: one file to load instead of 72, ~30 ms less at every start (docs/performance.md §2).
 * Duplicate keys are refused; aliases are capped, as yaml capped them, against alias bombs.
 */
export function parseYaml(configPath: string, text: string): unknown {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { loadAll } = require('js-yaml') as typeof import('js-yaml');
  let docs: unknown[];
  try {
    docs = loadAll(text, { maxAliases: 100 });
  } catch (err) {
    // Only the reason and the position: the exception also carries the text, secrets and all.
    const { reason, mark } = err as { reason?: string; mark?: { line: number; column: number } };
    const where = mark ? ` at line ${mark.line + 1}, column ${mark.column + 1}` : '';
    throw new ConfigError(configPath, `not valid YAML${where}: ${reason ?? 'cannot be parsed'}`, 'fix the YAML syntax');
  }
  if (docs.length > 1) throw new ConfigError(configPath, `holds ${docs.length} YAML documents (separated by ---); a config is one`, 'keep one document in the file');
  return docs[0] ?? null;
}

/** --config, then $MESHD_CONFIG, then ./config/meshd.yaml; the error says which were tried. */
export function findConfigPath(explicit?: string, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  const tried: string[] = [];
  if (explicit) {
    const p = resolve(cwd, explicit);
    if (existsSync(p)) return p;
    throw new ConfigError('--config', `${p} does not exist`, 'check the path given to --config');
  }
  if (env.MESHD_CONFIG) {
    const p = resolve(cwd, env.MESHD_CONFIG);
    if (existsSync(p)) return p;
    throw new ConfigError('$MESHD_CONFIG', `${p} does not exist`, 'fix MESHD_CONFIG or pass --config <file>');
  }
  tried.push('--config (not given)', '$MESHD_CONFIG (not set)');
  const fallback = resolve(cwd, 'config', 'meshd.yaml');
  if (existsSync(fallback)) return fallback;
  tried.push(fallback);
  throw new ConfigError('config', `no config file found; tried ${tried.join(', ')}`, 'pass --config <file>, set $MESHD_CONFIG, or create ./config/meshd.yaml (see config/local.yaml)');
}

/** The mailbox to act for: the one named, or the only one. */
export function selectMailbox(config: MeshdConfig, id?: string): MailboxConfig {
  if (id) {
    const mb = config.mailboxes.find((m) => m.id === id.toUpperCase());
    if (!mb) throw new ConfigError('mailboxes', `mailbox ${id.toUpperCase()} is not in ${config.configPath}`, `use one of: ${config.mailboxes.map((m) => m.id).join(', ')}`);
    return mb;
  }
  if (config.mailboxes.length === 1) return config.mailboxes[0];
  throw new MeshdError(
    'MAILBOX_REQUIRED',
    `the config has ${config.mailboxes.length} mailboxes; choose one`,
    `pass --mailbox with one of: ${config.mailboxes.map((m) => m.id).join(', ')}`,
    'usage',
  );
}
