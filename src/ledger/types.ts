import type { Direction, MessageState, RecoveryMark } from './states';

/** Times are ISO-8601 UTC strings (`2026-11-24T10:00:00.000Z`): sortable, exact, and readable in the sqlite3 shell. */
export type Instant = string;

export type MessageType = 'DATA' | 'REPORT';

/** One message in one direction, as stored. JSON output uses these names. */
export interface MessageRow {
  id: number;
  direction: Direction;
  mailbox: string;
  /** Recipient for outbound, sender for inbound. */
  peer: string | null;
  workflowId: string | null;
  /** The MESH message id; null until MESH has given one. */
  messageId: string | null;
  localId: string | null;
  subject: string | null;
  messageType: MessageType;
  /** The original file name. */
  fileName: string | null;
  /** Where the payload is now: spool, in/, failed/ or sent/. Null once purged. */
  payloadPath: string | null;
  ctlPath: string | null;
  sizeBytes: number | null;
  sha256: string | null;
  chunkSize: number | null;
  chunksTotal: number | null;
  chunksDone: number;
  compress: boolean;
  /** e.g. "csv>fhir-r4". */
  transform: string | null;
  attempts: number;
  /** When the next attempt is due; null means now. */
  nextAttemptAt: Instant | null;
  errorCode: string | null;
  errorText: string | null;
  /** REPORT rows: the message the report is about. */
  linkedMessageId: string | null;
  reportCode: string | null;
  state: MessageState;
  createdAt: Instant;
  updatedAt: Instant;
  acknowledgedAt: Instant | null;
  /** Random id of this claim (32 hex): names the row's spool and temp files, never reused. */
  claimId: string | null;
  /** Outbound: the claimed file's mtime, to notice a writer that was still writing. */
  sourceMtimeMs: number | null;
  /** Conversions or deliveries begun and not finished; 2 means it killed the process twice (POISON). */
  processingStarts: number;
  /** What a restart must finish (states.ts MARKS); changed only with the state or by setMark. */
  recoveryMark: RecoveryMark | null;
  /** The payload's own id (FHIR MessageHeader.id, HL7 MSH-10 qualified by MSH-3/MSH-4, CSV id column), when it has one. */
  businessId: string | null;
  /** When the event the payload reports happened (latest of its messages), UTC. */
  eventTime: Instant | null;
  /** Inbound: sha256 of the payload as received (sha256 is of what went into in/). */
  receivedSha256: string | null;
  /** duplicate: the first copy; stale: the newer event's row; an ACK sent: the row it acknowledges; confirmed/rejected: the ACK received. */
  relatedRowId: number | null;
  /** Outbound on a route with ackTimeout: when a missing business ACK becomes ACK_OVERDUE. */
  ackDueAt: Instant | null;
}

/**
 * Rows as the pipelines hold them, with what their direction guarantees not null: every inbound
 * row is listed under its MESH id; every row has a claim id (migration 2); an outbound row past
 * its claim knows its recipient and workflow. `receivedRow` and `sendableRow` check it once.
 */
export type ReceivedRow = MessageRow & { direction: 'in'; messageId: string; claimId: string };
export type SendableRow = MessageRow & { direction: 'out'; claimId: string; peer: string; workflowId: string };

/** Time fields accept a Date or an ISO string on the way in. */
type Writable<T> = { [K in keyof T]: T[K] extends Instant | null ? T[K] | Date : T[K] };

/** Fields a caller may change without a state change (id, direction, mailbox, state and stamps are the store's). */
export type MessagePatch = Partial<
  Writable<Omit<MessageRow, 'id' | 'direction' | 'mailbox' | 'state' | 'recoveryMark' | 'createdAt' | 'updatedAt'>>
>;

export type NewMessage = MessagePatch & {
  direction: Direction;
  mailbox: string;
  state: MessageState;
  /** Checked against the start state like any mark. */
  recoveryMark?: RecoveryMark | null;
};

export interface EventRow {
  id: number;
  messageRowId: number;
  at: Instant;
  type: string;
  fromState: MessageState | null;
  toState: MessageState | null;
  /** Free-form detail; never patient identifiers or secrets. */
  detail: Record<string, unknown> | null;
}

export interface EventInput {
  type: string;
  detail?: object;
}

