import { expect } from 'chai';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as undici from 'undici';
import { Agent, buildConnector, loadProxyAgent, request } from '../../src/mesh/undici';
import { makeCertForDays } from '../support/certs';

/** src/mesh/undici.ts loads undici by path: an upgrade that moves a file must fail here, not in production. */
describe('undici loaded by path', () => {
  it('gives the same classes and functions as the package index', () => {
    expect(Agent).to.equal(undici.Agent);
    expect(buildConnector).to.equal(undici.buildConnector);
    expect(loadProxyAgent()).to.equal(undici.ProxyAgent);
  });

  it('puts the request API on every dispatcher without the index, as the index does (ProxyAgent tunnels with connect())', () => {
    // In a fresh process: this file imports undici's index, which would hide the gap.
    const script = `const u = require(${JSON.stringify(require.resolve('../../src/mesh/undici'))});
      const ok = ['request', 'stream', 'pipeline', 'upgrade', 'connect'].every((m) => typeof u.Agent.prototype[m] === 'function');
      const indexLoaded = Object.keys(require.cache).some((f) => f.endsWith('/undici/index.js'));
      // Only request() is loaded at start; the other call styles at their first call (start-up time).
      const othersLoaded = ['stream', 'pipeline', 'upgrade', 'connect'].filter((m) => Object.keys(require.cache).some((f) => f.endsWith('/api/api-' + m + '.js'))).length;
      process.stdout.write(JSON.stringify({ ok, indexLoaded, othersLoaded }));`;
    expect(JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }))).to.deep.equal({ ok: true, indexLoaded: false, othersLoaded: 0 });
  });

  it('leaves node:http2 unloaded, and a connection that negotiates h2 still works through the stand-in', async function () {
    this.timeout(30000);
    // In a fresh process, as above. meshd never sets allowH2; this proves the stand-in hands over.
    const cert = makeCertForDays('localhost', 1, { sans: ['localhost'], usage: 'server' });
    const script = `const u = require(${JSON.stringify(require.resolve('../../src/mesh/undici'))});
      const http2LoadedByUndici = process.moduleLoadList.includes('NativeModule http2');
      const server = require('node:http2').createSecureServer({ cert: process.env.CERT, key: process.env.KEY }, (req, res) => res.end('over HTTP/' + req.httpVersion));
      server.listen(0, '127.0.0.1', async () => {
        const dispatcher = new u.Agent({ allowH2: true, connect: { ca: process.env.CERT, servername: 'localhost' } });
        const res = await u.request(new URL('https://127.0.0.1:' + server.address().port + '/'), { method: 'GET', dispatcher });
        process.stdout.write(JSON.stringify({ http2LoadedByUndici, body: await res.body.text() }));
        await dispatcher.close();
        server.close();
      });`;
    const { stdout } = await promisify(execFile)(process.execPath, ['-e', script], { env: { ...process.env, CERT: cert.certPem, KEY: cert.keyPem } });
    expect(JSON.parse(stdout)).to.deep.equal({ http2LoadedByUndici: false, body: 'over HTTP/2.0' });
  });

  describe('request', () => {
    let server: Server;
    let base: string;
    before(async () => {
      server = createServer((req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ method: req.method, url: req.url }));
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    after(() => new Promise<void>((r) => server.close(() => r())));

    it('sends method, path and query through the given dispatcher', async () => {
      const dispatcher = new Agent();
      try {
        const res = await request(new URL(`${base}/messageexchange/X26ABC1/inbox?max_results=10`), { method: 'GET', dispatcher });
        expect(res.statusCode).to.equal(200);
        expect(await res.body.json()).to.deep.equal({ method: 'GET', url: '/messageexchange/X26ABC1/inbox?max_results=10' });
      } finally {
        await dispatcher.close();
      }
    });

    it('loads a call style other than request() at its first call, and it works', async () => {
      const dispatcher = new Agent();
      try {
        const chunks: Buffer[] = [];
        const { Writable } = await import('node:stream');
        await dispatcher.stream({ origin: base, path: '/streamed', method: 'GET' }, () => new Writable({ write: (c: Buffer, _e, done) => (chunks.push(c), done()) }));
        expect(JSON.parse(Buffer.concat(chunks).toString())).to.deep.equal({ method: 'GET', url: '/streamed' });
        expect(Agent.prototype.stream).to.equal(undici.Agent.prototype.stream);
      } finally {
        await dispatcher.close();
      }
    });
  });
});
