import { expect } from 'chai';
import { startHarness, type SimHarness } from './sim-helpers';

const MB1 = 'X26ABC1';
const MB2 = 'X26ABC2';

async function sendMany(h: SimHarness, count: number, workflow = 'TEST_WORKFLOW'): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i += 25) {
    const batch = Array.from({ length: Math.min(25, count - i) }, (_, j) => h.send(MB1, MB2, `message ${i + j}`, { 'mex-workflowid': workflow }));
    ids.push(...(await Promise.all(batch)));
  }
  return ids;
}

async function list(h: SimHarness, path: string): Promise<{ messages: string[]; links: { self?: string; next?: string }; approx_inbox_count: number }> {
  const res = await h.request({ path, as: MB2 });
  expect(res.status, res.body.toString()).to.equal(200);
  return res.json();
}

describe('simulator inbox', function () {
  this.timeout(120_000);
  let h: SimHarness;

  before(async () => {
    h = await startHarness({ workflows: ['PATHWAY_A', 'PATHWAY_B_ACK'] });
  });
  beforeEach(async () => h.sim.reset());
  after(async () => h.close());

  it('pages more than 500 messages with a relative links.next and continue_from', async () => {
    const sent = await sendMany(h, 510);
    const first = await list(h, `/messageexchange/${MB2}/inbox`);
    expect(first.messages).to.have.length(500);
    expect(first.approx_inbox_count).to.equal(510);
    expect(first.links.next).to.match(/^\/messageexchange\/X26ABC2\/inbox\?/);
    expect(first.links.next).to.include('continue_from=');
    const second = await list(h, first.links.next!);
    expect(second.messages).to.have.length(10);
    expect(second.links.next).to.equal(undefined);
    const all = [...first.messages, ...second.messages];
    expect(new Set(all).size).to.equal(510);
    expect([...all].sort()).to.deep.equal([...sent].sort());
    // Oldest first: the order the simulator stored them in.
    expect(all).to.deep.equal(h.sim.messages().map((m) => m.id));
  });

  it('honours max_results and keeps it in links.next', async () => {
    const sent = await sendMany(h, 25);
    const pages: string[][] = [];
    let path: string | undefined = `/messageexchange/${MB2}/inbox?max_results=10`;
    while (path) {
      const page = await list(h, path);
      pages.push(page.messages);
      path = page.links.next;
      if (path) expect(path).to.include('max_results=10');
    }
    expect(pages.map((p) => p.length)).to.deep.equal([10, 10, 5]);
    expect([...pages.flat()].sort()).to.deep.equal([...sent].sort());
  });

  it('refuses a continue_from it did not issue, or one issued to another mailbox', async () => {
    await sendMany(h, 12);
    const bad = await h.request({ path: `/messageexchange/${MB2}/inbox?continue_from=garbage`, as: MB2 });
    expect(bad.status).to.equal(400);
    const page = await list(h, `/messageexchange/${MB2}/inbox?max_results=10`);
    const token = new URL(page.links.next!, 'https://x').searchParams.get('continue_from')!;
    const foreign = await h.request({ path: `/messageexchange/${MB1}/inbox?continue_from=${encodeURIComponent(token)}`, as: MB1 });
    expect(foreign.status).to.equal(400);
  });

  it('lists nothing for acknowledged messages and counts what is listed', async () => {
    const [a, b] = await sendMany(h, 2);
    await h.request({ method: 'PUT', path: `/messageexchange/${MB2}/inbox/${a}/status/acknowledged`, as: MB2 });
    expect((await list(h, `/messageexchange/${MB2}/inbox`)).messages).to.deep.equal([b]);
    const count = await h.request({ path: `/messageexchange/${MB2}/count`, as: MB2 });
    expect(count.json()).to.deep.equal({ count: 1 });
  });

  describe('workflow_filter', () => {
    const WORKFLOWS = ['TEST_WORKFLOW', 'TEST_WORKFLOW_ACK', 'PATHWAY_A', 'PATHWAY_B_ACK'];
    const FORMS: Array<[string, string[]]> = [
      ['TEST_WORKFLOW', ['TEST_WORKFLOW']],
      ['!TEST_WORKFLOW', ['TEST_WORKFLOW_ACK', 'PATHWAY_A', 'PATHWAY_B_ACK']],
      ['TEST_*', ['TEST_WORKFLOW', 'TEST_WORKFLOW_ACK']],
      ['!TEST_*', ['PATHWAY_A', 'PATHWAY_B_ACK']],
      ['*_ACK*', ['TEST_WORKFLOW_ACK', 'PATHWAY_B_ACK']],
      ['!*_ACK*', ['TEST_WORKFLOW', 'PATHWAY_A']],
    ];
    let byWorkflow: Record<string, string>;

    beforeEach(async () => {
      byWorkflow = {};
      for (const wf of WORKFLOWS) byWorkflow[wf] = (await sendMany(h, 1, wf))[0];
    });

    for (const [filter, expected] of FORMS) {
      it(`${filter} lists ${expected.join(', ')}`, async () => {
        const page = await list(h, `/messageexchange/${MB2}/inbox?workflow_filter=${encodeURIComponent(filter)}`);
        expect(page.messages).to.deep.equal(expected.map((wf) => byWorkflow[wf]));
        expect(page.approx_inbox_count).to.equal(4);
      });
    }

    it('keeps the filter in links.next', async () => {
      await sendMany(h, 12, 'PATHWAY_A');
      const page = await list(h, `/messageexchange/${MB2}/inbox?max_results=10&workflow_filter=PATHWAY_A`);
      expect(page.messages).to.have.length(10);
      const next = await list(h, page.links.next!);
      expect(next.messages).to.have.length(3);
      expect(page.links.next).to.include('workflow_filter=PATHWAY_A');
    });
  });
});
