import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { dump } from 'js-yaml';
import { writeAtomic } from './pki';
import type { SimPki } from './pki';
import type { SimSecrets } from './secrets';

/**
 * Writes a complete meshd config per mailbox to `<dir>/clients/<MAILBOX>.yaml`, following
 * the shared config contract: block YAML, absolute paths, environment local, secrets by file.
 * Rewritten on every start because the port may change.
 */
export const DEFAULT_CHUNK_SIZE = 20 * 1024 * 1024;

export interface ClientConfigInput {
  dir: string;
  url: string;
  mailbox: string;
  pki: SimPki;
  secrets: SimSecrets;
  chunkSize?: number;
}

export function clientConfig(input: ClientConfigInput): Record<string, unknown> {
  const { dir, mailbox, pki, secrets } = input;
  return {
    environment: 'local',
    url: input.url,
    sharedKey: { file: secrets.sharedKeyFile },
    tls: { ca: pki.ca, cert: pki.clients[mailbox].cert, key: pki.clients[mailbox].key },
    dataDir: join(dir, 'var', mailbox),
    transfer: { chunkSize: input.chunkSize ?? DEFAULT_CHUNK_SIZE, compress: true },
    schedule: { poll: '*/5 * * * *' },
    mailboxes: [{ id: mailbox, password: { file: secrets.passwords[mailbox].file }, folder: join(dir, 'mailboxes', mailbox) }],
  };
}

export async function writeClientConfigs(input: Omit<ClientConfigInput, 'mailbox'>, mailboxes: string[]): Promise<Record<string, string>> {
  const clientsDir = join(input.dir, 'clients');
  await mkdir(clientsDir, { recursive: true, mode: 0o700 });
  const paths: Record<string, string> = {};
  for (const mailbox of mailboxes) {
    await mkdir(join(input.dir, 'mailboxes', mailbox), { recursive: true, mode: 0o750 }); // as the daemon makes them: not for every local user
    await mkdir(join(input.dir, 'var', mailbox), { recursive: true, mode: 0o700 }); // ledger lives here: private
    const path = join(clientsDir, `${mailbox}.yaml`);
    const text = `# meshd config for simulated mailbox ${mailbox}; written by \`meshd sim\` on each start.\n` + dump(clientConfig({ ...input, mailbox }));
    await writeAtomic(path, text, 0o600);
    paths[mailbox] = path;
  }
  return paths;
}
