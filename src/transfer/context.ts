import type { MailboxConfig, MeshdConfig } from '../config/types';
import type { LedgerStore } from '../ledger';
import type { Logger } from '../log';
import type { DownloadSink, MessageMeta, SendOptions } from '../mesh';
import type { MailboxFolders } from './folders';

/** Metadata of a received message, from its mex-* headers: the client's own shape, all the way to the .ctl writer. */
export type InboundMeta = MessageMeta;

/** What the pipelines pass to a send: the client's own options, less its hooks (chunkSize and
 * compress must stay the same across a resume, so they come from the ledger row). */
export type SendHeaders = Pick<SendOptions, 'to' | 'workflowId' | 'subject' | 'localId' | 'fileName' | 'contentType' | 'checksum' | 'chunkSize' | 'compress'>;

export interface SendProgress {
  /** Called the moment MESH returns the message id (before chunk 2). */
  onMessageId(messageId: string, totalChunks: number): void | Promise<void>;
  /** Called after each chunk n (1-based) is accepted. May throw to stop between chunks. */
  onChunk(chunk: number, totalChunks: number): void;
}

/**
 * What the pipelines need from MESH. The real implementation wraps src/mesh's client
 * (src/transfer/mesh-port.ts); keeping this seam narrow keeps the pipelines readable.
 */
export interface MeshPort {
  handshake(): Promise<void>;
  /** Every waiting message id, all pages. */
  listInbox(): Promise<string[]>;
  /** Streams message `id` (all chunks, gunzipped) into the sink's file; aborts past maxBytes, a bomb ratio, or when reserve throws. */
  /** sha256 and head: of the bytes written, as the client hashed them on the way (DownloadResult). */
  download(id: string, sink: DownloadSink): Promise<{ meta: InboundMeta; bytes: number; chunks: number; sha256: string; head: Buffer }>;
  acknowledge(id: string): Promise<void>;
  /** Uploads the file at `payload` (a path), or bytes already read; with `resume`, only the chunks after resume.chunksDone. */
  send(
    payload: string | Buffer,
    headers: SendHeaders,
    progress: SendProgress,
    resume?: { messageId: string; chunksDone: number },
  ): Promise<{ messageId: string; chunks: number; bytes: number }>;
  track(messageId: string): Promise<{ status: string; statusCode?: string; description?: string }>;
}

/** Which message a transform is for: the daemon keeps appointment history per direction. */
export interface TransformFor {
  direction: 'in' | 'out';
  rowId: number;
  /** When the payload's event happened (its latest), so appointment history follows event time, not arrival. */
  eventTime?: string;
}

/** A problem or note about one message of a conversion: where and what, never patient values. */
export interface TransformIssueRef {
  code: string;
  message?: number;
  position?: string;
  field?: string;
  text: string;
}

export interface TransformOutcome {
  /** The converted bytes; empty when they went to `outFd`. */
  output: Buffer;
  errors: TransformIssueRef[];
  notes: TransformIssueRef[];
  messageCount: number;
  /** Source messages that could not be converted (the rest are in the output). */
  failedMessages: number;
}

/**
 * Converts `input` between formats. With `outFd` (a file meshd created exclusively) the output
 * is written there as it is produced, so a large batch is never held whole in memory.
 */
export type TransformFn = (input: Buffer, from: string, to: string, subject: TransformFor, outFd?: number) => Promise<TransformOutcome>;

/** What a ledger event keeps of conversion issues: codes and positions (the text stays in logs and .reason files). */
export function issueSummary(issues: TransformIssueRef[], max = 20): { count: number; first: Array<Omit<TransformIssueRef, 'text'>> } {
  return { count: issues.length, first: issues.slice(0, max).map(({ code, message, position, field }) => ({ code, message, position, field })) };
}

/** Everything a pipeline step needs for one mailbox. */
export interface MailboxContext {
  config: MeshdConfig;
  mailbox: MailboxConfig;
  folders: MailboxFolders;
  /** dataDir/spool/<MAILBOX>: payloads meshd has taken responsibility for. */
  spool: string;
  ledger: LedgerStore;
  mesh: MeshPort;
  log: Logger;
  now: () => Date;
  /** Names in out/ already reported (unmatched, refused in place), so each is reported once while it stays. */
  reported: Set<string>;
  /** True once shutdown was asked for: finish the step in hand, take nothing new. */
  stopping: () => boolean;
  transform: TransformFn;
}

/** Thrown between chunks when shutdown was asked for; the ledger already has the checkpoint. */
export class StopRequested extends Error {
  constructor() {
    super('stop requested');
  }
}
