import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchmodSync, fsync, fsyncSync, openSync, promises as fs, readFileSync, writeSync, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { MeshdError } from './errors';
import { chmodBatched, closeBatched, createBatched, lstatBatched, renameBatched } from './safe-fs-batch';
import { CREATE_FLAGS, isPlain, READ_FLAGS } from './safe-fs-calls';

/**
 * The one module that creates, opens for reading, moves and copies files in mailbox folders and
 * the data dir (docs/operations.md, "Security model"). Other users may write those folders, so:
 * - a file meshd reads is opened with O_NOFOLLOW and accepted only if the descriptor is a
 *   regular file with one link; what is read comes from that descriptor, never the name again;
 * - a file meshd writes is created with O_CREAT|O_EXCL|O_NOFOLLOW under a fresh name and renamed
 *   into place, so no write ever goes through a name someone else prepared (a link, a FIFO);
 * - modes are set on the descriptor, whatever the umask (by name only inside meshd's own
 *   spool: moveOwnFile).
 */

/** Payloads handed to other applications (in/, sent/, failed/) and their .ctl/.reason files. */
export const SHARED_FILE_MODE = 0o640;
/** meshd's own working copies (spool, temp, ledger exports and backups). */
export const PRIVATE_FILE_MODE = 0o600;

/** Something other than a regular file sits where meshd expected one (a link, FIFO, device, folder). */
export class NotRegularFileError extends MeshdError {
  constructor(path: string, what: string) {
    super('NOT_REGULAR_FILE', `${basename(path)} is ${what}, not a regular file; meshd never reads through it`, 'only regular files may be placed in out/; remove it', 'input');
  }
}

/** What a file is, for messages: "a symbolic link", "a FIFO", … */
export function describeKind(st: Stats): string {
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isBlockDevice() || st.isCharacterDevice()) return 'a device';
  if (st.isFile() && st.nlink > 1) return `a file with ${st.nlink} hard links`;
  return st.isFile() ? 'a regular file' : 'an unknown kind of file';
}

/** An open with O_NOFOLLOW|O_NONBLOCK refused: a link or a socket is not a regular file; anything else is as it came. */
export function openRefusal(path: string, err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ELOOP' || code === 'ENXIO' ? new NotRegularFileError(path, code === 'ELOOP' ? 'a symbolic link' : 'a socket') : err;
}

/**
 * Opens `path` for reading without following a link, and accepts only a regular file with a
 * single link (a hard link could be another name for a secret). The caller closes the handle.
 */
