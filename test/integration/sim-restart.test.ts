import { expect } from 'chai';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSimulator } from '../../src/sim';
import { SimHarness } from './sim-helpers';

const MB1 = 'X26ABC1';
const MB2 = 'X26ABC2';
const DAY = 24 * 60 * 60 * 1000;

describe('simulator restart', function () {
  this.timeout(60_000);
  let tmp: string;

  beforeEach(() => {
    tmp = mkdtempSync(join(tmpdir(), 'meshd-sim-restart-'));
  });
  afterEach(() => rmSync(tmp, { recursive: true, force: true }));

  it('keeps messages, bodies, secrets and the moved clock across a restart', async () => {
    const dir = join(tmp, 'sim');
    const first = new SimHarness(await startSimulator({ dir }), join(tmp, 'unused-1'), [MB1, MB2]);
    const id = await first.send(MB1, MB2, 'survives a restart');
    await first.sim.advanceClock(DAY);
    const password = first.sim.client(MB1).password;
    const movedNow = first.sim.now().getTime();
    await first.close();

    const second = new SimHarness(await startSimulator({ dir }), join(tmp, 'unused-2'), [MB1, MB2]);
    try {
      expect(second.sim.client(MB1).password).to.equal(password);
      expect(second.sim.now().getTime()).to.be.at.least(movedNow);
      expect(second.sim.messages().map((m) => m.id)).to.deep.equal([id]);
      const res = await second.request({ path: `/messageexchange/${MB2}/inbox/${id}`, as: MB2 });
      expect(res.status).to.equal(200);
      expect(res.body.toString()).to.equal('survives a restart');
    } finally {
      await second.close();
    }
  });

  it('throws away upload leftovers from a previous run', async () => {
    const dir = join(tmp, 'sim');
    const orphan = join(dir, 'store', '20260101000000000000_ABCDEF');
    mkdirSync(orphan, { recursive: true });
    writeFileSync(join(orphan, '1.part'), 'half an upload');
    const sim = await startSimulator({ dir });
    try {
      expect(existsSync(orphan)).to.equal(false);
      expect(sim.messages()).to.deep.equal([]);
    } finally {
      await sim.close();
    }
  });

  it('says clearly when the port is taken', async () => {
    const first = await startSimulator({ dir: join(tmp, 'a') });
    try {
      const err = await startSimulator({ dir: join(tmp, 'b'), port: first.port }).then(
        () => undefined,
        (e: Error & { code?: string; hint?: string }) => e,
      );
      expect(err?.code).to.equal('SIM_PORT_IN_USE');
      expect(err?.hint).to.match(/another --port/);
    } finally {
      await first.close();
    }
  });
});
