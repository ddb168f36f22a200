import { expect } from 'chai';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ClientRequest } from 'node:http';
import { PassThrough } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { MESSAGE_ID_PATTERN } from '../../src/sim/ids';
import { startHarness, type SimHarness } from './sim-helpers';

const MB1 = 'X26ABC1';
const MB2 = 'X26ABC2';
const PARTS = ['first part of the file\n', 'second part\n', 'third and last\n'].map((s) => Buffer.from(s.repeat(200)));

function listFilesRecursive(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? listFilesRecursive(join(dir, e.name)) : [join(dir, e.name)]));
}

describe('simulator send and download', function () {
  this.timeout(60_000);
  let h: SimHarness;

  before(async () => {
    h = await startHarness();
  });
  beforeEach(async () => h.sim.reset());
  after(async () => h.close());

  async function sendChunkedGzip(): Promise<string> {
    const first = await h.request({
      method: 'POST',
      path: `/messageexchange/${MB1}/outbox`,
      as: MB1,
      headers: {
        'mex-to': MB2,
        'mex-workflowid': 'TEST_WORKFLOW',
        'mex-chunk-range': '1:3',
        'mex-localid': 'local-42',
        'mex-subject': 'appointments',
        'mex-filename': 'appointments.csv',
        'mex-content-checksum': 'sha256:abc123',
        'mex-content-type': 'text/csv',
        'content-type': 'application/octet-stream',
        'content-encoding': 'gzip',
      },
      body: gzipSync(PARTS[0]),
    });
    expect(first.status, first.body.toString()).to.equal(202);
    const id = first.json().message_id as string;
    expect(id).to.match(MESSAGE_ID_PATTERN);

    const tracking = await h.request({ path: `/messageexchange/${MB1}/outbox/tracking?messageID=${id}`, as: MB1 });
    expect(tracking.json().status).to.equal('uploading');
    expect((await h.request({ path: `/messageexchange/${MB2}/inbox`, as: MB2 })).json().messages).to.deep.equal([]);

    for (const n of [2, 3]) {
      const res = await h.request({
        method: 'POST',
        path: `/messageexchange/${MB1}/outbox/${id}/${n}`,
        as: MB1,
        headers: { 'mex-chunk-range': `${n}:3`, 'content-encoding': 'gzip', 'content-type': 'application/octet-stream' },
        body: gzipSync(PARTS[n - 1]),
      });
      expect(res.status, res.body.toString()).to.equal(202);
    }
    return id;
  }

  it('lists a chunked message only once every chunk has arrived, then tracks it as accepted', async () => {
    const id = await sendChunkedGzip();
    expect((await h.request({ path: `/messageexchange/${MB2}/inbox`, as: MB2 })).json().messages).to.deep.equal([id]);
    const tracking = (await h.request({ path: `/messageexchange/${MB1}/outbox/tracking?messageID=${id}`, as: MB1 })).json();
    expect(tracking).to.include({ message_id: id, status: 'accepted', status_success: true, recipient: MB2, workflow_id: 'TEST_WORKFLOW', local_id: 'local-42' });
  });

  it('returns stored gzip chunks as-is (206, 206, 200) to a client that accepts gzip', async () => {
    const id = await sendChunkedGzip();
    const got: Buffer[] = [];
    for (const n of [1, 2, 3]) {
      const path = n === 1 ? `/messageexchange/${MB2}/inbox/${id}` : `/messageexchange/${MB2}/inbox/${id}/${n}`;
      const res = await h.request({ path, as: MB2, headers: { 'accept-encoding': 'gzip' } });
      expect(res.status).to.equal(n < 3 ? 206 : 200);
      expect(res.headers['content-encoding']).to.equal('gzip');
      expect(res.headers['mex-chunk-range']).to.equal(`${n}:3`);
      expect(res.headers['mex-total-chunks']).to.equal('3');
      got.push(gunzipSync(res.body));
    }
    expect(Buffer.concat(got).equals(Buffer.concat(PARTS))).to.equal(true);
  });

  it('decompresses gzip chunks for a client that does not accept gzip', async () => {
    const id = await sendChunkedGzip();
    const res = await h.request({ path: `/messageexchange/${MB2}/inbox/${id}/2`, as: MB2 });
    expect(res.status).to.equal(206);
    expect(res.headers['content-encoding']).to.equal(undefined);
    expect(res.body.equals(PARTS[1])).to.equal(true);
  });

  it('sends every mex-* header of the message, on GET and on HEAD alike', async () => {
    const id = await sendChunkedGzip();
    const get = await h.request({ path: `/messageexchange/${MB2}/inbox/${id}`, as: MB2, headers: { 'accept-encoding': 'gzip' } });
    expect(get.headers).to.include({
      'mex-from': MB1,
      'mex-to': MB2,
      'mex-workflowid': 'TEST_WORKFLOW',
      'mex-messageid': id,
      'mex-messagetype': 'DATA',
      'mex-localid': 'local-42',
      'mex-subject': 'appointments',
      'mex-filename': 'appointments.csv',
      'mex-content-checksum': 'sha256:abc123',
      'mex-content-type': 'text/csv',
      'mex-addresstype': 'ALL',
      'mex-version': '1.0',
      'mex-statuscode': '00',
      'mex-statusevent': 'TRANSFER',
      'mex-statussuccess': 'SUCCESS',
      'content-type': 'application/octet-stream',
    });
    expect(get.headers['mex-statustimestamp']).to.match(/^\d{14}$/);
    const head = await h.request({ method: 'HEAD', path: `/messageexchange/${MB2}/inbox/${id}`, as: MB2, headers: { 'accept-encoding': 'gzip' } });
    expect(head.status).to.equal(206);
    expect(head.body.length).to.equal(0);
    for (const name of Object.keys(get.headers).filter((k) => k.startsWith('mex-'))) expect(head.headers[name], name).to.equal(get.headers[name]);
  });

  it('keeps a single-chunk message content type and answers 404 for chunks that do not exist', async () => {
    const id = await h.send(MB1, MB2, 'plain text body', { 'content-type': 'text/plain' });
    const res = await h.request({ path: `/messageexchange/${MB2}/inbox/${id}`, as: MB2, headers: { 'accept-encoding': 'gzip' } });
    expect(res.status).to.equal(200);
    expect(res.headers['content-type']).to.equal('text/plain');
    expect(res.headers['mex-chunk-range']).to.equal('1:1');
    expect(res.body.toString()).to.equal('plain text body');
    expect((await h.request({ path: `/messageexchange/${MB2}/inbox/${id}/2`, as: MB2 })).status).to.equal(404);
    expect((await h.request({ path: `/messageexchange/${MB2}/inbox/${id}/0`, as: MB2 })).status).to.equal(404);
    expect((await h.request({ path: `/messageexchange/${MB2}/inbox/NOPE_123`, as: MB2 })).status).to.equal(404);
  });

  it('records who acknowledged and tracks the message as acknowledged', async () => {
    const id = await h.send(MB1, MB2, 'ack me');
    expect((await h.request({ method: 'PUT', path: `/messageexchange/${MB2}/inbox/${id}/status/acknowledged`, as: MB2 })).status).to.equal(200);
    const m = h.sim.messages().find((x) => x.id === id)!;
    expect(m).to.include({ status: 'acknowledged', acknowledgedBy: MB2, sender: MB1, recipient: MB2, type: 'DATA', chunks: 1 });
    expect(m.acknowledgedAt).to.be.a('string');
    const tracking = (await h.request({ path: `/messageexchange/${MB1}/outbox/tracking?messageID=${id}`, as: MB1 })).json();
    expect(tracking.status).to.equal('acknowledged');
  });

  it('stores nothing when the client drops the connection mid-upload', async () => {
    const body = new PassThrough();
    let outgoing: ClientRequest | undefined;
    const pending = h.request({
      onRequest: (req) => (outgoing = req),
      method: 'POST',
      path: `/messageexchange/${MB1}/outbox`,
      as: MB1,
      headers: { 'mex-to': MB2, 'mex-workflowid': 'TEST_WORKFLOW', 'transfer-encoding': 'chunked' },
      body,
    });
    body.write(Buffer.alloc(64 * 1024, 1));
    await new Promise((r) => setTimeout(r, 50));
    outgoing!.destroy();
    await pending.then(
      () => expect.fail('the request should not complete'),
      () => undefined,
    );
    // The server notices the drop asynchronously: wait for it by polling the store, not by time.
    for (let i = 0; i < 100 && listFilesRecursive(join(h.sim.dir, 'store')).length > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(h.sim.messages()).to.deep.equal([]);
    expect(listFilesRecursive(join(h.sim.dir, 'store'))).to.deep.equal([]);
  });

  it('accepts a lower-case mex-To and upper-cases it, like MESH', async () => {
    const id = await h.send(MB1, MB2.toLowerCase(), 'x');
    expect(h.sim.messages().find((m) => m.id === id)!.recipient).to.equal(MB2);
  });

  it('answers endpoint lookup, workflow search and ping in v2 shapes', async () => {
    const lookup = await h.request({ path: '/messageexchange/endpointlookup/X26/TEST_WORKFLOW', authorization: null });
    expect(lookup.status).to.equal(200);
    expect(lookup.json().results.map((r: { mailbox_id: string }) => r.mailbox_id)).to.deep.equal([MB1, MB2]);
    expect(lookup.json().results[0].mailbox_name).to.be.a('string');
    const none = await h.request({ path: '/messageexchange/endpointlookup/X99/TEST_WORKFLOW', authorization: null });
    expect(none.json()).to.deep.equal({ results: [] });
    const search = await h.request({ path: '/messageexchange/workflowsearch/TEST_WORKFLOW_ACK', authorization: null });
    expect(search.json().results).to.have.length(2);
    const unknown = await h.request({ path: '/messageexchange/workflowsearch/NOT_REGISTERED', authorization: null });
    expect(unknown.json()).to.deep.equal({ results: [] });
    const ping = await h.request({ path: '/messageexchange/_ping', authorization: null, accept: null });
    expect(ping.status).to.equal(200);
    expect(ping.json().status).to.equal('running');
  });

  it('tracks by local id (deprecated): 404 for none, 200 for one, 300 for several', async () => {
    const tracking = (localId: string): Promise<{ status: number; json(): any }> =>
      h.request({ path: `/messageexchange/${MB1}/outbox/tracking/${localId}`, as: MB1 });
    expect((await tracking('nothing-here')).status).to.equal(404);
    const id = await h.send(MB1, MB2, 'a', { 'mex-localid': 'once' });
    const one = await tracking('once');
    expect(one.status).to.equal(200);
    expect(one.json().message_id).to.equal(id);
    await h.send(MB1, MB2, 'b', { 'mex-localid': 'twice' });
    await h.send(MB1, MB2, 'c', { 'mex-localid': 'twice' });
    const several = await tracking('twice');
    expect(several.status).to.equal(300);
    expect(several.json().messages).to.have.length(2);
  });

  it('answers unknown paths with 404 and wrong methods with 405, in the v2 error shape', async () => {
    const unknown = await h.request({ path: '/messageexchange/X26ABC1/nothing', as: MB1 });
    expect(unknown.status).to.equal(404);
    expect(unknown.json().detail[0].code).to.equal('NotFound');
    const outside = await h.request({ path: '/elsewhere', as: MB1 });
    expect(outside.status).to.equal(404);
    const wrong = await h.request({ method: 'DELETE', path: `/messageexchange/${MB1}/inbox`, as: MB1 });
    expect(wrong.status).to.equal(405);
    expect(wrong.json().detail[0].code).to.equal('MethodNotAllowed');
  });
});
