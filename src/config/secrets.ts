import { existsSync, readFileSync } from 'node:fs';
import { basename, isAbsolute, resolve } from 'node:path';
import { registerSecret } from '../log';
import { isObject, keyOf, type Problems } from './problems';
import type { Environment } from './types';

/**
 * Secrets are `{ env }`, `{ file }`, `{ credential }` (systemd LoadCredential) or, for the
 * local simulator only, a literal string. Values never appear in problem messages.
 */
export function resolveSecret(
  problems: Problems,
  key: string,
  value: unknown,
  ctx: { configDir: string; environment: Environment; env: NodeJS.ProcessEnv; skipSecrets?: boolean },
): string | undefined {
  // Read-only commands (status, ledger) never use secrets: don't require them to be reachable.
  if (ctx.skipSecrets) return '';
  if (value === undefined || value === null) return problems.add(key, 'is required (a secret: { env: NAME }, { file: PATH } or { credential: NAME })');
  if (typeof value === 'string') {
    if (ctx.environment !== 'local') {
      return problems.add(key, 'a literal secret is allowed only with environment: local; use { env: NAME }, { file: PATH } or { credential: NAME }');
    }
    if (!value) return problems.add(key, 'is empty');
    registerSecret(value);
    return value;
  }
  if (!isObject(value)) return problems.add(key, 'must be { env: NAME }, { file: PATH } or { credential: NAME }');
  const forms = Object.keys(value);
  const known = ['env', 'file', 'credential'];
  for (const k of forms) if (!known.includes(k)) problems.add(keyOf(key, k), 'unknown key (expected one of env, file, credential)');
  const chosen = forms.filter((k) => known.includes(k));
  if (chosen.length !== 1) return problems.add(key, 'must have exactly one of env, file, credential');
  const form = chosen[0];
  const ref = value[form];
  if (typeof ref !== 'string' || !ref) return problems.add(keyOf(key, form), 'must be a non-empty string');
  let secret: string | undefined;
  if (form === 'env') {
    secret = ctx.env[ref];
    if (!secret) return problems.add(keyOf(key, 'env'), `environment variable ${ref} is not set or empty`);
  } else if (form === 'file') {
    const path = isAbsolute(ref) ? ref : resolve(ctx.configDir, ref);
    secret = readSecretFile(problems, keyOf(key, 'file'), path);
  } else {
    const dir = ctx.env.CREDENTIALS_DIRECTORY;
    if (!dir) return problems.add(keyOf(key, 'credential'), 'CREDENTIALS_DIRECTORY is not set (use LoadCredential= in the systemd unit)');
    if (basename(ref) !== ref) return problems.add(keyOf(key, 'credential'), 'must be a plain credential name, not a path');
    secret = readSecretFile(problems, keyOf(key, 'credential'), resolve(dir, ref));
  }
  if (secret === undefined) return undefined;
  registerSecret(secret);
  return secret;
}

function readSecretFile(problems: Problems, key: string, path: string): string | undefined {
  if (!existsSync(path)) return problems.add(key, `file ${path} does not exist`);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return problems.add(key, `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  // Editors and `echo` add a trailing newline that is not part of the secret.
  const secret = text.replace(/\r?\n+$/, '');
  if (!secret) return problems.add(key, `file ${path} is empty`);
  return secret;
}
