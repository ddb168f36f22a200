import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from '../support/yaml';
import { createServer, type AddressInfo } from 'node:net';
import { acquireInstanceLock } from '../../src/daemon/lock';
import { controlFile, dropFile, RECEIVER, runMeshd, SENDER, startDaemonEnv, type DaemonEnv } from '../integration/support/daemon-env';

describe('meshd run (as a process)', function () {
  this.timeout(60_000);
  let env: DaemonEnv;
  before(async () => {
    env = await startDaemonEnv();
  });
  after(async () => env?.close());

  it('--dry-run shows what would be sent and moves nothing', async () => {
    dropFile(env.folder(SENDER, 'out'), 'dry.dat', 'dry');
    dropFile(env.folder(SENDER, 'out'), 'dry.ctl', controlFile(RECEIVER, 'TEST_WORKFLOW'));
    const r = await runMeshd(['--config', env.configPath[SENDER], '--json', 'run', '--dry-run']);
    expect(r.code, r.stderr).to.equal(0);
    const out = JSON.parse(r.stdout);
    expect(out.mailboxes[0].outbound).to.deep.equal([{ file: 'dry.dat', to: RECEIVER, workflow: 'TEST_WORKFLOW' }]);
    expect(readdirSync(env.folder(SENDER, 'out')).sort()).to.deep.equal(['dry.ctl', 'dry.dat']);
    expect(env.sim.messages()).to.have.length(0);
  });

  it('--once runs one cycle and reports it as JSON', async () => {
    const r = await runMeshd(['--config', env.configPath[SENDER], '--json', 'run', '--once']);
    expect(r.code, r.stderr).to.equal(0);
    expect(JSON.parse(r.stdout).mailboxes[0]).to.include({ mailbox: SENDER, claimed: 1, sent: 1 });
  });

  it('--once with nothing to do loads no PostgreSQL ledger or lease, zlib, node-cron, HTTP/2, other command or addon finder (start-up time)', async () => {
    const main = join(__dirname, '..', '..', 'src', 'cli', 'main.js');
    const script = `require(${JSON.stringify(main)}).main(['node', 'meshd', '--config', ${JSON.stringify(env.configPath[SENDER])}, 'run', '--once']).then((code) => {
      const files = Object.keys(require.cache);
      const builtins = process.moduleLoadList;
      process.stdout.write('\\n' + JSON.stringify({ code, pg: files.some((f) => /\\/ledger\\/pg\\/|\\/daemon\\/(hosts|lease)\\.js$|\\/node_modules\\/pg\\//.test(f)), cron: files.some((f) => f.includes('/node-cron/')), bindings: files.some((f) => f.includes('/node_modules/bindings/')),
        commands: files.filter((f) => /\\/cli\\/(mesh|transform|ledger|certs|config|sim|demo|ui)\\.js$/.test(f)).length,
        zlib: builtins.includes('NativeModule zlib'), http2: builtins.includes('NativeModule http2'), workers: builtins.includes('NativeModule worker_threads') }));
    });`;
    const { stdout } = await promisify(execFile)(process.execPath, ['-e', script]);
    expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).to.deep.equal({ code: 0, pg: false, cron: false, bindings: false, commands: 0, zlib: false, http2: false, workers: false });
  });

  it('logs POLL_OK at info for a poll that lists messages, and only at debug for an empty one', async () => {
    dropFile(env.folder(SENDER, 'out'), 'poll.dat', 'poll');
    dropFile(env.folder(SENDER, 'out'), 'poll.ctl', controlFile(RECEIVER, 'TEST_WORKFLOW'));
    expect((await runMeshd(['--config', env.configPath[SENDER], 'run', '--once'])).code).to.equal(0);
    const polls = (stderr: string) => stderr.split('\n').filter((l) => l.includes('"POLL_OK"')).map((l) => JSON.parse(l) as { level: string; listed: number });
    const receive = async (level: string) => {
      const r = await runMeshd(['--config', env.configPath[RECEIVER], '--log-level', level, 'run', '--once']);
      expect(r.code, r.stderr).to.equal(0);
      return polls(r.stderr);
    };
    const busy = await receive('info');
    expect(busy).to.have.length(1);
    expect(busy[0].level).to.equal('info');
    expect(busy[0].listed).to.be.greaterThan(0);
    expect(await receive('info')).to.deep.equal([]);
    expect((await receive('debug')).map((p) => [p.level, p.listed])).to.deep.equal([['debug', 0]]);
  });

  it('--once says how many messages MESH listed beside how many it delivered (a duplicate is acknowledged, not delivered)', async () => {
    for (const name of ['twin-a.dat', 'twin-b.dat']) {
      dropFile(env.folder(SENDER, 'out'), name, 'the same payload twice\n');
      dropFile(env.folder(SENDER, 'out'), name.replace('.dat', '.ctl'), controlFile(RECEIVER, 'TEST_WORKFLOW'));
    }
    expect((await runMeshd(['--config', env.configPath[SENDER], 'run', '--once'])).code).to.equal(0);
    const r = await runMeshd(['--config', env.configPath[RECEIVER], 'run', '--once']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.include(`${RECEIVER}: claimed 0, sent 0, listed 2, received 1, acknowledged 2, tracked 0`);
  });

  it('refuses a second instance on the same data dir, clearly', async () => {
    const lock = acquireInstanceLock((await env.config(SENDER)).dataDir);
    try {
      const r = await runMeshd(['--config', env.configPath[SENDER], 'run', '--once']);
      expect(r.code).to.equal(3);
      expect(r.stderr).to.match(/another meshd is already running/);
    } finally {
      lock.release();
    }
  });

  it('on SIGTERM mid-upload, checkpoints after the chunk in flight, exits 0, and the next run resumes', async () => {
    // 40 chunks of 64 KiB with 15 ms added per request: long enough to interrupt.
    env.sim.setFaults('chunk:latency=15');
    const big = Buffer.alloc(64 * 1024 * 40, 7);
    dropFile(env.folder(SENDER, 'out'), 'resume.dat', big);
    dropFile(env.folder(SENDER, 'out'), 'resume.ctl', controlFile(RECEIVER, 'TEST_WORKFLOW'));
    const stop = new AbortController();
    const running = runMeshd(['--config', env.configPath[SENDER], 'run'], { terminateOn: stop.signal });
    const started = Date.now();
    let row;
    for (let i = 0; i < 200; i++) {
      await new Promise((r) => setTimeout(r, 50));
      row = env.sim.messages().find((m) => m.fileName === 'resume.dat');
      if (row && row.chunksReceived >= 3) break;
    }
    stop.abort();
    const r = await running;
    expect(r.code, r.stderr).to.equal(0);
    expect(Date.now() - started).to.be.below(30_000);
    const d = await env.daemon(SENDER);
    const partial = d.ledger.list({ direction: 'out' }).find((x) => x.fileName === 'resume.dat')!;
    await d.stop();
    expect(partial.state).to.equal('uploading');
    expect(partial.chunksDone).to.be.within(1, 39);
    env.sim.setFaults(undefined);
    const again = await runMeshd(['--config', env.configPath[SENDER], 'run', '--once']);
    expect(again.code, again.stderr).to.equal(0);
    const msg = env.sim.messages().find((m) => m.fileName === 'resume.dat')!;
    expect(msg).to.include({ id: partial.messageId, chunks: 40, chunksReceived: 40, status: 'accepted' });
    expect(env.sim.messages().filter((m) => m.fileName === 'resume.dat')).to.have.length(1);
  });

  it('stops cleanly on SIGTERM with exit 0', async () => {
    const r = await runMeshd(['--config', env.configPath[RECEIVER], 'run'], { terminateWhen: (stderr) => stderr.includes('"DAEMON_STARTED"') });
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stderr).to.match(/DAEMON_STOPPED/);
  });
});

