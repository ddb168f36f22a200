import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect, type AddressInfo } from 'node:net';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { startSimulator, type Simulator } from '../../src/sim';
import { runMeshd } from '../support/cli';
import { makeCert } from '../support/certs';

function meshd(args: string[]) {
  return runMeshd(args, { env: { MESHD_CONFIG: '' } });
}


const DAY = 86_400_000;

/** A complete, valid local config in `dir`; `extra` is appended verbatim. */
function writeConfig(dir: string, extra = '', cn = 'X26ABC1.X26.api.mesh-client.nhs.uk'): string {
  const c = makeCert(cn, new Date(Date.now() - DAY), new Date(Date.now() + 400 * DAY));
  mkdirSync(join(dir, 'certs'), { recursive: true });
  writeFileSync(join(dir, 'certs', 'ca.pem'), c.certPem);
  writeFileSync(join(dir, 'certs', 'client.crt'), c.certPem);
  writeFileSync(join(dir, 'certs', 'client.key'), c.keyPem, { mode: 0o600 });
  mkdirSync(join(dir, 'var'), { mode: 0o700 });
  mkdirSync(join(dir, 'mailboxes', 'X26ABC1'), { recursive: true });
  chmodSync(join(dir, 'mailboxes', 'X26ABC1'), 0o750);
  const path = join(dir, 'meshd.yaml');
  writeFileSync(
    path,
    [
      'environment: local',
      'url: https://127.0.0.1:8700',
      'sharedKey: TestKey-Local',
      'tls:',
      '  ca: ./certs/ca.pem',
      '  cert: ./certs/client.crt',
      '  key: ./certs/client.key',
      'dataDir: ./var',
      'mailboxes:',
      '  - id: X26ABC1',
      '    password: Local-Password-1',
      '    folder: ./mailboxes/X26ABC1',
      extra,
    ].join('\n'),
  );
  return path;
}

