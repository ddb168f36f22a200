import { expect } from 'chai';
import { silentLogger } from '../../src/log';
import { createMetrics } from '../../src/daemon/metrics';
import { meteredPort, countingLogger } from '../../src/daemon/observe';
import { MeshRejectedError } from '../../src/mesh/errors';
import type { MeshPort } from '../../src/transfer/context';
import type { DownloadSink } from '../../src/mesh';

describe('daemon observability wiring', () => {
  it('counts MESH_RETRY log events as retries by operation, also through child loggers', async () => {
    const metrics = createMetrics({ processMetrics: false });
    const log = countingLogger(silentLogger, metrics).child({ mailbox: 'X26ABC1' });
    log.warn('MESH_RETRY', 'send chunk 2 of 3 failed; retrying', { endpoint: 'send' });
    log.warn('MESH_RETRY', 'download 123 failed; retrying', { endpoint: 'download' });
    // The label comes from the event's field, never its text.
    log.warn('MESH_RETRY', 'tracking words that say download', { endpoint: 'tracking' });
    log.warn('MESH_RETRY', 'no field', {});
    log.warn('SOMETHING_ELSE', 'not a retry', { endpoint: 'send' });
    const text = await metrics.registry.metrics();
    expect(text).to.match(/meshd_mesh_retries_total\{endpoint="send"\} 1/);
    expect(text).to.match(/meshd_mesh_retries_total\{endpoint="download"\} 1/);
    expect(text).to.match(/meshd_mesh_retries_total\{endpoint="tracking"\} 1/);
    expect(text).to.match(/meshd_mesh_retries_total\{endpoint="unknown"\} 1/);
  });

  it('counts refusals by the ledger code of their warning or error, never by message text', async () => {
    const metrics = createMetrics({ processMetrics: false });
    const log = countingLogger(silentLogger, metrics).child({ mailbox: 'X26ABC1' });
    log.warn('OUT_QUARANTINED', 'x is a symbolic link', { code: 'NOT_REGULAR_FILE' });
    log.error('SEND_NEEDS_REVIEW', 'changed', { code: 'FILE_CHANGED' });
    log.warn('SPOOL_ORPHAN', 'moved', { code: 'SPOOL_ORPHAN' });
    log.warn('SEND_RETRY_LATER', 'NOT_REGULAR_FILE in the text only', { code: 'MESH_TRANSIENT' });
    const text = await metrics.registry.metrics();
    expect(text).to.match(/meshd_refused_total\{code="NOT_REGULAR_FILE"\} 1/);
    expect(text).to.match(/meshd_refused_total\{code="FILE_CHANGED"\} 1/);
    expect(text).to.match(/meshd_refused_total\{code="SPOOL_ORPHAN"\} 1/);
    expect(text).to.not.match(/meshd_refused_total\{code="MESH_TRANSIENT"\}/);
  });

  it('counts MESH calls by endpoint and outcome, with bytes and chunks', async () => {
    const metrics = createMetrics({ processMetrics: false });
    const port: MeshPort = {
      handshake: async () => undefined,
      listInbox: async () => ['a'],
      download: async () => ({ bytes: 10, chunks: 2, meta: { messageId: 'a', messageType: 'DATA', totalChunks: 2 }, sha256: '0'.repeat(64), head: Buffer.alloc(0) }),
      acknowledge: async () => {
        throw new MeshRejectedError('ack refused', { status: 404 });
      },
      send: async () => ({ messageId: 'm', chunks: 3, bytes: 300 }),
      track: async () => ({ status: 'accepted' }),
    };
    const p = meteredPort(port, metrics, 'X26ABC1');
    await p.download('a', {} as DownloadSink);
    await p.send('/dev/null', { to: 'X', workflowId: 'W' }, { onMessageId() {}, onChunk() {} });
    await p.acknowledge('a').catch(() => undefined);
    const text = await metrics.registry.metrics();
    expect(text).to.match(/meshd_mesh_requests_total\{endpoint="download",status="ok"\} 1/);
    expect(text).to.match(/meshd_mesh_requests_total\{endpoint="ack",status="MESH_REJECTED"\} 1/);
    expect(text).to.match(/meshd_payload_bytes_total\{mailbox="X26ABC1",direction="sent"\} 300/);
    expect(text).to.match(/meshd_chunks_total\{mailbox="X26ABC1",direction="received"\} 2/);
  });
});
