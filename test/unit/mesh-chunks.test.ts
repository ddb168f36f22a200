import { expect } from 'chai';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { linkSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { createGzip, gunzipSync } from 'node:zlib';
import { ChunkLookahead, gzipFileRange, lookaheadDepth, planChunks } from '../../src/mesh/chunks';
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

describe('gzipFileRange (a spooled chunk compressed from one reused read buffer)', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'meshd-gzrange-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs gzipFileRange into memory and returns the inflated bytes. */
  async function inflated(path: string, start: number, end: number, readSize: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    const out = new PassThrough();
    out.on('data', (d: Buffer) => parts.push(d));
    await gzipFileRange(path, start, end, createGzip(), out, readSize);
    return gunzipSync(Buffer.concat(parts));
  }

  it('compresses exactly the range, across many reads into the same buffer, whatever the read size', async () => {
    const data = randomBytes(50_000);
    const path = join(dir, 'data.bin');
    writeFileSync(path, data);
    for (const [start, end, readSize] of [[0, 50_000, 1024], [777, 31_234, 1000], [49_999, 50_000, 4096], [10, 20, 1 << 20]]) {
      expect((await inflated(path, start, end, readSize)).equals(data.subarray(start, end)), `${start}-${end}/${readSize}`).to.equal(true);
    }
  });

  it('gives what a file shorter than the range holds', async () => {
    const path = join(dir, 'short.bin');
    writeFileSync(path, 'only this');
    expect((await inflated(path, 5, 1000, 3)).toString()).to.equal('this');
  });

  it('fails, never hangs, when the output fails mid-way; refuses a missing file, a link or a second name', async () => {
    const path = join(dir, 'data.bin');
    writeFileSync(path, randomBytes(200_000));
    const broken = new Writable({ write: (_chunk, _enc, cb) => cb(new Error('disk full')) });
    const err = await gzipFileRange(path, 0, 200_000, createGzip({ level: 0 }), broken, 1024).catch((e: Error) => e);
    expect(err).to.be.instanceOf(Error);
    expect((err as Error).message).to.equal('disk full');
    const missing = await gzipFileRange(join(dir, 'none'), 0, 10, createGzip(), new PassThrough(), 1024).catch((e: NodeJS.ErrnoException) => e.code);
    expect(missing).to.equal('ENOENT');
    symlinkSync(path, join(dir, 'link'));
    const link = await gzipFileRange(join(dir, 'link'), 0, 10, createGzip(), new PassThrough(), 1024).catch((e: NodeJS.ErrnoException) => e.code);
    expect(link).to.equal('NOT_REGULAR_FILE');
    linkSync(path, join(dir, 'second-name'));
    const hardLink = await gzipFileRange(path, 0, 10, createGzip(), new PassThrough(), 1024).catch((e: NodeJS.ErrnoException) => e.code);
    expect(hardLink).to.equal('NOT_REGULAR_FILE');
  });
});
