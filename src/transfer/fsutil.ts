import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * File operations that survive a crash at any moment: nothing half-written ever appears
 * under its final name, and a rename is made durable by syncing the directory.
 */

export async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export async function fsyncFile(path: string): Promise<void> {
  const handle = await fs.open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** A hidden, unique temp name beside `target` (same filesystem, so rename is atomic). */
export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.${randomBytes(6).toString('hex')}.part`);
}

/**
 * Writes `data` to `target` via temp file + fsync + rename + fsync dir. Callers writing a
 * batch pass syncDir=false and sync the directory once afterwards (group commit).
 */
export async function writeFileAtomic(target: string, data: string | Buffer, mode = 0o640, syncDir = true): Promise<void> {
  const temp = tempPathFor(target);
  const handle = await fs.open(temp, 'wx', mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await fs.rm(temp, { force: true });
    throw err;
  }
  await handle.close();
  await fs.rename(temp, target);
  if (syncDir) await fsyncDir(dirname(target));
}

/**
 * Moves a file, durably. Same filesystem: rename. Across filesystems: copy, fsync, rename
 * into place, then remove the source, so a crash leaves at worst two copies, never none.
 */
export async function moveFile(source: string, target: string): Promise<void> {
  try {
    await fs.rename(source, target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    const temp = tempPathFor(target);
    await fs.copyFile(source, temp);
    await fsyncFile(temp);
    await fs.rename(temp, target);
    await fs.rm(source, { force: true });
  }
}

/** A name not yet taken in `dir`: NAME, else NAME.1, NAME.2, … (inserted before the extension). */
export async function freeName(dir: string, name: string): Promise<string> {
  const dot = name.lastIndexOf('.');
  const stem = dot > 0 ? name.slice(0, dot) : name;
  const ext = dot > 0 ? name.slice(dot) : '';
  for (let i = 0; ; i++) {
    const candidate = i === 0 ? name : `${stem}.${i}${ext}`;
    try {
      await fs.access(join(dir, candidate));
    } catch {
      return candidate;
    }
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await fs.access(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Makes any string safe as a single file-name component: no directory parts, no control
 * characters, no leading dot. MESH ids and mex-FileName values never choose a path.
 */
export function safeFileName(raw: string, fallback: string): string {
  const cleaned = raw
    // eslint-disable-next-line no-control-regex -- stripping control characters is the point
    .replace(/[\u0000-\u001f\u007f]/g, '')
    .replace(/[\\/:*?"<>|]/g, '_')
    .replace(/^[.\s]+/, '')
    .trim()
    .slice(0, 200);
  return cleaned && cleaned !== '..' ? cleaned : fallback;
}
