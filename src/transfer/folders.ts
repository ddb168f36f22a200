import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../log';
import { removeTempDebris } from '../safe-fs';

/**
 * A mailbox folder as the Java MESH Client lays it out: in/ out/ sent/ failed/ temp/.
 * Linux installs of the Java client sometimes use upper-case names (IN, OUT, …); an
 * existing folder's case is kept so meshd can take over such a tree unchanged.
 */
export interface MailboxFolders {
  root: string;
  in: string;
  out: string;
  sent: string;
  failed: string;
  temp: string;
}

const NAMES = ['in', 'out', 'sent', 'failed', 'temp'] as const;

export async function prepareFolders(root: string): Promise<MailboxFolders> {
  await fs.mkdir(root, { recursive: true, mode: 0o750 });
  const present = new Set(await fs.readdir(root));
  const folders = { root } as MailboxFolders;
  for (const name of NAMES) {
    const chosen = !present.has(name) && present.has(name.toUpperCase()) ? name.toUpperCase() : name;
    folders[name] = join(root, chosen);
    await fs.mkdir(folders[name], { recursive: true, mode: 0o750 });
  }
  return folders;
}

/**
 * Removes what a killed run left half-written in the folders meshd writes (in/, sent/, failed/):
 * hidden temp files a rename never completed. out/ is the users' folder and temp/ is the
 * ledger's (recovery moves unowned files there aside); neither is touched.
 */
export async function removeWriteDebris(folders: MailboxFolders, log: Logger): Promise<void> {
  for (const dir of [folders.in, folders.sent, folders.failed]) {
    for (const file of await removeTempDebris(dir)) log.info('TEMP_DEBRIS_REMOVED', 'removed a temp file a stopped run left half-written', { folder: dir, file });
  }
}

/** Converts a shell-style glob (`*`, `?`, `[abc]`) on a file name to a RegExp. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        const body = glob.slice(i + 1, end).replace(/\\/g, '\\\\');
        re += `[${body.startsWith('!') ? '^' + body.slice(1) : body}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Names meshd never takes from out/: hidden files and the usual in-progress suffixes. */
export function isInProgressName(name: string): boolean {
  return name.startsWith('.') || /\.(tmp|part|partial|filepart|crdownload)$/i.test(name) || name.endsWith('~');
}
