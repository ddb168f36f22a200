import { expect } from 'chai';
import { fileNameFor } from '../../src/mesh/receive';

describe('received file names', () => {
  it('names a message <messageId>.dat', () => {
    expect(fileNameFor('20200529155357895317_3573F8')).to.equal('20200529155357895317_3573F8.dat');
  });
  it('never lets an opaque id escape the folder or hide as a dot-file', () => {
    for (const id of ['../../etc/passwd', '/abs/path', 'a\\b', '..', '.hidden', 'x/../../y']) {
      const name = fileNameFor(id);
      expect(name, id).not.to.match(/[/\\]/);
      expect(name.startsWith('.'), id).to.equal(false);
    }
    expect(fileNameFor('')).to.equal('_.dat');
  });
});
