import { expect } from 'chai';
import { acquirePool } from '../../src/mesh/transport';

/** One connection pool per client certificate (src/mesh/transport.ts). */
describe('connection pool per client certificate', () => {
  const tls = (cert: string) => ({ ca: 'CA', cert, key: `key of ${cert}` });

  it('gives clients with the same certificate, key, CA and proxy one dispatcher and one transport state', async () => {
    const a = acquirePool(tls('A'), undefined);
    const b = acquirePool(tls('A'), undefined);
    const other = acquirePool(tls('B'), undefined);
    const proxied = acquirePool(tls('A'), 'http://proxy.example:3128');
    try {
      expect(b.dispatcher).to.equal(a.dispatcher);
      expect(b.state).to.equal(a.state);
      expect(other.dispatcher).to.not.equal(a.dispatcher);
      expect(proxied.dispatcher).to.not.equal(a.dispatcher);
    } finally {
      for (const p of [a, b, other, proxied]) await p.release();
    }
  });

  it('closes the connections when the last user releases them, and only then', async () => {
    const a = acquirePool(tls('C'), undefined);
    const b = acquirePool(tls('C'), undefined);
    await a.release();
    await a.release(); // twice is once
    expect((b.dispatcher as unknown as { closed: boolean }).closed).to.equal(false);
    await b.release();
    expect((b.dispatcher as unknown as { closed: boolean }).closed).to.equal(true);
    const again = acquirePool(tls('C'), undefined);
    expect(again.dispatcher).to.not.equal(b.dispatcher);
    await again.release();
  });
});
