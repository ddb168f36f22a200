import { existsSync, readFileSync } from 'node:fs';
import { basename, isAbsolute, resolve } from 'node:path';
import { registerSecret } from '../log';
import { keyOf, type Problems } from './problems';
import type { Environment } from './types';

/**
 * Secrets are `{ env }`, `{ file }`, `{ credential }` (systemd LoadCredential) or, for the
 * local simulator only, a literal string. The schema has checked the shape (and that the secret
 * is there): `value` is undefined when it is missing or malformed, already reported.
 * Values never appear in problem messages.
 */
export function resolveSecret(
  problems: Problems,
  key: string,
  value: unknown,
  ctx: { configDir: string; environment: Environment; env: NodeJS.ProcessEnv; skipSecrets?: boolean },
): string | undefined {
  // Read-only commands (status, ledger) never use secrets: don't require them to be reachable.
  if (ctx.skipSecrets) return '';
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') {
    if (ctx.environment !== 'local') {
      return problems.add(key, 'a literal secret is allowed only with environment: local; use { env: NAME }, { file: PATH } or { credential: NAME }');
    }
    if (!value) return problems.add(key, 'is empty');
    registerSecret(value);
    return value;
  }
  const forms = value as { env?: string; file?: string; credential?: string };
  let secret: string | undefined;
  if (forms.env !== undefined) {
    secret = ctx.env[forms.env];
    if (!secret) return problems.add(keyOf(key, 'env'), `environment variable ${forms.env} is not set or empty`);
  } else if (forms.file !== undefined) {
    const path = isAbsolute(forms.file) ? forms.file : resolve(ctx.configDir, forms.file);
    secret = readSecretFile(problems, keyOf(key, 'file'), path);
  } else {
    const path = credentialFile(problems, keyOf(key, 'credential'), String(forms.credential), ctx.env);
    secret = path === undefined ? undefined : readSecretFile(problems, keyOf(key, 'credential'), path);
  }
  if (secret === undefined) return undefined;
  registerSecret(secret);
  return secret;
}

/** Where systemd put the credential `name` (LoadCredential=name:…), or undefined with the problem recorded. */
export function credentialFile(problems: Problems, key: string, name: string, env: NodeJS.ProcessEnv): string | undefined {
  const dir = env.CREDENTIALS_DIRECTORY;
  if (!dir) return problems.add(key, 'CREDENTIALS_DIRECTORY is not set (use LoadCredential= in the systemd unit)');
  if (basename(name) !== name) return problems.add(key, 'must be a plain credential name, not a path');
  return resolve(dir, name);
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
