import { expect } from 'chai';
import fc from 'fast-check';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, linkSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { connect as netConnect, type AddressInfo } from 'node:net';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { loadConfig } from '../../src/config';
import type { MeshdConfig } from '../../src/config/types';
import {
  MeshAmbiguousError,
  MeshAuthError,
  MeshClient,
  MeshNotFoundError,
  MeshProtocolError,
  MeshRejectedError,
  MeshTlsError,
  MeshTransientError,
  MessageTooLargeError,
  SuspectedBombError,
  meshClientFor,
  type MeshClientOverrides,
} from '../../src/mesh';
import { startSimulator, type Simulator } from '../../src/sim';
import { fetchToDir } from './support/fetch';
import { makeCert } from '../support/certs';

/** A throwaway CA and a maker of leaf certificates it signs. */
function makePki() {
  let serial = 1;
  const next = () => String(serial++).padStart(2, '0');
  const day = 86_400_000;
  const ca = makeCert('Throwaway Test CA', new Date(Date.now() - day), new Date(Date.now() + 30 * day), { ca: true, serial: next() });
  const leaf = (cn: string, opts: { dns?: string[]; notAfter?: Date; notBefore?: Date; client?: boolean }) => {
    const made = makeCert(cn, opts.notBefore ?? new Date(Date.now() - day), opts.notAfter ?? new Date(Date.now() + 10 * day), {
      issuer: ca,
      sans: opts.dns,
      usage: opts.client ? 'client' : 'server',
      serial: next(),
    });
    return { cert: made.certPem, key: made.keyPem };
  };
  return { ca: ca.certPem, leaf };
}

