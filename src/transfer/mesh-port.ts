import type { MeshdConfig } from '../config/types';
import type { Logger } from '../log';
import { meshClientFor, type MeshClient, type MeshClientOverrides } from '../mesh';
import type { MeshPort } from './context';

/** The pipelines' view of MESH, backed by the real client for one mailbox. */
export function clientPort(client: MeshClient): MeshPort & { close(): Promise<void> } {
  return {
    handshake: () => client.handshake(),
    listInbox: () => client.listInbox(),
    async download(id, sink) {
      const { meta, bytes, sha256, head } = await client.download(id, sink);
      return { bytes, chunks: meta.totalChunks, meta, sha256, head };
    },
    acknowledge: (id) => client.acknowledge(id),
    async send(payload, headers, progress, resume) {
      const opts = {
        ...headers,
        onMessageId: (id: string, total: number) => progress.onMessageId(id, total),
        onChunkSent: (n: number, total: number) => progress.onChunk(n, total),
        resume: resume ? { messageId: resume.messageId, nextChunk: resume.chunksDone + 1 } : undefined,
      };
      return typeof payload === 'string' ? client.sendFile(payload, opts) : client.sendBytes(payload, opts);
    },
    async track(id) {
      const t = await client.track(id);
      return { status: t.status, statusCode: t.status_code ?? undefined, description: t.status_description ?? undefined };
    },
    close: () => client.close(),
  };
}

export function meshPortFor(config: MeshdConfig, mailboxId: string, log: Logger, overrides: MeshClientOverrides = {}): MeshPort & { close(): Promise<void> } {
  return clientPort(meshClientFor(config, mailboxId, { logger: log, ...overrides }));
}
