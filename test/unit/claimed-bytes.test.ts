import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { ClaimedBytes } from '../../src/transfer/spool';

const facts = (text: string) => {
  const bytes = Buffer.from(text);
  return { size: bytes.length, mtimeMs: 0, sha256: createHash('sha256').update(bytes).digest('hex'), bytes };
};

describe('ClaimedBytes: a claim\'s bytes held for its upload', () => {
  it('hands the bytes back once, and only for the sha256 the row records', () => {
    const held = new ClaimedBytes();
    const a = facts('PATIENT A 9991000119');
    held.hold('c1', a);
    expect(held.take({ claimId: 'c1', sha256: facts('other').sha256 })).to.equal(undefined);
    held.hold('c1', a);
    expect(held.take({ claimId: 'c1', sha256: a.sha256 })?.toString()).to.equal('PATIENT A 9991000119');
    expect(held.take({ claimId: 'c1', sha256: a.sha256 })).to.equal(undefined);
    expect(held.take({ claimId: null, sha256: a.sha256 })).to.equal(undefined);
  });

  it('holds nothing over its size caps, and nothing a claim did not keep', () => {
    const held = new ClaimedBytes(30, 20);
    const big = facts('x'.repeat(21));
    held.hold('big', big);
    expect(held.take({ claimId: 'big', sha256: big.sha256 })).to.equal(undefined);
    const one = facts('y'.repeat(20));
    const two = facts('z'.repeat(20));
    held.hold('one', one);
    held.hold('two', two); // 40 bytes would pass the total of 30
    expect(held.take({ claimId: 'two', sha256: two.sha256 })).to.equal(undefined);
    expect(held.take({ claimId: 'one', sha256: one.sha256 })).to.have.length(20);
    held.hold('two', two); // room again once taken
    expect(held.take({ claimId: 'two', sha256: two.sha256 })).to.have.length(20);
    const { bytes: _unused, ...noBytes } = facts('kept nothing');
    held.hold('none', noBytes);
    expect(held.take({ claimId: 'none', sha256: noBytes.sha256 })).to.equal(undefined);
    held.hold(null, one); // a row from before claim ids: nothing to key it by
    expect(held.take({ claimId: null, sha256: one.sha256 })).to.equal(undefined);
  });
});
