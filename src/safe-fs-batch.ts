import { chmod, close, fchmod, fstat, lstat, open, read, rename, rm, Stats, unlink, write } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Worker } from 'node:worker_threads';
import { MeshdError } from './errors';
import { CREATE_FLAGS, errorResult, FactsReading, isPlain, READ_FLAGS, statFields, type ErrorFields, type FileRequest, type FileResult, type StatFields } from './safe-fs-calls';

/**
 * The message path's small file-system calls (lstat, a file's facts, rename, a spool file's
 * chmod), made in bulk in one worker thread. Through
 * fs.promises each call is a round trip through libuv's thread pool that costs some 30–40 µs of
 * CPU (a pool thread woken, the event loop woken, a promise) for a system call of ~5 µs. Calls
 * made in the same turn of the event loop are gathered and sent to the worker together, which
 * makes them one after another and answers in one message (docs/performance.md §1). The event
 * loop itself never waits on the disk.
 *
 * A thread with its own V8 heap holds some 11 MB, which a lone message, a one-off `meshd send`
 * or a long upload (the 150 MB goal for a 1 GiB send, docs/performance.md §3) should not carry.
 * So the worker starts only when one turn gathers WORKER_FROM calls; until then a turn's calls
 * are made through libuv's pool as before. Once started it stays, as a thread pool does (ended
 * when idle, it had to start cold at each busy cycle: a new isolate and its code not yet
 * optimised, which doubled a claim's reads in `npm run bench -- file-calls`), but it never keeps
 * the process alive once nothing is waiting on it.
 */

/** A turn with this many calls starts the worker; fewer, with no worker running, go to libuv's pool. */
const WORKER_FROM = 4;

interface Waiting {
  request: FileRequest;
  resolve: (result: FileResult) => void;
  reject: (err: Error) => void;
}

let worker: Worker | undefined;
let gathered: Waiting[] = [];
const sent = new Map<number, Waiting[]>();
let lastId = 0;

/** lstat(2) in the worker; rejects as fs.promises.lstat does (the error's code, errno, syscall, path). */
export async function lstatBatched(path: string): Promise<Stats> {
  const result = await call({ op: 'lstat', path });
  if ('stat' in result) return asStats(result.stat);
  throw asError(result);
}

/**
 * A regular file's size, mtime and sha256, all read through one descriptor opened without
 * following a link; `mode` set on that descriptor; the bytes too for a file of at most
 * `keepBytesUpTo` bytes. Rejects with the open's error, or `notRegular(stat)` when the
 * descriptor is not a regular file with one link (nothing is read then).
 */
export async function factsBatched(
  path: string,
  opts: { mode?: number; keepBytesUpTo?: number; readSize: number },
  notRegular: (stat: Stats) => Error,
): Promise<{ size: number; mtimeMs: number; sha256: string; bytes?: Buffer }> {
  const result = await call({ op: 'facts', path, ...opts });
  if ('facts' in result) {
    const { bytes, ...facts } = result.facts;
    return bytes ? { ...facts, bytes: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) } : facts;
  }
  if ('notPlain' in result) throw notRegular(asStats(result.notPlain));
  throw asError(result);
}

/** rename(2) in the worker; rejects as fs.promises.rename does (EXDEV, ENOENT, …). */
export async function renameBatched(source: string, target: string): Promise<void> {
  const result = await call({ op: 'rename', path: source, target });
  if (!('done' in result)) throw asError(result);
}

/** chmod(2) by name in the worker: only for meshd's own spool (see safe-fs moveOwnFile). */
export async function chmodBatched(path: string, mode: number): Promise<void> {
  const result = await call({ op: 'chmod', path, mode });
  if (!('done' in result)) throw asError(result);
}

/**
 * A new file at `path` (a temp name of the caller's own: what stands there is removed, never
 * followed), made O_CREAT|O_EXCL|O_NOFOLLOW with `mode` (`chmod`: set again on the descriptor,
 * when the umask took bits of it) and filled with `data`, in the worker. Resolves to its open
 * descriptor, which the caller fsyncs and hands back to closeBatched. On failure nothing is left.
 */
export async function createBatched(path: string, data: Buffer, mode: number, chmod: boolean): Promise<number> {
  const result = await call({ op: 'create', path, mode, chmod, data });
  if ('fd' in result) return result.fd;
  throw asError(result);
}

/** Closes a descriptor createBatched opened; `remove` (a write that failed) removes the file too. */
export async function closeBatched(fd: number, remove?: { path: string }): Promise<void> {
  const result = await call({ op: 'close', fd, ...(remove ? { path: remove.path, remove: true } : {}) });
  if (!('done' in result)) throw asError(result);
}

/** Starts the worker now, whatever the next turns bring (tests). */
export function startFileWorker(): void {
  if (!worker) start();
}

/** Ends the worker (tests; a later busy turn starts another). */
export async function stopFileWorker(): Promise<void> {
  const w = worker;
  worker = undefined;
  if (w) await w.terminate();
}

/** True while a worker thread is running (tests). */
export function fileWorkerRunning(): boolean {
  return worker !== undefined;
}

function call(request: FileRequest): Promise<FileResult> {
  return new Promise((resolve, reject) => {
    // The first call of a turn schedules the send; the turn's other calls join it.
    if (gathered.length === 0) setImmediate(send);
    gathered.push({ request, resolve, reject });
  });
}

