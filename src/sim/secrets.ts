import { randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeAtomic } from './pki';

/**
 * The shared key and one password per mailbox: random, made once, kept in 0600 files under
 * `<dir>/secrets` so a restarted simulator (and the configs that point at the files) keep working.
 */
export interface SimSecrets {
  sharedKey: string;
  sharedKeyFile: string;
  passwords: Record<string, { value: string; file: string }>;
}

export async function ensureSimSecrets(dir: string, mailboxes: string[]): Promise<SimSecrets> {
  const secretsDir = join(dir, 'secrets');
  await mkdir(secretsDir, { recursive: true, mode: 0o700 });
  const sharedKeyFile = join(secretsDir, 'shared.key');
  const sharedKey = await readOrCreate(sharedKeyFile);
  const passwords: SimSecrets['passwords'] = {};
  for (const mailbox of mailboxes) {
    const file = join(secretsDir, `${mailbox}.password`);
    passwords[mailbox] = { value: await readOrCreate(file), file };
  }
  return { sharedKey, sharedKeyFile, passwords };
}

async function readOrCreate(file: string): Promise<string> {
  try {
    const value = (await readFile(file, 'utf8')).trim();
    if (value) return value;
  } catch {
    // missing: make one below
  }
  const value = randomBytes(18).toString('base64url');
  // No trailing newline: the value is exactly the file's content.
  await writeAtomic(file, value, 0o600);
  return value;
}
