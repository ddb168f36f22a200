import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config';
import { createMetrics } from '../../src/daemon/metrics';
import { countingLogger, meteredPort } from '../../src/daemon/observe';
import type { Logger } from '../../src/log';
import { silentLogger } from '../../src/log';
import { MESH_ENDPOINTS } from '../../src/mesh/protocol';
import { startSimulator, type Simulator } from '../../src/sim';
import { meshPortFor } from '../../src/transfer/mesh-port';
import { createExclusive, PRIVATE_FILE_MODE } from '../../src/safe-fs';

/** Metrics come from structured events with one label vocabulary (issue 11): every label is tested. */
describe('MESH metrics labels (real simulator, faults on)', function () {
  this.timeout(60_000);
  let dir: string;
  let sim: Simulator;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'meshd-labels-'));
    sim = await startSimulator({ dir: join(dir, 'sim'), seed: 11 });
  });
  after(async () => {
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('labels retries by the endpoint field of MESH_RETRY, in the same vocabulary as meshd_mesh_requests_total', async () => {
    const events: Array<Record<string, unknown>> = [];
    const capture: Logger = { ...silentLogger, warn: (event, _m, fields) => void (event === 'MESH_RETRY' && events.push(fields ?? {})), child: () => capture };
    const metrics = createMetrics({ processMetrics: false });
    const cfg = await loadConfig(sim.client('X26ABC1').configPath);
    const port = meteredPort(meshPortFor(cfg, 'X26ABC1', countingLogger(capture, metrics), { sleep: async () => undefined }), metrics, 'X26ABC1');
    // One transient failure before each answer: every call is retried once.
    sim.setFaults('*:503=0.5', 3);
    const file = join(dir, 'm.txt');
    const h = await createExclusive(file, PRIVATE_FILE_MODE);
    await h.writeFile('labels');
    await h.close();
    for (let i = 0; i < 4; i++) {
      await port.handshake().catch(() => undefined);
      await port.listInbox().catch(() => undefined);
      const sent = await port.send(file, { to: 'X26ABC1', workflowId: 'TEST_WORKFLOW' }, { onMessageId: () => undefined, onChunk: () => undefined }).catch(() => undefined);
      if (sent) {
        await port.track(sent.messageId).catch(() => undefined);
        const sink = await createExclusive(join(dir, `${sent.messageId}.dat`), PRIVATE_FILE_MODE);
        await port.download(sent.messageId, { handle: sink }).catch(() => undefined);
        await sink.close();
        await port.acknowledge(sent.messageId).catch(() => undefined);
      }
    }
    sim.setFaults(undefined);
    expect(events.length).to.be.greaterThan(0);
    for (const e of events) expect(MESH_ENDPOINTS, JSON.stringify(e)).to.include(e.endpoint);
    const text = await metrics.registry.metrics();
    const labels = (name: string) => new Set([...text.matchAll(new RegExp(`^${name}\\{endpoint="([a-z]+)"`, 'gm'))].map((m) => m[1]));
    const retried = labels('meshd_mesh_retries_total');
    const requested = labels('meshd_mesh_requests_total');
    expect([...retried].every((l) => requested.has(l)), `${[...retried]} ⊆ ${[...requested]}`).to.equal(true);
    expect([...requested].sort()).to.deep.equal(['ack', 'download', 'handshake', 'inbox', 'send', 'tracking']);
    expect(retried.has('unknown')).to.equal(false);
  });
});
