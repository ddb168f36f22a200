import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, isAbsolute, resolve } from 'node:path';
import { parse } from '../support/yaml';
import { meshToken } from './sim-helpers';

const BIN = resolve(__dirname, '..', '..', '..', 'bin', 'meshd.js');

interface Started {
  child: ChildProcess;
  info: { url: string; port: number; dir: string; ca: string; configs: Record<string, string> };
  stderr: () => string;
}

/** Starts `meshd sim --json` and waits for its one-line JSON announcement on stdout. */
function startCli(args: string[]): Promise<Started> {
  return new Promise((resolveStart, reject) => {
    const child = spawn(process.execPath, [BIN, '--json', 'sim', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n')) {
        try {
          resolveStart({ child, info: JSON.parse(line), stderr: () => err });
        } catch (e) {
          reject(e);
        }
      }
    });
    child.on('exit', (code) => reject(new Error(`meshd sim exited early with ${code}: ${err}`)));
  });
}

function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((r) => child.on('exit', (code) => r(code)));
}

describe('meshd sim (child process)', function () {
  this.timeout(60_000);
  let tmp: string;

  beforeEach(() => {
    tmp = mkdtempSync(join(tmpdir(), 'meshd-sim-cli-'));
  });
  afterEach(() => rmSync(tmp, { recursive: true, force: true }));

  it('starts, writes a working client config per mailbox, and stops cleanly on SIGTERM', async () => {
    const dir = join(tmp, 'sim');
    const { child, info } = await startCli(['--port', '0', '--dir', dir, '--mailboxes', 'X26ABC1,X26ABC2,X26ABC3', '--workflows', 'PATHWAY_A']);
    const exited = exitOf(child);
    try {
      expect(info.url).to.match(/^https:\/\/localhost:\d+$/);
      expect(Object.keys(info.configs)).to.deep.equal(['X26ABC1', 'X26ABC2', 'X26ABC3']);

      const path = info.configs.X26ABC3;
      expect(path).to.equal(join(dir, 'clients', 'X26ABC3.yaml'));
      expect(statSync(path).mode & 0o777).to.equal(0o600);
      const config = parse(readFileSync(path, 'utf8'));
      expect(Object.keys(config)).to.have.members(['environment', 'url', 'sharedKey', 'tls', 'dataDir', 'transfer', 'schedule', 'mailboxes']);
      expect(config).to.not.have.property('health');
      expect(config.environment).to.equal('local');
      expect(config.url).to.equal(info.url);
      expect(config.transfer.chunkSize).to.equal(20 * 1024 * 1024);
      expect(config.schedule.poll).to.equal('*/5 * * * *');
      expect(config.dataDir).to.equal(join(dir, 'var', 'X26ABC3'));
      const mailbox = config.mailboxes[0];
      expect(mailbox.id).to.equal('X26ABC3');
      expect(mailbox.folder).to.equal(join(dir, 'mailboxes', 'X26ABC3'));
      for (const p of [config.sharedKey.file, mailbox.password.file, config.tls.ca, config.tls.cert, config.tls.key, config.dataDir, mailbox.folder]) {
        expect(isAbsolute(p), p).to.equal(true);
      }
      for (const secret of [config.sharedKey.file, mailbox.password.file, config.tls.key]) {
        expect(statSync(secret).mode & 0o777, secret).to.equal(0o600);
      }
      // Block style, not flow style: no "{" maps in the file.
      expect(readFileSync(path, 'utf8')).not.to.match(/:\s*\{/);

      // The config really works: its certificate, password and shared key pass a handshake.
      const sharedKey = readFileSync(config.sharedKey.file, 'utf8');
      const password = readFileSync(mailbox.password.file, 'utf8');
      const status = await new Promise<number>((ok, fail) => {
        const req = request(
          `${config.url}/messageexchange/X26ABC3`,
          {
            method: 'POST',
            ca: readFileSync(config.tls.ca),
            cert: readFileSync(config.tls.cert),
            key: readFileSync(config.tls.key),
            headers: {
              accept: 'application/vnd.mesh.v2+json',
              authorization: meshToken('X26ABC3', password, sharedKey, new Date()),
              'mex-clientversion': 'cli-test',
              'mex-osname': 'Linux',
              'mex-osversion': '6',
            },
          },
          (res) => {
            res.resume();
            ok(res.statusCode ?? 0);
          },
        );
        req.on('error', fail);
        req.end();
      });
      expect(status).to.equal(200);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).to.equal(0);
  });

  it('reuses its certificates and secrets on the next start', async () => {
    const dir = join(tmp, 'sim');
    const first = await startCli(['--port', '0', '--dir', dir]);
    const caBefore = readFileSync(first.info.ca, 'utf8');
    const keyBefore = readFileSync(join(dir, 'secrets', 'shared.key'), 'utf8');
    first.child.kill('SIGINT');
    expect(await exitOf(first.child)).to.equal(0);
    const second = await startCli(['--port', '0', '--dir', dir]);
    const exited = exitOf(second.child);
    second.child.kill('SIGTERM');
    expect(await exited).to.equal(0);
    expect(readFileSync(second.info.ca, 'utf8')).to.equal(caBefore);
    expect(readFileSync(join(dir, 'secrets', 'shared.key'), 'utf8')).to.equal(keyBefore);
  });

  it('refuses a bad fault spec with a usage error and no stack trace', async () => {
    const child = spawn(process.execPath, [BIN, 'sim', '--port', '0', '--dir', join(tmp, 'sim'), '--faults', 'send:nope=1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    expect(await exitOf(child)).to.equal(2);
    expect(err).to.match(/unknown kind "nope"/);
    expect(err).not.to.match(/\n\s+at /);
  });
});
