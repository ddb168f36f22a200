import { expect } from 'chai';
import { readdirSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import type { ClientRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { ensureSimPki } from '../../src/sim';
import { meshToken, startHarness, type RawResponse, type SimHarness } from './sim-helpers';

const HOUR = 60 * 60 * 1000;
const MB1 = 'X26ABC1';
const MB2 = 'X26ABC2';
const HANDSHAKE_HEADERS = { 'mex-clientversion': 'sim-test==1', 'mex-osname': 'Linux', 'mex-osversion': '6.1' };

interface Rule {
  rule: string;
  run: (h: SimHarness) => Promise<RawResponse>;
  status: number;
  code?: string;
}

function handshakeWith(h: SimHarness, authorization: string): Promise<RawResponse> {
  return h.request({ method: 'POST', path: `/messageexchange/${MB1}`, as: MB1, authorization, headers: HANDSHAKE_HEADERS });
}

function post(h: SimHarness, headers: Record<string, string>, body: Buffer | string | Readable = 'payload'): Promise<RawResponse> {
  return h.request({
    method: 'POST',
    path: `/messageexchange/${MB1}/outbox`,
    as: MB1,
    headers: { 'mex-to': MB2, 'mex-workflowid': 'TEST_WORKFLOW', ...headers },
    body,
  });
}

/** Starts a chunked message (chunk 1 of `total`) and returns its id. */
async function startChunked(h: SimHarness, total: number, encoding?: 'gzip'): Promise<string> {
  const body = encoding ? gzipSync('part one') : 'part one';
  const res = await post(h, { 'mex-chunk-range': `1:${total}`, ...(encoding ? { 'content-encoding': 'gzip' } : {}) }, body);
  expect(res.status, res.body.toString()).to.equal(202);
  return res.json().message_id;
}

function chunk(h: SimHarness, id: string, n: number, range: string, headers: Record<string, string> = {}, as = MB1): Promise<RawResponse> {
  return h.request({ method: 'POST', path: `/messageexchange/${as}/outbox/${id}/${n}`, as, headers: { 'mex-chunk-range': range, ...headers }, body: `part ${n}` });
}

/** 100 MB + 1 MiB of zeros as a stream of one reused buffer: nothing big is ever held in memory. */
function zeros(total: number): Readable {
  const block = Buffer.alloc(1024 * 1024);
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= total) return void this.push(null);
      const n = Math.min(block.length, total - sent);
      sent += n;
      this.push(n === block.length ? block : block.subarray(0, n));
    },
  });
}

