import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigInvalidError, findConfigPath, loadConfig, parseSize, selectMailbox } from '../../src/config';
import { minIntervalMinutes } from '../../src/config/cron';
import { ConfigError, MeshdError } from '../../src/errors';
import { redactString } from '../../src/log';

describe('config', () => {
  let dir: string;
  const env: NodeJS.ProcessEnv = {};

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshd-config-'));
    mkdirSync(join(dir, 'certs'));
    for (const f of ['ca.pem', 'client.crt', 'client.key']) writeFileSync(join(dir, 'certs', f), 'PEM');
    writeFileSync(join(dir, 'shared.key'), 'SharedSecretValue\n');
    for (const k of Object.keys(env)) delete env[k];
    env.MESH_PASSWORD_X26ABC1 = 'MailboxPassword1';
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const tlsBlock = 'tls:\n  ca: ./certs/ca.pem\n  cert: ./certs/client.crt\n  key: ./certs/client.key\n';
  const minimal = (extra = '', environment = 'int') =>
    `environment: ${environment}\nsharedKey: { file: ./shared.key }\n${tlsBlock}mailboxes:\n  - id: x26abc1\n    password: { env: MESH_PASSWORD_X26ABC1 }\n${extra}`;

  async function load(text: string) {
    const path = join(dir, 'meshd.yaml');
    writeFileSync(path, text);
    return loadConfig(path, env);
  }
  async function problems(text: string): Promise<string[]> {
    const err = await load(text).then(
      () => undefined,
      (e) => e,
    );
    expect(err, 'expected a ConfigInvalidError').to.be.instanceOf(ConfigInvalidError);
    expect(err).to.be.instanceOf(ConfigError);
    expect(err.kind).to.equal('config');
    return (err as ConfigInvalidError).problems.map((p) => `${p.key}: ${p.message}`);
  }

  it('fills every default and the environment preset', async () => {
    const c = await load(minimal());
    expect(c.url).to.equal('https://msg.intspineservices.nhs.uk');
    expect(c.transfer).to.deep.equal({ chunkSize: 20 * 1024 * 1024, compress: true, maxMessageBytes: 20 * 1024 ** 3, timeoutSeconds: 600, minFreeBytes: 2 * 1024 ** 3, maxCompressionRatio: 1000 });
    expect(c.transform).to.deep.equal({ maxInputBytes: 64 * 1024 ** 2 });
    expect(c.retry).to.deep.equal({ attempts: 6, initialDelayMs: 1000, maxDelayMs: 60000, maxTotalMs: 300000 });
    expect(c.schedule).to.deep.equal({ poll: '*/5 * * * *', outboundScan: '* * * * *', tracking: '0 * * * *', handshake: '0 6 * * *', settleSeconds: 5 });
    expect(c.ledger).to.deep.equal({ payloadRetentionDays: 30, rowRetentionDays: 365, ambiguousSend: 'review' });
    expect(c.health).to.deep.equal({ port: 0, host: '127.0.0.1' });
    expect(c.log).to.deep.equal({ level: 'info', format: 'auto' });
    expect(c.dataDir).to.equal(join(dir, 'var'));
    expect(c.mailboxes[0]).to.deep.equal({ id: 'X26ABC1', password: 'MailboxPassword1', folder: join(dir, 'mailboxes', 'X26ABC1'), controlFiles: true, routes: [] });
  });

  it('applies the dep and live presets', async () => {
    expect((await load(minimal('', 'dep'))).url).to.equal('https://msg.depspineservices.nhs.uk');
    expect((await load(minimal('', 'live'))).url).to.equal('https://mesh-sync.spineservices.nhs.uk');
  });

  it('resolves relative paths against the config file directory', async () => {
    const c = await load(minimal('    folder: ./mb1\n') + 'dataDir: ./state\n');
    expect(c.tls.ca).to.equal(join(dir, 'certs', 'ca.pem'));
    expect(c.tls.key).to.equal(join(dir, 'certs', 'client.key'));
    expect(c.dataDir).to.equal(join(dir, 'state'));
    expect(c.mailboxes[0].folder).to.equal(join(dir, 'mb1'));
  });

  it('reads every key of the contract', async () => {
    const c = await load(`environment: local
url: https://127.0.0.1:8700/
sharedKey: literal-local-key
${tlsBlock}proxy: http://proxy.example:3128
dataDir: /var/lib/meshd
transfer: { chunkSize: 512KiB, compress: false, maxMessageBytes: 1GiB, timeoutSeconds: 30, minFreeBytes: 1MiB, maxCompressionRatio: 50 }
transform: { maxInputBytes: 8MiB }
retry: { attempts: 3, initialDelayMs: 10, maxDelayMs: 100, maxTotalMs: 1000 }
schedule: { poll: "* * * * *", outboundScan: "*/2 * * * *", tracking: "0 */2 * * *", handshake: "0 7 * * *", settleSeconds: 2 }
ledger: { payloadRetentionDays: 7, rowRetentionDays: 90, ambiguousSend: resend }
health: { port: 9464, host: 0.0.0.0 }
log: { level: debug, format: json }
mailboxes:
  - id: X26ABC1
    password: pw-local
    folder: ./mailboxes/X26ABC1
    controlFiles: false
    routes:
      - { direction: out, match: "*.csv", to: x26abc2, workflow: TEST_WORKFLOW, subject: hi, transform: { from: csv, to: fhir-r4 } }
      - { direction: in, workflow: TEST_WORKFLOW, from: X26ABC2, transform: { from: fhir-r4, to: hl7v2 } }
`);
    expect(c.url).to.equal('https://127.0.0.1:8700');
    expect(c.proxy).to.equal('http://proxy.example:3128');
    expect(c.transfer).to.deep.equal({ chunkSize: 512 * 1024, compress: false, maxMessageBytes: 1024 ** 3, timeoutSeconds: 30, minFreeBytes: 1024 ** 2, maxCompressionRatio: 50 });
    expect(c.transform).to.deep.equal({ maxInputBytes: 8 * 1024 ** 2 });
    expect(c.retry.attempts).to.equal(3);
    expect(c.schedule.poll).to.equal('* * * * *');
    expect(c.ledger.ambiguousSend).to.equal('resend');
    expect(c.health).to.deep.equal({ port: 9464, host: '0.0.0.0' });
    expect(c.log).to.deep.equal({ level: 'debug', format: 'json' });
    expect(c.mailboxes[0].controlFiles).to.equal(false);
    expect(c.mailboxes[0].routes).to.deep.equal([
      { direction: 'out', match: '*.csv', to: 'X26ABC2', workflow: 'TEST_WORKFLOW', subject: 'hi', transform: { from: 'csv', to: 'fhir-r4' } },
      // Inbound business semantics default on: duplicates dropped, ordering enforced where a transform reads the payload.
      { direction: 'in', workflow: 'TEST_WORKFLOW', from: 'X26ABC2', transform: { from: 'fhir-r4', to: 'hl7v2' }, duplicates: 'drop', ordering: 'enforce', ack: false, deliverAcks: false },
    ]);
  });

  it('names every unknown key by its full dotted path, all at once', async () => {
    const list = await problems(minimal('    pasword: x\n    routes:\n      - { direction: out, match: "*", to: A, workflow: W, trnsform: 1 }\n') + 'transfer: { chunksize: 1 }\nextra: 1\n');
    expect(list.some((l) => l.startsWith('mailboxes[0].pasword: unknown key'))).to.equal(true);
    expect(list.some((l) => l.startsWith('mailboxes[0].routes[0].trnsform: unknown key'))).to.equal(true);
    expect(list.some((l) => l.startsWith('transfer.chunksize: unknown key'))).to.equal(true);
    expect(list.some((l) => l.startsWith('extra: unknown key'))).to.equal(true);
    expect(list).to.have.length(4);
  });

  it('lists one line per problem in the error message', async () => {
    const err = await load(minimal() + 'log: { level: loud, format: xml }\n').catch((e) => e);
    expect(err.message).to.contain('2 problems');
    expect(err.message).to.contain('\n  - log.level: must be one of error, warn, info, debug');
    expect(err.message).to.contain('\n  - log.format: must be one of auto, json, text');
  });

  it('checks types and ranges', async () => {
    const list = await problems(
      minimal('    controlFiles: maybe\n') +
        'retry: { attempts: 0, initialDelayMs: -1 }\nhealth: { port: 70000 }\nledger: { ambiguousSend: sometimes }\nschedule: { poll: "not cron", settleSeconds: 1.5 }\n',
    );
    for (const key of ['mailboxes[0].controlFiles', 'retry.attempts', 'retry.initialDelayMs', 'health.port', 'ledger.ambiguousSend', 'schedule.poll', 'schedule.settleSeconds']) {
      expect(list.some((l) => l.startsWith(`${key}:`)), key).to.equal(true);
    }
  });

  it('requires environment and at least one mailbox, and refuses duplicates', async () => {
    expect(await problems('sharedKey: x\nmailboxes: []\n')).to.include.members(['environment: is required (one of local, int, dep, live)', 'mailboxes: must be a list with at least one mailbox']);
    const dup = await problems(minimal() + '  - id: X26ABC1\n    password: { env: MESH_PASSWORD_X26ABC1 }\n');
    expect(dup.some((l) => l.startsWith('mailboxes[1].id: duplicate'))).to.equal(true);
  });

  it('validates routes by direction', async () => {
    const list = await problems(minimal('    routes:\n      - { direction: out, workflow: W }\n      - { direction: in, workflow: W, to: X }\n      - { direction: sideways, workflow: W }\n'));
    expect(list).to.include.members([
      'mailboxes[0].routes[0].match: is required',
      'mailboxes[0].routes[0].to: is required',
      'mailboxes[0].routes[1].to: applies only to direction: out',
      'mailboxes[0].routes[2].direction: must be one of in, out',
    ]);
  });

  it('validates the business options of routes: where they apply, their values, and their defaults', async () => {
    const list = await problems(
      minimal(
        '    routes:\n' +
          '      - { direction: in, workflow: W, ackTimeout: 4h }\n' +
          '      - { direction: out, match: "*", to: X26ABC2, workflow: W, ordering: enforce, ack: true }\n' +
          '      - { direction: out, match: "*", to: X26ABC2, workflow: W, ackTimeout: "4 weeks" }\n' +
          '      - { direction: in, workflow: W, duplicates: sometimes, ordering: strict }\n',
      ),
    );
    expect(list).to.include.members([
      'mailboxes[0].routes[0].ackTimeout: applies only to direction: out',
      'mailboxes[0].routes[1].ordering: applies only to direction: in',
      'mailboxes[0].routes[1].ack: applies only to direction: in',
      'mailboxes[0].routes[2].ackTimeout: must be a duration: seconds as an integer, or a number with s, m, h or d (e.g. 4h)',
    ]);
    expect(list.filter((l) => l.startsWith('mailboxes[0].routes[3].'))).to.have.length(2);
    const c = await load(
      minimal('    routes:\n      - { direction: out, match: "*", to: X26ABC2, workflow: W, ackTimeout: 90m }\n      - { direction: in, workflow: W }\n      - { direction: in, workflow: V, transform: { from: hl7v2, to: fhir-r4 } }\n'),
    );
    const [out, plain, converting] = c.mailboxes[0].routes;
    expect(out.ackTimeout).to.equal(5400);
    // Safe defaults: duplicates dropped everywhere; ordering enforced where a transform reads the payload.
    expect(plain).to.include({ duplicates: 'drop', ordering: 'off', ack: false, deliverAcks: false });
    expect(converting).to.include({ duplicates: 'drop', ordering: 'enforce', ack: false });
  });

  describe('secrets', () => {
    it('reads { file } and trims the trailing newline', async () => {
      expect((await load(minimal())).sharedKey).to.equal('SharedSecretValue');
    });

    it('reads { credential } from $CREDENTIALS_DIRECTORY', async () => {
      mkdirSync(join(dir, 'creds'));
      writeFileSync(join(dir, 'creds', 'mesh-password'), 'CredPassword\r\n');
      env.CREDENTIALS_DIRECTORY = join(dir, 'creds');
      const c = await load(minimal().replace('{ env: MESH_PASSWORD_X26ABC1 }', '{ credential: mesh-password }'));
      expect(c.mailboxes[0].password).to.equal('CredPassword');
    });

    it('lets a mailbox have its own client certificate and key (both, existing)', async () => {
      const own = '    tls: { cert: ./certs/client.crt, key: ./certs/client.key }\n';
      const c = await load(minimal(own));
      expect(c.mailboxes[0].tls).to.deep.equal({ cert: join(dir, 'certs', 'client.crt'), key: join(dir, 'certs', 'client.key') });
      const list = await problems(minimal('    tls: { cert: ./certs/missing.crt, ca: ./certs/ca.pem }\n'));
      expect(list.some((l) => l.startsWith('mailboxes[0].tls.cert: file '))).to.equal(true);
      expect(list).to.include('mailboxes[0].tls.ca: unknown key (expected one of cert, key)');
      expect(list.some((l) => l.startsWith('mailboxes[0].tls.key:'))).to.equal(true);
    });

    it('takes the private key from a systemd credential (tls.key: { credential })', async () => {
      mkdirSync(join(dir, 'creds'));
      writeFileSync(join(dir, 'creds', 'client-key'), 'PEM');
      env.CREDENTIALS_DIRECTORY = join(dir, 'creds');
      const c = await load(minimal().replace('key: ./certs/client.key', 'key: { credential: client-key }'));
      expect(c.tls.key).to.equal(join(dir, 'creds', 'client-key'));
      delete env.CREDENTIALS_DIRECTORY;
      expect(await problems(minimal().replace('key: ./certs/client.key', 'key: { credential: client-key }'))).to.include(
        'tls.key.credential: CREDENTIALS_DIRECTORY is not set (use LoadCredential= in the systemd unit)',
      );
      expect(await problems(minimal().replace('key: ./certs/client.key', 'key: { env: KEY }'))).to.include('tls.key: must be a file path or { credential: NAME }');
    });

    it('explains missing env vars, files and credentials without showing any secret', async () => {
      delete env.MESH_PASSWORD_X26ABC1;
      const list = await problems(minimal().replace('{ file: ./shared.key }', '{ file: ./missing.key }'));
      expect(list).to.include('mailboxes[0].password.env: environment variable MESH_PASSWORD_X26ABC1 is not set or empty');
      expect(list.some((l) => l.startsWith('sharedKey.file: file ') && l.includes('missing.key'))).to.equal(true);
      const cred = await problems(minimal().replace('{ env: MESH_PASSWORD_X26ABC1 }', '{ credential: pw }'));
      expect(cred.some((l) => l.includes('CREDENTIALS_DIRECTORY is not set'))).to.equal(true);
    });

    it('refuses credential names that are paths and objects with two forms', async () => {
      env.CREDENTIALS_DIRECTORY = dir;
      const list = await problems(minimal().replace('{ env: MESH_PASSWORD_X26ABC1 }', '{ credential: ../shared.key }').replace('{ file: ./shared.key }', '{ file: ./shared.key, env: X }'));
      expect(list).to.include('mailboxes[0].password.credential: must be a plain credential name, not a path');
      expect(list).to.include('sharedKey: must have exactly one of env, file, credential');
    });

    it('allows a literal secret only with environment: local', async () => {
      const list = await problems(minimal().replace('{ env: MESH_PASSWORD_X26ABC1 }', 'plaintext-password'));
      expect(list[0]).to.match(/^mailboxes\[0\]\.password: a literal secret is allowed only with environment: local/);
      expect(list.join('\n')).not.to.contain('plaintext-password');
      const local = await load(minimal('', 'local').replace('{ env: MESH_PASSWORD_X26ABC1 }', 'plaintext-password') + 'url: https://127.0.0.1:8700\n');
      expect(local.mailboxes[0].password).to.equal('plaintext-password');
    });

    it('registers every resolved secret with the logger for redaction', async () => {
      await load(minimal());
      expect(redactString('key=SharedSecretValue pw=MailboxPassword1')).to.equal('key=[REDACTED] pw=[REDACTED]');
    });
  });

  describe('url and TLS', () => {
    it('allows plain http only with environment: local', async () => {
      const list = await problems(minimal() + 'url: http://mesh.example\n');
      expect(list).to.include('url: plain http:// is allowed only with environment: local; use https://');
      const c = await load(minimal('', 'local').replace(tlsBlock, '') + 'url: http://127.0.0.1:8700\n');
      expect(c.url).to.equal('http://127.0.0.1:8700');
    });

    it('requires url for local and tls for https', async () => {
      expect(await problems(minimal('', 'local'))).to.include('url: is required with environment: local');
      expect(await problems(minimal().replace(tlsBlock, ''))).to.include('tls: is required for https:// (ca, cert, key)');
    });

    it('reports TLS files that do not exist', async () => {
      rmSync(join(dir, 'certs', 'client.key'));
      const list = await problems(minimal());
      expect(list).to.have.length(1);
      expect(list[0]).to.match(/^tls\.key: file .*client\.key does not exist$/);
    });
  });

  describe('sizes', () => {
    it('parses integers and KiB/MiB/GiB', () => {
      expect(parseSize(1234)).to.equal(1234);
      expect(parseSize('512KiB')).to.equal(524288);
      expect(parseSize('20MiB')).to.equal(20971520);
      expect(parseSize('1GiB')).to.equal(1073741824);
      expect(parseSize('1.5 MiB')).to.equal(1572864);
      expect(parseSize('20 parsecs')).to.equal(undefined);
      expect(parseSize(-1)).to.equal(undefined);
      expect(parseSize('')).to.equal(undefined);
    });

    it('refuses chunk sizes at or over 100 MB (a gzip chunk can grow)', async () => {
      const list = await problems(minimal() + 'transfer: { chunkSize: 100000000 }\n');
      expect(list[0]).to.match(/^transfer\.chunkSize: must be from 1 to 99000000 bytes/);
      expect((await load(minimal() + 'transfer: { chunkSize: 90MiB }\n')).transfer.chunkSize).to.equal(90 * 1024 * 1024);
    });

    it('refuses bad size strings', async () => {
      const list = await problems(minimal() + 'transfer: { maxMessageBytes: lots }\n');
      expect(list[0]).to.match(/^transfer\.maxMessageBytes: must be a byte count/);
    });
  });

  describe('schedule', () => {
    it('refuses polling more often than every 5 minutes outside local', async () => {
      for (const poll of ['* * * * *', '*/4 * * * *', '0,3 * * * *', '*/10 * * * * *']) {
        const list = await problems(minimal() + `schedule: { poll: "${poll}" }\n`);
        expect(list[0], poll).to.match(/^schedule\.poll: MESH must not be polled more often than every 5 minutes/);
      }
      expect((await load(minimal() + 'schedule: { poll: "*/5 * * * *" }\n')).schedule.poll).to.equal('*/5 * * * *');
      expect((await load(minimal() + 'schedule: { poll: "0 */2 * * *" }\n')).schedule.poll).to.equal('0 */2 * * *');
    });

    it('works out the shortest gap of a cron expression', () => {
      expect(minIntervalMinutes('*/5 * * * *')).to.equal(5);
      expect(minIntervalMinutes('0,58 * * * *')).to.equal(2);
      expect(minIntervalMinutes('0,58 9 * * *')).to.equal(58);
      expect(minIntervalMinutes('15 * * * *')).to.equal(60);
      expect(minIntervalMinutes('*/30 * * * * *')).to.equal(0);
      expect(minIntervalMinutes('@hourly')).to.equal(undefined);
    });
  });

  it('reports YAML syntax errors with a line number', async () => {
    const err = await load('environment: int\nmailboxes: [\n  - x').catch((e) => e);
    expect(err).to.be.instanceOf(ConfigError);
    expect(err.message).to.match(/not valid YAML at line \d+/);
  });

  it('refuses duplicate keys, several documents and alias bombs, naming the line and never the text', async () => {
    const dup = await load('environment: int\npassword: hunter2-secret\nenvironment: dep\n').catch((e) => e);
    expect(dup).to.be.instanceOf(ConfigError);
    expect(dup.message).to.match(/not valid YAML at line 3, column 1: duplicated mapping key/);
    expect(dup.message).not.to.contain('hunter2');
    const two = await load('environment: int\n---\nenvironment: dep\n').catch((e) => e);
    expect(two.message).to.contain('holds 2 YAML documents');
    // One alias over the cap of 100: nested aliases multiply (an alias bomb), so they are capped.
    const bomb = 'a: &a [x]\nb: [' + Array.from({ length: 101 }, () => '*a').join(', ') + ']\n';
    const refused = await load(bomb).catch((e) => e);
    expect(refused).to.be.instanceOf(ConfigError);
    expect(refused.message).to.match(/not valid YAML/);
  });

  it('reads a file of comments alone as no config, not as a YAML error', async () => {
    const err = await load('# nothing yet\n').catch((e) => e);
    expect(err).to.be.instanceOf(ConfigError);
    expect(err.message).not.to.contain('not valid YAML');
    expect(err.message).to.contain('the file must contain a YAML mapping');
  });

  it('reports a missing file as a config error', async () => {
    const err = await loadConfig(join(dir, 'nope.yaml')).catch((e) => e);
    expect(err).to.be.instanceOf(ConfigError);
    expect(err.message).to.contain('does not exist');
  });

  describe('findConfigPath', () => {
    it('prefers --config, then $MESHD_CONFIG, then ./config/meshd.yaml', () => {
      writeFileSync(join(dir, 'a.yaml'), '');
      writeFileSync(join(dir, 'b.yaml'), '');
      mkdirSync(join(dir, 'config'));
      writeFileSync(join(dir, 'config', 'meshd.yaml'), '');
      expect(findConfigPath('a.yaml', { MESHD_CONFIG: 'b.yaml' }, dir)).to.equal(join(dir, 'a.yaml'));
      expect(findConfigPath(undefined, { MESHD_CONFIG: 'b.yaml' }, dir)).to.equal(join(dir, 'b.yaml'));
      expect(findConfigPath(undefined, {}, dir)).to.equal(join(dir, 'config', 'meshd.yaml'));
    });

    it('says which places were tried', () => {
      expect(() => findConfigPath(undefined, {}, dir)).to.throw(ConfigError, /tried --config \(not given\), \$MESHD_CONFIG \(not set\), .*config\/meshd\.yaml/);
      expect(() => findConfigPath('missing.yaml', {}, dir)).to.throw(ConfigError, /missing\.yaml does not exist/);
    });
  });

  describe('selectMailbox', () => {
    it('picks the only mailbox, the named one, or asks', async () => {
      const one = await load(minimal());
      expect(selectMailbox(one).id).to.equal('X26ABC1');
      env.MESH_PASSWORD_X26ABC2 = 'pw2';
      const two = await load(minimal() + '  - id: X26ABC2\n    password: { env: MESH_PASSWORD_X26ABC2 }\n');
      expect(selectMailbox(two, 'x26abc2').id).to.equal('X26ABC2');
      const err = (() => {
        try {
          selectMailbox(two);
        } catch (e) {
          return e as MeshdError;
        }
      })();
      expect(err?.kind).to.equal('usage');
      expect(err?.hint).to.contain('X26ABC1, X26ABC2');
    });
  });
});
