import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigInvalidError, loadConfig } from '../../src/config';

describe('config validation (hardening)', () => {
  let dir: string;
  const env: NodeJS.ProcessEnv = { MESH_PASSWORD_X26ABC1: 'MailboxPassword1', PROXY_PASSWORD: 'Proxy:Pass@word/1' };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshd-config-hardening-'));
    mkdirSync(join(dir, 'certs'));
    for (const f of ['ca.pem', 'client.crt', 'client.key']) writeFileSync(join(dir, 'certs', f), 'PEM');
    writeFileSync(join(dir, 'shared.key'), 'SharedSecretValue\n');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function load(extraTop: string, route = '') {
    const path = join(dir, 'meshd.yaml');
    writeFileSync(
      path,
      `environment: int\nsharedKey: { file: ./shared.key }\ntls: { ca: ./certs/ca.pem, cert: ./certs/client.crt, key: ./certs/client.key }\n${extraTop}\nmailboxes:\n  - id: X26ABC1\n    password: { env: MESH_PASSWORD_X26ABC1 }\n${route ? `    routes:\n      - ${route}\n` : ''}`,
    );
    return loadConfig(path, env);
  }
  async function problems(extraTop: string, route = ''): Promise<string[]> {
    const err = await load(extraTop, route).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err, 'expected a ConfigInvalidError').to.be.instanceOf(ConfigInvalidError);
    return (err as ConfigInvalidError).problems.map((p) => `${p.key}: ${p.message}`);
  }

  it('refuses a route transform format that is not registered, naming the dotted key', async () => {
    expect(await problems('', '{ direction: out, match: "*.csv", to: X26ABC2, workflow: WF, transform: { from: csv, to: docx } }')).to.deep.equal([
      'mailboxes[0].routes[0].transform.to: unknown format "docx" (one of: csv, fhir-r4, hl7v2, notify-csv)',
    ]);
  });

  it('refuses a format used the way it cannot work (notify-csv is written only)', async () => {
    const found = await problems('', '{ direction: in, workflow: WF, transform: { from: notify-csv, to: csv } }');
    expect(found).to.have.length(1);
    expect(found[0]).to.match(/^mailboxes\[0\]\.routes\[0\]\.transform\.from: format notify-csv can only be written/);
  });

  it('still takes a proxy as a plain URL', async () => {
    expect((await load('proxy: http://proxy.example:3128')).proxy).to.equal('http://proxy.example:3128');
  });

  it('takes the proxy password from a secret and puts it, encoded, into the URL the client uses', async () => {
    const c = await load('proxy: { url: "http://meshd@proxy.example:3128", password: { env: PROXY_PASSWORD } }');
    const u = new URL(c.proxy!);
    expect(u.username).to.equal('meshd');
    expect(decodeURIComponent(u.password)).to.equal('Proxy:Pass@word/1');
    expect(u.host).to.equal('proxy.example:3128');
  });

  it('refuses a proxy password that is not a secret, a URL with a password beside it, or no user name', async () => {
    expect(await problems('proxy: { url: "http://meshd@proxy.example:3128", password: literal-pass }')).to.deep.equal([
      'proxy.password: a literal secret is allowed only with environment: local; use { env: NAME }, { file: PATH } or { credential: NAME }',
    ]);
    expect(await problems('proxy: { url: "http://meshd:other@proxy.example:3128", password: { env: PROXY_PASSWORD } }')).to.deep.equal([
      'proxy.url: must not carry a password: proxy.password holds it',
    ]);
    expect(await problems('proxy: { url: "http://proxy.example:3128", password: { env: PROXY_PASSWORD } }')).to.deep.equal([
      'proxy.url: needs the user name that goes with proxy.password (http://USER@host:port)',
    ]);
  });
});
