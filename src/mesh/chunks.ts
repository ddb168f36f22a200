import type { FileHandle } from 'node:fs/promises';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Gzip } from 'node:zlib';

/** Splitting a message's RAW bytes into chunks (each is then gzip'd on its own). */

export interface ChunkSpan {
  /** 1-based chunk number. */
  index: number;
  /** Byte offset of the first byte. */
  start: number;
  /** Byte offset one past the last byte. */
  end: number;
}

export function planChunks(size: number, chunkSize: number): ChunkSpan[] {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`bad message size ${size}`);
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) throw new RangeError(`bad chunk size ${chunkSize}`);
  const count = Math.max(1, Math.ceil(size / chunkSize));
  const spans: ChunkSpan[] = [];
  for (let i = 0; i < count; i++) spans.push({ index: i + 1, start: i * chunkSize, end: Math.min(size, (i + 1) * chunkSize) });
  return spans;
}

/**
 * Chunk bodies prepared ahead of the upload: while chunk n goes over the wire, chunks n+1 …
 * n+depth are gzip'd on libuv's thread pool (zlib runs there), so compression and upload
 * overlap instead of taking turns. Uploads themselves stay one at a time, in order. Whatever
 * was prepared and not taken is cleaned up by discard() (always call it, in a finally).
 */
export class ChunkLookahead<T extends { cleanup(): Promise<void> }> {
  private readonly ready = new Map<number, Promise<T>>();

  constructor(
    private readonly prepare: (index: number) => Promise<T>,
    private readonly count: number,
    private readonly depth: number,
  ) {}

  /** Chunk `index` (0-based), starting the preparation of the next `depth` ones. */
  take(index: number): Promise<T> {
    for (let i = index; i < Math.min(this.count, index + 1 + this.depth); i++) {
      if (this.ready.has(i)) continue;
      const p = this.prepare(i);
      // A failure surfaces when the chunk is taken; until then it must not count as unhandled.
      p.catch(() => undefined);
      this.ready.set(i, p);
    }
    const p = this.ready.get(index)!;
    this.ready.delete(index);
    return p;
  }

  async discard(): Promise<void> {
    const left = [...this.ready.values()];
    this.ready.clear();
    await Promise.all(left.map((p) => p.then((body) => body.cleanup(), () => undefined)));
  }
}

/** How many chunks to prepare ahead: one per spare core, at least one, at most four. */
export function lookaheadDepth(cores: number): number {
  return Math.max(1, Math.min(4, cores - 1));
}

/**
 * gzips bytes [start, end) of an open file through `gz` into `out`, read into one buffer of
 * `readSize` that is used again once zlib has consumed each read. A read stream allocates a new
 * buffer a read, and V8 frees those only when it next collects: they were tens of MB of a large
 * send's peak memory (docs/performance.md §3). Reads are positional, so chunks of one file may
 * be compressed side by side from the one descriptor, which stays the caller's to close. A
 * file shorter than `end` gives what it has (the send's checks of size and hash see the change).
 */
export async function gzipFileRange(input: FileHandle, start: number, end: number, gz: Gzip, out: Writable, readSize: number): Promise<void> {
  const written = pipeline(gz, out);
  written.catch(() => undefined); // awaited at the end; a failure there also fails the next write
  try {
    const buf = Buffer.allocUnsafeSlow(Math.min(readSize, Math.max(1, end - start)));
    for (let pos = start; pos < end; ) {
      const { bytesRead } = await input.read(buf, 0, Math.min(buf.length, end - pos), pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
      // Its callback comes once zlib has consumed the bytes: only then is the buffer read into again.
      await new Promise<void>((resolve, reject) => gz.write(buf.subarray(0, bytesRead), (err) => (err ? reject(err) : resolve())));
    }
    gz.end();
  } catch (err) {
    gz.destroy(err as Error);
  }
  await written;
}

/**
 * A stream of bytes [start, end) of an open file, by positional reads that leave the descriptor
 * open (the caller's to close; FileHandle.close waits for a read in flight). A FileHandle's own
 * createReadStream adds a listener to the handle for every stream, which a send of many chunks
 * and retries would pile up.
 */
export function readFileRange(input: FileHandle, start: number, end: number, readSize: number): Readable {
  async function* reads(): AsyncGenerator<Buffer> {
    for (let pos = start; pos < end; ) {
      const want = Math.min(readSize, end - pos);
      const { bytesRead, buffer } = await input.read(Buffer.allocUnsafe(want), 0, want, pos);
      if (bytesRead === 0) return;
      pos += bytesRead;
      yield buffer.subarray(0, bytesRead);
    }
  }
  return Readable.from(reads(), { objectMode: false });
}