export async function openRegular(path: string): Promise<{ handle: FileHandle; stat: Stats }> {
  let handle: FileHandle;
  try {
    handle = await fs.open(path, READ_FLAGS);
  } catch (err) {
    throw openRefusal(path, err);
  }
  try {
    const stat = await handle.stat();
    if (!isPlain(stat)) throw new NotRegularFileError(path, describeKind(stat));
    return { handle, stat };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/** Reads a whole regular file through openRegular (control files, small payloads). */
export async function readRegular(path: string): Promise<Buffer> {
  const { handle } = await openRegular(path);
  try {
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

/** A regular file's bytes, or only its size when it is over `maxBytes` (seen on the open file: nothing is loaded). */
export async function readRegularUpTo(path: string, maxBytes: number): Promise<Buffer | number> {
  const { handle, stat } = await openRegular(path);
  try {
    return stat.size > maxBytes ? stat.size : await handle.readFile();
  } finally {
    await handle.close();
  }
}

/** The first `bytes` of a regular file (fewer if it is shorter), read without following a link. */
export async function readHead(path: string, bytes: number): Promise<Buffer> {
  const { handle } = await openRegular(path);
  try {
    const buffer = Buffer.alloc(bytes);
    const { bytesRead } = await handle.read(buffer, 0, bytes, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/**
 * The umask meshd started with (Linux: /proc/self/status), or undefined where it cannot be read.
 * meshd never changes its umask; were it made stricter later, files would only come out more private.
 */
const STARTING_UMASK = ((): number | undefined => {
  try {
    const m = /^Umask:\s*([0-7]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? parseInt(m[1], 8) : undefined;
  } catch {
    return undefined;
  }
})();

/** O_EXCL made a file with `mode` less the umask: a chmod is needed only for bits the umask took. */
function umaskKeeps(mode: number): boolean {
  return STARTING_UMASK !== undefined && (mode & STARTING_UMASK) === 0;
}

/** Creates a new file that must not exist (no link followed), with exactly `mode`. */
export async function createExclusive(path: string, mode: number): Promise<FileHandle> {
  const handle = await fs.open(path, CREATE_FLAGS, mode);
  if (umaskKeeps(mode)) return handle;
  try {
    await handle.chmod(mode);
  } catch (err) {
    await handle.close();
    throw err;
  }
  return handle;
}

/**
 * createExclusive at a temp name that is the caller's alone (random, or a row's claim id): what
 * stands there (a killed run's leftover, a planted link) is removed, never followed, and the
 * create tried again. The name is nearly always free, so that costs nothing up front.
 */
export async function createOwnTemp(path: string, mode: number): Promise<FileHandle> {
  try {
    return await createExclusive(path, mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  await removeName(path);
  return createExclusive(path, mode);
}

/** Synchronous createExclusive + write + fsync, for CLI paths that are synchronous (keys, CSRs). */
export function writeNewSync(path: string, content: string | Buffer, mode: number): void {
  const fd = openSync(path, CREATE_FLAGS, mode);
  try {
    fchmodSync(fd, mode);
    writeSync(fd, typeof content === 'string' ? Buffer.from(content) : content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** A hidden, unique temp name beside `target` (same filesystem, so rename is atomic). */
export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.${randomBytes(8).toString('hex')}.part`);
}

/** A temp name tempPathFor made: a kill between create and rename leaves one behind. */
const TEMP_NAME = /^\..+\.[0-9a-f]{16}\.part$/;

/**
 * Removes the temp files a killed run left in `dir` (regular files named by tempPathFor; a
 * link or anything else under such a name is left alone). Only safe while nothing of this
 * process writes to `dir`: the daemon runs it per mailbox before either side's first cycle.
 */
export async function removeTempDebris(dir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await fs.readdir(dir)) {
    if (!TEMP_NAME.test(name)) continue;
    const path = join(dir, name);
    const st = await fs.lstat(path).catch(() => undefined);
    if (!st?.isFile()) continue;
    await fs.rm(path, { force: true });
    removed.push(name);
  }
  return removed;
}

export async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Writes `data` to `target`: a fresh exclusive temp file, fsync, rename into place (a rename
 * replaces whatever name stood there, a link included, without following it). Callers writing
 * a batch pass syncDir=false and sync the directory once afterwards (group commit).
 */
export async function writeFileAtomic(target: string, data: string | Buffer, mode = SHARED_FILE_MODE, syncDir = true): Promise<void> {
  const temp = tempPathFor(target);
  await writeTemp(temp, data, mode);
  await renameBatched(temp, target);
  if (syncDir) await fsyncDir(dirname(target));
}

/** Creates `path` (`create`: exclusively), lets `fill` write it, fsyncs; on failure nothing is left under that name. */
async function writeNew(path: string, mode: number, fill: (handle: FileHandle) => Promise<unknown>, create = createExclusive): Promise<void> {
  const handle = await create(path, mode);
  try {
    await fill(handle);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await fs.rm(path, { force: true });
    throw err;
  }
  await handle.close();
}

/**
 * Writes and fsyncs a new file at a temp name of the caller's own (as createOwnTemp: what stands
 * there is removed, never followed); on failure nothing is left under that name. The create and
 * the write are made in safe-fs's worker with the turn's other calls; the fsync in libuv's pool,
 * beside other writes' fsyncs, which share the disk's journal commits there.
 */
export async function writeTemp(temp: string, data: string | Buffer, mode: number): Promise<void> {
  const fd = await createBatched(temp, typeof data === 'string' ? Buffer.from(data) : data, mode, !umaskKeeps(mode));
  // Should the worker end between these steps, the descriptor is left open rather than closed
  // here: whether the worker closed it already is unknown, and its number may name another file by now.
  try {
    await fsyncDescriptor(fd);
  } catch (err) {
    await closeBatched(fd, { path: temp });
    throw err;
  }
  await closeBatched(fd);
}

const fsyncDescriptor = promisify(fsync);

/** Copies what an open handle holds into a new exclusive file at `target`, fsync'd. */
export function copyFromHandle(source: FileHandle, target: string, mode: number): Promise<void> {
  return writeNew(target, mode, async (out) => {
    const buf = Buffer.allocUnsafe(1024 * 1024);
    for (let pos = 0; ; ) {
      const { bytesRead } = await source.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      await out.write(buf, 0, bytesRead);
      pos += bytesRead;
    }
  });
}

/**
 * Copies a regular file (opened with openRegular) to `target` via a temp name and a rename.
 * Used where the original must stay (keeping a copy of a partly converted batch).
 */
export async function copyRegular(source: string, target: string, mode = SHARED_FILE_MODE): Promise<void> {
  const { handle } = await openRegular(source);
  const temp = tempPathFor(target);
  try {
    await copyFromHandle(handle, temp, mode);
  } finally {
    await handle.close();
  }
  await fs.rename(temp, target);
}

/**
 * Moves a file, durably, never following a link. Same filesystem: rename (which moves a link
 * itself, not what it points at). Across filesystems: only a regular file is copied, from its
 * descriptor, into a fresh exclusive file renamed into place; the source goes last, so a crash
 * leaves at worst two copies, never none. `mode`, when given, is set on the result: through
 * `opened`, when the caller holds the source open (a file it created), else by opening the
 * result again without following a link.
 */
export async function moveFile(source: string, target: string, mode?: number, opened?: FileHandle): Promise<void> {
  try {
    await renameBatched(source, target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    await copyAcross(source, target, mode);
    return;
  }
  if (mode !== undefined) await (opened ? opened.chmod(mode) : chmodRegular(target, mode));
}

async function copyAcross(source: string, target: string, mode: number | undefined): Promise<void> {
  const { handle, stat } = await openRegular(source);
  const temp = tempPathFor(target);
  try {
    await copyFromHandle(handle, temp, mode ?? stat.mode & 0o777 & SHARED_FILE_MODE);
  } finally {
    await handle.close();
  }
  await fs.rename(temp, target);
  await fs.rm(source, { force: true });
}

/**
 * Moves a file out of meshd's own spool (a folder no one else writes, so nothing can have put a
 * link in its place): its mode is set by name before the move, which saves opening it again.
 * False when the source is already gone (moved before a restart).
 */
export async function moveOwnFile(source: string, target: string, mode: number): Promise<boolean> {
  try {
    await chmodBatched(source, mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  await moveFile(source, target);
  return true;
}

/** Sets the mode of a regular file without following a link (a link is left as it is). */
async function chmodRegular(path: string, mode: number): Promise<void> {
  let handle: FileHandle;
  try {
    handle = await fs.open(path, READ_FLAGS);
  } catch {
    return; // a link or something unopenable: moved as it is, never followed
  }
  try {
    if ((await handle.stat()).isFile()) await handle.chmod(mode);
  } finally {
    await handle.close();
  }
}

/** True if anything (a dangling link included) stands at `path`. */
export async function exists(path: string): Promise<boolean> {
  try {
    await fs.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * A name not yet taken in `dir` (a dangling link counts as taken): NAME, else NAME.1, NAME.2, …
 * `companions`: the names of the files written beside a candidate (its .ctl, its .reason). The
 * candidate is free only if they are too, so a file written beside it never replaces, or is
 * mistaken for, one that was already there. They are looked at side by side.
 */
export async function freeName(dir: string, name: string, companions: (candidate: string) => string[] = () => []): Promise<string> {
  const dot = name.lastIndexOf('.');
  const stem = dot > 0 ? name.slice(0, dot) : name;
  const ext = dot > 0 ? name.slice(dot) : '';
  for (let i = 0; ; i++) {
    const candidate = i === 0 ? name : `${stem}.${i}${ext}`;
    const taken = await Promise.all([candidate, ...companions(candidate)].map((n) => lstatBatched(join(dir, n)).then(() => true, () => false)));
    if (!taken.includes(true)) return candidate;
  }
}

/** Removes a name (a link itself, never its target); a missing name is fine. */
export async function removeName(path: string): Promise<void> {
  try {
    await fs.unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/**
 * Makes any string safe as a single file-name component: no directory parts, no control
 * characters, no leading dot. mex-FileName values never choose a path.
 */
export function safeFileName(raw: string, fallback: string): string {
  const cleaned = raw
    // eslint-disable-next-line no-control-regex -- stripping control characters is the point
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, '')
    .replace(/[\\/:*?"<>|]/g, '_')
    .replace(/^[.\s]+/, '')
    .trim()
    .slice(0, 200);
  return cleaned && cleaned !== '..' ? cleaned : fallback;
}

/** fsyncs a file meshd wrote, without following a link put in its place. */
export async function fsyncFile(path: string): Promise<void> {
  const handle = await fs.open(path, constants.O_RDWR | constants.O_NOFOLLOW);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
