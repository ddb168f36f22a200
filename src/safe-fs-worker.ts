import { chmodSync, closeSync, fchmodSync, fstatSync, lstatSync, openSync, readSync, renameSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { CREATE_FLAGS, errorResult, FactsReading, isPlain, READ_FLAGS, statFields, type FileRequest, type FileResult } from './safe-fs-calls';

/**
 * The worker thread behind src/safe-fs-batch.ts: it makes the calls of a batch one after another,
 * synchronously (here that blocks only this thread), and answers the batch in one message.
 * What each call does is in src/safe-fs-calls.ts.
 */

/** Size, mtime and sha256 through one descriptor; the bytes too when the file is no larger than keepBytesUpTo. */
function facts(req: Extract<FileRequest, { op: 'facts' }>): FileResult {
  const fd = openSync(req.path, READ_FLAGS);
  try {
    const st = fstatSync(fd);
    if (!isPlain(st)) return { notPlain: statFields(st) };
    if (req.mode !== undefined && (st.mode & 0o7777) !== req.mode) fchmodSync(fd, req.mode);
    const reading = new FactsReading(st, req);
    for (let pos = 0; ; ) {
      const n = readSync(fd, reading.buffer, 0, reading.length, pos);
      pos += n;
      const answer = reading.took(n);
      if (answer) return answer;
    }
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

function answer(req: FileRequest): FileResult {
  try {
    switch (req.op) {
      case 'lstat':
        return { stat: statFields(lstatSync(req.path)) };
      case 'facts':
        return facts(req);
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
    return errorResult(err);
  }
}

parentPort?.on('message', ({ id, requests }: { id: number; requests: FileRequest[] }) => {
  const results = requests.map(answer);
  // A small file's bytes move to the main thread rather than being copied.
  const transfer = results.flatMap((r) => ('facts' in r && r.facts.bytes ? [r.facts.bytes.buffer as ArrayBuffer] : []));
  parentPort!.postMessage({ id, results }, transfer);
});