describe('meshd send and receive by hand are recorded in the ledger', function () {
  this.timeout(60_000);
  let env: DaemonEnv;
  before(async () => {
    env = await startDaemonEnv();
  });
  after(async () => env?.close());

  it('records a manual send as sent and a manual receive as acknowledged', async () => {
    const file = dropFile(env.dir, 'manual.txt', 'by hand');
    const s = await runMeshd(['--config', env.configPath[SENDER], '--json', 'send', file, '--to', RECEIVER, '--workflow', 'TEST_WORKFLOW']);
    expect(s.code, s.stderr).to.equal(0);
    const { messageId } = JSON.parse(s.stdout);
    const r = await runMeshd(['--config', env.configPath[RECEIVER], '--json', 'receive']);
    expect(r.code, r.stderr).to.equal(0);
    const out = await runMeshd(['--config', env.configPath[SENDER], '--json', 'ledger', 'show', messageId]);
    expect(JSON.parse(out.stdout).message).to.deep.include({ state: 'sent' });
    const inb = await runMeshd(['--config', env.configPath[RECEIVER], '--json', 'ledger', 'show', messageId]);
    expect(JSON.parse(inb.stdout).message).to.deep.include({ state: 'acknowledged', direction: 'in' });
    expect(existsSync(file), 'a manual send leaves the file where it was').to.equal(true);
  });

  it('status and ledger commands work without the secrets (systemd credentials are not in a shell)', async () => {
    const doc = parse(readFileSync(env.configPath[SENDER], 'utf8'));
    doc.environment = 'int';
    doc.url = undefined;
    doc.sharedKey = { credential: 'mesh-shared-key' };
    doc.mailboxes[0].password = { env: 'MESHD_TEST_UNSET_PASSWORD' };
    doc.tls.key = { credential: 'client-key' };
    const path = join(env.dir, 'creds.yaml');
    writeFileSync(path, stringify(doc));
    const status = await runMeshd(['--config', path, '--json', 'status']);
    expect(status.code, status.stderr).to.equal(0);
    expect(JSON.parse(status.stdout).mailboxes[0].mailbox).to.equal(SENDER);
    const list = await runMeshd(['--config', path, '--json', 'ledger', 'list']);
    expect(list.code, list.stderr).to.equal(0);
    const handshake = await runMeshd(['--config', path, 'handshake']);
    expect(handshake.code).to.equal(3); // a command that talks to MESH still needs them, and says so
    expect(handshake.stderr).to.match(/CREDENTIALS_DIRECTORY|MESHD_TEST_UNSET_PASSWORD/);
  });

  it('meshd status shows the client certificate expiry beside the mailbox', async () => {
    const r = await runMeshd(['--config', env.configPath[SENDER], '--json', 'status']);
    expect(r.code, r.stderr).to.equal(0);
    const out = JSON.parse(r.stdout);
    expect(out.certificate).to.include({ expired: false, expiresSoon: false });
    expect(out.certificate.daysLeft).to.be.greaterThan(30);
    const text = await runMeshd(['--config', env.configPath[SENDER], 'status']);
    expect(text.stdout).to.match(/client certificate: valid, \d+ days left/);
  });
});

