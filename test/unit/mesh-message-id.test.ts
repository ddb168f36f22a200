import { expect } from 'chai';
import { isMessageId } from '../../src/mesh/protocol';

describe('MESH message ids', () => {
  it('accepts only ids of MESH shape, so two ids can never name the same file (a/b and a_b, .x and x would collide)', () => {
    for (const id of ['../../etc/passwd', '/abs/path', 'a\\b', '..', '.hidden', '.x', 'a/b', 'x/../../y', '', 'a b', 'é', 'x'.repeat(101)]) {
      expect(isMessageId(id), id).to.equal(false);
    }
    for (const id of ['x', 'a_b', 'A-1', '20200529155357895317_3573F8', 'x'.repeat(100)]) expect(isMessageId(id), id).to.equal(true);
  });
});
