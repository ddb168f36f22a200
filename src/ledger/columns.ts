import { MeshdError } from '../errors';
import type { EventRow, MailboxStatus, MessageRow, AppointmentEventRecord } from './types';

/** Maps between the TypeScript row shape (camelCase, booleans, Dates in) and SQLite columns. */

export const MESSAGE_COLUMNS: Readonly<Record<keyof MessageRow, string>> = {
  id: 'id',
  direction: 'direction',
  mailbox: 'mailbox',
  peer: 'peer',
  workflowId: 'workflow_id',
  messageId: 'message_id',
  localId: 'local_id',
  subject: 'subject',
  messageType: 'message_type',
  fileName: 'file_name',
  payloadPath: 'payload_path',
  ctlPath: 'ctl_path',
  sizeBytes: 'size_bytes',
  sha256: 'sha256',
  chunkSize: 'chunk_size',
  chunksTotal: 'chunks_total',
  chunksDone: 'chunks_done',
  compress: 'compress',
  transform: 'transform',
  attempts: 'attempts',
  nextAttemptAt: 'next_attempt_at',
  errorCode: 'error_code',
  errorText: 'error_text',
  linkedMessageId: 'linked_message_id',
  reportCode: 'report_code',
  state: 'state',
  createdAt: 'created_at',
  updatedAt: 'updated_at',
  acknowledgedAt: 'acknowledged_at',
  claimId: 'claim_id',
  sourceMtimeMs: 'source_mtime_ms',
  processingStarts: 'processing_starts',
  recoveryMark: 'recovery_mark',
  businessId: 'business_id',
  eventTime: 'event_time',
  receivedSha256: 'received_sha256',
  relatedRowId: 'related_row_id',
  ackDueAt: 'ack_due_at',
};

/** Fields a patch may set: everything but identity, state and the store's own stamps. */
export const PATCHABLE_FIELDS: ReadonlySet<string> = new Set(
  Object.keys(MESSAGE_COLUMNS).filter((k) => !['id', 'direction', 'mailbox', 'state', 'recoveryMark', 'createdAt', 'updatedAt'].includes(k)),
);

export const MAILBOX_STATUS_COLUMNS: Readonly<Record<Exclude<keyof MailboxStatus, 'mailbox'>, string>> = {
  lastPollAt: 'last_poll_at',
  lastPollOk: 'last_poll_ok',
  lastPollError: 'last_poll_error',
  lastHandshakeAt: 'last_handshake_at',
  lastTrackingAt: 'last_tracking_at',
};

/** A value as SQLite stores it: Dates as ISO text, booleans as 0/1. */
export function toSql(value: unknown): string | number | bigint | Buffer | null {
  if (value === undefined || value === null) return null;
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw new MeshdError('LEDGER_BAD_FIELD', 'invalid date given to the ledger');
    return value.toISOString();
  }
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint' || Buffer.isBuffer(value)) return value;
  throw new MeshdError('LEDGER_BAD_FIELD', `unsupported value type ${typeof value} for the ledger`);
}

/**
 * Turns a patch into column → SQL value pairs, refusing fields the caller may not set
 * (a programming error, reported with the field name).
 */
export function patchColumns(patch: object, allowed: ReadonlySet<string>, columns: Readonly<Record<string, string>>): Array<[string, unknown]> {
  const out: Array<[string, unknown]> = [];
  for (const [key, value] of Object.entries(patch)) {
    if (value === undefined) continue;
    if (!allowed.has(key)) {
      throw new MeshdError('LEDGER_BAD_FIELD', `the ledger does not let callers set "${key}" here`, 'use transition() for state changes');
    }
    out.push([columns[key], toSql(value)]);
  }
  return out;
}

/**
 * Where each column of `messages` sits in a row: its index in a row read as an array, or, for a
 * row read as an object, its own name (COLUMNS_BY_NAME).
 */
export type MessagePositions = Readonly<Record<string, number | string>>;

export function messagePositions(columns: readonly string[]): MessagePositions {
  const positions: Record<string, number> = {};
  columns.forEach((name, i) => (positions[name] = i));
  return positions;
}

const COLUMNS_BY_NAME: MessagePositions = Object.fromEntries(Object.values(MESSAGE_COLUMNS).map((c) => [c, c]));

