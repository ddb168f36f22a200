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

export function messageFromSql(r: Record<string, unknown>): MessageRow {
  return {
    id: r.id as number,
    direction: r.direction as MessageRow['direction'],
    mailbox: r.mailbox as string,
    peer: r.peer as string | null,
    workflowId: r.workflow_id as string | null,
    messageId: r.message_id as string | null,
    localId: r.local_id as string | null,
    subject: r.subject as string | null,
    messageType: r.message_type as MessageRow['messageType'],
    fileName: r.file_name as string | null,
    payloadPath: r.payload_path as string | null,
    ctlPath: r.ctl_path as string | null,
    sizeBytes: r.size_bytes as number | null,
    sha256: r.sha256 as string | null,
    chunkSize: r.chunk_size as number | null,
    chunksTotal: r.chunks_total as number | null,
    chunksDone: r.chunks_done as number,
    compress: r.compress === 1,
    transform: r.transform as string | null,
    attempts: r.attempts as number,
    nextAttemptAt: r.next_attempt_at as string | null,
    errorCode: r.error_code as string | null,
    errorText: r.error_text as string | null,
    linkedMessageId: r.linked_message_id as string | null,
    reportCode: r.report_code as string | null,
    state: r.state as MessageRow['state'],
    createdAt: r.created_at as string,
    updatedAt: r.updated_at as string,
    acknowledgedAt: r.acknowledged_at as string | null,
    claimId: r.claim_id as string | null,
    sourceMtimeMs: r.source_mtime_ms as number | null,
    processingStarts: r.processing_starts as number,
    recoveryMark: r.recovery_mark as MessageRow['recoveryMark'],
    businessId: (r.business_id as string | null) ?? null,
    eventTime: (r.event_time as string | null) ?? null,
    receivedSha256: (r.received_sha256 as string | null) ?? null,
    relatedRowId: r.related_row_id === null || r.related_row_id === undefined ? null : Number(r.related_row_id),
    ackDueAt: (r.ack_due_at as string | null) ?? null,
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