/** A tiny HTTP CONNECT proxy that records the targets it tunnelled to. */
async function startConnectProxy(): Promise<{ url: string; targets: string[]; close(): Promise<void> }> {
  const targets: string[] = [];
  const server: HttpServer = createHttpServer((_req, res) => {
    res.writeHead(405).end();
  });
  const sockets = new Set<{ destroy(): void }>();
  server.on('connect', (req, clientSocket, head) => {
    targets.push(String(req.url));
    sockets.add(clientSocket);
    const [host, port] = String(req.url).split(':');
    const upstream = netConnect(Number(port), host, () => {
      clientSocket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      upstream.pipe(clientSocket);
      clientSocket.pipe(upstream);
    });
    sockets.add(upstream);
    upstream.on('error', () => clientSocket.destroy());
    clientSocket.on('error', () => upstream.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    targets,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}


/** The client writes into a file the caller opened (the daemon passes an exclusive one). */
async function downloadTo(c: MeshClient, id: string, path: string, headBytes?: number) {
  const handle = await open(path, 'w');
  try {
    return await c.download(id, { handle, headBytes });
  } finally {
    await handle.close();
  }
}

describe('MESH client against the simulator (mTLS)', function () {
  this.timeout(120_000);
  let root: string;
  let sim: Simulator;
  let cfg1: MeshdConfig;
  let cfg2: MeshdConfig;
  const clients: MeshClient[] = [];
  /** Delays the client asked to sleep; tests never wait in real time. */
  let slept: number[];
  let onSleep: (() => void) | undefined;

  const client = (cfg: MeshdConfig, overrides: MeshClientOverrides = {}) => {
    const c = meshClientFor(cfg, undefined, {
      sleep: async (ms) => {
        slept.push(ms);
        onSleep?.();
      },
      random: () => 0.5,
      ...overrides,
    });
    clients.push(c);
    return c;
  };
  const work = (name: string) => join(root, 'work', `${name}-${randomBytes(4).toString('hex')}`);
  const file = (bytes: Buffer) => {
    const p = join(root, `payload-${randomBytes(6).toString('hex')}.bin`);
    writeFileSync(p, bytes);
    return p;
  };

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'meshd-it-'));
    sim = await startSimulator({ dir: join(root, 'sim'), seed: 7 });
    cfg1 = await loadConfig(sim.client('X26ABC1').configPath);
    cfg2 = await loadConfig(sim.client('X26ABC2').configPath);
  });
  beforeEach(async () => {
    await sim.reset();
    sim.setFaults(undefined);
    slept = [];
    onSleep = undefined;
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });
  after(async () => {
    await sim?.close();
    rmSync(root, { recursive: true, force: true });
  });

  describe('endpoints', () => {
    it('handshakes', async () => {
      await client(cfg1).handshake();
    });

    it('pings', async () => {
      expect(await client(cfg1).ping()).to.be.an('object');
    });

    it('sends, lists, reads metadata, downloads and acknowledges a single-chunk message', async () => {
      const payload = Buffer.from('NHS_NUMBER,NAME\n9990000018,TEST PATIENT\n');
      const sent = await client(cfg1).sendFile(file(payload), {
        to: 'X26ABC2',
        workflowId: 'TEST_WORKFLOW',
        subject: 'registrations',
        localId: 'batch-1',
        fileName: 'reg.csv',
        contentType: 'text/csv',
      });
      expect(sent).to.include({ chunks: 1, bytes: payload.length });
      const rx = client(cfg2);
      expect(await rx.listInbox()).to.deep.equal([sent.messageId]);
      const meta = await rx.messageMetadata(sent.messageId);
      expect(meta).to.include({ messageType: 'DATA', from: 'X26ABC1', workflowId: 'TEST_WORKFLOW', fileName: 'reg.csv', localId: 'batch-1', subject: 'registrations', totalChunks: 1 });
      const dest = join(root, 'single.dat');
      const got = await downloadTo(rx, sent.messageId, dest);
      expect(readFileSync(dest).equals(payload)).to.equal(true);
      expect(got.bytes).to.equal(payload.length);
      await rx.acknowledge(sent.messageId);
      expect(await rx.listInbox()).to.deep.equal([]);
      const err = await downloadTo(rx, sent.messageId, dest).catch((e) => e);
      expect(err).to.be.instanceOf(MeshNotFoundError);
    });

    it('tracks a sent message', async () => {
      const tx = client(cfg1);
      const sent = await tx.sendBytes(Buffer.from('hello'), { to: 'X26ABC2', workflowId: 'TEST_WORKFLOW' });
      const t = await tx.track(sent.messageId);
      expect(t.message_id).to.equal(sent.messageId);
      expect(t.status).to.equal('accepted');
      const err = await tx.track('NOSUCHMESSAGE').catch((e) => e);
      expect(err).to.be.instanceOf(MeshNotFoundError);
    });

    it('looks up endpoints and searches workflows', async () => {
      const c = client(cfg1);
      const byOds = await c.lookupEndpoint('X26', 'TEST_WORKFLOW');
      expect(byOds.map((r) => r.mailboxId)).to.include('X26ABC2');
      const all = await c.workflowSearch('TEST_WORKFLOW');
      expect(all.map((r) => r.mailboxId)).to.include.members(['X26ABC1', 'X26ABC2']);
    });

    it('surfaces a MESH rejection with its code (unknown recipient)', async () => {
      const err = await client(cfg1)
        .sendBytes(Buffer.from('x'), { to: 'ZZZNOBODY', workflowId: 'TEST_WORKFLOW' })
        .catch((e) => e);
      expect(err).to.be.instanceOf(MeshRejectedError);
      expect(err.meshCode).to.equal('12');
    });
  });

  describe('chunked transfer', () => {
    it('sends and receives a >=3-chunk gzip message byte-identical', async () => {
      const payload = Buffer.concat([Buffer.from('id,name\n'.repeat(20_000)), randomBytes(150_000)]);
      const chunkSize = 64 * 1024;
      const ids: string[] = [];
      const chunksSeen: number[] = [];
      const sent = await client(cfg1).sendFile(file(payload), {
        to: 'X26ABC2',
        workflowId: 'TEST_WORKFLOW',
        chunkSize,
        compress: true,
        onMessageId: (id) => {
          ids.push(id);
        },
        onChunkSent: (n) => {
          chunksSeen.push(n);
        },
      });
      const expected = Math.ceil(payload.length / chunkSize);
      expect(expected).to.be.at.least(3);
      expect(sent.chunks).to.equal(expected);
      expect(ids).to.deep.equal([sent.messageId]);
      expect(chunksSeen).to.deep.equal(Array.from({ length: expected }, (_, i) => i + 1));
      const stored = sim.messages().find((m) => m.id === sent.messageId)!;
      expect(stored).to.have.property('contentEncoding', 'gzip');
      const dir = work('chunked');
      const [rx] = await fetchToDir(client(cfg2), [sent.messageId], dir);
      expect(rx.meta!.totalChunks).to.equal(expected);
      expect(readFileSync(rx.path!).equals(payload)).to.equal(true);
      expect(await client(cfg2).listInbox()).to.deep.equal([]);
    });

    it('spools each gzip chunk over 1 MiB to a private temp file under dataDir/tmp and removes it', async () => {
      // Chunks over 1 MiB are spooled; smaller ones are gzip'd in memory.
      const payload = randomBytes(2 * 1024 * 1024 + 100);
      const spoolDir = join(cfg1.dataDir, 'tmp');
      rmSync(spoolDir, { recursive: true, force: true });
      const sent = await client(cfg1).sendFile(file(payload), { to: 'X26ABC2', workflowId: 'TEST_WORKFLOW', chunkSize: 1024 * 1024 + 50 });
      expect(sent.chunks).to.equal(2);
      expect(existsSync(spoolDir)).to.equal(true);
      expect(readdirSync(spoolDir)).to.deep.equal([]);
      const dest = join(root, 'spooled.dat');
      await downloadTo(client(cfg2), sent.messageId, dest);
      expect(readFileSync(dest).equals(payload)).to.equal(true);
    });

    it('streams gzip chunks with chunked transfer encoding when gzipUpload is stream', async () => {
      const payload = Buffer.from('a,b,c\n'.repeat(30_000));
      const sent = await client(cfg1, { gzipUpload: 'stream' }).sendFile(file(payload), { to: 'X26ABC2', workflowId: 'TEST_WORKFLOW', chunkSize: 50_000 });
      expect(sent.chunks).to.equal(Math.ceil(payload.length / 50_000));
      const dest = join(root, 'streamed.dat');
      await downloadTo(client(cfg2), sent.messageId, dest);
      expect(readFileSync(dest).equals(payload)).to.equal(true);
    });

    it('sends uncompressed chunks with a Content-Length when compress is off', async () => {
      const payload = randomBytes(50_000);
      const sent = await client(cfg1).sendFile(file(payload), { to: 'X26ABC2', workflowId: 'TEST_WORKFLOW', chunkSize: 20_000, compress: false });
      expect(sent.chunks).to.equal(3);
      const dest = join(root, 'plain.dat');
      await downloadTo(client(cfg2), sent.messageId, dest);
      expect(readFileSync(dest).equals(payload)).to.equal(true);
    });

    it('refuses to send through a link, a second name or a FIFO, compressed or not, and sends nothing', async () => {
      const target = file(randomBytes(30_000));
      symlinkSync(target, join(root, 'via-link.dat'));
      const second = join(root, 'second-name.dat');
      const hardLinked = file(randomBytes(30_000));
      linkSync(hardLinked, second);
      const fifo = join(root, 'fifo.dat');
      execFileSync('mkfifo', [fifo]);
      for (const compress of [true, false]) {
        for (const path of [join(root, 'via-link.dat'), second, fifo]) {
          const err = await client(cfg1).sendFile(path, { to: 'X26ABC2', workflowId: 'TEST_WORKFLOW', chunkSize: 10_000, compress }).catch((e: NodeJS.ErrnoException) => e);
          expect((err as NodeJS.ErrnoException).code, `${path} compress=${compress}`).to.equal('NOT_REGULAR_FILE');
        }
      }
      expect(await client(cfg2).listInbox()).to.deep.equal([]);
    });

    it('resumes an interrupted send from the next chunk', async () => {
      const payload = randomBytes(5 * 10_000 + 7);
      const path = file(payload);
      let messageId = '';
      const crash = new Error('simulated crash after chunk 2');
      const err = await client(cfg1)
        .sendFile(path, {
          to: 'X26ABC2',
          workflowId: 'TEST_WORKFLOW',
          chunkSize: 10_000,
          onMessageId: (id) => {
            messageId = id;
          },
          onChunkSent: (n) => {
            if (n === 2) throw crash;
          },
        })
        .catch((e) => e);
      expect(err).to.equal(crash);
      expect(await client(cfg2).listInbox()).to.deep.equal([]);
      const resumed = await client(cfg1).sendFile(path, { to: 'X26ABC2', workflowId: 'TEST_WORKFLOW', chunkSize: 10_000, resume: { messageId, nextChunk: 3 } });
      expect(resumed).to.deep.equal({ messageId, chunks: 6, bytes: payload.length });
      const dest = join(root, 'resumed.dat');
      await downloadTo(client(cfg2), messageId, dest);
      expect(readFileSync(dest).equals(payload)).to.equal(true);
    });

    it('treats a 423 on a resumed chunk MESH already has as success once tracking says accepted', async () => {
      const payload = randomBytes(30_000);
      const path = file(payload);
      const sent = await client(cfg1).sendFile(path, { to: 'X26ABC2', workflowId: 'TEST_WORKFLOW', chunkSize: 10_000 });
      // A crash after the last chunk landed but before it was recorded: resume at chunk 3 again.
      const again = await client(cfg1).sendFile(path, { to: 'X26ABC2', workflowId: 'TEST_WORKFLOW', chunkSize: 10_000, resume: { messageId: sent.messageId, nextChunk: 3 } });
      expect(again.messageId).to.equal(sent.messageId);
      expect(sim.messages().filter((m) => m.type === 'DATA')).to.have.length(1);
    });

    it('round-trips any bytes at any chunk size (property, fixed seed)', async () => {
      const tx = { spool: client(cfg1), stream: client(cfg1, { gzipUpload: 'stream' }) };
      const rx = client(cfg2);
      let n = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.uint8Array({ minLength: 1, maxLength: 4000 }),
          fc.integer({ min: 1, max: 4000 }),
          fc.boolean(),
          fc.constantFrom('spool' as const, 'stream' as const),
          async (bytes, rawChunk, compress, mode) => {
          const data = Buffer.from(bytes);
          const chunkSize = Math.max(rawChunk, Math.ceil(data.length / 12));
          const sent = await tx[mode].sendBytes(data, { to: 'X26ABC2', workflowId: 'TEST_WORKFLOW', chunkSize, compress });
          const dest = join(root, `prop-${n++}.dat`);
          await downloadTo(rx, sent.messageId, dest);
          await rx.acknowledge(sent.messageId);
          expect(readFileSync(dest).equals(data)).to.equal(true);
          rmSync(dest);
          },
        ),
        { seed: 20261124, numRuns: 30 },
      );
    });
  });

  describe('inbox', () => {
    it('follows links.next across pages for more than 500 waiting messages', async () => {
      const tx = client(cfg1);
      const sentIds = new Set<string>();
      for (let i = 0; i < 505; i++) sentIds.add((await tx.sendBytes(Buffer.from(`m${i}`), { to: 'X26ABC2', workflowId: 'TEST_WORKFLOW' })).messageId);
      const rx = client(cfg2);
      const pages: number[] = [];
      for await (const page of rx.inboxPages()) pages.push(page.length);
      expect(pages.length).to.be.at.least(2);
      const listed = await rx.listInbox();
      expect(listed).to.have.length(505);
      expect(new Set(listed)).to.deep.equal(sentIds);
    });

    it('keeps following next past empty filtered pages', async () => {
      const tx = client(cfg1);
      for (let i = 0; i < 25; i++) await tx.sendBytes(Buffer.from(`a${i}`), { to: 'X26ABC2', workflowId: 'TEST_WORKFLOW' });
      const wanted = (await tx.sendBytes(Buffer.from('ack'), { to: 'X26ABC2', workflowId: 'TEST_WORKFLOW_ACK' })).messageId;
      const rx = client(cfg2);
      const pages: string[][] = [];
      for await (const page of rx.inboxPages({ workflowFilter: 'TEST_WORKFLOW_ACK', maxResults: 10 })) pages.push(page);
      expect(pages.flat()).to.deep.equal([wanted]);
      expect(await rx.listInbox({ workflowFilter: '!TEST_WORKFLOW_ACK', maxResults: 10 })).to.have.length(25);
    });

    it('lists every waiting message in send order, downloads each byte-identical, and acknowledging removes them', async () => {
      const tx = client(cfg1);
      const bodies = [Buffer.from('one'), Buffer.from('two'), randomBytes(3000)];
      const ids = [];
      for (const b of bodies) ids.push((await tx.sendBytes(b, { to: 'X26ABC2', workflowId: 'TEST_WORKFLOW' })).messageId);
      const dir = work('all');
      const rx = client(cfg2);
      const listed = await rx.listInbox();
      expect(listed).to.deep.equal(ids);
      const got = await fetchToDir(rx, listed, dir);
      got.forEach((m, i) => expect(readFileSync(m.path!).equals(bodies[i])).to.equal(true));
      expect(existsSync(join(dir, `${ids[0]}.dat`))).to.equal(true);
      expect(await rx.listInbox()).to.deep.equal([]);
    });
  });

  describe('receiving many', () => {
    it('receives and acknowledges more than a page (505 messages) while paging', async () => {
      const tx = client(cfg1);
      for (let i = 0; i < 505; i++) await tx.sendBytes(Buffer.from(`r${i}`), { to: 'X26ABC2', workflowId: 'TEST_WORKFLOW' });
      const dir = work('many');
      const rx = client(cfg2);
      const got = await fetchToDir(rx, await rx.listInbox(), dir);
      expect(got).to.have.length(505);
      expect(readdirSync(dir)).to.have.length(505);
      expect(await rx.listInbox()).to.deep.equal([]);
    });

    it('leaves a too-large message in the inbox (MessageTooLargeError) and still receives the others', async () => {
      const tx = client(cfg1);
      const small1 = (await tx.sendBytes(Buffer.from('small one'), { to: 'X26ABC2', workflowId: 'TEST_WORKFLOW' })).messageId;
      const big = (await tx.sendBytes(Buffer.alloc(50_000, 'b'), { to: 'X26ABC2', workflowId: 'TEST_WORKFLOW' })).messageId;
      const small2 = (await tx.sendBytes(Buffer.from('small two'), { to: 'X26ABC2', workflowId: 'TEST_WORKFLOW' })).messageId;
      const rx = client(cfg2);
      const got = await fetchToDir(rx, await rx.listInbox(), work('partial'), { maxBytes: 10_000 });
      expect(got.filter((m) => !m.error).map((m) => m.messageId)).to.deep.equal([small1, small2]);
      expect(got.filter((m) => m.error).map((m) => `${m.messageId} ${(m.error as Error).name}`)).to.deep.equal([`${big} MessageTooLargeError`]);
      expect(await rx.listInbox()).to.deep.equal([big]);
    });
  });

  describe('REPORTs', () => {
    it('stops a gzip bomb at its first block of output, however big the compressed pieces it reads', async () => {
      // 64 KiB of gzip inflating to 64 MiB: read as one gathered piece, so a guard weighing output
      // against bytes received (not consumed by gunzip) would let ~6 MiB through at ratio 100.
      const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));
      expect(bomb.length).to.be.within(32 * 1024, 256 * 1024);
      const id = await sim.injectHostile({ mailbox: 'X26ABC2', body: bomb, contentEncoding: 'gzip' });
      const c = client({ ...cfg2, transfer: { ...cfg2.transfer, maxCompressionRatio: 100 } });
      const path = join(root, `bomb-${randomBytes(4).toString('hex')}.part`);
      const err = await downloadTo(c, id, path).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(SuspectedBombError);
      expect(statSync(path).size).to.be.at.most(1024 * 1024);
    });

    describe('a small body (read whole; gzip inflated at once, up to 256 KiB of output)', () => {
      const fetchHostile = async (body: Buffer, ratio?: number) => {
        const id = await sim.injectHostile({ mailbox: 'X26ABC2', body, contentEncoding: 'gzip' });
        const c = client(ratio ? { ...cfg2, transfer: { ...cfg2.transfer, maxCompressionRatio: ratio } } : cfg2);
        const path = join(root, `small-${randomBytes(4).toString('hex')}.part`);
        return { path, result: await downloadTo(c, id, path, 64).catch((e: unknown) => e) };
      };

      it('writes, hashes and heads what it inflates', async () => {
        const payload = Buffer.from('MSH|^~\\&|SMALL|'.repeat(500));
        const { path, result } = await fetchHostile(gzipSync(payload));
        expect(readFileSync(path).equals(payload)).to.equal(true);
        expect(result).to.deep.include({ bytes: payload.length, sha256: createHash('sha256').update(payload).digest('hex') });
        expect((result as { head: Buffer }).head.equals(payload.subarray(0, 64))).to.equal(true);
      });

      it('stops a small bomb that would inflate past 256 KiB, through the streamed guard', async () => {
        const bomb = gzipSync(Buffer.alloc(8 * 1024 * 1024));
        expect(bomb.length).to.be.at.most(16 * 1024);
        const { path, result } = await fetchHostile(bomb, 100);
        expect(result).to.be.instanceOf(SuspectedBombError);
        expect(statSync(path).size).to.be.at.most(1024 * 1024);
      });

      it('stops one that inflates past the ratio within 256 KiB', async () => {
        const { path, result } = await fetchHostile(gzipSync(Buffer.alloc(200 * 1024)), 10);
        expect(result).to.be.instanceOf(SuspectedBombError);
        expect(statSync(path).size).to.equal(0);
      });

      it('takes a small body that is not compressed whole too: written, hashed and headed, or refused past maxBytes before a byte is written', async () => {
        const payload = Buffer.from('PID|1||9990000018^^^NHS^NH|'.repeat(300));
        expect(payload.length).to.be.within(4 * 1024, 16 * 1024);
        const id = await sim.injectHostile({ mailbox: 'X26ABC2', body: payload });
        const path = join(root, `plain-${randomBytes(4).toString('hex')}.part`);
        const result = await downloadTo(client(cfg2), id, path, 64);
        expect(readFileSync(path).equals(payload)).to.equal(true);
        expect(result).to.deep.include({ bytes: payload.length, sha256: createHash('sha256').update(payload).digest('hex') });
        expect(result.head.equals(payload.subarray(0, 64))).to.equal(true);

        const capped = join(root, `plain-${randomBytes(4).toString('hex')}.part`);
        const handle = await open(capped, 'w');
        const err = await client(cfg2)
          .download(id, { handle }, { maxBytes: payload.length - 1 })
          .catch((e: unknown) => e)
          .finally(() => handle.close());
        expect(err).to.be.instanceOf(MessageTooLargeError);
        expect(statSync(capped).size).to.equal(0);
      });

      it('refuses a body that is not gzip as a protocol fault', async () => {
        const { result } = await fetchHostile(Buffer.from('this is not gzip, whatever the header says'));
        expect(result).to.be.instanceOf(MeshProtocolError);
        expect(String((result as Error).message)).to.match(/not what its Content-Encoding says \(Z_DATA_ERROR\)/);
      });
    });

    it('downloads a REPORT (empty body, 1:0) with its status headers, logs and acknowledges it without writing data', async () => {
      const sent = await client(cfg1).sendBytes(Buffer.from('x'), { to: 'X26ABC2', workflowId: 'TEST_WORKFLOW' });
      const reportId = await sim.injectReport({ mailbox: 'X26ABC1', code: '14', description: 'Message not collected by recipient after 5 days', linkedMessageId: sent.messageId, workflowId: 'TEST_WORKFLOW' });
      const dir = work('reports');
      const c = client(cfg1);
      const [rx] = await fetchToDir(c, await c.listInbox(), dir);
      expect(rx.messageId).to.equal(reportId);
      expect(rx.meta).to.include({ messageType: 'REPORT', totalChunks: 0, statusCode: '14', linkedMessageId: sent.messageId });
      expect(rx.path).to.equal(undefined);
      expect(await c.listInbox()).to.deep.equal([]);
      expect(readdirSync(dir)).to.deep.equal([]);
      expect(await c.listInbox()).to.deep.equal([]);
    });
  });

  describe('authentication', () => {
    it('refuses a replayed token', async () => {
      const c = client(cfg1, { nonce: () => '11111111-2222-4333-8444-555555555555', retry: { attempts: 1 }, clock: () => sim.now() });
      await c.handshake();
      const err = await c.handshake().catch((e) => e);
      expect(err).to.be.instanceOf(MeshAuthError);
      expect(err.kind).to.equal('auth');
    });

    it('refuses a stale timestamp', async () => {
      const c = client(cfg1, { clock: () => new Date(sim.now().getTime() - 3 * 3_600_000) });
      const err = await c.handshake().catch((e) => e);
      expect(err).to.be.instanceOf(MeshAuthError);
    });

    it('refuses a wrong password', async () => {
      const err = await client({ ...cfg1, mailboxes: [{ ...cfg1.mailboxes[0], password: 'wrong-password' }] })
        .handshake()
        .catch((e) => e);
      expect(err).to.be.instanceOf(MeshAuthError);
      expect(err.message).not.to.contain('wrong-password');
    });
  });

  describe('TLS', () => {
    let pki: ReturnType<typeof makePki>;
    before(() => {
      pki = makePki();
    });
    const pemFiles = (parts: { ca?: string; cert?: string; key?: string }) => {
      const d = work('pem');
      const tls: MeshdConfig['tls'] = { ...cfg1.tls };
      for (const [k, v] of Object.entries(parts)) {
        const p = join(root, `${k}-${randomBytes(4).toString('hex')}.pem`);
        writeFileSync(p, v);
        (tls as any)[k] = p;
      }
      void d;
      return tls;
    };

    it('refuses an unknown client certificate with a clear error', async () => {
      const other = pki.leaf('X26ABC1.X26.api.mesh-client.nhs.uk', { client: true });
      const err = await client({ ...cfg1, tls: pemFiles({ cert: other.cert, key: other.key }) })
        .handshake()
        .catch((e) => e);
      expect(err).to.be.instanceOf(MeshTlsError);
      expect(err.failure).to.equal('client-refused');
      expect(err.message).to.contain('refused our client certificate');
      expect(err.kind).to.equal('auth');
    });

    it('refuses a server whose certificate tls.ca does not trust', async () => {
      const err = await client({ ...cfg1, tls: pemFiles({ ca: pki.ca }) })
        .handshake()
        .catch((e) => e);
      expect(err).to.be.instanceOf(MeshTlsError);
      expect(err.failure).to.equal('server-untrusted');
      expect(err.message).to.contain('server certificate is not trusted');
    });

    describe('against a throwaway HTTPS server', () => {
      let server: HttpsServer | undefined;
      afterEach(async () => {
        if (server) await new Promise<void>((r) => server!.close(() => r()));
        server = undefined;
      });
      let seen: string[] = [];
      let answer = '{}';
      beforeEach(() => {
        seen = [];
        answer = '{}';
      });
      const serve = async (leaf: { cert: string; key: string }, requireClientCa?: string, handle?: (req: IncomingMessage, res: ServerResponse) => void) => {
        const mtls = requireClientCa ? { ca: requireClientCa, requestCert: true, rejectUnauthorized: true } : {};
        server = createHttpsServer({ cert: leaf.cert, key: leaf.key, ...mtls }, (req, res) => {
          seen.push(String(req.url));
          if (handle) handle(req, res);
          else res.end(answer);
        });
        await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
        return `https://localhost:${(server.address() as AddressInfo).port}`;
      };

      it('says when the server certificate is for another host name', async () => {
        const url = await serve(pki.leaf('other.example', { dns: ['other.example'] }));
        const err: any = await client({ ...cfg1, url, tls: pemFiles({ ca: pki.ca }) })
          .ping()
          .catch((e) => e);
        expect(err).to.be.instanceOf(MeshTlsError);
        expect(err.failure).to.equal('server-hostname');
      });

      it('says the client certificate was refused when a TLS 1.3 server drops us after the handshake', async () => {
        // The server trusts only its own CA for clients, so our simulator-issued certificate is refused.
        const url = await serve(pki.leaf('localhost', { dns: ['localhost'] }), pki.ca);
        const err: any = await client({ ...cfg1, url, tls: pemFiles({ ca: pki.ca }) })
          .handshake()
          .catch((e) => e);
        expect(err).to.be.instanceOf(MeshTlsError);
        expect(err.failure).to.equal('client-refused');
        expect(err.message).to.contain('refused our client certificate');
      });

      it('never follows an inbox next link to another host', async () => {
        const url = await serve(pki.leaf('localhost', { dns: ['localhost'] }));
        answer = JSON.stringify({ messages: ['A'], links: { next: 'https://elsewhere.example/messageexchange/X26ABC1/inbox?continue_from=x' } });
        const err: any = await client({ ...cfg1, url, tls: pemFiles({ ca: pki.ca }) })
          .listInbox()
          .catch((e) => e);
        expect(err).to.be.instanceOf(MeshRejectedError);
        expect(err.message).to.contain('another host');
        expect(seen).to.deep.equal(['/messageexchange/X26ABC1/inbox']);
      });

      it('keeps a path prefix of the base URL', async () => {
        const url = await serve(pki.leaf('localhost', { dns: ['localhost'] }));
        await client({ ...cfg1, url: `${url}/mesh-gateway`, tls: pemFiles({ ca: pki.ca }) }).handshake();
        expect(seen).to.deep.equal(['/mesh-gateway/messageexchange/X26ABC1']);
      });

      it('does not count a chunk as sent on a 423 while tracking says the message is still uploading', async () => {
        // MESH answers 423 only for a finished message; a server that says so while tracking
        // disagrees proves nothing about the chunk, so the send is tried again later, never "sent".
        const id = '20261202120000000000_ABCDEF';
        const url = await serve(pki.leaf('localhost', { dns: ['localhost'] }), undefined, (req, res) => {
          req.resume();
          req.on('end', () => {
            const json = (status: number, body: object) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
            if (req.method === 'POST' && req.url!.endsWith('/outbox')) json(202, { message_id: id });
            else if (req.method === 'POST') json(423, { detail: [{ code: 'MessageFinalised', msg: 'chunk already received' }] });
            else json(200, { message_id: id, status: 'uploading' });
          });
        });
        const chunksSent: number[] = [];
        const err: any = await client({ ...cfg1, url, tls: pemFiles({ ca: pki.ca }) })
          .sendBytes(randomBytes(30_000), { to: 'X26ABC2', workflowId: 'TEST_WORKFLOW', chunkSize: 10_000, onChunkSent: (n) => void chunksSent.push(n) })
          .catch((e) => e);
        expect(err).to.be.instanceOf(MeshTransientError);
        expect(err.message).to.contain('chunk 2 of 3').and.contain('tracking says uploading');
        expect(chunksSent).to.deep.equal([1]);
        expect(seen.filter((u) => u.includes('/tracking'))).to.have.length(1);
      });

      it('says when the server certificate has expired', async () => {
        const url = await serve(pki.leaf('localhost', { dns: ['localhost'], notBefore: new Date(Date.now() - 10 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) }));
        const err: any = await client({ ...cfg1, url, tls: pemFiles({ ca: pki.ca }) })
          .ping()
          .catch((e) => e);
        expect(err).to.be.instanceOf(MeshTlsError);
        expect(err.failure).to.equal('server-expired');
      });
    });

    it('says when our own client certificate has expired, before connecting', () => {
      const old = pki.leaf('X26ABC1', { client: true, notBefore: new Date(Date.now() - 10 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
      expect(() => client({ ...cfg1, tls: pemFiles({ cert: old.cert, key: old.key }) }))
        .to.throw(MeshTlsError)
        .with.property('failure', 'client-expired');
    });

    it('checks the dates of a certificate it has seen before, each time (the parsed pair is cached)', async () => {
      const leaf = pki.leaf('X26ABC1', { client: true, notBefore: new Date(Date.now() - 10 * 86_400_000), notAfter: new Date(Date.now() + 86_400_000) });
      const tls = pemFiles({ cert: leaf.cert, key: leaf.key });
      await client({ ...cfg1, tls }).close();
      expect(() => client({ ...cfg1, tls }, { clock: () => new Date(Date.now() + 2 * 86_400_000) }))
        .to.throw(MeshTlsError)
        .with.property('failure', 'client-expired');
    });

    it('says when tls.key does not match tls.cert', () => {
      const a = pki.leaf('A', { client: true });
      const b = pki.leaf('B', { client: true });
      expect(() => client({ ...cfg1, tls: pemFiles({ cert: a.cert, key: b.key }) }))
        .to.throw(MeshTlsError)
        .with.property('failure', 'key-mismatch');
    });

    it('carries mTLS through an HTTP CONNECT proxy', async () => {
      const proxy = await startConnectProxy();
      try {
        const c = client({ ...cfg1, proxy: proxy.url });
        await c.handshake();
        const sent = await c.sendBytes(randomBytes(30_000), { to: 'X26ABC2', workflowId: 'TEST_WORKFLOW', chunkSize: 10_000 });
        expect(sent.chunks).to.equal(3);
        expect(proxy.targets.length).to.be.at.least(1);
        expect(proxy.targets[0]).to.equal(`localhost:${sim.port}`);
      } finally {
        await proxy.close();
      }
    });
  });

  describe('retries and faults', () => {
    it('honours 429 Retry-After with a fresh token on each attempt', async () => {
      sim.setFaults('inbox:429=1,inbox:retry-after=7');
      onSleep = () => sim.setFaults(undefined);
      expect(await client(cfg2).listInbox()).to.deep.equal([]);
      expect(slept).to.deep.equal([7000]);
    });

    it('gives up with MeshTransientError once attempts run out', async () => {
      sim.setFaults('inbox:503=1');
      const err = await client(cfg2, { retry: { attempts: 3, initialDelayMs: 1000 } })
        .listInbox()
        .catch((e) => e);
      expect(err).to.be.instanceOf(MeshTransientError);
      expect(err.status).to.equal(503);
      expect(slept).to.deep.equal([500, 1000]);
    });

    it('retries the first POST when MESH definitely refused it (503) and stores one message', async () => {
      sim.setFaults('send:503=1');
      onSleep = () => sim.setFaults(undefined);
      const sent = await client(cfg1).sendBytes(Buffer.from('retry me'), { to: 'X26ABC2', workflowId: 'TEST_WORKFLOW' });
      expect(slept).to.have.length(1);
      expect(sim.messages().map((m) => m.id)).to.deep.equal([sent.messageId]);
      // The retry sent the same compressed bytes again, whole.
      const dest = join(root, 'retried.dat');
      await downloadTo(client(cfg2), sent.messageId, dest);
      expect(readFileSync(dest, 'utf8')).to.equal('retry me');
    });

    it('never retries the first POST after a 500: the outcome is ambiguous', async () => {
      sim.setFaults('send:500=1');
      const err = await client(cfg1)
        .sendBytes(Buffer.from('x'), { to: 'X26ABC2', workflowId: 'TEST_WORKFLOW' })
        .catch((e) => e);
      expect(err).to.be.instanceOf(MeshAmbiguousError);
      expect(err.kind).to.equal('ambiguous');
      expect(slept).to.deep.equal([]);
    });

    it('surfaces a connection reset after MESH stored the message as ambiguous, without resending', async () => {
      sim.setFaults('send:reset-after-accept=1');
      const err = await client(cfg1)
        .sendBytes(Buffer.from('maybe'), { to: 'X26ABC2', workflowId: 'TEST_WORKFLOW' })
        .catch((e) => e);
      expect(err).to.be.instanceOf(MeshAmbiguousError);
      expect(slept).to.deep.equal([]);
      // MESH did store it: exactly why a blind resend would duplicate.
      expect(sim.messages().filter((m) => m.type === 'DATA')).to.have.length(1);
    });

    it('retries chunk POSTs (n >= 2), including one whose answer was lost after MESH stored it', async () => {
      const payload = randomBytes(40_000);
      const path = file(payload);
      sim.setFaults('chunk:503=1');
      onSleep = () => sim.setFaults('chunk:reset-after-accept=1');
      let sleeps = 0;
      onSleep = () => {
        sleeps++;
        sim.setFaults(sleeps === 1 ? 'chunk:reset-after-accept=1' : undefined);
      };
      const sent = await client(cfg1).sendFile(path, { to: 'X26ABC2', workflowId: 'TEST_WORKFLOW', chunkSize: 10_000 });
      expect(sent.chunks).to.equal(4);
      expect(slept.length).to.be.at.least(2);
      const dest = join(root, 'chunk-retry.dat');
      await downloadTo(client(cfg2), sent.messageId, dest);
      expect(readFileSync(dest).equals(payload)).to.equal(true);
    });

    it('retries a download reset mid-body and still writes the exact bytes', async () => {
      const payload = randomBytes(100_000);
      const sent = await client(cfg1).sendFile(file(payload), { to: 'X26ABC2', workflowId: 'TEST_WORKFLOW', chunkSize: 30_000 });
      sim.setFaults('download:reset=1');
      onSleep = () => sim.setFaults(undefined);
      const dest = join(root, 'reset.dat');
      const got = await downloadTo(client(cfg2), sent.messageId, dest, 512);
      expect(slept).to.have.length(1);
      expect(readFileSync(dest).equals(payload)).to.equal(true);
      // Hashed as written: the cut-off attempt's bytes are not in the hash, nor in the head.
      expect(got.sha256).to.equal(createHash('sha256').update(payload).digest('hex'));
      expect(got.head.equals(payload.subarray(0, 512))).to.equal(true);
    });

    it('asks the file its size only when a chunk is tried again', async () => {
      const payload = randomBytes(100_000);
      const sent = await client(cfg1).sendFile(file(payload), { to: 'X26ABC2', workflowId: 'TEST_WORKFLOW', chunkSize: 30_000 });
      const statsOfDownload = async (name: string) => {
        const handle = await open(join(root, name), 'w');
        let stats = 0;
        // The real handle, its stat() counted: a first attempt finds the file ending where the chunk before ended.
        const counted = new Proxy(handle, {
          get(target, key) {
            if (key === 'stat') stats++;
            const value = Reflect.get(target, key) as unknown;
            return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
          },
        });
        try {
          await client(cfg2).download(sent.messageId, { handle: counted });
        } finally {
          await handle.close();
        }
        expect(readFileSync(join(root, name)).equals(payload)).to.equal(true);
        return stats;
      };
      expect(await statsOfDownload('stat-none.dat')).to.equal(0);
      sim.setFaults('download:reset=1');
      onSleep = () => sim.setFaults(undefined);
      expect(await statsOfDownload('stat-retried.dat')).to.equal(1);
    });

    it('hashes a many-chunk download exactly when later chunks are cut off and fetched again', async () => {
      // Uncompressed, so the half of a chunk the simulator sends before it drops reaches the hash at once.
      const payload = randomBytes(600_000);
      const sent = await client(cfg1).sendFile(file(payload), { to: 'X26ABC2', workflowId: 'TEST_WORKFLOW', chunkSize: 100_000, compress: false });
      sim.setFaults('download:reset=0.3');
      const dest = join(root, 'resets.dat');
      const got = await downloadTo(client(cfg2), sent.messageId, dest, 100);
      sim.setFaults(undefined);
      expect(slept.length, 'some chunks were fetched again').to.be.at.least(1);
      expect(readFileSync(dest).equals(payload)).to.equal(true);
      expect(got.sha256).to.equal(createHash('sha256').update(payload).digest('hex'));
      expect(got.head.equals(payload.subarray(0, 100))).to.equal(true);
    });

    it('does not crash on a non-JSON (XML/HTML) 5xx body', async () => {
      sim.setFaults('tracking:500=1');
      const c = client(cfg1);
      for (let i = 0; i < 4; i++) {
        const err = await c.track('ANY').catch((e) => e);
        expect(err).to.be.instanceOf(MeshTransientError);
        expect(err.status).to.equal(500);
      }
    });
  });

  describe('download size cap', () => {
    it('aborts cleanly past maxBytes, leaves no file and does not acknowledge', async () => {
      const payload = Buffer.alloc(200_000, 'a');
      const sent = await client(cfg1).sendFile(file(payload), { to: 'X26ABC2', workflowId: 'TEST_WORKFLOW', chunkSize: 50_000 });
      const dir = work('cap');
      const rx = client(cfg2);
      const [{ error: err }] = await fetchToDir(rx, [sent.messageId], dir, { maxBytes: 120_000 });
      expect(err).to.be.instanceOf(MessageTooLargeError);
      expect(readdirSync(dir)).to.deep.equal([]);
      expect(await rx.listInbox()).to.deep.equal([sent.messageId]);
    });
  });
});
