import { Writable } from 'node:stream';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { expect } from 'chai';
import { MeshdError } from '../../src/errors';
import { createLogger, redact, redactString, registerSecret, resolveLogFormat, silentLogger, type LogLevel } from '../../src/log';

/** Collects every line the logger writes. */
function sink(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  return { stream, text: () => chunks.join('') };
}

const tick = () => new Promise((r) => setImmediate(r));

const PASSWORD = 'MailboxPassw0rd-71';
const SHARED_KEY = 'EnvSharedKey-Banana-42';
const TOKEN = 'NHSMESH X26ABC1:6a1e3c3e-8f0b-4f55-9d1e-1b2c3d4e5f60:0:202611241000:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';
const PRIVATE_KEY = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const KEY_BODY_LINE = PRIVATE_KEY.split('\n')[3];
// Synthetic NHS number from the 999 test range with a valid Modulus 11 check digit.
const NHS_NUMBER = '9990000018';

const FORBIDDEN = [PASSWORD, SHARED_KEY, TOKEN.split(' ')[1], KEY_BODY_LINE, 'BEGIN PRIVATE KEY', NHS_NUMBER, '999 000 0018', 'proxy-secret'];

function assertClean(out: string): void {
  for (const secret of FORBIDDEN) expect(out, `log output contains ${secret.slice(0, 12)}…`).not.to.include(secret);
}

/** Every way a caller might hand a secret to the logger. */
function logEverything(level: LogLevel, log: ReturnType<typeof createLogger>): void {
  const write = log[level].bind(log);
  write('TEST_MESSAGE', `auth failed for ${PASSWORD} with ${TOKEN}`);
  write('TEST_MESSAGE', `key material: ${PRIVATE_KEY}`);
  write('TEST_FIELDS', 'fields', { password: PASSWORD, sharedKey: SHARED_KEY, authorization: TOKEN, privateKey: PRIVATE_KEY, note: `key=${SHARED_KEY}` });
  write('TEST_NESTED', 'nested', { request: { headers: { Authorization: TOKEN, 'x-other': [`value ${SHARED_KEY}`] } }, deep: { a: { b: { c: { pem: PRIVATE_KEY } } } } });
  const err = new MeshdError('MESH_AUTH', `403 for token ${TOKEN}`, `check password ${PASSWORD}`, 'auth', { cause: new Error(`inner ${SHARED_KEY}`) });
  write('TEST_ERROR', `failed: ${String(err)}`, { err, list: [new Error(PRIVATE_KEY)] });
  write('TEST_PATIENT', `no match for NHS number ${NHS_NUMBER} (also 999 000 0018)`, { nhsNumber: NHS_NUMBER });
  write('TEST_URL', 'proxy', { proxy: 'http://meshuser:proxy-secret@proxy.example:3128' });
  log.child({ secret: SHARED_KEY, mailbox: 'X26ABC1' })[level]('TEST_CHILD', 'child logger');
}

