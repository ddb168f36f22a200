import { createHash } from 'node:crypto';
import { chmodSync, closeSync, constants, fchmodSync, fstatSync, lstatSync, openSync, readSync, renameSync, rmSync, unlinkSync, writeSync, type Stats } from 'node:fs';
import { parentPort } from 'node:worker_threads';

/**
 * The worker thread behind src/safe-fs-batch.ts: it makes the calls of a batch one after another,
 * synchronously (here that blocks only this thread), and answers the batch in one message. It
 * follows safe-fs.ts's rules: a file is read only through a descriptor opened with O_NOFOLLOW,
 * and only once that descriptor is seen to be a regular file with one link.
 */

export type FileRequest =
  | { op: 'lstat'; path: string }
  | { op: 'facts'; path: string; mode?: number; keepBytesUpTo?: number; readSize: number }
  | { op: 'rename'; path: string; target: string }
  /** By name: only for meshd's own spool, where no one else can put a link (safe-fs moveOwnFile). */
  | { op: 'chmod'; path: string; mode: number }
  /**
   * A new file at a temp name of the caller's own, filled with `data` and left open (its fsync
   * is the caller's, in libuv's pool, beside other fsyncs): whatever stood at the name is
   * removed, never followed, and the create tried again; `chmod` when the umask took bits of `mode`.
   */
  | { op: 'create'; path: string; mode: number; chmod: boolean; data: Uint8Array }
  /** Closes a descriptor `create` opened; with `remove`, the file goes too (a write that failed). */
  | { op: 'close'; fd: number; path?: string; remove?: boolean };

/** What a stat call found, as plain numbers (a Stats object does not cross threads). */
export type StatFields = Pick<Stats, 'dev' | 'ino' | 'mode' | 'nlink' | 'uid' | 'gid' | 'rdev' | 'size' | 'blksize' | 'blocks' | 'atimeMs' | 'mtimeMs' | 'ctimeMs' | 'birthtimeMs'>;

export type ErrorFields = { message: string; code?: string; errno?: number; syscall?: string; path?: string };

export type FileResult =
  | { stat: StatFields }
  | { facts: { size: number; mtimeMs: number; sha256: string; bytes?: Uint8Array } }
  /** The descriptor is not a regular file with one link: nothing was read. */
  | { notPlain: StatFields }
  | { done: true }
  | { fd: number }
  | { error: ErrorFields };

// O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const CREATE_FLAGS = constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_WRONLY;

function statFields(st: Stats): StatFields {
  const { dev, ino, mode, nlink, uid, gid, rdev, size, blksize, blocks, atimeMs, mtimeMs, ctimeMs, birthtimeMs } = st;
  return { dev, ino, mode, nlink, uid, gid, rdev, size, blksize, blocks, atimeMs, mtimeMs, ctimeMs, birthtimeMs };
}

/** Size, mtime and sha256 through one descriptor; the bytes too when the file is no larger than keepBytesUpTo. */
function facts(req: Extract<FileRequest, { op: 'facts' }>, transfer: ArrayBuffer[]): FileResult {
  const fd = openSync(req.path, READ_FLAGS);
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.nlink !== 1) return { notPlain: statFields(st) };
    if (req.mode !== undefined && (st.mode & 0o7777) !== req.mode) fchmodSync(fd, req.mode);
    const hash = createHash('sha256');
    // One byte more than the file: a small file is read, and seen to end, in one call.
    const length = Math.min(st.size + 1, req.readSize);
    const keep = st.size <= (req.keepBytesUpTo ?? -1);
    const buf = Buffer.allocUnsafeSlow(length);
    for (let pos = 0; ; ) {
      const n = readSync(fd, buf, 0, length, pos);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
      pos += n;
      // Short of the extra byte at exactly the stated size: that was the end (a file still
      // growing fills the buffer and is read on, and its size then differs from the row's).
      if (n < length && pos === st.size) {
        const sha256 = hash.digest('hex');
        if (!keep || pos !== n) return { facts: { size: st.size, mtimeMs: st.mtimeMs, sha256 } };
        transfer.push(buf.buffer as ArrayBuffer);
        return { facts: { size: st.size, mtimeMs: st.mtimeMs, sha256, bytes: new Uint8Array(buf.buffer, 0, n) } };
      }
    }
    return { facts: { size: st.size, mtimeMs: st.mtimeMs, sha256: hash.digest('hex') } };
  } finally {
    closeSync(fd);
  }
}

function createFilled(req: Extract<FileRequest, { op: 'create' }>): FileResult {
  let fd: number;
  try {
    fd = openSync(req.path, CREATE_FLAGS, req.mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    // A killed run's leftover or a planted link: the name is removed (a link itself), then made anew.
    try {
      unlinkSync(req.path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    fd = openSync(req.path, CREATE_FLAGS, req.mode);
  }
  try {
    if (req.chmod) fchmodSync(fd, req.mode);
    for (let done = 0; done < req.data.length; ) done += writeSync(fd, req.data, done);
  } catch (err) {
    closeSync(fd);
    rmSync(req.path, { force: true });
    throw err;
  }
  return { fd };
}

function close(req: Extract<FileRequest, { op: 'close' }>): FileResult {
  closeSync(req.fd);
  if (req.remove && req.path) rmSync(req.path, { force: true });
  return { done: true };
}

function answer(req: FileRequest, transfer: ArrayBuffer[]): FileResult {
  try {
    switch (req.op) {
      case 'lstat':
        return { stat: statFields(lstatSync(req.path)) };
      case 'facts':
        return facts(req, transfer);
      case 'rename':
        renameSync(req.path, req.target);
        return { done: true };
      case 'chmod':
        chmodSync(req.path, req.mode);
        return { done: true };
      case 'create':
        return createFilled(req);
      case 'close':
        return close(req);
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { error: { message: e.message, code: e.code, errno: e.errno, syscall: e.syscall, path: e.path } };
  }
}

parentPort?.on('message', ({ id, requests }: { id: number; requests: FileRequest[] }) => {
  const transfer: ArrayBuffer[] = [];
  const results = requests.map((req) => answer(req, transfer));
  parentPort!.postMessage({ id, results }, transfer);
});
