import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { controlFile, dropFile, RECEIVER, SENDER, sha256, startDaemonEnv, type DaemonEnv } from './support/daemon-env';

describe('faults: the simulator fails 20% of requests', function () {
  this.timeout(300_000);
  let env: DaemonEnv;
  const FAULTS = '*:500=0.05,*:503=0.05,*:429=0.04,*:reset=0.04,send:reset-after-accept=0.02,*:latency=3';

  before(async () => {
    env = await startDaemonEnv({ chunkSize: 16 * 1024, faults: FAULTS, seed: 42 });
  });
  after(async () => env?.close());

  it('delivers everything except sends whose first POST was ambiguous, which wait in needs_review', async () => {
    const out = env.folder(SENDER, 'out');
    const expected = new Map<string, string>();
    for (let i = 0; i < 60; i++) {
      const body = Buffer.from(`message ${i}\n`.repeat(i % 7 === 0 ? 3000 : 20)); // some span several chunks
      dropFile(out, `f${i}.dat`, body);
      dropFile(out, `f${i}.ctl`, controlFile(RECEIVER, 'TEST_WORKFLOW'));
      expected.set(`f${i}.dat`, sha256(body));
    }
    // The daemon's clock jumps 2 h per cycle so retry backoff is always due; tokens use real time.
    let offset = 0;
    const now = () => new Date(Date.now() + offset);
    for (let round = 0; round < 12; round++) {
      for (const mb of [SENDER, RECEIVER]) {
        const d = await env.daemon(mb, { now, clientClock: () => new Date(), fastRetries: true });
        await d.runOnce();
        await d.stop();
      }
      offset += 2 * 3_600_000;
    }
    env.sim.setFaults(undefined);
    for (const mb of [SENDER, RECEIVER]) {
      const d = await env.daemon(mb, { now, clientClock: () => new Date() });
      await d.runOnce();
      await d.stop();
    }

    const s = await env.daemon(SENDER);
    const rows = s.ledger.list({ direction: 'out', limit: 1000 });
    await s.stop();
    expect(readdirSync(out)).to.deep.equal([]);
    const review = rows.filter((r) => r.state === 'needs_review');
    expect(rows.filter((r) => !['sent', 'acknowledged', 'needs_review'].includes(r.state)).map((r) => `${r.fileName}:${r.state}:${r.errorCode}`)).to.deep.equal([]);

    const inDir = env.folder(RECEIVER, 'in');
    const arrived = new Map<string, number>();
    for (const f of readdirSync(inDir).filter((n) => n.endsWith('.dat'))) {
      const h = sha256(readFileSync(join(inDir, f)));
      arrived.set(h, (arrived.get(h) ?? 0) + 1);
    }
    for (const [name, h] of expected) {
      const parked = review.some((r) => r.fileName === name);
      if (parked) expect(arrived.get(h) ?? 0, name).to.be.at.most(1);
      else expect(arrived.get(h), `${name} arrived exactly once`).to.equal(1);
    }
    // Each parked send checked against the simulator: an ambiguous POST that MESH did store.
    for (const r of review) {
      expect(r.errorCode, r.fileName!).to.match(/AMBIGUOUS/);
      expect(readFileSync(r.payloadPath!).length).to.be.greaterThan(0);
    }
    // The pipeline's own attempts stay bounded (one per cycle at most).
    for (const r of rows) expect(r.attempts, r.fileName!).to.be.at.most(13);
    console.log(`      ${review.length} of ${rows.length} sends parked in needs_review; ${review.filter((r) => arrived.has(expected.get(r.fileName!)!)).length} of those had reached MESH`);
  });
});
