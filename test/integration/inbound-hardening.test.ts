import { expect } from 'chai';
import { lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parse, stringify } from '../support/yaml';
import { evaluateReadiness } from '../../src/daemon/health';
import { createMetrics } from '../../src/daemon/metrics';
import { diskLowReason, startObserver } from '../../src/daemon/observe';
import { silentLogger } from '../../src/log';
import { ledgerPath, openLedger, type MessageRow } from '../../src/ledger';
import { MeshAmbiguousError, MeshClient, meshClientFor } from '../../src/mesh';
import type { HostileMessage } from '../../src/sim';
import { RECEIVER, runMeshd, SENDER, startDaemonEnv, type DaemonEnv } from './support/daemon-env';

/**
 * Issue 9 "Hardening", receive side: each finding replayed against a real daemon cycle, the
 * real simulator over mTLS (its test-only injectHostile plays the hostile server) and a real
 * SQLite ledger.
 */
describe('inbound hardening (issue 9): hostile servers, full disks, planted links', function () {
  this.timeout(120_000);
  let env: DaemonEnv;
  let umask: number;

  beforeEach(async () => {
    umask = process.umask(0o022);
    env = await startDaemonEnv({ top: { retry: { attempts: 2, initialDelayMs: 10, maxDelayMs: 20, maxTotalMs: 2000 } } });
  });
  afterEach(async () => {
    process.umask(umask);
    await env.close();
  });

  /** Edits the receiver's YAML config (the daemon reads it afresh every cycle). */
  function configure(edit: (doc: Record<string, any>) => void): void {
    const path = env.configPath[RECEIVER];
    const doc = parse(readFileSync(path, 'utf8'));
    edit(doc);
    writeFileSync(path, stringify(doc));
  }

  async function cycle() {
    const d = await env.daemon(RECEIVER, { fastRetries: true });
    try {
      return (await d.runOnce())[0];
    } finally {
      await d.stop();
    }
  }

  async function rowOf(messageId: string): Promise<MessageRow> {
    const ledger = openLedger(ledgerPath((await env.config(RECEIVER)).dataDir));
    try {
      return ledger.findByMessageId(RECEIVER, 'in', messageId)!;
    } finally {
      ledger.close();
    }
  }

  async function send(body: Buffer | string): Promise<string> {
    const client = meshClientFor(await env.config(SENDER));
    try {
      return (await client.sendBytes(Buffer.from(body), { to: RECEIVER, workflowId: 'TEST_WORKFLOW' })).messageId;
    } finally {
      await client.close();
    }
  }

  const inDir = () => env.folder(RECEIVER, 'in');
  const failedDir = () => env.folder(RECEIVER, 'failed');
  const tempDir = () => env.folder(RECEIVER, 'temp');
  const acknowledged = (id: string) => env.sim.messages().find((m) => m.id === id)?.status === 'acknowledged';
  const mode = (path: string) => statSync(path).mode & 0o777;

  it('C+A+B: pauses below minFreeBytes (not acknowledged, readiness says why), then delivers 0640 files through planted links without following them', async () => {
    const id = await send('first payload\n');
    configure((doc) => (doc.transfer.minFreeBytes = Number.MAX_SAFE_INTEGER));
    const paused = await cycle();
    expect(paused.errors.map((e) => e.code)).to.deep.equal(['IN_DISK_LOW']);
    expect(readdirSync(inDir())).to.deep.equal([]);
    expect(readdirSync(tempDir())).to.deep.equal([]);
    expect(acknowledged(id)).to.equal(false);
    const row = await rowOf(id);
    expect(row).to.include({ state: 'receiving', errorCode: 'IN_DISK_LOW', attempts: 0 });
    expect(row.claimId).to.match(/^[0-9a-f]{32}$/);

    // Readiness and the metric read the same persisted poll status.
    const daemon = await env.daemon(RECEIVER);
    const metrics = createMetrics({ processMetrics: false });
    const observer = await startObserver(daemon, metrics, silentLogger);
    expect(await metrics.registry.metrics()).to.include(`meshd_disk_space_low{mailbox="${RECEIVER}"} 1`);
    const reason = diskLowReason(daemon.ledger.mailboxStatus(RECEIVER));
    await observer.close();
    await daemon.stop();
    expect(reason).to.match(/^IN_DISK_LOW: free space .* transfer\.minFreeBytes/);
    const verdict = evaluateReadiness({ now: new Date(), ledgerOpen: true, pollIntervalMs: 60_000, mailboxes: [{ id: RECEIVER, lastSuccessfulPoll: new Date(), diskLow: reason }] });
    expect(verdict.ok).to.equal(false);
    expect(verdict.checks[`disk:${RECEIVER}`]).to.deep.equal({ ok: false, detail: reason });

    // Someone with write access to the folders plants dangling links at every name meshd will use.
    const targets = join(env.dir, 'targets');
    mkdirSync(targets);
    symlinkSync(join(targets, 'part'), join(tempDir(), `${row.claimId}.part`));
    symlinkSync(join(targets, 'ctl-temp'), join(tempDir(), `${row.claimId}.ctl`));
    symlinkSync(join(targets, 'dat'), join(inDir(), `${id}.dat`));
    symlinkSync(join(targets, 'ctl'), join(inDir(), `${id}.ctl`));

    configure((doc) => (doc.transfer.minFreeBytes = 0));
    const next = await cycle();
    expect(next).to.include({ delivered: 1, acknowledged: 1 });
    expect(readdirSync(targets)).to.deep.equal([]);
    for (const name of [`${id}.dat`, `${id}.ctl`]) {
      expect(lstatSync(join(inDir(), name)).isFile(), name).to.equal(true);
      expect(mode(join(inDir(), name)), name).to.equal(0o640);
    }
    expect(readFileSync(join(inDir(), `${id}.dat`), 'utf8')).to.equal('first payload\n');
    expect(readdirSync(tempDir())).to.deep.equal([]);
    expect(acknowledged(id)).to.equal(true);
    const after = await env.daemon(RECEIVER);
    expect(diskLowReason(after.ledger.mailboxStatus(RECEIVER))).to.equal(undefined);
    await after.stop();
  });

  it('A+G: a payload over transform.maxInputBytes is kept in failed/ (0640, umask 0) through planted links, never converted', async () => {
    process.umask(0);
    configure((doc) => {
      doc.transform = { maxInputBytes: 64 };
      doc.mailboxes[0].routes = [{ direction: 'in', workflow: 'TEST_WORKFLOW', transform: { from: 'fhir-r4', to: 'hl7v2' } }];
    });
    const id = await send('x'.repeat(1000));
    const targets = join(env.dir, 'targets');
    mkdirSync(targets);
    mkdirSync(failedDir(), { recursive: true });
    symlinkSync(join(targets, 'dat'), join(failedDir(), `${id}.dat`));
    symlinkSync(join(targets, 'reason'), join(failedDir(), `${id}.dat.reason`));
    await cycle();
    expect(readdirSync(targets)).to.deep.equal([]);
    expect(await rowOf(id)).to.include({ state: 'quarantined', errorCode: 'TOO_LARGE_TO_CONVERT', processingStarts: 0 });
    const kept = join(failedDir(), `${id}.dat`);
    expect(readFileSync(kept, 'utf8')).to.equal('x'.repeat(1000));
    expect(readFileSync(`${kept}.reason`, 'utf8')).to.match(/^TOO_LARGE_TO_CONVERT: payload is 1000 bytes/);
    expect([mode(kept), mode(`${kept}.reason`)]).to.deep.equal([0o640, 0o640]);
    expect(readdirSync(inDir())).to.deep.equal([]);
    expect(acknowledged(id)).to.equal(true);
  });

  it('a small payload that is parsed is read from the bytes its download wrote and hashed, not from its file again', async () => {
    const hl7 = (controlId: string) => Buffer.from(`MSH|^~\\&|GPAPP|X26ABC1|PAS|RX1|20261201120000||ADT^A28^ADT_A05|${controlId}|P|2.4\rEVN|A28|20261201120000\rPID|1||9990000018^^^NHS^NH||TESTER^ALEX\r`);
    const id = await env.sim.injectHostile({ mailbox: RECEIVER, body: gzipSync(hl7('CTRL-ORIGINAL')), contentEncoding: 'gzip' });
    const d = await env.daemon(RECEIVER, { fastRetries: true });
    try {
      const ctx = d.mailboxes[0];
      const download = ctx.mesh.download.bind(ctx.mesh);
      // The temp file is changed once the download is over: what is recorded must be what arrived.
      ctx.mesh.download = async (messageId, sink) => {
        const got = await download(messageId, sink);
        await sink.handle.write(hl7('CTRL-CHANGED!'), 0, undefined, 0);
        return got;
      };
      await d.runOnce();
    } finally {
      await d.stop();
    }
    const row = await rowOf(id);
    expect(row.state).to.equal('acknowledged');
    expect(row.businessId).to.contain('CTRL-ORIGINAL');
  });

  it('C: a download stops as bytes arrive once free space would fall below minFreeBytes, leaving nothing behind', async () => {
    const { statfsSync } = await import('node:fs');
    configure((doc) => (doc.transfer.maxCompressionRatio = 1_000_000));
    // 96 MiB of zeros arrive as ~96 KiB of gzip: the announced length passes, the bytes do not.
    const id = await env.sim.injectHostile({ mailbox: RECEIVER, body: gzipSync(Buffer.alloc(96 * 1024 * 1024)), contentEncoding: 'gzip' });
    const st = statfsSync(env.dir); // the mailbox folders are below it, on the same filesystem
    configure((doc) => (doc.transfer.minFreeBytes = st.bavail * st.bsize - 8 * 1024 * 1024));
    const report = await cycle();
    expect(report.errors.map((e) => e.code)).to.deep.equal(['IN_DISK_LOW']);
    expect(await rowOf(id)).to.include({ state: 'receiving', errorCode: 'IN_DISK_LOW' });
    expect(readdirSync(tempDir())).to.deep.equal([]);
    expect(readdirSync(inDir())).to.deep.equal([]);
    expect(acknowledged(id)).to.equal(false);
  });

  it('C: a full disk (ENOSPC) is a local write failure (IN_WRITE_FAILED), not a network error', async () => {
    const id = await send('x'.repeat(10_000));
    const client = meshClientFor(await env.config(RECEIVER));
    const handle = await open('/dev/full', 'w'); // every write fails with ENOSPC
    try {
      const err = await client.download(id, { handle }).catch((e) => e);
      expect(err).to.include({ code: 'IN_WRITE_FAILED', kind: 'failure' });
    } finally {
      await handle.close();
      await client.close();
    }
  });

  it('C: a gzip bomb stops at maxCompressionRatio, is quarantined unacknowledged, and writes nothing', async () => {
    configure((doc) => (doc.transfer.maxCompressionRatio = 20));
    const bomb = gzipSync(Buffer.alloc(8 * 1024 * 1024));
    expect(bomb.length).to.be.below(16 * 1024);
    const id = await env.sim.injectHostile({ mailbox: RECEIVER, body: bomb, contentEncoding: 'gzip' });
    const report = await cycle();
    expect(report).to.include({ delivered: 0, acknowledged: 0 });
    expect(await rowOf(id)).to.include({ state: 'quarantined', errorCode: 'SUSPECTED_BOMB', payloadPath: null });
    expect(readdirSync(inDir())).to.deep.equal([]);
    expect(readdirSync(tempDir())).to.deep.equal([]);
    expect(acknowledged(id)).to.equal(false);
    // Listed again next poll, but not fetched again.
    expect(await cycle()).to.include({ listed: 1, delivered: 0 });
  });

  const poison: Array<[string, Omit<HostileMessage, 'mailbox'>]> = [
    ['a body that lies about its Content-Encoding', { body: Buffer.from('plain text, not gzip\n'), contentEncoding: 'gzip' }],
    ['a control character in a header', { body: Buffer.from('x'), rawHeaders: ['mex-subject: bad\u0001value'] }],
    ['a header overflow', { body: Buffer.from('x'), rawHeaders: [`mex-subject: ${'a'.repeat(64 * 1024)}`] }],
  ];
  for (const [what, hostile] of poison) {
    it(`D: ${what} is permanent: quarantined RECEIVE_FAILED after retry.attempts polls, left unacknowledged`, async () => {
      const id = await env.sim.injectHostile({ mailbox: RECEIVER, ...hostile });
      const good = await send('good\n');
      const first = await cycle();
      expect(first).to.include({ delivered: 1 });
      expect(await rowOf(id)).to.include({ state: 'receiving', errorCode: 'MESH_PROTOCOL', attempts: 1 });
      await cycle();
      const row = await rowOf(id);
      expect(row).to.include({ state: 'quarantined', errorCode: 'RECEIVE_FAILED', attempts: 2 });
      expect(row.errorText).to.match(/^2 attempts: /);
      expect(acknowledged(id)).to.equal(false);
      expect(acknowledged(good)).to.equal(true);
      expect(readdirSync(inDir())).to.deep.equal([`${good}.ctl`, `${good}.dat`].sort());
      // Quarantined: no further download attempts.
      await cycle();
      expect((await rowOf(id)).attempts).to.equal(2);
    });
  }

  it('E: when the .ctl cannot be placed, the .dat never appears (and the next poll delivers once)', async () => {
    const id = await send('pair\n');
    const blocker = join(inDir(), `${id}.ctl`);
    mkdirSync(join(blocker, 'occupied'), { recursive: true });
    const failed = await cycle();
    expect(failed.delivered).to.equal(0);
    expect(readdirSync(inDir())).to.deep.equal([`${id}.ctl`]);
    expect(await rowOf(id)).to.include({ state: 'receiving', errorCode: 'IN_WRITE_FAILED' });
    expect(acknowledged(id)).to.equal(false);
    rmSync(blocker, { recursive: true });
    expect(await cycle()).to.include({ delivered: 1, acknowledged: 1 });
    expect(readdirSync(inDir()).sort()).to.deep.equal([`${id}.ctl`, `${id}.dat`]);
  });

  it('E: when the .dat cannot be placed, its .ctl is taken back', async () => {
    const id = await send('pair\n');
    mkdirSync(join(inDir(), `${id}.dat`, 'occupied'), { recursive: true });
    await cycle();
    expect(readdirSync(inDir())).to.deep.equal([`${id}.dat`]);
    expect(lstatSync(join(inDir(), `${id}.dat`)).isDirectory()).to.equal(true);
    expect(acknowledged(id)).to.equal(false);
    expect(readdirSync(tempDir())).to.deep.equal([]);
  });

  it('F: ids not of MESH shape are quarantined unwritten and unacknowledged; x and a_b keep their own files', async () => {
    const ids = { dotX: '.x', x: 'x', slash: 'a/b', underscore: 'a_b' };
    for (const [key, id] of Object.entries(ids)) await env.sim.injectHostile({ mailbox: RECEIVER, id, body: Buffer.from(`body of ${key}\n`) });
    const report = await cycle();
    expect(report).to.include({ delivered: 2, acknowledged: 2 });
    expect(readFileSync(join(inDir(), 'x.dat'), 'utf8')).to.equal('body of x\n');
    expect(readFileSync(join(inDir(), 'a_b.dat'), 'utf8')).to.equal('body of underscore\n');
    expect(readdirSync(inDir()).sort()).to.deep.equal(['a_b.ctl', 'a_b.dat', 'x.ctl', 'x.dat']);
    for (const id of ['.x', 'a/b']) {
      expect(await rowOf(id), id).to.include({ state: 'quarantined', errorCode: 'MESH_BAD_MESSAGE_ID', payloadPath: null });
      expect(acknowledged(id), id).to.equal(false);
    }
    // Next poll: still listed, nothing fetched or written again.
    expect(await cycle()).to.include({ listed: 2, delivered: 0 });
  });

  it('F: a REPORT linking an id not of MESH shape is quarantined at once: no .ctl, not acknowledged', async () => {
    configure((doc) => (doc.mailboxes[0].controlFiles = true));
    const id = await env.sim.injectReport({ mailbox: RECEIVER, code: '14', description: 'undelivered', linkedMessageId: '../a/b', workflowId: 'TEST_WORKFLOW' });
    await cycle();
    const row = await rowOf(id);
    expect(row).to.include({ state: 'quarantined', errorCode: 'MESH_BAD_MESSAGE_ID', attempts: 0 });
    expect(row.errorText).to.match(/mex-LinkedMsgID/);
    expect(readdirSync(inDir())).to.deep.equal([]);
    expect(acknowledged(id)).to.equal(false);
  });

  it('A+F (meshd receive): stores 0640 files through a planted link without following it, and skips ids not of MESH shape', async () => {
    const good = await send('cli payload\n');
    for (const id of ['.x', 'a/b']) await env.sim.injectHostile({ mailbox: RECEIVER, id, body: Buffer.from('hostile\n') });
    const dir = join(env.dir, 'received');
    const targets = join(env.dir, 'targets');
    mkdirSync(dir);
    mkdirSync(targets);
    symlinkSync(join(targets, 'dat'), join(dir, `${good}.dat`));
    const r = await runMeshd(['--config', env.configPath[RECEIVER], '--json', 'receive', '--out', dir]);
    expect(r.code, r.stderr).to.equal(7);
    const out = JSON.parse(r.stdout);
    expect(out.messages.map((m: { messageId: string }) => m.messageId)).to.deep.equal([good]);
    expect(out.failed.map((f: { messageId: string; code: string }) => ({ id: f.messageId, code: f.code }))).to.deep.equal([
      { id: '.x', code: 'MESH_BAD_MESSAGE_ID' },
      { id: 'a/b', code: 'MESH_BAD_MESSAGE_ID' },
    ]);
    expect(readdirSync(targets)).to.deep.equal([]);
    expect(readdirSync(dir).sort()).to.deep.equal([`${good}.ctl`, `${good}.dat`]);
    expect(lstatSync(join(dir, `${good}.dat`)).isFile()).to.equal(true);
    expect(mode(join(dir, `${good}.dat`))).to.equal(0o640);
    expect(['.x', 'a/b'].map(acknowledged)).to.deep.equal([false, false]);
  });

  it('G: a message whose processing killed the process twice is quarantined POISON, kept and acknowledged; the rest carries on', async () => {
    // Looks like HL7 v2, so it is parsed (for its business id), which is what the guard is for.
    const payload = 'MSH|^~\\&|POISON|X26|MESHD|X26|20260101120000||ADT^A04|POISON1|P|2.4\r';
    const poison = await send(payload);
    const args = ['--config', env.configPath[RECEIVER], 'run', '--once'];
    // Ledger writes: 1 = the row listed, 2 = processingStarts committed before delivery.
    let run = await runMeshd(args, { env: { MESHD_TEST_CRASH_AFTER_WRITES: '2' } });
    expect(run.signal).to.equal('SIGKILL');
    expect(await rowOf(poison)).to.include({ state: 'receiving', processingStarts: 1 });
    run = await runMeshd(args, { env: { MESHD_TEST_CRASH_AFTER_WRITES: '1' } });
    expect(run.signal).to.equal('SIGKILL');
    const row = await rowOf(poison);
    expect(row).to.include({ state: 'receiving', processingStarts: 2 });
    // Its download, named by the claim id only, private whatever the umask (022 here).
    expect(mode(join(tempDir(), `${row.claimId}.part`))).to.equal(0o600);

    const other = await send('next message\n');
    run = await runMeshd(args);
    expect(run.code, run.stderr).to.equal(0);
    expect(await rowOf(poison)).to.include({ state: 'quarantined', errorCode: 'POISON', processingStarts: 0, payloadPath: join(failedDir(), `${poison}.dat`) });
    expect(readFileSync(join(failedDir(), `${poison}.dat`), 'utf8')).to.equal(payload);
    expect(readFileSync(join(failedDir(), `${poison}.dat.reason`), 'utf8')).to.match(/^POISON: processing began 2 times/);
    expect(acknowledged(poison)).to.equal(true);
    expect(await rowOf(other)).to.include({ state: 'acknowledged' });
    expect(readFileSync(join(inDir(), `${other}.dat`), 'utf8')).to.equal('next message\n');
    expect(readdirSync(tempDir())).to.deep.equal([]);
  });
});

describe('unreadable MESH answers (issue 9, finding 7) on the send side of the client', () => {
  it('a first send answered with unreadable headers is ambiguous, never a plain failure that would be resent', async () => {
    const server = createNetServer((socket) => socket.once('data', () => socket.end('HTTP/1.1 202 Accepted\r\nmex-messageid: bad\u0001id\r\nconnection: close\r\n\r\n{}')));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const client = new MeshClient({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, mailboxId: SENDER, password: 'p', sharedKey: 'k', retry: { attempts: 1 } });
    try {
      const err = await client.sendBytes(Buffer.from('x'), { to: RECEIVER, workflowId: 'TEST_WORKFLOW' }).catch((e) => e);
      expect(err).to.be.instanceOf(MeshAmbiguousError);
    } finally {
      await client.close();
      server.close();
    }
  });
});
