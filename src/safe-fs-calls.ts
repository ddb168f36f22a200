import { createHash, type Hash } from 'node:crypto';
import { constants, type Stats } from 'node:fs';

/**
 * The small file-system calls of src/safe-fs-batch.ts, as requests and answers that cross
 * threads, and what making them takes both ways: synchronously in the worker thread
 * (src/safe-fs-worker.ts) or through libuv's pool (safe-fs-batch.ts, for calls that come alone).
 * Both follow safe-fs.ts's rules: a file is read only through a descriptor opened with
 * O_NOFOLLOW, and only once that descriptor is seen to be a regular file with one link.
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
export const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
export const CREATE_FLAGS = constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_WRONLY;

export function statFields(st: Stats): StatFields {
  const { dev, ino, mode, nlink, uid, gid, rdev, size, blksize, blocks, atimeMs, mtimeMs, ctimeMs, birthtimeMs } = st;
  return { dev, ino, mode, nlink, uid, gid, rdev, size, blksize, blocks, atimeMs, mtimeMs, ctimeMs, birthtimeMs };
}

export function errorResult(err: unknown): FileResult {
  const e = err as NodeJS.ErrnoException;
  return { error: { message: e.message, code: e.code, errno: e.errno, syscall: e.syscall, path: e.path } };
}

export function isPlain(st: Stats): boolean {
  return st.isFile() && st.nlink === 1;
}

/**
 * A file's facts as its reads arrive: `buffer` is what to read into, `length` bytes at a time,
 * and `took(n)` is told each read's count until it answers.
 */
export class FactsReading {
  readonly length: number;
  readonly buffer: Buffer;
  private readonly hash: Hash = createHash('sha256');
  private readonly keep: boolean;
  private pos = 0;

  constructor(
    private readonly st: Stats,
    req: Extract<FileRequest, { op: 'facts' }>,
  ) {
    // One byte more than the file: a small file is read, and seen to end, in one call.
    this.length = Math.min(st.size + 1, req.readSize);
    this.keep = st.size <= (req.keepBytesUpTo ?? -1);
    this.buffer = Buffer.allocUnsafeSlow(this.length);
  }

  /** The answer once the file has ended, undefined while there is more to read. */
  took(n: number): Extract<FileResult, { facts: unknown }> | undefined {
    const { size, mtimeMs } = this.st;
    if (n === 0) return { facts: { size, mtimeMs, sha256: this.hash.digest('hex') } };
    this.hash.update(this.buffer.subarray(0, n));
    this.pos += n;
    // Short of the extra byte at exactly the stated size: that was the end (a file still
    // growing fills the buffer and is read on, and its size then differs from the row's).
    if (n === this.length || this.pos !== size) return undefined;
    const sha256 = this.hash.digest('hex');
    if (!this.keep || this.pos !== n) return { facts: { size, mtimeMs, sha256 } };
    return { facts: { size, mtimeMs, sha256, bytes: new Uint8Array(this.buffer.buffer, 0, n) } };
  }
}
