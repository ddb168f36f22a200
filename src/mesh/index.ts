import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MeshdConfig } from '../config/types';
import { selectMailbox } from '../config';
import { ConfigError } from '../errors';
import type { Logger } from '../log';
import { MeshClient, type MeshClientOptions } from './client';

export { MeshClient } from './client';
export type { MeshClientOptions, SendOptions, SendResult, DownloadResult, DownloadSink, LookupResult } from './client';
export * from './errors';
export { meshToken, meshTimestamp } from './token';
export { RetryPolicy, DEFAULT_RETRY } from './retry';
export type { RetrySettings, RetryHooks, RetryVerdict } from './retry';
export { planChunks } from './chunks';
export type { ChunkSpan } from './chunks';
export type { MessageMeta } from './meta';

export type MeshClientOverrides = Partial<Omit<MeshClientOptions, 'baseUrl' | 'mailboxId' | 'password' | 'sharedKey'>> & { logger?: Logger };

/** A client for one mailbox of a loaded config (default: the only mailbox). Call close() when done. */
export function meshClientFor(config: MeshdConfig, mailboxId?: string, opts: MeshClientOverrides = {}): MeshClient {
  const mailbox = selectMailbox(config, mailboxId);
  const read = (key: string, path: string | undefined) => {
    if (!path) return undefined;
    try {
      return readFileSync(path);
    } catch (err) {
      throw new ConfigError(key, `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, 'check the file exists and meshd may read it');
    }
  };
  return new MeshClient({
    baseUrl: config.url,
    mailboxId: mailbox.id,
    password: mailbox.password,
    sharedKey: config.sharedKey,
    tls: {
      ca: read('tls.ca', config.tls.ca),
      cert: read('tls.cert', mailbox.tls?.cert ?? config.tls.cert),
      key: read('tls.key', mailbox.tls?.key ?? config.tls.key),
    },
    proxy: config.proxy,
    timeoutMs: config.transfer.timeoutSeconds * 1000,
    retry: config.retry,
    chunkSize: config.transfer.chunkSize,
    compress: config.transfer.compress,
    maxMessageBytes: config.transfer.maxMessageBytes,
    maxCompressionRatio: config.transfer.maxCompressionRatio,
    // Spooled gzip chunks hold patient data: keep them beside the ledger, not in a shared /tmp.
    spoolDir: join(config.dataDir, 'tmp'),
    ...opts,
  });
}
