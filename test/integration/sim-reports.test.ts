import { expect } from 'chai';
import { startHarness, type SimHarness } from './sim-helpers';

const MB1 = 'X26ABC1';
const MB2 = 'X26ABC2';
const DAY = 24 * 60 * 60 * 1000;
/** A fixed base clock: the simulator's time moves only when the test advances it. */
const BASE = new Date('2026-03-02T09:15:30.000Z');

describe('simulator REPORTs and inbox expiry', function () {
  this.timeout(60_000);
  let h: SimHarness;

  before(async () => {
    h = await startHarness({ now: () => BASE });
  });
  beforeEach(async () => h.sim.reset());
  after(async () => h.close());

  it('delivers an injected REPORT with the MESH report shape', async () => {
    const original = await h.send(MB1, MB2, 'data', { 'mex-localid': 'ref-7', 'mex-subject': 'subj' });
    const reportId = await h.sim.injectReport({ mailbox: MB1, code: '12', description: 'Unregistered to address', linkedMessageId: original, event: 'SEND' });
    expect((await h.request({ path: `/messageexchange/${MB1}/inbox`, as: MB1 })).json().messages).to.deep.equal([reportId]);

    const res = await h.request({ path: `/messageexchange/${MB1}/inbox/${reportId}`, as: MB1 });
    expect(res.status).to.equal(200);
    expect(res.body.length).to.equal(0);
    expect(res.headers).to.include({
      'mex-messagetype': 'REPORT',
      'mex-messageid': reportId,
      'mex-chunk-range': '1:0',
      'mex-total-chunks': '0',
      'mex-statuscode': '12',
      'mex-statusevent': 'SEND',
      'mex-statusdescription': 'Unregistered to address',
      'mex-statussuccess': 'ERROR',
      'mex-statustimestamp': '20260302091530',
      'mex-linkedmsgid': original,
      'mex-localid': 'ref-7',
      'mex-subject': 'subj',
      'mex-workflowid': 'TEST_WORKFLOW',
      'mex-to': MB2,
    });
    expect(res.headers['mex-from']).to.equal(undefined);
    // Reports are acknowledged like any message.
    expect((await h.request({ method: 'PUT', path: `/messageexchange/${MB1}/inbox/${reportId}/status/acknowledged`, as: MB1 })).status).to.equal(200);
    expect((await h.request({ path: `/messageexchange/${MB1}/inbox`, as: MB1 })).json().messages).to.deep.equal([]);
  });

  it('injects a REPORT over the admin endpoint too', async () => {
    const res = await h.request({
      method: 'POST',
      path: '/admin/report',
      headers: { 'content-type': 'application/json' },
      authorization: null,
      body: JSON.stringify({ mailbox: MB2, code: '14', description: 'Undelivered', workflowId: 'TEST_WORKFLOW_ACK' }),
    });
    expect(res.status, res.body.toString()).to.equal(201);
    const m = h.sim.messages().find((x) => x.id === res.json().message_id)!;
    expect(m).to.include({ type: 'REPORT', recipient: MB2, statusCode: '14', workflowId: 'TEST_WORKFLOW_ACK', chunks: 0, sender: '' });
  });

  it('after 5 days unacknowledged, the message is undeliverable, gone from the inbox, and the sender gets a code 14 REPORT', async () => {
    const id = await h.send(MB1, MB2, 'never collected', { 'mex-localid': 'late-1' });
    await h.sim.advanceClock(5 * DAY - 60_000);
    expect((await h.request({ path: `/messageexchange/${MB2}/inbox`, as: MB2 })).json().messages).to.deep.equal([id]);
    expect((await h.request({ path: `/messageexchange/${MB1}/inbox`, as: MB1 })).json().messages).to.deep.equal([]);

    await h.sim.advanceClock(2 * 60_000);
    expect((await h.request({ path: `/messageexchange/${MB2}/inbox`, as: MB2 })).json().messages).to.deep.equal([]);
    expect((await h.request({ path: `/messageexchange/${MB2}/inbox/${id}`, as: MB2 })).status).to.equal(410);

    const reports = (await h.request({ path: `/messageexchange/${MB1}/inbox`, as: MB1 })).json().messages as string[];
    expect(reports).to.have.length(1);
    const report = await h.request({ path: `/messageexchange/${MB1}/inbox/${reports[0]}`, as: MB1 });
    expect(report.headers).to.include({ 'mex-messagetype': 'REPORT', 'mex-statuscode': '14', 'mex-linkedmsgid': id, 'mex-localid': 'late-1', 'mex-to': MB2 });
    const tracking = (await h.request({ path: `/messageexchange/${MB1}/outbox/tracking?messageID=${id}`, as: MB1 })).json();
    expect(tracking).to.include({ status: 'undeliverable', status_success: false, status_code: '14' });
  });

  it('does not expire acknowledged messages, and an expired REPORT makes no further REPORT', async () => {
    const kept = await h.send(MB1, MB2, 'collected');
    await h.request({ method: 'PUT', path: `/messageexchange/${MB2}/inbox/${kept}/status/acknowledged`, as: MB2 });
    await h.sim.injectReport({ mailbox: MB2, code: '14', description: 'x' });
    await h.sim.advanceClock(6 * DAY);
    const all = h.sim.messages();
    expect(all.find((m) => m.id === kept)!.status).to.equal('acknowledged');
    expect(all.filter((m) => m.type === 'REPORT')).to.have.length(1);
    expect(all.find((m) => m.type === 'REPORT')!.status).to.equal('undeliverable');
  });

  it('moves the clock over the admin endpoint, and tokens are judged by the moved clock', async () => {
    const res = await h.request({ method: 'POST', path: '/admin/clock', authorization: null, body: JSON.stringify({ advanceMs: 3 * 60 * 60 * 1000 }) });
    expect(res.status).to.equal(200);
    expect(res.json().now).to.equal('2026-03-02T12:15:30.000Z');
    const oldToken = h.token(MB1, BASE);
    const refused = await h.request({ method: 'POST', path: `/messageexchange/${MB1}`, as: MB1, authorization: oldToken, headers: { 'mex-clientversion': 'x', 'mex-osname': 'L', 'mex-osversion': '1' } });
    expect(refused.status).to.equal(403);
    expect(refused.json().detail[0].code).to.equal('TokenExpired');
  });

  it('lists and shows messages over the admin endpoints', async () => {
    const id = await h.send(MB1, MB2, 'admin view');
    const all = await h.request({ path: '/admin/messages', authorization: null });
    expect(all.json().map((m: { id: string }) => m.id)).to.deep.equal([id]);
    const one = await h.request({ path: `/admin/messages/${id}`, authorization: null });
    expect(one.json()).to.include({ id, status: 'accepted', bytes: 10, workflowId: 'TEST_WORKFLOW' });
    expect((await h.request({ path: '/admin/messages/NOPE', authorization: null })).status).to.equal(404);
    expect((await h.request({ method: 'POST', path: '/admin/reset', authorization: null })).status).to.equal(200);
    expect(h.sim.messages()).to.deep.equal([]);
  });

  it('answers bad admin input with 400, never a crash', async () => {
    const bodies = ['not json', '[1,2]', JSON.stringify({ mailbox: MB1 }), JSON.stringify({ mailbox: MB1, code: '14', description: 'x', workflowId: 7 })];
    for (const body of bodies) {
      const res = await h.request({ method: 'POST', path: '/admin/report', authorization: null, body });
      expect(res.status, body).to.equal(400);
      expect(res.json().detail[0].msg).to.be.a('string');
    }
    const unknown = await h.request({ method: 'POST', path: '/admin/report', authorization: null, body: JSON.stringify({ mailbox: 'X99ZZZ9', code: '14', description: 'x' }) });
    expect(unknown.status).to.equal(400);
    const backwards = await h.request({ method: 'POST', path: '/admin/clock', authorization: null, body: JSON.stringify({ advanceMs: -5 }) });
    expect(backwards.status).to.equal(400);
  });
});
