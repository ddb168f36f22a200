import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigInvalidError, loadConfig } from '../../src/config';

describe('config: ledger.postgres', () => {
  let dir: string;
  const URL = 'postgresql://meshd:Pg-Secret-1@db.example.nhs.uk:5432/meshd';
  const env: NodeJS.ProcessEnv = { MESH_PASSWORD_X26ABC1: 'MailboxPassword1', MESHD_PG: URL };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshd-config-pg-'));
    mkdirSync(join(dir, 'certs'));
    for (const f of ['ca.pem', 'client.crt', 'client.key']) writeFileSync(join(dir, 'certs', f), 'PEM');
    writeFileSync(join(dir, 'shared.key'), 'SharedSecretValue\n');
    writeFileSync(join(dir, 'pg.url'), URL + '\n');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function load(ledger: string, environment = 'int', opts: { skipSecrets?: boolean } = {}) {
    const path = join(dir, 'meshd.yaml');
    const tls = environment === 'local' ? 'url: http://127.0.0.1:8700\n' : 'tls: { ca: ./certs/ca.pem, cert: ./certs/client.crt, key: ./certs/client.key }\n';
    writeFileSync(
      path,
      `environment: ${environment}\nsharedKey: { file: ./shared.key }\n${tls}${ledger}\nmailboxes:\n  - id: X26ABC1\n    password: { env: MESH_PASSWORD_X26ABC1 }\n`,
    );
    return loadConfig(path, env, opts);
  }
  async function problems(ledger: string, environment = 'int'): Promise<string[]> {
    const err = await load(ledger, environment).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err, 'expected a ConfigInvalidError').to.be.instanceOf(ConfigInvalidError);
    return (err as ConfigInvalidError).problems.map((p) => `${p.key}: ${p.message}`);
  }

  it('is absent by default: the SQLite ledger in dataDir', async () => {
    expect((await load('')).ledger.postgres).to.equal(undefined);
  });

  it('resolves the URL from env or file, even for read-only commands (which read the ledger through it)', async () => {
    expect((await load('ledger: { postgres: { env: MESHD_PG } }')).ledger.postgres).to.equal(URL);
    expect((await load('ledger: { postgres: { file: ./pg.url } }', 'int', { skipSecrets: true })).ledger.postgres).to.equal(URL);
  });

  it('allows a literal URL only with environment: local', async () => {
    expect((await load(`ledger: { postgres: "${URL}" }`, 'local')).ledger.postgres).to.equal(URL);
    const found = await problems(`ledger: { postgres: "${URL}" }`);
    expect(found).to.have.length(1);
    expect(found[0]).to.match(/^ledger\.postgres: a literal secret is allowed only with environment: local/);
  });

  it('refuses a value that is not a PostgreSQL URL without echoing it', async () => {
    const found = await problems('ledger: { postgres: { env: MESH_PASSWORD_X26ABC1 } }');
    expect(found).to.deep.equal(['ledger.postgres: must be a postgresql:// connection URL']);
    expect(found.join('\n')).to.not.include('MailboxPassword1');
    expect(await problems('ledger: { postgres: { env: NOT_SET } }')).to.deep.equal(['ledger.postgres.env: environment variable NOT_SET is not set or empty']);
  });
});
