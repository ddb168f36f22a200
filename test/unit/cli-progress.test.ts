import { expect } from 'chai';
import { PassThrough } from 'node:stream';
import { progressBar } from '../../src/cli/progress';

function fakeStream(isTTY: boolean): NodeJS.WriteStream & { text(): string } {
  const s = new PassThrough() as unknown as NodeJS.WriteStream & { text(): string };
  let out = '';
  s.on('data', (d: Buffer) => (out += d.toString()));
  (s as { isTTY: boolean }).isTTY = isTTY;
  s.text = () => out;
  return s;
}

describe('progress bar', () => {
  it('draws on a terminal and ends with a newline', async () => {
    const s = fakeStream(true);
    const bar = progressBar('sending x', s);
    bar.update(1, 4, 'chunks');
    bar.update(4, 4, 'chunks');
    bar.finish();
    await new Promise((r) => setImmediate(r));
    expect(s.text()).to.include('sending x [');
    expect(s.text()).to.include('4/4 chunks');
    expect(s.text().endsWith('\n')).to.equal(true);
  });

  it('stays quiet when not a terminal', async () => {
    const s = fakeStream(false);
    const bar = progressBar('sending x', s);
    bar.update(1, 2);
    bar.finish();
    await new Promise((r) => setImmediate(r));
    expect(s.text()).to.equal('');
  });
});