export interface TransitionOptions {
  /** Refuse (LEDGER_CONFLICT) unless the row is currently in one of these states. */
  from?: MessageState[];
  patch?: MessagePatch;
  event?: EventInput;
  /** The recovery mark the row has in its new state (default none). */
  mark?: RecoveryMark | null;
}

/** The kind of appointment event last exchanged for one appointment key, per direction. */
export interface AppointmentEventRecord {
  /** Canonical event kind: booked, rescheduled, cancelled, … */
  eventKind: string;
  /** HL7 trigger or FHIR equivalent, e.g. S12. */
  trigger: string | null;
  startAt: Instant | null;
  status: string | null;
  at: Instant;
  messageRowId: number | null;
}

export interface AppointmentRecord {
  key: string;
  lastSent?: AppointmentEventRecord;
  lastReceived?: AppointmentEventRecord;
}

export type AppointmentInput = Omit<AppointmentEventRecord, 'at' | 'trigger' | 'startAt' | 'status' | 'messageRowId'> &
  Partial<Writable<Pick<AppointmentEventRecord, 'at' | 'trigger' | 'startAt' | 'status' | 'messageRowId'>>>;

export interface MailboxStatus {
  mailbox: string;
  lastPollAt: Instant | null;
  lastPollOk: boolean | null;
  lastPollError: string | null;
  lastHandshakeAt: Instant | null;
  lastTrackingAt: Instant | null;
}

export type MailboxStatusPatch = Partial<Writable<Omit<MailboxStatus, 'mailbox'>>>;

export interface ListFilter {
  state?: MessageState;
  direction?: Direction;
  mailbox?: string;
  workflow?: string;
  /** Rows created at or after this instant. */
  since?: Date;
  /** Only received rows not yet acknowledged to MESH (direction `in`, no `acknowledgedAt`). */
  unacknowledged?: boolean;
  /** Only rows carrying this recovery mark. */
  recoveryMark?: RecoveryMark;
  /** Only rows whose payload path lies in this directory (given with its trailing `/`). */
  payloadUnder?: string;
  /** Default 100. */
  limit?: number;
}

/** The web console's message browser: exact filters, newest first, keyset paging (docs/ui.md). */
export interface BrowseFilter {
  mailbox?: string;
  direction?: Direction;
  /** One state, or any of several. */
  state?: MessageState | MessageState[];
  workflow?: string;
  /** created_at >= from. */
  from?: Date;
  /** created_at < to. */
  to?: Date;
  messageId?: string;
  localId?: string;
  /** Part of the file name. */
  fileName?: string;
  /** Only rows with a smaller id: the next page after the last row shown. */
  before?: number;
  limit: number;
}

export type ThroughputUnit = 'hour' | 'day';

/** Moves into sent (outbound), delivered (inbound) and failed/quarantined/undeliverable, counted per period. */
export interface ThroughputRow {
  /** UTC hour `2026-11-24T10` or day `2026-11-24`. */
  period: string;
  sent: number;
  received: number;
  failed: number;
}

export interface PurgeOptions {
  /** Rows (and payloads) last updated before this instant are candidates. */
  olderThan: Date;
  /** Only drop payload copies; keep rows and events. */
  payloadsOnly: boolean;
  now: Date;
  /**
   * Stop after this many batches (each one short transaction of PURGE_BATCH rows), so a caller
   * can give the event loop back between them; call again until `done`. Default: no limit.
   */
  maxBatches?: number;
  /** Rows per batch (default PURGE_BATCH); purgeInSteps sizes it to the time a batch takes. */
  batchRows?: number;
}

export interface PurgeResult {
  /** Rows deleted (with their events). */
  rows: number;
  /** Files the caller should delete; the store has already forgotten them. */
  payloads: string[];
  /** False when `maxBatches` stopped the purge before it ran out of work. */
  done: boolean;
}

/**
 * An earlier inbound copy of a message: from the same sender and workflow, created since
 * `since`, in one of `states`, other than `excludeId`; matched on the business id when the
 * message has one, else on the sha256 of the payload as received.
 */
export interface EarlierCopyQuery {
  mailbox: string;
  peer: string;
  workflowId: string | null;
  businessId: string | null;
  receivedSha256: string;
  since: Date;
  excludeId: number;
  states: MessageState[];
}

/** The newest event seen for one key (appointment or patient) from one sender. */
export interface LatestEvent {
  eventTime: Instant;
  rowId: number;
  sha256: string | null;
}

