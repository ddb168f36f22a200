import type { Environment } from './types';

/** Internet base URLs per environment (docs/mesh-protocol.md, Environments); HSCN hosts are deprecated. */
export const ENVIRONMENT_URL: Record<Exclude<Environment, 'local'>, string> = {
  int: 'https://msg.intspineservices.nhs.uk',
  dep: 'https://msg.depspineservices.nhs.uk',
  live: 'https://mesh-sync.spineservices.nhs.uk',
};

export const DEFAULTS = {
  transfer: { chunkSize: 20 * 1024 * 1024, compress: true, maxMessageBytes: 20 * 1024 ** 3, timeoutSeconds: 600, minFreeBytes: 2 * 1024 ** 3, maxCompressionRatio: 1000 },
  transform: { maxInputBytes: 64 * 1024 ** 2 },
  retry: { attempts: 6, initialDelayMs: 1000, maxDelayMs: 60_000, maxTotalMs: 300_000 },
  schedule: { poll: '*/5 * * * *', outboundScan: '* * * * *', tracking: '0 * * * *', handshake: '0 6 * * *', settleSeconds: 5 },
  ledger: { payloadRetentionDays: 30, rowRetentionDays: 365, ambiguousSend: 'review' as const },
  node: { leaseSeconds: 30 },
  health: { port: 0, host: '127.0.0.1' },
  ui: { port: 9465, host: '127.0.0.1', readOnly: false, showPayloads: false },
  log: { level: 'info' as const, format: 'auto' as const },
};

/**
 * A gzip'd chunk can be slightly larger than its raw bytes (stored deflate blocks), and every
 * request body must stay under 100 MB, so the raw chunk size is capped with a margin.
 */
export const MAX_CHUNK_SIZE = 99_000_000;
