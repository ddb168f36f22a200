import { expect } from 'chai';
import fc from 'fast-check';
import { planChunks } from '../../src/mesh/chunks';

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
