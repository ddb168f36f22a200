import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { MeshClient, MessageMeta } from '../../../src/mesh';
import { createExclusive, PRIVATE_FILE_MODE, removeName } from '../../../src/safe-fs';

/**
 * The MESH client alone, for client tests: download each id into `dir/<id>.dat` and acknowledge
 * it once stored. (The real delivery, with ledger and folders, is src/transfer/inbound.)
 */
export async function fetchToDir(
  client: MeshClient,
  ids: string[],
  dir: string,
  opts: { maxBytes?: number; acknowledge?: boolean } = {},
): Promise<Array<{ messageId: string; meta?: MessageMeta; path?: string; error?: unknown }>> {
  await mkdir(dir, { recursive: true });
  const out = [];
  for (const messageId of ids) {
    const path = join(dir, `${messageId}.dat`);
    const handle = await createExclusive(path, PRIVATE_FILE_MODE);
    try {
      const { meta } = await client.download(messageId, { handle }, { maxBytes: opts.maxBytes });
      await handle.close();
      if (meta.messageType === 'REPORT') await removeName(path);
      if (opts.acknowledge !== false) await client.acknowledge(messageId);
      out.push({ messageId, meta, path: meta.messageType === 'REPORT' ? undefined : path });
    } catch (error) {
      await handle.close().catch(() => undefined);
      await removeName(path);
      out.push({ messageId, error });
    }
  }
  return out;
}
