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