function send(): void {
  const batch = gathered;
  gathered = [];
  if (!worker && batch.length < WORKER_FROM) {
    for (const waiting of batch) void onPool(waiting.request).then(waiting.resolve);
    return;
  }
  const id = ++lastId;
  let w: Worker;
  try {
    w = worker ?? start();
  } catch (err) {
    for (const waiting of batch) waiting.reject(failed(err as Error));
    return;
  }
  sent.set(id, batch);
  w.ref();
  w.postMessage({ id, requests: batch.map((b) => b.request) });
}

function start(): Worker {
  // Loaded here, not at the top: a run that never reaches the message path never loads it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Worker: WorkerThread } = require('node:worker_threads') as typeof import('node:worker_threads');
  const w = new WorkerThread(join(__dirname, 'safe-fs-worker.js'));
  worker = w;
  w.on('message', ({ id, results }: { id: number; results: FileResult[] }) => {
    const batch = sent.get(id);
    sent.delete(id);
    if (sent.size === 0) w.unref();
    batch?.forEach((waiting, i) => waiting.resolve(results[i]));
  });
  // A worker that fails or ends fails what it was asked; the next call starts a new one.
  const end = (err: Error): void => {
    if (worker === w) worker = undefined;
    for (const batch of sent.values()) for (const waiting of batch) waiting.reject(failed(err));
    sent.clear();
  };
  w.on('error', end);
  w.on('exit', (code) => end(new Error(`the worker ended (exit code ${code})`)));
  return w;
}

// Calls on numbered descriptors, as the worker's are (fs.promises would wrap them in FileHandles).
const pool = {
  lstat: promisify(lstat),
  rename: promisify(rename),
  chmod: promisify(chmod),
  unlink: promisify(unlink),
  rm: promisify(rm),
  open: promisify(open),
  fstat: promisify(fstat),
  fchmod: promisify(fchmod),
  read: promisify(read),
  write: promisify(write),
  close: promisify(close),
};

/** One call through libuv's pool, as the worker would make it (never rejects: errors are answers). */
async function onPool(req: FileRequest): Promise<FileResult> {
  try {
    switch (req.op) {
      case 'lstat':
        return { stat: statFields(await pool.lstat(req.path)) };
      case 'facts':
        return await factsOnPool(req);
      case 'rename':
        await pool.rename(req.path, req.target);
        return { done: true };
      case 'chmod':
        await pool.chmod(req.path, req.mode);
        return { done: true };
      case 'create':
        return await createOnPool(req);
      case 'close':
        await pool.close(req.fd);
        if (req.remove && req.path) await pool.rm(req.path, { force: true });
        return { done: true };
    }
  } catch (err) {
    return errorResult(err);
  }
}

async function factsOnPool(req: Extract<FileRequest, { op: 'facts' }>): Promise<FileResult> {
  const fd = await pool.open(req.path, READ_FLAGS);
  try {
    const st = await pool.fstat(fd);
    if (!isPlain(st)) return { notPlain: statFields(st) };
    if (req.mode !== undefined && (st.mode & 0o7777) !== req.mode) await pool.fchmod(fd, req.mode);
    const reading = new FactsReading(st, req);
    for (let pos = 0; ; ) {
      const { bytesRead } = await pool.read(fd, reading.buffer, 0, reading.length, pos);
      pos += bytesRead;
      const answer = reading.took(bytesRead);
      if (answer) return answer;
    }
  } finally {
    await pool.close(fd);
  }
}

async function createOnPool(req: Extract<FileRequest, { op: 'create' }>): Promise<FileResult> {
  const fd = await pool.open(req.path, CREATE_FLAGS, req.mode).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
    // A killed run's leftover or a planted link: the name is removed (a link itself), then made anew.
    await pool.unlink(req.path).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
    return pool.open(req.path, CREATE_FLAGS, req.mode);
  });
  try {
    if (req.chmod) await pool.fchmod(fd, req.mode);
    for (let done = 0; done < req.data.length; ) done += (await pool.write(fd, req.data, done)).bytesWritten;
  } catch (err) {
    await pool.close(fd);
    await pool.rm(req.path, { force: true });
    throw err;
  }
  return { fd };
}

function failed(err: Error): MeshdError {
  return new MeshdError('FILE_WORKER_FAILED', `the file-system worker thread failed: ${err.message}`, 'the step is retried at the next cycle; if this repeats, report it with the log');
}

/** fs.Stats's methods (isFile, isSymbolicLink, …), which read only `mode`, and its dates, made when asked for (rounded to the millisecond, as fs's are). */
const STATS = Object.create(
  Stats.prototype,
  Object.fromEntries(
    (['atime', 'mtime', 'ctime', 'birthtime'] as const).map((name) => [name, { get(this: StatFields) { return new Date(Math.round(this[`${name}Ms`])); } }]),
  ),
) as Stats;

function asStats(fields: StatFields): Stats {
  return Object.setPrototypeOf({ ...fields }, STATS) as Stats;
}

function asError(result: FileResult): NodeJS.ErrnoException {
  const fields: ErrorFields = 'error' in result ? result.error : { message: 'unexpected answer from the file-system worker' };
  const { message, ...rest } = fields;
  return Object.assign(new Error(message), rest);
}