describe('log redaction (src/log.ts)', () => {
  before(() => {
    registerSecret(PASSWORD);
    registerSecret(SHARED_KEY);
  });

  for (const format of ['json', 'text'] as const) {
    for (const level of ['error', 'warn', 'info', 'debug'] as const) {
      it(`keeps passwords, shared key, NHSMESH tokens, PEM keys and NHS numbers out of ${format} lines at ${level}`, async () => {
        const s = sink();
        logEverything(level, createLogger({ level: 'debug', format, stream: s.stream }));
        await tick();
        const out = s.text();
        // Every entry was written, with its event code intact.
        for (const event of ['TEST_MESSAGE', 'TEST_FIELDS', 'TEST_NESTED', 'TEST_ERROR', 'TEST_PATIENT', 'TEST_URL', 'TEST_CHILD']) expect(out).to.include(event);
        expect(out).to.include('[REDACTED]');
        expect(out).to.include('X26ABC1');
        assertClean(out);
      });
    }
  }

  it('writes one JSON object per line with level, event and message', async () => {
    const s = sink();
    createLogger({ level: 'info', format: 'json', stream: s.stream }).warn('POLL_FAILED', 'poll failed', { mailbox: 'X26ABC1', level: 'debug', event: 'X' });
    await tick();
    const lines = s.text().trim().split('\n');
    expect(lines).to.have.length(1);
    const entry = JSON.parse(lines[0]);
    // Fields cannot overwrite the entry's own level or event.
    expect(entry).to.include({ level: 'warn', event: 'POLL_FAILED', message: 'poll failed', mailbox: 'X26ABC1' });
    expect(entry.timestamp).to.be.a('string');
  });

  it('drops entries below the configured level', async () => {
    const s = sink();
    const log = createLogger({ level: 'warn', format: 'json', stream: s.stream });
    log.info('IGNORED', 'not shown');
    log.error('SHOWN', 'shown');
    await tick();
    expect(s.text()).to.include('SHOWN').and.not.include('IGNORED');
  });

  it('loads winston only when a line passes the level (an idle run says nothing and skips it)', () => {
    const log = require.resolve('../../src/log');
    const script = `
      const { createLogger } = require(${JSON.stringify(log)});
      const loaded = () => Object.keys(require.cache).some((f) => f.includes('/node_modules/winston/'));
      const l = createLogger({ level: 'info', format: 'json' }).child({ mailbox: 'X26ABC1' });
      l.debug('QUIET', 'below the level');
      const before = loaded();
      l.info('SAID', 'at the level');
      process.stdout.write(JSON.stringify([before, loaded()]));`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(r.status, r.stderr).to.equal(0);
    expect(JSON.parse(r.stdout)).to.deep.equal([false, true]);
    expect(r.stderr).to.include('"event":"SAID"').and.not.include('QUIET');
  });

  it('turns Errors into name, message, code, hint and cause', () => {
    const e = new MeshdError('MESH_REJECTED', 'rejected', 'fix the workflow', 'rejected', { cause: new Error('root') });
    expect(redact({ e })).to.deep.equal({ e: { name: 'MeshdError', message: 'rejected', code: 'MESH_REJECTED', hint: 'fix the workflow', cause: { name: 'Error', message: 'root' } } });
  });

  it('cuts cycles and absurd depth instead of passing them through', () => {
    const loop: Record<string, unknown> = { name: 'loop' };
    loop.self = loop;
    expect(JSON.stringify(redact(loop))).to.include('[TRUNCATED]');
  });

  it('masks only NHS numbers with a valid check digit, not message IDs or other numbers', () => {
    expect(redactString('patient 9990000018')).to.equal('patient [NHS-NUMBER]');
    expect(redactString('count 9990000019')).to.equal('count 9990000019');
    expect(redactString('id 20200529155357895317_3573F8')).to.equal('id 20200529155357895317_3573F8');
    // Inside identifiers and file names a digit run is not an NHS number.
    expect(redactString('id 0A9990000018FF file appts_9990000018.csv')).to.equal('id 0A9990000018FF file appts_9990000018.csv');
    expect(redactString('PID|||9990000018^^^NHS')).to.equal('PID|||[NHS-NUMBER]^^^NHS');
  });

  it('keeps non-secret numbers and booleans under secret-looking names', () => {
    expect(redact({ tokenCount: 3, passwordSet: true, password: 'x' })).to.deep.equal({ tokenCount: 3, passwordSet: true, password: '[REDACTED]' });
  });

  it('chooses JSON under systemd or when piped, text at a terminal', () => {
    expect(resolveLogFormat('auto', {}, true)).to.equal('text');
    expect(resolveLogFormat('auto', { INVOCATION_ID: 'abc' }, true)).to.equal('json');
    expect(resolveLogFormat(undefined, {}, false)).to.equal('json');
    expect(resolveLogFormat('text', { INVOCATION_ID: 'abc' }, false)).to.equal('text');
    expect(resolveLogFormat('auto', { MESHD_LOG_FORMAT: 'text' }, false)).to.equal('text');
  });

  it('has a silent logger that accepts every call', () => {
    expect(() => silentLogger.child({ a: 1 }).error('X', 'y')).not.to.throw();
  });
});
