import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, promises as fsPromises, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, symlinkSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { companionFiles, ledgerPath, openLedger } from '../../src/ledger';
import { claimBatch, scanOutbox } from '../../src/transfer/outbound/claim';
import { recoverOutbound, sendCycle } from '../../src/transfer/outbound';
import { MeshdError } from '../../src/errors';
import { spoolPaths } from '../../src/transfer/spool';
import * as fileBatch from '../../src/safe-fs-batch';
import { controlFile, dropFile, RECEIVER, ROOT, runMeshd, SENDER, startDaemonEnv, type DaemonEnv } from './support/daemon-env';

/**
 * Finding by finding, the attacks of the security review on the send side (issue 9), replayed
 * against a real daemon, the real simulator over mTLS and a real SQLite ledger.
 */
describe('outbound hardening: what a member of the mailbox group can put in out/', function () {
  this.timeout(60_000);
  let env: DaemonEnv;
  const SECRET = '-----BEGIN PRIVATE KEY-----\nnot really a key, but meshd must never send it\n';

  beforeEach(async () => {
    env = await startDaemonEnv({
      mailbox: {
        [SENDER]: {
          routes: [
            { direction: 'out', match: '*.txt', to: RECEIVER, workflow: 'TEST_WORKFLOW' },
            { direction: 'out', match: '*.hl7', to: RECEIVER, workflow: 'TEST_WORKFLOW', transform: { from: 'hl7v2', to: 'fhir-r4' } },
          ],
        },
      },
    });
  });
  afterEach(async () => env.close());

  async function cycle(mailbox = SENDER) {
    const d = await env.daemon(mailbox);
    try {
      return (await d.runOnce())[0];
    } finally {
      await d.stop();
    }
  }

  async function dataDir(): Promise<string> {
    return (await env.config(SENDER)).dataDir;
  }

  async function senderLedgerRows() {
    const d = await env.daemon(SENDER);
    try {
      return d.ledger.list({ direction: 'out' });
    } finally {
      await d.stop(0);
    }
  }

  function secretFile(): string {
    const path = join(env.dir, 'client.key');
    writeFileSync(path, SECRET, { mode: 0o600 });
    return path;
  }

  function nothingSentToMesh() {
    expect(env.sim.messages().filter((m) => m.sender === SENDER)).to.deep.equal([]);
  }

  it('finding 1: never follows a symlink in out/, for a .dat/.ctl pair or a routed file; the links go to failed/ unread', async () => {
    const out = env.folder(SENDER, 'out');
    mkdirSync(out, { recursive: true });
    const key = secretFile();
    symlinkSync(key, join(out, 'steal.dat'));
    dropFile(out, 'steal.ctl', controlFile(RECEIVER, 'TEST_WORKFLOW'));
    symlinkSync(key, join(out, 'shadow.txt'));
    await cycle();
    nothingSentToMesh();
    const failed = env.folder(SENDER, 'failed');
    expect(lstatSync(join(failed, 'steal.dat')).isSymbolicLink()).to.equal(true);
    expect(lstatSync(join(failed, 'shadow.txt')).isSymbolicLink()).to.equal(true);
    expect(readFileSync(join(failed, 'shadow.txt.reason'), 'utf8')).to.match(/^NOT_REGULAR_FILE: shadow\.txt is a symbolic link/);
    const refused = (await senderLedgerRows()).filter((r) => r.errorCode === 'NOT_REGULAR_FILE');
    expect(refused.map((r) => r.fileName).sort()).to.deep.equal(['shadow.txt', 'steal.dat']);
    expect(refused.every((r) => r.state === 'failed')).to.equal(true);
    expect(readdirSync(out)).to.deep.equal([]);
    // The receiver gets nothing at all.
    await cycle(RECEIVER);
    expect(readdirSync(env.folder(RECEIVER, 'in'))).to.deep.equal([]);
  });

  it('finding 1: refuses a symlinked .ctl, a FIFO, a directory and a hard link, and still sends the regular file beside them', async () => {
    const out = env.folder(SENDER, 'out');
    dropFile(out, 'pair.dat', 'pair payload');
    symlinkSync(secretFile(), join(out, 'pair.ctl'));
    execFileSync('mkfifo', [join(out, 'pipe.txt')]);
    mkdirSync(join(out, 'folder.txt'));
    linkSync(secretFile(), join(out, 'linked.txt'));
    dropFile(out, 'good.txt', 'a regular message');
    const r = await cycle();
    expect(r).to.include({ sent: 1 });
    const sent = env.sim.messages().filter((m) => m.sender === SENDER);
    expect(sent).to.have.length(1);
    const all = await senderLedgerRows();
    expect(all.filter((x) => x.errorCode === 'NOT_REGULAR_FILE').map((x) => x.fileName).sort()).to.deep.equal(['folder.txt', 'linked.txt', 'pair.dat', 'pipe.txt']);
    expect(all.find((x) => x.fileName === 'good.txt')!.state).to.equal('sent');
    await cycle(RECEIVER);
    const delivered = readdirSync(env.folder(RECEIVER, 'in')).filter((n) => n.endsWith('.dat'));
    expect(delivered.map((n) => readFileSync(join(env.folder(RECEIVER, 'in'), n), 'utf8'))).to.deep.equal(['a regular message']);
  });

  it('finding 1: a file swapped for a symlink after the scan is dropped from the spool unread at claim', async () => {
    const out = env.folder(SENDER, 'out');
    dropFile(out, 'swap.txt', 'innocent');
    const d = await env.daemon(SENDER);
    try {
      const ctx = d.mailboxes[0];
      const candidates = await scanOutbox(ctx);
      expect(candidates.map((c) => c.name)).to.deep.equal(['swap.txt']);
      // The race: between the scan and the claim the name now points at the key.
      execFileSync('rm', [join(out, 'swap.txt')]);
      symlinkSync(secretFile(), join(out, 'swap.txt'));
      expect(await claimBatch(ctx, candidates)).to.equal(0);
      const row = d.ledger.list({ direction: 'out' })[0];
      expect(row).to.include({ state: 'failed', errorCode: 'NOT_REGULAR_FILE' });
      expect(readdirSync(ctx.spool)).to.deep.equal([]);
    } finally {
      await d.stop(0);
    }
    nothingSentToMesh();
    expect(readFileSync(join(env.dir, 'client.key'), 'utf8')).to.equal(SECRET);
  });

  it('finding 2: a dangling symlink planted in failed/ never makes meshd write through it (partly converted batch)', async () => {
    const failed = env.folder(SENDER, 'failed');
    mkdirSync(failed, { recursive: true });
    const target = join(env.dir, 'anywhere', 'x');
    mkdirSync(join(env.dir, 'anywhere'));
    symlinkSync(target, join(failed, 'batch.hl7'));
    symlinkSync(target + '.reason', join(failed, 'batch.hl7.reason'));
    dropFile(env.folder(SENDER, 'out'), 'batch.hl7', readFileSync(join(ROOT, 'fixtures', 'hl7v2', 'uk-batch-one-bad.hl7')));
    const r = await cycle();
    expect(r).to.include({ sent: 1 });
    expect(existsSync(target)).to.equal(false);
    expect(existsSync(target + '.reason')).to.equal(false);
    // The copy with reasons went under a free name beside the links.
    const names = readdirSync(failed).sort();
    expect(names).to.include.members(['batch.1.hl7', 'batch.1.hl7.reason']);
    expect(lstatSync(join(failed, 'batch.1.hl7')).isFile()).to.equal(true);
  });

  it('finding 2: payloads and control files meshd files are 0640 at most, whatever the umask', async () => {
    const old = process.umask(0);
    try {
      const out = env.folder(SENDER, 'out');
      dropFile(out, 'pair.dat', 'pair payload');
      dropFile(out, 'pair.ctl', controlFile(RECEIVER, 'TEST_WORKFLOW'));
      dropFile(out, 'routed.txt', 'routed payload');
      await cycle();
    } finally {
      process.umask(old);
    }
    const sentDir = env.folder(SENDER, 'sent');
    for (const name of readdirSync(sentDir)) expect(statSync(join(sentDir, name)).mode & 0o777, name).to.be.at.most(0o640).and.satisfy((m: number) => (m & 0o137) === 0);
  });

  it('a control file already in sent/ is neither replaced nor taken for a new payload of the same name', async () => {
    const sentDir = env.folder(SENDER, 'sent');
    mkdirSync(sentDir, { recursive: true });
    // Left by someone else: its payload was cleared away, or it never had one.
    writeFileSync(join(sentDir, 'note.txt.ctl'), 'not ours');
    writeFileSync(join(sentDir, 'pair.ctl'), 'not ours either');
    const out = env.folder(SENDER, 'out');
    dropFile(out, 'note.txt', 'routed payload');
    dropFile(out, 'pair.dat', 'pair payload');
    dropFile(out, 'pair.ctl', controlFile(RECEIVER, 'TEST_WORKFLOW'));
    expect((await cycle()).sent).to.equal(2);
    expect(readFileSync(join(sentDir, 'note.txt.ctl'), 'utf8')).to.equal('not ours');
    expect(readFileSync(join(sentDir, 'pair.ctl'), 'utf8')).to.equal('not ours either');
    expect(readdirSync(sentDir).sort()).to.deep.equal(['note.1.txt', 'note.1.txt.ctl', 'note.txt.ctl', 'pair.1.ctl', 'pair.1.dat', 'pair.ctl']);
    const ids = (await senderLedgerRows()).map((r) => r.messageId);
    for (const ctl of ['note.1.txt.ctl', 'pair.1.ctl']) {
      const dtsId = /<DTSId>([^<]*)<\/DTSId>/.exec(readFileSync(join(sentDir, ctl), 'utf8'))?.[1];
      expect(ids, ctl).to.include(dtsId);
    }
  });

  it('a send MESH refuses, and a partly converted batch\'s copy, go to failed/ under names whose .reason is free too', async () => {
    const failedDir = env.folder(SENDER, 'failed');
    mkdirSync(failedDir, { recursive: true });
    for (const stray of ['refused.dat.reason', 'batch.hl7.reason']) writeFileSync(join(failedDir, stray), 'not ours');
    const out = env.folder(SENDER, 'out');
    dropFile(out, 'refused.dat', 'to an unknown mailbox');
    dropFile(out, 'refused.ctl', controlFile('X26NOPE1', 'TEST_WORKFLOW'));
    dropFile(out, 'batch.hl7', readFileSync(join(ROOT, 'fixtures', 'hl7v2', 'uk-batch-one-bad.hl7')));
    await cycle();
    const [refused] = (await senderLedgerRows()).filter((r) => r.fileName === 'refused.dat');
    expect(refused).to.include({ state: 'failed', payloadPath: join(failedDir, 'refused.1.dat') });
    expect(readFileSync(companionFiles(refused.payloadPath!)[1], 'utf8')).to.match(/X26NOPE1|12|[Uu]nregistered/);
    expect(readFileSync(join(failedDir, 'batch.1.hl7.reason'), 'utf8')).to.match(/^message /);
    for (const stray of ['refused.dat.reason', 'batch.hl7.reason']) expect(readFileSync(join(failedDir, stray), 'utf8'), stray).to.equal('not ours');
  });

  it('a file refused at claim goes to failed/ with its .ctl and .reason under its own companion names, the ones purge removes with it', async () => {
    const failedDir = env.folder(SENDER, 'failed');
    mkdirSync(failedDir, { recursive: true });
    writeFileSync(join(failedDir, 'empty.dat.reason'), 'not ours');
    const out = env.folder(SENDER, 'out');
    dropFile(out, 'empty.dat', '');
    dropFile(out, 'empty.ctl', controlFile(RECEIVER, 'TEST_WORKFLOW'));
    await cycle();
    const [row] = (await senderLedgerRows()).filter((r) => r.errorCode === 'EMPTY_FILE');
    expect(row.payloadPath).to.equal(join(failedDir, 'empty.1.dat'));
    const [ctl, reason] = companionFiles(row.payloadPath!);
    expect(row.ctlPath).to.equal(ctl);
    expect(readFileSync(ctl, 'utf8')).to.include('TEST_WORKFLOW');
    expect(readFileSync(reason, 'utf8')).to.match(/^EMPTY_FILE: /);
    expect(readFileSync(join(failedDir, 'empty.dat.reason'), 'utf8')).to.equal('not ours');
  });

  it('finding 3: a spool file no row owns (from another ledger) is moved to orphans/ and never sent; the new message is sent with its own bytes', async () => {
    const d0 = await env.daemon(SENDER);
    const spool = d0.mailboxes[0].spool;
    await d0.stop(0);
    // What a restored backup or a lost meshd.db leaves behind: old spool files, by row id and by claim id.
    writeFileSync(join(spool, '1.dat'), 'PATIENT A 9991000119');
    writeFileSync(join(spool, '1.send'), 'PATIENT A 9991000119');
    writeFileSync(join(spool, `${'ab'.repeat(16)}.dat`), 'PATIENT A 9991000119');
    dropFile(env.folder(SENDER, 'out'), 'patB.txt', 'PATIENT B 9991000127');
    await cycle();
    const sent = env.sim.messages().filter((m) => m.sender === SENDER);
    expect(sent).to.have.length(1);
    await cycle(RECEIVER);
    const inDir = env.folder(RECEIVER, 'in');
    const got = readdirSync(inDir).filter((n) => n.endsWith('.dat')).map((n) => readFileSync(join(inDir, n), 'utf8'));
    expect(got).to.deep.equal(['PATIENT B 9991000127']);
    const orphans = join(await dataDir(), 'orphans', SENDER);
    const orphanNames = readdirSync(orphans);
    expect(orphanNames).to.have.length(3);
    expect(orphanNames.every((n) => readFileSync(join(orphans, n), 'utf8') === 'PATIENT A 9991000119')).to.equal(true);
  });

  it('a row whose spool file still has its pre-claim-id name (row id, before ledger migration 2) is renamed to its claim id and sent', async () => {
    const { row, spool } = await claimOnly('upgrade.txt', 'PATIENT B 9991000127');
    const old = join(dirname(spool.data), `${row.id}.dat`);
    renameSync(spool.data, old);
    const d = await env.daemon(SENDER);
    d.ledger.update(row.id, { payloadPath: old });
    await d.stop(0);
    await cycle();
    const after = (await senderLedgerRows())[0];
    expect(after).to.include({ state: 'sent' });
    expect(existsSync(join(await dataDir(), 'orphans', SENDER))).to.equal(false);
    await cycle(RECEIVER);
    const inDir = env.folder(RECEIVER, 'in');
    expect(readdirSync(inDir).filter((n) => n.endsWith('.dat')).map((n) => readFileSync(join(inDir, n), 'utf8'))).to.deep.equal(['PATIENT B 9991000127']);
  });

  async function claimOnly(name: string, content: string | Buffer) {
    dropFile(env.folder(SENDER, 'out'), name, content);
    const d = await env.daemon(SENDER);
    try {
      const ctx = d.mailboxes[0];
      expect(await claimBatch(ctx, await scanOutbox(ctx))).to.equal(1);
      const row = d.ledger.list({ direction: 'out' })[0];
      return { row, spool: spoolPaths(ctx, row) };
    } finally {
      await d.stop(0);
    }
  }

  it('finding 2: a claimed file is private (0600) in the spool whatever mode it had in out/, and its sha256 is of its bytes', async () => {
    const { row, spool } = await claimOnly('open.txt', 'PATIENT B 9991000127');
    expect(statSync(spool.data).mode & 0o7777).to.equal(0o600);
    expect(row.sha256).to.equal(createHash('sha256').update('PATIENT B 9991000127').digest('hex'));
  });

  for (const [what, failure] of [
    ['a PostgreSQL connection lost', () => new MeshdError('LEDGER_UNAVAILABLE', 'cannot reach the ledger', undefined, 'failure')],
    ['a disk error of SQLite', () => Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR' })],
  ] as const) {
    it(`${what} while MESH takes a first POST leaves the in-flight mark: the stage fails, recovery parks it, nothing is sent twice`, async () => {
      dropFile(env.folder(SENDER, 'out'), 'lost.txt', 'PATIENT B 9991000127');
      const d = await env.daemon(SENDER);
      try {
        const ctx = d.mailboxes[0];
        // The ledger fails just as MESH answers with the message id (the write that records a
        // one-chunk message as sent with it).
        const ledger = wrapLedgerMethod(ctx.ledger, 'transition', (real) => (id: number, to: string, opts: unknown) => {
          if (to === 'sent') throw failure();
          return real(id, to, opts);
        });
        const err = await sendCycle({ ...ctx, ledger }).catch((e) => e);
        expect(err).to.have.property('message', failure().message);
        expect(d.ledger.list({ direction: 'out' })[0]).to.include({ state: 'queued', recoveryMark: 'post_in_flight' });
        await recoverOutbound(ctx);
        expect(d.ledger.list({ direction: 'out' })[0]).to.include({ state: 'needs_review', errorCode: 'MESH_SEND_AMBIGUOUS' });
        expect(await sendCycle(ctx)).to.include({ sent: 0 });
      } finally {
        await d.stop(0);
      }
      expect(env.sim.messages().filter((m) => m.sender === SENDER)).to.have.length(1);
    });
  }

  it('finding 3: a spool file whose bytes differ from the claim (same size and mtime) is parked SPOOL_MISMATCH, nothing sent', async () => {
    const { row, spool } = await claimOnly('a.txt', 'PATIENT B 9991000127');
    expect(row.sha256).to.match(/^[0-9a-f]{64}$/);
    const st = statSync(spool.data);
    writeFileSync(spool.data, 'PATIENT A 9991000119');
    utimesSync(spool.data, st.atime, st.mtime);
    await cycle();
    nothingSentToMesh();
    const after = (await senderLedgerRows())[0];
    expect(after).to.include({ state: 'needs_review', errorCode: 'SPOOL_MISMATCH' });
  });

  it('finding 3: a row whose spool file is missing goes to needs_review at start (SPOOL_MISSING)', async () => {
    const { spool } = await claimOnly('b.txt', 'PATIENT B 9991000127');
    truncateSync(spool.data);
    execFileSync('rm', [spool.data]);
    await cycle();
    nothingSentToMesh();
    expect((await senderLedgerRows())[0]).to.include({ state: 'needs_review', errorCode: 'SPOOL_MISSING' });
  });

  it('finding 4: a file still being written after its claim is never sent as if complete (FILE_CHANGED)', async () => {
    const { spool } = await claimOnly('slow.txt', 'first half of the message;');
    // The writer still holds its descriptor: what it writes now lands in the claimed file.
    appendFileSync(spool.data, ' second half');
    await cycle();
    nothingSentToMesh();
    expect((await senderLedgerRows())[0]).to.include({ state: 'needs_review', errorCode: 'FILE_CHANGED' });
  });

  it('finding 4: a file that changes during the upload is parked after the last chunk, with the MESH id kept', async () => {
    const big = Buffer.alloc(64 * 1024 * 3, 0x41);
    const { spool } = await claimOnly('grows.txt', big);
    const d = await env.daemon(SENDER);
    try {
      const ctx = d.mailboxes[0];
      const real = ctx.mesh.send.bind(ctx.mesh);
      ctx.mesh.send = (path, headers, progress, resume) =>
        real(path, headers, { ...progress, onChunk: (n, total) => { progress.onChunk(n, total); if (n === 1) appendFileSync(spool.data, 'late bytes'); } }, resume);
      await d.runOnce();
      const row = d.ledger.list({ direction: 'out' })[0];
      expect(row).to.include({ state: 'needs_review', errorCode: 'FILE_CHANGED' });
      expect(row.messageId).to.be.a('string');
    } finally {
      await d.stop(0);
    }
  });

  it('a small payload is sent from the bytes its hash check read; a converted one from its file', async () => {
    dropFile(env.folder(SENDER, 'out'), 'small.txt', 'PATIENT B 9991000127');
    dropFile(env.folder(SENDER, 'out'), 'adt.hl7', readFileSync(join(ROOT, 'fixtures', 'hl7v2', 'uk-adt-a28.hl7')));
    const d = await env.daemon(SENDER);
    const given: Array<string | Buffer> = [];
    try {
      const ctx = d.mailboxes[0];
      const real = ctx.mesh.send.bind(ctx.mesh);
      ctx.mesh.send = (payload, headers, progress, resume) => {
        given.push(payload);
        return real(payload, headers, progress, resume);
      };
      expect(await sendCycle(ctx)).to.include({ sent: 2 });
      expect(readdirSync(ctx.spool)).to.deep.equal([]); // the converted .send went with its row
    } finally {
      await d.stop(0);
    }
    const bytes = given.find((p): p is Buffer => Buffer.isBuffer(p));
    expect(bytes?.toString()).to.equal('PATIENT B 9991000127');
    expect(given.find((p) => typeof p === 'string')).to.match(/\.send$/);
    expect(env.sim.messages().filter((m) => m.sender === SENDER)).to.have.length(2);
  });

  it('a file-system worker that fails mid-claim leaves the mailbox as a crash would: its next cycle recovers first and sends', async () => {
    dropFile(env.folder(SENDER, 'out'), 'cut.txt', 'PATIENT B 9991000127');
    const d = await env.daemon(SENDER);
    const batch = fileBatch as { factsBatched: typeof fileBatch.factsBatched };
    const realFacts = batch.factsBatched;
    batch.factsBatched = () => Promise.reject(new MeshdError('FILE_WORKER_FAILED', 'the file-system worker thread failed: the worker ended'));
    try {
      const [first] = await d.runOnce();
      expect(first.errors.map((e) => e.code)).to.include('FILE_WORKER_FAILED');
      expect(d.ledger.list({ direction: 'out' })[0]).to.include({ state: 'claiming' });
      batch.factsBatched = realFacts;
      // The same process: without recovery before it, the row would stay claiming.
      const [second] = await d.runOnce();
      expect(second.errors).to.deep.equal([]);
      expect(d.ledger.list({ direction: 'out' })[0]).to.include({ state: 'sent' });
    } finally {
      batch.factsBatched = realFacts;
      await d.stop(0);
    }
    expect(env.sim.messages().filter((m) => m.sender === SENDER)).to.have.length(1);
  });

  it('a small payload claimed and sent in one cycle is read from the spool once: the claim\'s hashed bytes are what is sent', async () => {
    dropFile(env.folder(SENDER, 'out'), 'once.txt', 'PATIENT B 9991000127');
    const d = await env.daemon(SENDER);
    // Files are read in safe-fs's worker thread: every read of a file's facts is asked of it here.
    const opened: string[] = [];
    const batch = fileBatch as { factsBatched: typeof fileBatch.factsBatched };
    const realFacts = batch.factsBatched;
    batch.factsBatched = ((path: string, ...rest: unknown[]) => {
      opened.push(path);
      return (realFacts as (...a: unknown[]) => unknown)(path, ...rest);
    }) as typeof batch.factsBatched;
    const realOpen = fsPromises.open;
    fsPromises.open = ((path: string, ...rest: unknown[]) => {
      opened.push(String(path));
      return (realOpen as (...a: unknown[]) => unknown)(path, ...rest);
    }) as typeof fsPromises.open;
    try {
      const ctx = d.mailboxes[0];
      expect(await sendCycle(ctx)).to.include({ sent: 1 });
      expect(opened.filter((p) => p.startsWith(ctx.spool) && p.endsWith('.dat'))).to.have.length(1);
    } finally {
      batch.factsBatched = realFacts;
      fsPromises.open = realOpen;
      await d.stop(0);
    }
    await cycle(RECEIVER);
    const delivered = readdirSync(env.folder(RECEIVER, 'in')).filter((f) => f.endsWith('.dat'));
    expect(delivered.map((f) => readFileSync(join(env.folder(RECEIVER, 'in'), f), 'utf8'))).to.deep.equal(['PATIENT B 9991000127']);
  });

  it('a converting route converts the bytes its spool check read, not the file read again', async () => {
    const original = readFileSync(join(ROOT, 'fixtures', 'hl7v2', 'uk-adt-a28.hl7'), 'latin1');
    expect(original).to.contain("O'BRIEN");
    dropFile(env.folder(SENDER, 'out'), 'adt.hl7', Buffer.from(original, 'latin1'));
    const d = await env.daemon(SENDER);
    try {
      const ctx = d.mailboxes[0];
      // Just before converting (the poison guard's commit), the spool copy is changed in place.
      const ledger = wrapLedgerMethod(ctx.ledger, 'update', (real) => (id: number, patch: { processingStarts?: number }, event: unknown) => {
        if (patch.processingStarts) {
          const data = join(ctx.spool, readdirSync(ctx.spool).find((f) => f.endsWith('.dat'))!);
          const st = statSync(data);
          writeFileSync(data, original.replace("O'BRIEN", "O'BRIAN"), 'latin1');
          utimesSync(data, st.atime, st.mtime);
        }
        return real(id, patch, event);
      });
      expect(await sendCycle({ ...ctx, ledger })).to.include({ sent: 1 });
    } finally {
      await d.stop(0);
    }
    await cycle(RECEIVER);
    const delivered = readdirSync(env.folder(RECEIVER, 'in')).filter((f) => f.endsWith('.dat'));
    expect(delivered).to.have.length(1);
    const text = readFileSync(join(env.folder(RECEIVER, 'in'), delivered[0]), 'utf8');
    expect(text).to.contain('BRIEN').and.not.contain('BRIAN');
  });

  it('finding 5: a payload over transform.maxInputBytes on a converting route is set aside unread (TOO_LARGE_TO_CONVERT)', async () => {
    const doc = (await import('../support/yaml')).parse(readFileSync(env.configPath[SENDER], 'utf8'));
    doc.transform = { maxInputBytes: 1024 };
    writeFileSync(env.configPath[SENDER], (await import('../support/yaml')).stringify(doc));
    dropFile(env.folder(SENDER, 'out'), 'big.hl7', readFileSync(join(ROOT, 'fixtures', 'hl7v2', 'uk-batch-one-bad.hl7')).toString().repeat(4));
    await cycle();
    nothingSentToMesh();
    const row = (await senderLedgerRows())[0];
    expect(row).to.include({ state: 'failed', errorCode: 'TOO_LARGE_TO_CONVERT' });
    expect(readdirSync(env.folder(SENDER, 'failed'))).to.include('big.hl7');
  });

  it('finding 5: a conversion that killed the process twice is set aside as POISON at the next start; the rest goes on', async () => {
    const { row } = await claimOnly('poison.hl7', readFileSync(join(ROOT, 'fixtures', 'hl7v2', 'uk-adt-a28.hl7')));
    const d0 = await env.daemon(SENDER);
    // What two deaths during the conversion leave in the ledger: two starts, no finish.
    d0.ledger.update(row.id, { processingStarts: 2 }, { type: 'processing_started', detail: { step: 'transform' } });
    await d0.stop(0);
    dropFile(env.folder(SENDER, 'out'), 'next.txt', 'the next message');
    const r = await cycle();
    expect(r).to.include({ sent: 1 });
    const all = await senderLedgerRows();
    expect(all.find((x) => x.fileName === 'poison.hl7')).to.include({ state: 'failed', errorCode: 'POISON' });
    expect(all.find((x) => x.fileName === 'next.txt')!.state).to.equal('sent');
    expect(readdirSync(env.folder(SENDER, 'failed'))).to.include('poison.hl7');
  });

  it('finding 3: a missing or empty meshd.db beside a spool is refused (LEDGER_MISSING, exit 3); `meshd ledger restore` installs a backup and reconciles', async () => {
    const data = await dataDir();
    const { spool } = await claimOnly('keep.txt', 'PATIENT B 9991000127');
    const backup = join(env.dir, 'backup.db');
    expect((await runMeshd(['ledger', 'backup', backup, '--config', env.configPath[SENDER]])).code).to.equal(0);
    // A later claim the backup does not know of, then the ledger is lost.
    await claimOnly('later.txt', 'PATIENT C 9991000135');
    for (const f of ['meshd.db', 'meshd.db-wal', 'meshd.db-shm']) if (existsSync(join(data, f))) execFileSync('rm', [join(data, f)]);
    writeFileSync(join(data, 'meshd.db'), '');
    const refused = await runMeshd(['run', '--once', '--config', env.configPath[SENDER]]);
    expect(refused.code).to.equal(3);
    expect(refused.stderr).to.include('will not start a new ledger beside earlier work');
    expect(refused.stderr).to.include('meshd ledger restore');
    nothingSentToMesh();

    const restored = await runMeshd(['ledger', 'restore', backup, '--config', env.configPath[SENDER], '--json']);
    expect(restored.code, restored.stderr).to.equal(0);
    const report = JSON.parse(restored.stdout);
    expect(report.mailboxes[0].orphans).to.have.length(1); // later.txt's spool copy: no row in the backup owns it
    expect(report.mailboxes[0].parked).to.deep.equal([]);
    expect(existsSync(spool.data)).to.equal(true);
    await cycle();
    const sent = env.sim.messages().filter((m) => m.sender === SENDER);
    expect(sent).to.have.length(1);
    await cycle(RECEIVER);
    const inDir = env.folder(RECEIVER, 'in');
    expect(readdirSync(inDir).filter((n) => n.endsWith('.dat')).map((n) => readFileSync(join(inDir, n), 'utf8'))).to.deep.equal(['PATIENT B 9991000127']);
    const ledger = openLedger(ledgerPath(data), { create: false });
    expect(ledger.list({ direction: 'out' }).map((r) => r.state)).to.deep.equal(['sent']);
    ledger.close();
  });
});

/** The ledger with one method wrapped (`around` gets the real one, bound): to fail or act at one exact step. */
function wrapLedgerMethod<L extends object>(ledger: L, method: string, around: (real: (...args: any[]) => any) => (...args: any[]) => any): L {
  return new Proxy(ledger, {
    get(target, name, receiver) {
      const real = Reflect.get(target, name, receiver);
      if (typeof real !== 'function') return real;
      const bound = real.bind(target);
      return name === method ? around(bound) : bound;
    },
  });
}
