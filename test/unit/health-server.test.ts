import { request } from 'node:http';
import { expect } from 'chai';
import { startHealthServer, type HealthServer, type Readiness } from '../../src/daemon/health';
import { createMetrics, recordCertificateExpiry, recordSuccessfulPoll, setMessageCounts, type Metrics } from '../../src/daemon/metrics';

interface Reply {
  status: number;
  type: string;
  body: string;
}

function get(port: number, path: string, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('health server (src/daemon/health.ts)', () => {
  let server: HealthServer;
  let metrics: Metrics;
  let verdict: Readiness | Error;

  beforeEach(async () => {
    metrics = createMetrics({ version: '9.9.9' });
    verdict = { ok: true, checks: { ledger: true } };
    server = await startHealthServer({
      port: 0,
      registry: metrics.registry,
      readiness: async () => {
        if (verdict instanceof Error) throw verdict;
        return verdict;
      },
    });
  });
  afterEach(() => server.close());

  it('listens on loopback only by default, on the port it reports', () => {
    expect(server.host).to.equal('127.0.0.1');
    expect(server.port).to.be.greaterThan(0);
  });

  it('/healthz answers 200 while the process runs', async () => {
    const r = await get(server.port, '/healthz');
    expect(r.status).to.equal(200);
    expect(JSON.parse(r.body)).to.deep.equal({ status: 'ok' });
  });

  it('/readyz is 200 with the checks when the daemon says ready', async () => {
    verdict = { ok: true, checks: { ledger: true, 'poll:X26ABC1': { ok: true, detail: 'last poll 2 min ago' } } };
    const r = await get(server.port, '/readyz');
    expect(r.status).to.equal(200);
    expect(JSON.parse(r.body)).to.deep.include({ status: 'ready', ok: true });
    expect(JSON.parse(r.body).checks['poll:X26ABC1'].detail).to.equal('last poll 2 min ago');
  });

  it('/readyz is 503 naming the failing check when not ready', async () => {
    verdict = { ok: false, checks: { ledger: true, 'certificate:X26ABC1': { ok: false, detail: 'expired 2026-11-01' } } };
    const r = await get(server.port, '/readyz');
    expect(r.status).to.equal(503);
    expect(JSON.parse(r.body).checks['certificate:X26ABC1']).to.deep.equal({ ok: false, detail: 'expired 2026-11-01' });
  });

  it('/readyz is 503 (not a crash) when the readiness function throws, with secrets redacted', async () => {
    verdict = new Error('ledger unavailable: NHSMESH X26ABC1:abc:0:202611241000:deadbeef');
    const r = await get(server.port, '/readyz');
    expect(r.status).to.equal(503);
    expect(r.body).to.include('ledger unavailable').and.not.include('deadbeef');
    expect((await get(server.port, '/healthz')).status).to.equal(200);
  });

  it('/metrics serves Prometheus text with the daemon instruments', async () => {
    setMessageCounts(metrics, [
      { mailbox: 'X26ABC1', direction: 'out', state: 'sent', count: 3 },
      { mailbox: 'X26ABC1', direction: 'in', state: 'acknowledged', count: 5 },
    ]);
    recordSuccessfulPoll(metrics, 'X26ABC1', new Date('2026-11-24T10:00:00Z'), 1500);
    recordCertificateExpiry(metrics, 'X26ABC1', new Date('2026-12-24T10:00:00Z'), new Date('2026-11-24T10:00:00Z'));
    metrics.meshRequests.inc({ endpoint: 'inbox', status: '200' });
    metrics.queueDepth.set({ mailbox: 'X26ABC1' }, 2);
    metrics.oldestUnacknowledgedAge.set({ mailbox: 'X26ABC1' }, 3600);
    const r = await get(server.port, '/metrics');
    expect(r.status).to.equal(200);
    expect(r.type).to.include('text/plain');
    expect(r.body).to.include('meshd_messages{mailbox="X26ABC1",direction="out",state="sent"} 3');
    expect(r.body).to.include('meshd_last_successful_poll_timestamp_seconds{mailbox="X26ABC1"} 1795514400');
    expect(r.body).to.include('meshd_certificate_expiry_seconds{mailbox="X26ABC1"} 2592000');
    expect(r.body).to.include('meshd_poll_duration_seconds_sum{mailbox="X26ABC1"} 1.5');
    expect(r.body).to.include('meshd_mesh_requests_total{endpoint="inbox",status="200"} 1');
    expect(r.body).to.include('meshd_outbound_queue_depth{mailbox="X26ABC1"} 2');
    expect(r.body).to.include('meshd_inbox_oldest_unacknowledged_age_seconds{mailbox="X26ABC1"} 3600');
    expect(r.body).to.include('meshd_build_info{version="9.9.9"} 1');
    expect(r.body).to.include('process_cpu_seconds_total');
  });

  it('drops message states that emptied when counts are refreshed', async () => {
    setMessageCounts(metrics, [{ mailbox: 'X26ABC1', direction: 'out', state: 'queued', count: 1 }]);
    setMessageCounts(metrics, [{ mailbox: 'X26ABC1', direction: 'out', state: 'sent', count: 1 }]);
    const body = (await get(server.port, '/metrics')).body;
    expect(body).to.include('state="sent"').and.not.include('state="queued"');
  });

  it('answers 404 for unknown paths and 405 for writes; HEAD has no body', async () => {
    expect((await get(server.port, '/status')).status).to.equal(404);
    expect((await get(server.port, '/healthz', 'POST')).status).to.equal(405);
    const head = await get(server.port, '/healthz', 'HEAD');
    expect(head.status).to.equal(200);
    expect(head.body).to.equal('');
  });

  it('keeps separate registries per createMetrics (no global name clashes)', () => {
    expect(() => createMetrics({ processMetrics: false })).not.to.throw();
  });
});
