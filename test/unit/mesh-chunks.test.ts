import { expect } from 'chai';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { EventEmitter } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { createGzip, gunzipSync } from 'node:zlib';
import { ChunkLookahead, gzipFileRange, lookaheadDepth, planChunks, readFileRange } from '../../src/mesh/chunks';
import { gunzipChunkSize } from '../../src/mesh/client';

describe('chunk planning', () => {
  it('splits raw bytes into consecutive spans of chunkSize, the last one shorter', () => {
    expect(planChunks(10, 4)).to.deep.equal([
      { index: 1, start: 0, end: 4 },
      { index: 2, start: 4, end: 8 },
      { index: 3, start: 8, end: 10 },
    ]);
  });
  it('makes one chunk for a message that fits', () => {
    expect(planChunks(4, 4)).to.deep.equal([{ index: 1, start: 0, end: 4 }]);
  });
  it('refuses nonsense sizes', () => {
    expect(() => planChunks(10, 0)).to.throw(RangeError);
    expect(() => planChunks(-1, 4)).to.throw(RangeError);
  });
  it('covers every byte exactly once (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100_000 }), fc.integer({ min: 1, max: 500 }), (chunk, count) => {
        const size = Math.max(1, chunk * count - (count % chunk));
        const spans = planChunks(size, chunk);
        let pos = 0;
        spans.forEach((s, i) => {
          expect(s.index).to.equal(i + 1);
          expect(s.start).to.equal(pos);
          expect(s.end - s.start).to.be.within(1, chunk);
          pos = s.end;
        });
        expect(pos).to.equal(size);
        expect(spans.length).to.equal(Math.ceil(size / chunk));
      }),
      { seed: 42, numRuns: 200 },
    );
  });
});

describe('ChunkLookahead', () => {
  /** A fake body that records when it was prepared and cleaned. */
  function recorder(failAt?: number) {
    const prepared: number[] = [];
    const cleaned: number[] = [];
    const prepare = async (i: number) => {
      prepared.push(i);
      if (i === failAt) throw new Error(`chunk ${i} failed`);
      return { i, cleanup: async () => void cleaned.push(i) };
    };
    return { prepared, cleaned, prepare };
  }

  it('prepares the next chunks while the current one is in use, never past the last', async () => {
    const r = recorder();
    const ahead = new ChunkLookahead(r.prepare, 4, 2);
    expect((await ahead.take(0)).i).to.equal(0);
    expect(r.prepared).to.deep.equal([0, 1, 2]);
    expect((await ahead.take(1)).i).to.equal(1);
    expect(r.prepared).to.deep.equal([0, 1, 2, 3]);
    expect((await ahead.take(2)).i).to.equal(2);
    expect((await ahead.take(3)).i).to.equal(3);
    expect(r.prepared).to.deep.equal([0, 1, 2, 3]);
    await ahead.discard();
    expect(r.cleaned).to.deep.equal([]);
  });

  it('cleans up what was prepared and never taken (an upload failed or stopped early)', async () => {
    const r = recorder();
    const ahead = new ChunkLookahead(r.prepare, 10, 3);
    await ahead.take(0);
    await ahead.discard();
    expect(r.cleaned.sort()).to.deep.equal([1, 2, 3]);
  });

  it('reports a failed preparation when that chunk is taken, not before', async () => {
    const r = recorder(1);
    const ahead = new ChunkLookahead(r.prepare, 3, 1);
    expect((await ahead.take(0)).i).to.equal(0);
    let err: Error | undefined;
    await ahead.take(1).catch((e: Error) => (err = e));
    expect(err?.message).to.equal('chunk 1 failed');
    await ahead.discard();
  });

  it('looks ahead one chunk per spare core, between one and four', () => {
    expect([1, 2, 3, 8, 64].map(lookaheadDepth)).to.deep.equal([1, 1, 2, 4, 4]);
  });
});

describe('gunzip output buffer', () => {
  it('is zlib’s 16 KiB default for a download of up to 64 KiB on the wire and 1 MiB otherwise or when the length is unknown', () => {
    expect(gunzipChunkSize(2_000)).to.equal(16 * 1024);
    expect(gunzipChunkSize(64 * 1024)).to.equal(16 * 1024);
    expect(gunzipChunkSize(64 * 1024 + 1)).to.equal(1024 * 1024);
    expect(gunzipChunkSize(Number.NaN)).to.equal(1024 * 1024);
    expect(gunzipChunkSize(0)).to.equal(1024 * 1024);
  });
});

describe('gzipFileRange and readFileRange (a chunk read from its byte range of one open file)', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'meshd-gzrange-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs gzipFileRange into memory and returns the inflated bytes. */
  async function inflated(input: FileHandle, start: number, end: number, readSize: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    const out = new PassThrough();
    out.on('data', (d: Buffer) => parts.push(d));
    await gzipFileRange(input, start, end, createGzip(), out, readSize);
    return gunzipSync(Buffer.concat(parts));
  }

  async function collected(stream: Readable): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const part of stream) parts.push(part as Buffer);
    return Buffer.concat(parts);
  }

  it('gives exactly the range, across many reads, whatever the read size, and side by side from one descriptor', async () => {
    const data = randomBytes(50_000);
    const path = join(dir, 'data.bin');
    writeFileSync(path, data);
    const input = await open(path, 'r');
    try {
      const ranges = [[0, 50_000, 1024], [777, 31_234, 1000], [49_999, 50_000, 4096], [10, 20, 1 << 20]];
      const zipped = await Promise.all(ranges.map(([start, end, readSize]) => inflated(input, start, end, readSize)));
      const plain = await Promise.all(ranges.map(([start, end, readSize]) => collected(readFileRange(input, start, end, readSize))));
      ranges.forEach(([start, end, readSize], i) => {
        expect(zipped[i].equals(data.subarray(start, end)), `gzip ${start}-${end}/${readSize}`).to.equal(true);
        expect(plain[i].equals(data.subarray(start, end)), `plain ${start}-${end}/${readSize}`).to.equal(true);
      });
      // The descriptor is left open for the caller (the next chunk, a retry).
      expect((await input.stat()).size).to.equal(50_000);
      // FileHandle.createReadStream would have added a close listener a stream.
      expect((input as unknown as EventEmitter).listenerCount('close')).to.equal(0);
    } finally {
      await input.close();
    }
  });

  it('gives what a file shorter than the range holds', async () => {
    const path = join(dir, 'short.bin');
    writeFileSync(path, 'only this');
    const input = await open(path, 'r');
    try {
      expect((await inflated(input, 5, 1000, 3)).toString()).to.equal('this');
      expect((await collected(readFileRange(input, 5, 1000, 3))).toString()).to.equal('this');
    } finally {
      await input.close();
    }
  });

  it('fails, never hangs, when the output fails mid-way', async () => {
    const path = join(dir, 'data.bin');
    writeFileSync(path, randomBytes(200_000));
    const input = await open(path, 'r');
    try {
      const broken = new Writable({ write: (_chunk, _enc, cb) => cb(new Error('disk full')) });
      const err = await gzipFileRange(input, 0, 200_000, createGzip({ level: 0 }), broken, 1024).catch((e: Error) => e);
      expect(err).to.be.instanceOf(Error);
      expect((err as Error).message).to.equal('disk full');
    } finally {
      await input.close();
    }
  });
});