/**
 * The ledger as the pipelines and CLI see it. SqliteLedger (one host) and PgLedger (PostgreSQL,
 * shared by several hosts) implement it; test/integration/ledger-contract.test.ts holds both to it.
 */
export interface LedgerStore {
  insertMessage(row: NewMessage, event?: EventInput): MessageRow;
  /** Atomic state change; LEDGER_CONFLICT if the move is illegal or the row is not in `from`. */
  transition(id: number, to: MessageState, opts?: TransitionOptions): MessageRow;
  /**
   * Sets or clears the row's recovery mark in its current state (refused where states.ts MARKS
   * does not allow it), with an optional patch, in one transaction.
   */
  setMark(id: number, mark: RecoveryMark | null, opts?: { from?: MessageState[]; patch?: MessagePatch; event?: EventInput }): MessageRow;
  /** Changes fields without a state change (chunk progress, next attempt). */
  update(id: number, patch: MessagePatch, event?: EventInput): MessageRow;
  recordEvent(id: number, type: string, detail?: object): void;
  get(id: number): MessageRow | undefined;
  findByMessageId(mailbox: string, direction: Direction, messageId: string): MessageRow | undefined;
  /** The row that owns spool or temp files named by this claim id. */
  findByClaimId(claimId: string): MessageRow | undefined;
  /** A numeric row id, else a MESH message id (first row if both directions hold it). */
  findByRef(ref: string): MessageRow | undefined;
  list(filter: ListFilter): MessageRow[];
  /** The console's message browser (see BrowseFilter). */
  browse(filter: BrowseFilter): MessageRow[];
  /** REPORT rows about this MESH message. */
  linkedReports(messageId: string): MessageRow[];
  /** Sent, received and failed per hour or day since `since` (periods with none are left out). */
  throughput(since: Date, unit: ThroughputUnit): ThroughputRow[];
  /** Every row matching the filter (no limit), oldest first, without holding them all in memory. */
  iterate(filter: Omit<ListFilter, 'limit'>): IterableIterator<MessageRow>;
  events(id: number): EventRow[];
  countsByState(mailbox?: string, direction?: Direction): Partial<Record<MessageState, number>>;
  /** The oldest row (by created_at) in one of these states, for "oldest waiting". */
  oldest(mailbox: string, direction: Direction, states: MessageState[]): MessageRow | undefined;
  due(mailbox: string, direction: Direction, states: MessageState[], now: Date, limit: number): MessageRow[];
  getAppointment(key: string): AppointmentRecord | undefined;
  recordAppointment(key: string, direction: Direction, rec: AppointmentInput): void;
  // Business semantics (docs/ledger.md): duplicates, ordering, business acknowledgements.
  /** The first earlier inbound row that may be this message again (see EarlierCopyQuery). */
  findEarlierCopy(q: EarlierCopyQuery): MessageRow | undefined;
  latestEvent(mailbox: string, peer: string, key: string): LatestEvent | undefined;
  /** Keeps the newest per key: an older event time never replaces a newer one. */
  recordLatestEvent(mailbox: string, peer: string, key: string, e: LatestEvent): void;
  /** The outbound row to `peer` with this business id that an ACK naming it answers: the newest still waiting for one, else the newest. */
  findSentByBusinessId(mailbox: string, peer: string, businessId: string): MessageRow | undefined;
  /** Sent rows of this mailbox still waiting for a business ACK that was due by `now` (reported ACK_OVERDUE or not yet). */
  overdueAcks(mailbox: string, now: Date, limit: number): MessageRow[];
  /** How many rows overdueAcks would give without a limit (for status and /readyz). */
  countOverdueAcks(mailbox: string, now: Date): number;
  /** An outbound row's ordering keys (appointment and patient keys, prefixed with the recipient). */
  setMessageKeys(rowId: number, keys: string[]): void;
  /** A row of the same mailbox sharing a key with `row`, with an earlier event time, not yet sent. */
  earlierUnsent(row: MessageRow): MessageRow | undefined;
  mailboxStatus(mailbox: string): MailboxStatus | undefined;
  setMailboxStatus(mailbox: string, patch: MailboxStatusPatch): void;
  transaction<T>(fn: () => T): T;
  purge(opts: PurgeOptions): PurgeResult;
  backup(file: string): Promise<void>;
  close(): void;
}
