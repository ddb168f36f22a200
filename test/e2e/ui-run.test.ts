import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { expect } from 'chai';
import { parse, stringify } from '../support/yaml';
import { runMeshd, SENDER, startDaemonEnv, type DaemonEnv } from '../integration/support/daemon-env';

/** `meshd run` serving the console when the config has `ui`, over TLS; `config check` on where it listens. */

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function get(url: string, ca: Buffer, cookie?: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, headers: cookie ? { cookie } : {} }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('meshd run with a ui section, and config check on the console', function () {
  this.timeout(60_000);
  let env: DaemonEnv;
  let pki: string;

  before(async () => {
    env = await startDaemonEnv();
    pki = join(env.sim.dir, 'pki');
  });
  after(async () => env?.close());

  function configWith(ui: Record<string, unknown>, name: string): string {
    const doc = parse(readFileSync(env.configPath[SENDER], 'utf8'));
    doc.ui = ui;
    const path = join(env.dir, name);
    writeFileSync(path, stringify(doc));
    return path;
  }

  it('serves the console beside the daemon over https, with a Secure session cookie, until stopped', async () => {
    const port = await freePort();
    const ca = readFileSync(join(pki, 'ca.pem'));
    const path = configWith({ port, host: '127.0.0.1', tls: { cert: join(pki, 'server.crt'), key: join(pki, 'server.key') } }, 'run-ui.yaml');
    const stop = new AbortController();
    const running = runMeshd(['--config', path, 'run'], { terminateOn: stop.signal });
    try {
      const base = `https://localhost:${port}`;
      let first;
      for (let i = 0; i < 100 && !first; i++) {
        await new Promise((r) => setTimeout(r, 100));
        first = await get(`${base}/`, ca).catch(() => undefined);
      }
      expect(first?.status).to.equal(401);
      const token = readFileSync(join((await env.config(SENDER)).dataDir, 'ui.token'), 'utf8').trim();
      const login = await get(`${base}/?token=${token}`, ca);
      expect(login.status).to.equal(303);
      expect(login.headers.location).to.equal('/');
      const cookie = String(login.headers['set-cookie']);
      expect(cookie).to.match(/^meshd_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Secure$/);
      expect((await get(`${base}/messages`, ca, cookie.split(';')[0])).status).to.equal(200);
    } finally {
      stop.abort();
    }
    const r = await running;
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stderr).to.include('UI_LISTENING');
    expect(r.stderr).not.to.include(readFileSync(join((await env.config(SENDER)).dataDir, 'ui.token'), 'utf8').trim());
  });

  it('config check: beyond loopback the console needs ui.tls, and with it is a warning', async () => {
    const open = await runMeshd(['--config', configWith({ host: '0.0.0.0' }, 'open.yaml'), 'config', 'check']);
    expect(open.code).to.equal(3);
    expect(open.stdout).to.match(/ERROR\s+ui\.host: 0\.0\.0\.0 is not a loopback address: ui\.tls/);
    const tls = await runMeshd(['--config', configWith({ host: '0.0.0.0', tls: { cert: join(pki, 'server.crt'), key: join(pki, 'server.key') } }, 'tls.yaml'), 'config', 'check']);
    expect(tls.stdout).to.match(/WARNING ui\.host: the web console listens on 0\.0\.0\.0/);
    expect(tls.stdout).not.to.match(/ERROR\s+ui/);
  });

  it('meshd ui refuses a non-loopback --host without ui.tls', async () => {
    const r = await runMeshd(['--config', env.configPath[SENDER], 'ui', '--host', '0.0.0.0', '--port', '0']);
    expect(r.code).to.equal(3);
    expect(r.stderr).to.include('not a loopback address');
  });
});