describe('meshd run serves health and metrics', function () {
  this.timeout(60_000);
  let env: DaemonEnv;
  let port: number;
  before(async () => {
    port = await new Promise<number>((res) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => res(p));
      });
    });
    env = await startDaemonEnv({ top: { health: { port, host: '127.0.0.1' } } });
  });
  after(async () => env?.close());

  it('answers /healthz, turns ready after the first poll, and exports counts on /metrics', async () => {
    dropFile(env.folder(SENDER, 'out'), 'h.dat', 'health');
    dropFile(env.folder(SENDER, 'out'), 'h.ctl', controlFile(RECEIVER, 'TEST_WORKFLOW'));
    const stop = new AbortController();
    const running = runMeshd(['--config', env.configPath[SENDER], 'run'], { terminateOn: stop.signal });
    const get = async (path: string) => {
      for (let i = 0; i < 100; i++) {
        try {
          const res = await fetch(`http://127.0.0.1:${port}${path}`);
          return { status: res.status, body: await res.text() };
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      throw new Error(`no answer on ${path}`);
    };
    try {
      expect((await get('/healthz')).status).to.equal(200);
      let ready = await get('/readyz');
      for (let i = 0; i < 50 && ready.status !== 200; i++) {
        await new Promise((r) => setTimeout(r, 100));
        ready = await get('/readyz');
      }
      expect(ready.status, ready.body).to.equal(200);
      const metrics = (await get('/metrics')).body;
      expect(metrics).to.match(/meshd_messages\{mailbox="X26ABC1",direction="out",state="sent"\} 1/);
      expect(metrics).to.match(/meshd_mesh_requests_total\{endpoint="send",status="ok"\} 1/);
      expect(metrics).to.match(/meshd_certificate_expiry_seconds\{mailbox="X26ABC1"\} \d+/);
    } finally {
      stop.abort();
    }
    const r = await running;
    expect(r.code, r.stderr).to.equal(0);
  });
});