const RULES: Rule[] = [
  {
    rule: 'token timestamp more than 2 h in the past',
    run: (h) => handshakeWith(h, meshToken(MB1, h.sim.client(MB1).password, h.sim.sharedKey, new Date(h.sim.now().getTime() - 2 * HOUR - 2 * 60_000))),
    status: 403,
    code: 'TokenExpired',
  },
  {
    rule: 'token timestamp more than 2 h in the future',
    run: (h) => handshakeWith(h, meshToken(MB1, h.sim.client(MB1).password, h.sim.sharedKey, new Date(h.sim.now().getTime() + 2 * HOUR + 2 * 60_000))),
    status: 403,
    code: 'TokenExpired',
  },
  {
    rule: 'token within 2 h is accepted (control row)',
    run: (h) => handshakeWith(h, meshToken(MB1, h.sim.client(MB1).password, h.sim.sharedKey, new Date(h.sim.now().getTime() - HOUR))),
    status: 200,
  },
  {
    rule: 'token used twice',
    run: async (h) => {
      const token = h.token(MB1);
      expect((await handshakeWith(h, token)).status).to.equal(200);
      return handshakeWith(h, token);
    },
    status: 403,
    code: 'TokenReused',
  },
  {
    rule: 'token HMAC made with the wrong password',
    run: (h) => handshakeWith(h, meshToken(MB1, 'not-the-password', h.sim.sharedKey, h.sim.now())),
    status: 403,
    code: 'TokenInvalid',
  },
  {
    rule: 'token HMAC made with the wrong shared key',
    run: (h) => handshakeWith(h, meshToken(MB1, h.sim.client(MB1).password, 'wrong-key', h.sim.now())),
    status: 403,
    code: 'TokenInvalid',
  },
  {
    rule: 'token mailbox differs from the path mailbox',
    run: (h) => handshakeWith(h, h.token(MB2)),
    status: 403,
    code: 'MailboxMismatch',
  },
  {
    rule: 'token with a lower-case mailbox',
    run: (h) => handshakeWith(h, meshToken(MB1.toLowerCase(), h.sim.client(MB1).password, h.sim.sharedKey, h.sim.now())),
    status: 403,
    code: 'TokenMalformed',
  },
  {
    rule: 'token with 4 parts',
    run: (h) => handshakeWith(h, h.token(MB1).split(':').slice(0, 4).join(':')),
    status: 403,
    code: 'TokenMalformed',
  },
  {
    rule: 'token with another scheme',
    run: (h) => handshakeWith(h, h.token(MB1).replace('NHSMESH ', 'Bearer ')),
    status: 403,
    code: 'TokenMalformed',
  },
  {
    rule: 'no Authorization header',
    run: (h) => h.request({ method: 'POST', path: `/messageexchange/${MB1}`, as: MB1, authorization: null, headers: HANDSHAKE_HEADERS }),
    status: 403,
    code: 'TokenMissing',
  },
  {
    rule: 'handshake without mex-OSVersion',
    run: (h) => h.request({ method: 'POST', path: `/messageexchange/${MB1}`, as: MB1, headers: { 'mex-clientversion': 'x', 'mex-osname': 'Linux' } }),
    status: 400,
    code: '06',
  },
  {
    rule: 'handshake by GET is accepted (control row)',
    run: (h) => h.request({ method: 'GET', path: `/messageexchange/${MB1}`, as: MB1, headers: HANDSHAKE_HEADERS }),
    status: 200,
  },
  {
    rule: 'malformed Accept media type',
    run: (h) => h.request({ method: 'POST', path: `/messageexchange/${MB1}`, as: MB1, accept: 'application/vnd.mesh.vX+json', headers: HANDSHAKE_HEADERS }),
    status: 400,
    code: 'InvalidAccept',
  },
  {
    rule: 'no Accept (v1) is refused: the simulator speaks v2 only',
    run: (h) => h.request({ method: 'POST', path: `/messageexchange/${MB1}`, as: MB1, accept: null, headers: HANDSHAKE_HEADERS }),
    status: 406,
    code: 'UnsupportedApiVersion',
  },
  {
    rule: 'acknowledged message cannot be downloaded again',
    run: async (h) => {
      const id = await h.send(MB1, MB2, 'once');
      const ack = await h.request({ method: 'PUT', path: `/messageexchange/${MB2}/inbox/${id}/status/acknowledged`, as: MB2 });
      expect(ack.status).to.equal(200);
      const list = await h.request({ path: `/messageexchange/${MB2}/inbox`, as: MB2 });
      expect(list.json().messages).not.to.include(id);
      return h.request({ path: `/messageexchange/${MB2}/inbox/${id}`, as: MB2 });
    },
    status: 410,
    code: '20',
  },
  {
    rule: 'acknowledging twice is harmless',
    run: async (h) => {
      const id = await h.send(MB1, MB2, 'twice');
      await h.request({ method: 'PUT', path: `/messageexchange/${MB2}/inbox/${id}/status/acknowledged`, as: MB2 });
      return h.request({ method: 'PUT', path: `/messageexchange/${MB2}/inbox/${id}/status/acknowledged`, as: MB2 });
    },
    status: 200,
  },
  {
    rule: 'only the recipient may download',
    run: async (h) => {
      const id = await h.send(MB1, MB2, 'private');
      return h.request({ path: `/messageexchange/${MB1}/inbox/${id}`, as: MB1 });
    },
    status: 403,
  },
  {
    rule: 'workflow not registered for sender or recipient',
    run: (h) => post(h, { 'mex-workflowid': 'NOT_A_REGISTERED_WORKFLOW' }),
    status: 417,
    code: '17',
  },
  {
    rule: 'unknown recipient',
    run: (h) => post(h, { 'mex-to': 'X99ZZZ9' }),
    status: 417,
    code: '12',
  },
  {
    rule: 'missing mex-To',
    run: (h) => h.request({ method: 'POST', path: `/messageexchange/${MB1}/outbox`, as: MB1, headers: { 'mex-workflowid': 'TEST_WORKFLOW' }, body: 'x' }),
    status: 400,
    code: '08',
  },
  {
    rule: 'missing mex-WorkflowID',
    run: (h) => h.request({ method: 'POST', path: `/messageexchange/${MB1}/outbox`, as: MB1, headers: { 'mex-to': MB2 }, body: 'x' }),
    status: 400,
    code: '06',
  },
  {
    rule: 'mex-Subject longer than 500 characters',
    run: (h) => post(h, { 'mex-subject': 'a'.repeat(501) }),
    status: 400,
    code: '06',
  },
  {
    rule: 'control character (tab) in a mex header',
    run: (h) => post(h, { 'mex-localid': 'ref\t1' }),
    status: 400,
    code: '06',
  },
  {
    rule: 'mex-WorkflowID that looks like a URL',
    run: (h) => post(h, { 'mex-workflowid': 'https://example.org/wf' }),
    status: 400,
    code: '06',
  },
  {
    rule: 'mex-From different from the token mailbox',
    run: (h) => post(h, { 'mex-from': MB2 }),
    status: 417,
    code: '07',
  },
  {
    rule: 'empty body',
    run: (h) => post(h, {}, ''),
    status: 417,
    code: '02',
  },
  {
    rule: 'Content-Encoding other than gzip',
    run: (h) => post(h, { 'content-encoding': 'br' }),
    status: 422,
    code: 'UnsupportedContentEncoding',
  },
  {
    rule: 'request body over 100 MB, streamed',
    run: (h) => post(h, { 'transfer-encoding': 'chunked' }, zeros(100_000_000 + 1024 * 1024)),
    status: 413,
    code: 'PayloadTooLarge',
  },
  {
    rule: 'declared Content-Length over 100 MB, refused before the body is sent',
    run: (h) => {
      const body = new PassThrough();
      body.write('only the start');
      return h.request({
        method: 'POST',
        path: `/messageexchange/${MB1}/outbox`,
        as: MB1,
        headers: { 'mex-to': MB2, 'mex-workflowid': 'TEST_WORKFLOW', 'content-length': '100000001' },
        body,
        // The answer arrives while the body is still open; then the client gives up on it.
        onResponse: (req) => req.destroy(),
      });
    },
    status: 413,
    code: 'PayloadTooLarge',
  },
  {
    rule: 'first request with a chunk range not starting at 1',
    run: (h) => post(h, { 'mex-chunk-range': '2:3' }),
    status: 417,
    code: 'InvalidHeaderChunks',
  },
  {
    rule: 'chunk range that disagrees with the path chunk number',
    run: async (h) => chunk(h, await startChunked(h, 3), 2, '3:3'),
    status: 417,
    code: 'InvalidHeaderChunks',
  },
  {
    rule: 'chunk range whose total differs from the first chunk',
    run: async (h) => chunk(h, await startChunked(h, 3), 2, '2:4'),
    status: 417,
    code: 'InvalidHeaderChunks',
  },
  {
    rule: 'chunk number beyond the total',
    run: async (h) => chunk(h, await startChunked(h, 2), 3, '3:2'),
    status: 406,
  },
  {
    rule: 'Content-Encoding changed between chunks',
    run: async (h) => chunk(h, await startChunked(h, 2, 'gzip'), 2, '2:2'),
    status: 417,
    code: 'InvalidContentEncoding',
  },
  {
    rule: 'chunk after the message is complete',
    run: async (h) => {
      const id = await startChunked(h, 2);
      expect((await chunk(h, id, 2, '2:2')).status).to.equal(202);
      return chunk(h, id, 2, '2:2');
    },
    status: 423,
  },
  {
    rule: 'chunk uploaded by someone other than the sender',
    run: async (h) => chunk(h, await startChunked(h, 2), 2, '2:2', {}, MB2),
    status: 403,
  },
  {
    rule: 'downloading a message whose chunks are still uploading',
    run: async (h) => h.request({ path: `/messageexchange/${MB2}/inbox/${await startChunked(h, 2)}`, as: MB2 }),
    status: 410,
  },
  {
    rule: 'tracking a message someone else sent',
    run: async (h) => h.request({ path: `/messageexchange/${MB2}/outbox/tracking?messageID=${await h.send(MB1, MB2, 't')}`, as: MB2 }),
    status: 404,
  },
  {
    rule: 'max_results below 10',
    run: (h) => h.request({ path: `/messageexchange/${MB1}/inbox?max_results=9`, as: MB1 }),
    status: 400,
  },
  {
    rule: 'max_results above 5000',
    run: (h) => h.request({ path: `/messageexchange/${MB1}/inbox?max_results=5001`, as: MB1 }),
    status: 400,
  },
  {
    rule: 'no client certificate',
    run: (h) => h.request({ method: 'POST', path: `/messageexchange/${MB1}`, as: MB1, cert: 'none', headers: HANDSHAKE_HEADERS }),
    status: 403,
    code: 'ClientCertificateRequired',
  },
];

