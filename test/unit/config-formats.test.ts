import { expect } from 'chai';
import { FORMAT_ABILITIES } from '../../src/config/formats';
import { formatNames, formats } from '../../src/transform/registry';

describe('config: the format names routes may use', () => {
  it('match the transform registry, name by name, with what each can read and write', () => {
    const fromRegistry = Object.fromEntries(formatNames().map((n) => [n, { read: Boolean(formats[n].read), write: Boolean(formats[n].write) }]));
    expect(FORMAT_ABILITIES).to.deep.equal(fromRegistry);
  });
});
