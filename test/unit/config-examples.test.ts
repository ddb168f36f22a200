import { expect } from 'chai';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { loadConfig } from '../../src/config';

/** The commented examples in config/ must stay valid against the loader. */
describe('example configs', () => {
  const repo = resolve(__dirname, '..', '..', '..');
  let dir: string;
  const touch = (p: string, text = 'x') => {
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, text);
  };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshd-examples-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('config/local.yaml validates against a simulator layout', async () => {
    mkdirSync(join(dir, 'config'));
    copyFileSync(join(repo, 'config', 'local.yaml'), join(dir, 'config', 'local.yaml'));
    for (const f of ['pki/ca.pem', 'pki/clients/X26ABC1.crt', 'pki/clients/X26ABC1.key', 'secrets/shared.key', 'secrets/X26ABC1.password']) touch(join(dir, 'sim', f));
    const c = await loadConfig(join(dir, 'config', 'local.yaml'), {});
    expect(c.url).to.equal('https://localhost:8700');
    expect(c.mailboxes[0].routes).to.have.length(2);
  });

  for (const env of ['int', 'dep', 'live']) {
    it(`config/${env}.yaml validates with credentials from systemd`, async () => {
      copyFileSync(join(repo, 'config', `${env}.yaml`), join(dir, 'meshd.yaml'));
      for (const f of [`certs/${env}-ca-bundle.pem`, 'certs/client.crt', 'certs/client.key', 'creds/mesh-shared-key', 'creds/mesh-password-X26ABC1']) touch(join(dir, f));
      const c = await loadConfig(join(dir, 'meshd.yaml'), { CREDENTIALS_DIRECTORY: join(dir, 'creds') });
      expect(c.environment).to.equal(env);
      expect(c.url).to.match(/^https:\/\/.*spineservices\.nhs\.uk$/);
      expect(c.schedule.poll).to.equal('*/5 * * * *');
    });
  }
});