describe('simulator rules (stricter than the NHS sandbox)', function () {
  this.timeout(120_000);
  let h: SimHarness;
  let otherCaDir: string;

  before(async () => {
    h = await startHarness();
    otherCaDir = mkdtempSync(join(tmpdir(), 'meshd-sim-otherca-'));
  });
  after(async () => {
    await h.close();
    rmSync(otherCaDir, { recursive: true, force: true });
  });

  for (const row of RULES) {
    it(`${row.rule} → ${row.status}${row.code ? ` code ${row.code}` : ''}`, async () => {
      const res = await row.run(h);
      expect(res.status, res.body.toString()).to.equal(row.status);
      if (row.status >= 400) {
        const body = res.json();
        expect(body.detail, 'v2 error body').to.be.an('array').with.length(1);
        expect(body.internal_id).to.be.a('string');
        expect(body.detail[0].msg).to.be.a('string').and.not.equal('');
        if (row.code) expect(body.detail[0].code).to.equal(row.code);
      }
    });
  }

  describe('a chunk sent again before the message is complete (MESH: chunk POSTs may be retried)', () => {
    const download = async (id: string, n: number) => (await h.request({ path: `/messageexchange/${MB2}/inbox/${id}/${n}`, as: MB2 })).body.toString();
    const parts = (id: string) => readdirSync(join(h.tmp, 'sim', 'store', id)).filter((f) => f.endsWith('.part'));

    it('replaces the first copy and counts once (202)', async () => {
      const id = await startChunked(h, 3);
      expect((await chunk(h, id, 2, '2:3')).status).to.equal(202);
      const again = await h.request({ method: 'POST', path: `/messageexchange/${MB1}/outbox/${id}/2`, as: MB1, headers: { 'mex-chunk-range': '2:3' }, body: 'part 2, again' });
      expect(again.status, again.body.toString()).to.equal(202);
      expect((await chunk(h, id, 3, '3:3')).status).to.equal(202);
      const m = h.sim.messages().find((x) => x.id === id)!;
      expect(m).to.include({ status: 'accepted', chunksReceived: 3, bytes: 'part one'.length + 'part 2, again'.length + 'part 3'.length });
      expect(await download(id, 2)).to.equal('part 2, again');
    });

    it('is stored while an earlier upload of it is still arriving, which then goes nowhere', async () => {
      // A client killed mid-upload: its request is still open here when the resumed client sends the chunk again.
      const id = await startChunked(h, 3);
      const stalled = new PassThrough();
      let first: ClientRequest | undefined;
      const abandoned = h
        .request({ method: 'POST', path: `/messageexchange/${MB1}/outbox/${id}/2`, as: MB1, headers: { 'mex-chunk-range': '2:3', 'content-length': '1000' }, body: stalled, onRequest: (r) => (first = r) })
        .catch((e: Error) => e);
      stalled.write('the first half of a lost upload ');
      while (parts(id).length === 0) await new Promise((r) => setTimeout(r, 10));
      const resent = await chunk(h, id, 2, '2:3');
      expect(resent.status, resent.body.toString()).to.equal(202);
      first!.destroy();
      expect(await abandoned).to.be.instanceOf(Error);
      expect((await chunk(h, id, 3, '3:3')).status).to.equal(202);
      expect(h.sim.messages().find((x) => x.id === id)).to.include({ status: 'accepted', chunksReceived: 3 });
      expect(await download(id, 2)).to.equal('part 2');
      while (parts(id).length > 0) await new Promise((r) => setTimeout(r, 10));
    });
  });

  it('client certificate from another CA → 403 ClientCertificateUntrusted', async () => {
    const other = await ensureSimPki(otherCaDir, [MB1]);
    const cert = { cert: readFileSync(other.clients[MB1].cert, 'utf8'), key: readFileSync(other.clients[MB1].key, 'utf8') };
    const res = await h.request({ method: 'POST', path: `/messageexchange/${MB1}`, as: MB1, cert, headers: HANDSHAKE_HEADERS });
    expect(res.status).to.equal(403);
    expect(res.json().detail[0].code).to.equal('ClientCertificateUntrusted');
    expect(res.json().detail[0].msg).to.match(/not signed by this simulator's CA/);
  });

  it('an error body never echoes the token or the password', async () => {
    const token = meshToken(MB1, 'not-the-password', h.sim.sharedKey, h.sim.now());
    const res = await handshakeWith(h, token);
    const text = res.body.toString();
    expect(text).not.to.include(token.split(':')[4]);
    expect(text).not.to.include(h.sim.client(MB1).password);
    expect(text).not.to.include(h.sim.sharedKey);
  });
});