export function messageFromSql(r: Record<string, unknown>): MessageRow {
  return messageFromValues(r, COLUMNS_BY_NAME);
}

/**
 * A row from its column values and where each sits: the SQLite ledger reads hot rows as arrays
 * (better-sqlite3's raw mode), because building a keyed object of ~40 columns natively, one
 * property at a time, was most of the cost of reading a row (docs/performance.md §1).
 * A column missing from the row reads as undefined, as a missing key always did.
 */
export function messageFromValues(values: readonly unknown[] | Readonly<Record<string, unknown>>, p: MessagePositions): MessageRow {
  const v = values as Readonly<Record<string | number, unknown>>;
  return {
    id: v[p.id] as number,
    direction: v[p.direction] as MessageRow['direction'],
    mailbox: v[p.mailbox] as string,
    peer: v[p.peer] as string | null,
    workflowId: v[p.workflow_id] as string | null,
    messageId: v[p.message_id] as string | null,
    localId: v[p.local_id] as string | null,
    subject: v[p.subject] as string | null,
    messageType: v[p.message_type] as MessageRow['messageType'],
    fileName: v[p.file_name] as string | null,
    payloadPath: v[p.payload_path] as string | null,
    ctlPath: v[p.ctl_path] as string | null,
    sizeBytes: v[p.size_bytes] as number | null,
    sha256: v[p.sha256] as string | null,
    chunkSize: v[p.chunk_size] as number | null,
    chunksTotal: v[p.chunks_total] as number | null,
    chunksDone: v[p.chunks_done] as number,
    compress: v[p.compress] === 1,
    transform: v[p.transform] as string | null,
    attempts: v[p.attempts] as number,
    nextAttemptAt: v[p.next_attempt_at] as string | null,
    errorCode: v[p.error_code] as string | null,
    errorText: v[p.error_text] as string | null,
    linkedMessageId: v[p.linked_message_id] as string | null,
    reportCode: v[p.report_code] as string | null,
    state: v[p.state] as MessageRow['state'],
    createdAt: v[p.created_at] as string,
    updatedAt: v[p.updated_at] as string,
    acknowledgedAt: v[p.acknowledged_at] as string | null,
    claimId: v[p.claim_id] as string | null,
    sourceMtimeMs: v[p.source_mtime_ms] as number | null,
    processingStarts: v[p.processing_starts] as number,
    recoveryMark: v[p.recovery_mark] as MessageRow['recoveryMark'],
    businessId: (v[p.business_id] as string | null) ?? null,
    eventTime: (v[p.event_time] as string | null) ?? null,
    receivedSha256: (v[p.received_sha256] as string | null) ?? null,
    relatedRowId: v[p.related_row_id] === null || v[p.related_row_id] === undefined ? null : Number(v[p.related_row_id]),
    ackDueAt: (v[p.ack_due_at] as string | null) ?? null,
  };
}

export function eventFromSql(r: Record<string, unknown>): EventRow {
  return {
    id: r.id as number,
    messageRowId: r.message_row_id as number,
    at: r.at as string,
    type: r.type as string,
    fromState: r.from_state as EventRow['fromState'],
    toState: r.to_state as EventRow['toState'],
    detail: typeof r.detail === 'string' ? (JSON.parse(r.detail) as Record<string, unknown>) : null,
  };
}

export function appointmentEventFromSql(r: Record<string, unknown>): AppointmentEventRecord {
  return {
    eventKind: r.event_kind as string,
    trigger: r.trigger_event as string | null,
    startAt: r.start_at as string | null,
    status: r.status as string | null,
    at: r.at as string,
    messageRowId: r.message_row_id as number | null,
  };
}

export function mailboxStatusFromSql(r: Record<string, unknown>): MailboxStatus {
  return {
    mailbox: r.mailbox as string,
    lastPollAt: r.last_poll_at as string | null,
    lastPollOk: r.last_poll_ok === null || r.last_poll_ok === undefined ? null : r.last_poll_ok === 1,
    lastPollError: r.last_poll_error as string | null,
    lastHandshakeAt: r.last_handshake_at as string | null,
    lastTrackingAt: r.last_tracking_at as string | null,
  };
}