describe('meshd config check (CLI as a process)', function () {
  this.timeout(60000);
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshd-cli-config-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('passes a good config with exit 0', async () => {
    const r = await meshd(['--config', writeConfig(dir), 'config', 'check']);
    expect(r.code, r.stdout + r.stderr).to.equal(0);
    expect(r.stdout).to.include('environment: local').and.match(/^OK$/m);
  });

  it('warns when the certificate was issued for a mailbox not in the config', async () => {
    const r = await meshd(['--config', writeConfig(dir, '', 'X26ABC9.X26.api.mesh-client.nhs.uk'), 'config', 'check']);
    expect(r.code, r.stdout).to.equal(0);
    expect(r.stdout).to.match(/WARNING tls\.cert: certificate is for mailbox X26ABC9 \(ODS X26\), which is not a mailbox in this config \(X26ABC1\)/);
  });

  it("checks a mailbox's own certificate and reports it under that mailbox's key", async () => {
    const path = writeConfig(dir, '    tls: { cert: ./certs/own.crt, key: ./certs/own.key }');
    const own = makeCert('X26ABC1.X26.api.mesh-client.nhs.uk', new Date(Date.now() - 400 * DAY), new Date(Date.now() - DAY));
    writeFileSync(join(dir, 'certs', 'own.crt'), own.certPem);
    writeFileSync(join(dir, 'certs', 'own.key'), own.keyPem, { mode: 0o600 });
    const r = await meshd(['--config', path, 'config', 'check']);
    expect(r.code, r.stdout).to.equal(3);
    expect(r.stdout).to.match(/ERROR\s+mailboxes\[0\]\.tls\.cert: client certificate .* expired/);
  });

  it('names an unknown key and exits 3', async () => {
    const r = await meshd(['--config', writeConfig(dir, 'pollEvery: 5'), 'config', 'check']);
    expect(r.code).to.equal(3);
    expect(r.stdout).to.match(/ERROR\s+pollEvery: unknown key/);
  });

  it('flags a private key readable by group/others (0644)', async () => {
    const path = writeConfig(dir);
    chmodSync(join(dir, 'certs', 'client.key'), 0o644);
    const r = await meshd(['--config', path, 'config', 'check']);
    expect(r.code).to.equal(3);
    expect(r.stdout).to.match(/ERROR\s+tls\.key: private key .*client\.key is accessible by group\/others \(mode 0644\)/);
    expect(r.stdout).to.include(`chmod 600 ${join(dir, 'certs', 'client.key')}`);
  });

  it('still checks the key file when other keys are wrong', async () => {
    const path = writeConfig(dir, 'surprise: true');
    chmodSync(join(dir, 'certs', 'client.key'), 0o640);
    const r = await meshd(['--config', path, 'config', 'check']);
    expect(r.stdout).to.match(/surprise: unknown key/).and.match(/tls\.key: .*mode 0640/);
  });

  it('flags a group-readable ledger directory and ledger file', async () => {
    const path = writeConfig(dir);
    writeFileSync(join(dir, 'var', 'meshd.db'), '', { mode: 0o644 });
    chmodSync(join(dir, 'var', 'meshd.db'), 0o644);
    chmodSync(join(dir, 'var'), 0o750);
    const r = await meshd(['--config', path, 'config', 'check']);
    expect(r.code).to.equal(3);
    expect(r.stdout).to.match(/dataDir: ledger directory .* \(mode 0750\)/).and.match(/dataDir: ledger file .*meshd\.db .*\(mode 0644\)/);
  });

  it('warns about a mailbox folder or subfolder readable or writable by every local user', async () => {
    const path = writeConfig(dir);
    const out = join(dir, 'mailboxes', 'X26ABC1', 'out');
    mkdirSync(out);
    chmodSync(out, 0o777);
    chmodSync(join(dir, 'mailboxes', 'X26ABC1'), 0o755);
    const r = await meshd(['--config', path, 'config', 'check']);
    expect(r.code, r.stdout).to.equal(0);
    expect(r.stdout).to.match(/WARNING mailboxes\[0\]\.folder: .*X26ABC1 is readable by every local user \(mode 0755\)/);
    expect(r.stdout).to.match(/WARNING mailboxes\[0\]\.folder: .*X26ABC1\/out is readable and writable by every local user \(mode 0777\)/);
    expect(r.stdout).to.include(`chmod o-rwx ${out}`);
  });

  it('flags a data dir readable or writable by every local user', async () => {
    const path = writeConfig(dir);
    chmodSync(join(dir, 'var'), 0o703);
    const r = await meshd(['--config', path, 'config', 'check']);
    expect(r.code).to.equal(3);
    expect(r.stdout).to.match(/ERROR\s+dataDir: ledger directory .* \(mode 0703\)/);
  });

  it('warns when the health endpoints listen beyond loopback', async () => {
    const r = await meshd(['--config', writeConfig(dir, 'health: { port: 9464, host: 0.0.0.0 }'), 'config', 'check']);
    expect(r.code, r.stdout).to.equal(0);
    expect(r.stdout).to.match(/WARNING health\.host: .*served on 0\.0\.0\.0/);
    for (const host of ['127.0.0.1', '::1', 'localhost']) {
      const quiet = await meshd(['--config', writeConfig(join(dir, host.replace(/:/g, '_')), `health: { port: 9464, host: "${host}" }`), 'config', 'check']);
      expect(quiet.stdout, host).not.to.include('health.host');
    }
  });

  it('warns when the proxy URL carries a password, without printing it', async () => {
    const r = await meshd(['--config', writeConfig(dir, 'proxy: http://meshd:Proxy-Secret-9@proxy.example:3128'), 'config', 'check']);
    expect(r.code, r.stdout).to.equal(0);
    expect(r.stdout).to.match(/WARNING proxy: the proxy URL carries a password in the config file/);
    expect(r.stdout + r.stderr).not.to.include('Proxy-Secret-9');
  });

  it('refuses a route to a format that is not registered, naming the key', async () => {
    const route = '    routes:\n      - { direction: out, match: "*.csv", to: X26ABC2, workflow: WF, transform: { from: csv, to: docx } }';
    const r = await meshd(['--config', writeConfig(dir, route), 'config', 'check']);
    expect(r.code).to.equal(3);
    expect(r.stdout).to.match(/ERROR\s+mailboxes\[0\]\.routes\[0\]\.transform\.to: unknown format "docx"/);
  });

  it('flags a key that does not belong to the certificate, and an expired certificate', async () => {
    const path = writeConfig(dir);
    const old = makeCert('X26ABC1.X26.api.mesh-client.nhs.uk', new Date(Date.now() - 400 * DAY), new Date(Date.now() - DAY));
    writeFileSync(join(dir, 'certs', 'client.crt'), old.certPem);
    const r = await meshd(['--json', '--config', path, 'config', 'check']);
    expect(r.code).to.equal(3);
    const report = JSON.parse(r.stdout);
    expect(report.ok).to.equal(false);
    const keys = report.findings.map((f: { key: string; message: string }) => `${f.key}: ${f.message}`);
    expect(keys.some((k: string) => /^tls\.cert: client certificate .* expired on/.test(k)), keys.join('\n')).to.equal(true);
    expect(keys.some((k: string) => /^tls\.key: private key .* does not belong/.test(k)), keys.join('\n')).to.equal(true);
  });

  it('never prints secret values, even for a secret in the wrong place', async () => {
    const path = writeConfig(dir);
    writeFileSync(path, readFileSync(path, 'utf8').replace('environment: local', 'environment: int').replace('url: https://127.0.0.1:8700\n', ''));
    const r = await meshd(['--config', path, 'config', 'check']);
    expect(r.code).to.equal(3);
    expect(r.stdout).to.match(/sharedKey: a literal secret is allowed only with environment: local/);
    expect(r.stdout + r.stderr).not.to.include('TestKey-Local').and.not.include('Local-Password-1');
  });

  it('exits 3 naming --config when the file does not exist', async () => {
    const r = await meshd(['--config', join(dir, 'missing.yaml'), 'config', 'check']);
    expect(r.code).to.equal(3);
    expect(r.stdout).to.include('--config');
  });

  describe('--connect against the simulator', () => {
    let sim: Simulator;
    let simDir: string;
    before(async () => {
      simDir = mkdtempSync(join(tmpdir(), 'meshd-cli-config-sim-'));
      sim = await startSimulator({ dir: simDir, mailboxes: ['X26ABC1', 'X26ABC2'] });
    });
    after(async () => {
      await sim.close();
      rmSync(simDir, { recursive: true, force: true });
    });
    // The simulator creates dataDir with the default mode; make it private as an operator would.
    const privateDataDir = () => chmodSync(join(simDir, 'var', 'X26ABC1'), 0o700);

    it('does TLS and a handshake, and reports the clock skew', async () => {
      privateDataDir();
      const r = await meshd(['--json', '--config', sim.client('X26ABC1').configPath, 'config', 'check', '--connect']);
      const report = JSON.parse(r.stdout);
      expect(r.code, JSON.stringify(report.findings)).to.equal(0);
      expect(report.connect).to.have.length(1);
      expect(report.connect[0]).to.include({ mailbox: 'X26ABC1', tls: true, handshake: true });
      expect(Math.abs(report.connect[0].clockSkewSeconds)).to.be.at.most(5);
    });

    it('reports a refused handshake for the mailbox when the password is wrong', async () => {
      privateDataDir();
      const cfg = readFileSync(sim.client('X26ABC1').configPath, 'utf8');
      const pwFile = join(dir, 'wrong-password');
      writeFileSync(pwFile, 'not-the-password\n', { mode: 0o600 });
      const path = join(dir, 'wrong.yaml');
      writeFileSync(path, cfg.replace(/(password:\s*\n\s*file:\s*).*/, `$1${pwFile}`));
      const r = await meshd(['--config', path, 'config', 'check', '--connect']);
      expect(r.code).to.equal(3);
      expect(r.stdout).to.match(/ERROR\s+mailboxes\[0\]: handshake for X26ABC1 failed: MESH_AUTH/);
      expect(r.stdout).to.include('TLS ok, handshake FAILED');
      expect(r.stdout).not.to.include('not-the-password');
    });

    /** A TLS server with the simulator's certificate whose clock is `offsetMs` off. */
    async function skewedServer(offsetMs: number): Promise<{ url: string; close: () => Promise<void> }> {
      const server = createHttpsServer({ cert: readFileSync(sim.pki.serverCert), key: readFileSync(sim.pki.serverKey) }, (_req, res) => {
        res.setHeader('Date', new Date(Date.now() + offsetMs).toUTCString());
        res.writeHead(_req.url?.endsWith('_ping') ? 200 : 403, { 'content-type': 'application/json' });
        res.end('{}');
      });
      await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
      return {
        url: `https://localhost:${(server.address() as AddressInfo).port}`,
        close: () => new Promise<void>((done) => server.close(() => done())),
      };
    }

    for (const [label, offsetMs, pattern] of [
      ['an error beyond ±2 h', 3 * 3600_000, /ERROR\s+mailboxes\[0\]: this machine's clock is 10[78]\d\ds behind MESH's; tokens beyond ±2 h are refused/],
      ['a warning beyond 5 minutes', -10 * 60_000, /WARNING\s+mailboxes\[0\]: this machine's clock is (59\d|60\d)s ahead of MESH's/],
    ] as const) {
      it(`reports clock skew against the server's Date header: ${label}`, async () => {
        privateDataDir();
        const fake = await skewedServer(offsetMs);
        try {
          const path = join(dir, 'skew.yaml');
          writeFileSync(path, readFileSync(sim.client('X26ABC1').configPath, 'utf8').replace(/^url: .*$/m, `url: ${fake.url}`));
          const r = await meshd(['--config', path, 'config', 'check', '--connect']);
          expect(r.stdout).to.match(pattern);
          expect(r.code).to.equal(3); // the fake server refuses the handshake in both cases
        } finally {
          await fake.close();
        }
      });
    }

    /** A tiny HTTP CONNECT proxy that records each tunnel's target and Proxy-Authorization. */
    async function startProxy(): Promise<{ port: number; tunnels: Array<{ target: string; auth?: string }>; close: () => Promise<void> }> {
      const tunnels: Array<{ target: string; auth?: string }> = [];
      const proxy = createHttpServer();
      proxy.on('connect', (req, client, head) => {
        tunnels.push({ target: String(req.url), auth: req.headers['proxy-authorization'] });
        const [host, port] = String(req.url).split(':');
        const upstream = connect(Number(port), host, () => {
          client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
          upstream.write(head);
          upstream.pipe(client);
          client.pipe(upstream);
        });
        upstream.on('error', () => client.destroy());
        client.on('error', () => upstream.destroy());
      });
      await new Promise<void>((ready) => proxy.listen(0, '127.0.0.1', ready));
      return {
        port: (proxy.address() as AddressInfo).port,
        tunnels,
        close: async () => {
          proxy.closeAllConnections();
          await new Promise<void>((done) => proxy.close(() => done()));
        },
      };
    }

    it('carries TLS and the handshake through an HTTP CONNECT proxy', async () => {
      privateDataDir();
      const proxy = await startProxy();
      try {
        const path = join(dir, 'proxy.yaml');
        writeFileSync(path, readFileSync(sim.client('X26ABC1').configPath, 'utf8') + `proxy: http://127.0.0.1:${proxy.port}\n`);
        const r = await meshd(['--json', '--config', path, 'config', 'check', '--connect']);
        const report = JSON.parse(r.stdout);
        expect(r.code, JSON.stringify(report.findings)).to.equal(0);
        expect(report.connect[0]).to.include({ tls: true, handshake: true });
        // One tunnel for the TLS/clock probe and one for the handshake, both to the simulator.
        expect(proxy.tunnels.length).to.be.at.least(2);
        expect(proxy.tunnels.every((t) => t.target.endsWith(`:${sim.port}`) && t.auth === undefined)).to.equal(true);
      } finally {
        await proxy.close();
      }
    });

    it('authenticates to the proxy with proxy.password from a secret file, and never prints it', async () => {
      privateDataDir();
      const proxy = await startProxy();
      try {
        const path = join(dir, 'proxy.yaml');
        writeFileSync(join(dir, 'proxy.pass'), 'Proxy:Pass@word/1\n', { mode: 0o600 });
        const proxyBlock = `proxy: { url: "http://meshd@127.0.0.1:${proxy.port}", password: { file: ${join(dir, 'proxy.pass')} } }\n`;
        writeFileSync(path, readFileSync(sim.client('X26ABC1').configPath, 'utf8') + proxyBlock);
        const r = await meshd(['--config', path, 'config', 'check', '--connect']);
        expect(r.code, r.stdout).to.equal(0);
        expect(r.stdout).not.to.include('Proxy:Pass').and.not.to.match(/WARNING\s+proxy/);
        expect(proxy.tunnels.length).to.be.at.least(2);
        for (const t of proxy.tunnels) expect(t.auth).to.equal(`Basic ${Buffer.from('meshd:Proxy:Pass@word/1').toString('base64')}`);
      } finally {
        await proxy.close();
      }
    });

    it('reports a TLS failure when the CA does not match the server', async () => {
      privateDataDir();
      const other = makeCert('Other CA', new Date(Date.now() - DAY), new Date(Date.now() + DAY));
      writeFileSync(join(dir, 'other-ca.pem'), other.certPem);
      const cfg = readFileSync(sim.client('X26ABC1').configPath, 'utf8');
      const path = join(dir, 'badca.yaml');
      writeFileSync(path, cfg.replace(/(\n\s*ca:\s*).*/, `$1${join(dir, 'other-ca.pem')}`));
      const r = await meshd(['--config', path, 'config', 'check', '--connect']);
      expect(r.code).to.equal(3);
      expect(r.stdout).to.match(/ERROR\s+url: cannot reach https:\/\/\S+ over TLS for X26ABC1/);
    });
  });
});
