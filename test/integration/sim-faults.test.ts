import { expect } from 'chai';
import { startHarness, type SimHarness } from './sim-helpers';

const MB1 = 'X26ABC1';
const MB2 = 'X26ABC2';

describe('simulator fault injection', function () {
  this.timeout(60_000);
  let h: SimHarness;

  before(async () => {
    h = await startHarness({ seed: 99 });
  });
  beforeEach(async () => {
    await h.sim.reset();
    h.sim.setFaults(undefined);
  });
  after(async () => h.close());

  async function inboxStatuses(n: number): Promise<number[]> {
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push((await h.request({ path: `/messageexchange/${MB2}/inbox`, as: MB2 })).status);
    return out;
  }

  it('is reproducible: the same seed gives the same sequence of answers', async () => {
    h.sim.setFaults('inbox:503=0.3,inbox:500=0.2', 5);
    const first = await inboxStatuses(30);
    h.sim.setFaults('inbox:503=0.3,inbox:500=0.2', 5);
    const second = await inboxStatuses(30);
    expect(second).to.deep.equal(first);
    expect(first).to.include.members([200, 500, 503]);
    h.sim.setFaults('inbox:503=0.3,inbox:500=0.2', 6);
    expect(await inboxStatuses(30)).not.to.deep.equal(first);
  });

  it('sends 429 with Retry-After and a v2 error body', async () => {
    h.sim.setFaults('handshake:429=1,handshake:retry-after=4');
    const res = await h.request({ method: 'POST', path: `/messageexchange/${MB1}`, as: MB1, headers: { 'mex-clientversion': 'x', 'mex-osname': 'L', 'mex-osversion': '1' } });
    expect(res.status).to.equal(429);
    expect(res.headers['retry-after']).to.equal('4');
    expect(res.json().detail[0].code).to.equal('TooManyRequests');
  });

  it('answers some 500s with an XML body', async () => {
    h.sim.setFaults('tracking:500=1');
    const bodies: string[] = [];
    for (let i = 0; i < 12; i++) {
      const res = await h.request({ path: `/messageexchange/${MB1}/outbox/tracking?messageID=x`, as: MB1 });
      expect(res.status).to.equal(500);
      bodies.push(String(res.headers['content-type']));
    }
    expect(bodies).to.include('text/xml');
    expect(bodies).to.include('application/vnd.mesh.v2+json');
  });

  it('reset-after-accept stores the message but the client never gets the 202 (an ambiguous send)', async () => {
    h.sim.setFaults('send:reset-after-accept=1');
    const err = await h.send(MB1, MB2, 'did it arrive?').then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err, 'the client must see a connection error').to.be.instanceOf(Error);
    expect(h.sim.messages()).to.have.length(1);
    expect(h.sim.messages()[0]).to.include({ status: 'accepted', recipient: MB2 });
  });

  it('reset on send drops the connection mid-body and stores nothing', async () => {
    h.sim.setFaults('send:reset=1');
    const err = await h.send(MB1, MB2, Buffer.alloc(256 * 1024, 7)).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err).to.be.instanceOf(Error);
    expect(h.sim.messages()).to.deep.equal([]);
  });

  it('reset on download sends part of the body, then drops the connection', async () => {
    const id = await h.send(MB1, MB2, Buffer.alloc(200_000, 3));
    h.sim.setFaults('download:reset=1');
    const err = await h.request({ path: `/messageexchange/${MB2}/inbox/${id}`, as: MB2 }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err).to.be.instanceOf(Error);
    h.sim.setFaults(undefined);
    const ok = await h.request({ path: `/messageexchange/${MB2}/inbox/${id}`, as: MB2 });
    expect(ok.status).to.equal(200);
    expect(ok.body.length).to.equal(200_000);
  });

  it('reset on other endpoints drops the connection without an answer', async () => {
    h.sim.setFaults('ack:reset=1');
    const err = await h.request({ method: 'PUT', path: `/messageexchange/${MB2}/inbox/x/status/acknowledged`, as: MB2 }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err).to.be.instanceOf(Error);
  });

  it('sets faults over the admin endpoint and refuses a bad spec there', async () => {
    const bad = await h.request({ method: 'PUT', path: '/admin/faults', authorization: null, body: JSON.stringify({ spec: 'inbox:oops=1' }) });
    expect(bad.status).to.equal(400);
    expect(bad.json().detail[0].msg).to.match(/unknown kind/);
    const good = await h.request({ method: 'PUT', path: '/admin/faults', authorization: null, body: JSON.stringify({ spec: 'inbox:503=1' }) });
    expect(good.status).to.equal(200);
    expect((await h.request({ path: `/messageexchange/${MB2}/inbox`, as: MB2 })).status).to.equal(503);
  });

  it('consumes the token even when it answers with a fault, so a retry needs a new token', async () => {
    h.sim.setFaults('inbox:503=1');
    const token = h.token(MB2);
    expect((await h.request({ path: `/messageexchange/${MB2}/inbox`, as: MB2, authorization: token })).status).to.equal(503);
    h.sim.setFaults(undefined);
    const retry = await h.request({ path: `/messageexchange/${MB2}/inbox`, as: MB2, authorization: token });
    expect(retry.status).to.equal(403);
    expect(retry.json().detail[0].code).to.equal('TokenReused');
  });
});
