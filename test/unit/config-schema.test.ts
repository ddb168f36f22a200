import { expect } from 'chai';
import Ajv from 'ajv';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { load as parseYaml } from 'js-yaml';
import { loadConfig, parseSize } from '../../src/config';
import { DEFAULTS } from '../../src/config/presets';
import { SCHEMA_FILE } from '../../src/config/schema';

type Node = { properties?: Record<string, Node>; default?: unknown; $ref?: string };

/** config/meshd.schema.json is what editors check the YAML with: it must agree with the loader. */
describe('config schema (config/meshd.schema.json)', () => {
  const repo = resolve(__dirname, '..', '..', '..');
  const schema = JSON.parse(readFileSync(join(repo, 'config', 'meshd.schema.json'), 'utf8')) as Node & { definitions: Record<string, Node> };
  const props = (node: Node) => Object.keys(node.properties ?? {});
  const def = (name: string) => schema.definitions[name];

  it('is the file the validator runs, and a valid draft-07 schema (Ajv strict: no unknown keywords or type slips)', () => {
    expect(SCHEMA_FILE).to.equal(join(repo, 'config', 'meshd.schema.json'));
    const ajv = new Ajv({ strictSchema: true, strictTypes: true, strictTuples: true, allowUnionTypes: true });
    expect(ajv.validateSchema(schema), JSON.stringify(ajv.errors)).to.equal(true);
    expect(() => ajv.compile(schema)).not.to.throw();
  });

  it('every example config names the schema on its first line and validates against it', () => {
    const validate = new Ajv({ allErrors: true, allowUnionTypes: true }).compile(schema);
    const examples = readdirSync(join(repo, 'config')).filter((f) => f.endsWith('.yaml'));
    expect(examples).to.include.members(['local.yaml', 'int.yaml', 'dep.yaml', 'live.yaml']);
    for (const f of examples) {
      const text = readFileSync(join(repo, 'config', f), 'utf8');
      expect(text.split('\n')[0], f).to.equal('# yaml-language-server: $schema=./meshd.schema.json');
      expect(validate(parseYaml(text)), `${f}: ${JSON.stringify(validate.errors)}`).to.equal(true);
    }
  });

  it('shows the defaults the loader applies, for exactly the keys it has defaults for', () => {
    for (const [section, defaults] of Object.entries(DEFAULTS)) {
      const node = schema.properties![section];
      // Keys with no default: the console's TLS, the PostgreSQL ledger (absent = SQLite), the node id (hostname-pid).
      const noDefault: Record<string, string[]> = { ui: ['tls'], ledger: ['postgres'], node: ['id'] };
      expect(props(node), section).to.have.members(Object.keys(defaults).concat(noDefault[section] ?? []));
      for (const [key, value] of Object.entries(defaults)) {
        const shown = node.properties![key].default;
        expect(node.properties![key].$ref === '#/definitions/size' ? parseSize(shown) : shown, `${section}.${key}`).to.deep.equal(value);
      }
    }
  });

  describe('and the loader agree on the known keys', () => {
    let dir: string;
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'meshd-schema-'));
      mkdirSync(join(dir, 'certs'));
      for (const f of ['ca.pem', 'client.crt', 'client.key']) writeFileSync(join(dir, 'certs', f), 'PEM');
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('every key the schema allows is read into the config, none with its default value', async () => {
      const tls = '{ cert: ./certs/client.crt, key: ./certs/client.key }';
      writeFileSync(
        join(dir, 'meshd.yaml'),
        `environment: local
url: https://127.0.0.1:8700
sharedKey: test-only-shared-key
tls: { ca: ./certs/ca.pem, cert: ./certs/client.crt, key: ./certs/client.key }
proxy: { url: "http://meshd@proxy.example:3128", password: { env: TEST_PROXY_PASSWORD } }
dataDir: ./state
transfer: { chunkSize: 1MiB, compress: false, maxMessageBytes: 1GiB, timeoutSeconds: 30, minFreeBytes: 1MiB, maxCompressionRatio: 50 }
transform: { maxInputBytes: 8MiB }
retry: { attempts: 3, initialDelayMs: 10, maxDelayMs: 100, maxTotalMs: 1000 }
schedule: { poll: "* * * * *", outboundScan: "*/2 * * * *", tracking: "0 */2 * * *", handshake: "0 7 * * *", settleSeconds: 2 }
ledger: { payloadRetentionDays: 7, rowRetentionDays: 90, ambiguousSend: resend, postgres: "postgresql://meshd@db.example/meshd" }
node: { id: host-1, leaseSeconds: 10 }
health: { port: 9464, host: ::1 }
ui: { port: 9999, host: 0.0.0.0, readOnly: true, showPayloads: true, tls: ${tls} }
log: { level: debug, format: json }
mailboxes:
  - id: X26ABC1
    password: test-only-password
    folder: ./mb
    controlFiles: false
    tls: ${tls}
    routes:
      - { direction: out, match: "*.csv", to: X26ABC2, workflow: WF, subject: S, ackTimeout: 4h, transform: { from: csv, to: fhir-r4 } }
      - { direction: in, from: X26ABC2, workflow: WF, transform: { from: hl7v2, to: csv } }
`,
      );
      const config = await loadConfig(join(dir, 'meshd.yaml'), { TEST_PROXY_PASSWORD: 'test-only-proxy' });
      const read = config as unknown as Record<string, unknown>;
      expect(Object.keys(config).filter((k) => k !== 'configPath' && k !== 'configDir')).to.have.members(props(schema));
      for (const section of ['tls', 'transfer', 'transform', 'retry', 'schedule', 'ledger', 'node', 'health', 'ui', 'log']) {
        expect(Object.keys(read[section] as object), section).to.have.members(props(schema.properties![section]));
      }
      for (const [section, defaults] of Object.entries(DEFAULTS)) {
        for (const [key, value] of Object.entries(defaults)) expect((read[section] as Record<string, unknown>)[key], `${section}.${key}`).not.to.deep.equal(value);
      }
      const [mailbox] = config.mailboxes;
      expect(Object.keys(mailbox)).to.have.members(props(def('mailbox')));
      expect(Object.keys(mailbox.tls!)).to.have.members(props(def('mailbox').properties!.tls));
      expect(Object.keys(mailbox.routes[0]).concat(Object.keys(mailbox.routes[1]))).to.have.members(props(def('route')).concat('direction', 'workflow', 'transform'));
      expect(Object.keys(mailbox.routes[0].transform!)).to.have.members(props(def('route').properties!.transform));
      expect(new URL(config.proxy!).password).to.equal('test-only-proxy');
    });
  });
});
