import { expect } from 'chai';
import { BadMessageIdError } from '../../src/mesh/errors';
import { isMessageId } from '../../src/mesh/protocol';
import { fileNameFor } from '../../src/mesh/receive';

describe('received file names', () => {
  it('names a message <messageId>.dat', () => {
    expect(fileNameFor('20200529155357895317_3573F8')).to.equal('20200529155357895317_3573F8.dat');
  });
  it('refuses ids not of MESH shape instead of mapping them (a/b and a_b, .x and x would collide)', () => {
    for (const id of ['../../etc/passwd', '/abs/path', 'a\\b', '..', '.hidden', '.x', 'a/b', 'x/../../y', '', 'a b', 'é', 'x'.repeat(101)]) {
      expect(() => fileNameFor(id), id).to.throw(BadMessageIdError);
      expect(isMessageId(id), id).to.equal(false);
    }
    for (const id of ['x', 'a_b', 'A-1', 'x'.repeat(100)]) expect(fileNameFor(id), id).to.equal(`${id}.dat`);
  });
});
