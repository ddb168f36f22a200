import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { MeshdError } from '../errors';
import {
  MAILBOX_STATUS_COLUMNS,
  MESSAGE_COLUMNS,
  PATCHABLE_FIELDS,
  eventFromSql,
  mailboxStatusFromSql,
  messageFromSql,
  messageFromValues,
  messagePositions,
  type MessagePositions,
  patchColumns,
  toSql,
} from './columns';
import { openDatabase, type OpenOptions } from './open';
import { appointmentFromRows, checkMarkChange, checkMove, checkNewRow, conflict, duplicateOnInsert, duplicateOnUpdate, notFound, refRowId, type RowState } from './rules';
import {
  type Direction,
  MessageState,
  PAYLOAD_PURGE_STATES,
  SETTLED_STATES,
  payloadStatesToClear,
  type RecoveryMark,
} from './states';
import type {
  AppointmentInput,
  AppointmentRecord,
  BrowseFilter,
  EarlierCopyQuery,
  LatestEvent,
  EventInput,
  EventRow,
  LedgerStore,
  ListFilter,
  MailboxStatus,
  MailboxStatusPatch,
  MessagePatch,
  MessageRow,
  NewMessage,
  PurgeOptions,
  PurgeResult,
  ThroughputRow,
  ThroughputUnit,
  TransitionOptions,
} from './types';

type Row = Record<string, unknown>;
type Statement = Database.Statement;

const DEFAULT_LIST_LIMIT = 100;
/**
 * Purge works in batches, one transaction each, so the daemon never waits long for the write
 * lock, and a batch never holds the event loop for 100 ms even in a big ledger.
 */
export const PURGE_BATCH = 250;
/** What a purge batch aims to take, and the bounds of its size (purgeInSteps). */
const PURGE_BATCH_MS = 25;
const PURGE_BATCH_MIN = 50;
const PURGE_BATCH_MAX = 4000;
const MAILBOX_STATUS_FIELDS = new Set(Object.keys(MAILBOX_STATUS_COLUMNS));
/**
 * A row's state is among @states' list for its direction ({"out": [...], "in": [...]}). Each list
 * is read once a statement: json_each(@states, '$.' || direction) was read again for every row.
 */
const STATE_FOR_DIRECTION = `(direction = 'out' AND state IN (SELECT value FROM json_each(@states, '$.out'))
  OR direction = 'in' AND state IN (SELECT value FROM json_each(@states, '$.in')))`;

export interface LedgerOptions extends OpenOptions {
  /** Injectable clock for stamps (tests). */
  now?: () => Date;
}

function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: unknown })?.code === 'SQLITE_CONSTRAINT_UNIQUE';
}

/**
 * Sent rows of a mailbox (?1) still waiting for a business ACK due by ?2: the partial index
 * messages_ack_waiting (migration 7) holds exactly those, and the WHERE repeats its terms, as
 * SQLite needs to use a partial index. It is named so that nothing (statistics, a new index)
 * steers SQLite back to messages_age, which reads every acknowledged row of the mailbox: ~450 ms
 * at a million rows, on each send cycle and each /readyz, before migration 7.
 */
const OVERDUE = "messages INDEXED BY messages_ack_waiting WHERE ack_due_at IS NOT NULL AND direction = 'out' AND state IN ('sent', 'acknowledged') AND mailbox = ? AND ack_due_at <= ?";

/**
 * A statement returning rows of `messages`, read as arrays (better-sqlite3's raw mode) and built
 * into rows by position. Returning keyed objects, better-sqlite3 sets each of a row's ~40
 * properties natively, one at a time: that was about half the cost of reading a row, and a
 * sent message reads some 14 (docs/performance.md §1).
 */
class MessageReader {
  private readonly positions: MessagePositions;

  constructor(private readonly stmt: Statement) {
    stmt.raw(true);
    this.positions = messagePositions(stmt.columns().map((c) => c.name));
  }

  get(...params: unknown[]): MessageRow | undefined {
    const values = this.stmt.get(...params) as unknown[] | undefined;
    return values && messageFromValues(values, this.positions);
  }

  all(...params: unknown[]): MessageRow[] {
    return (this.stmt.all(...params) as unknown[][]).map((values) => messageFromValues(values, this.positions));
  }

  *iterate(...params: unknown[]): IterableIterator<MessageRow> {
    for (const values of this.stmt.iterate(...params)) yield messageFromValues(values as unknown[], this.positions);
  }
}

/** The SQLite ledger. One instance owns one connection; hot statements are prepared once, named after their method. */
export class SqliteLedger implements LedgerStore {
  private readonly db: Database.Database;
  private readonly now: () => Date;
  private readonly updateStatements = new Map<string, MessageReader>();
  private readonly statusStatements = new Map<string, Statement>();
  /** Statements of the per-message queries (business semantics), prepared once each. */
  private readonly prepared = new Map<string, Statement>();
  private readonly readers = new Map<string, MessageReader>();

  private readonly stmtInsertMessage: MessageReader;
  private readonly stmtGet: MessageReader;
  /** What a move's checks need of the current row, without reading all of it. */
  private readonly stmtState: Statement;
  private readonly stmtFindByMessageId: MessageReader;
  private readonly stmtFindByMessageIdAnyMailbox: Statement;
  private readonly stmtInsertEvent: Statement;
  private readonly stmtEvents: Statement;
  private readonly stmtDue: MessageReader;
  private readonly stmtCountsByState: Statement;
  private readonly stmtOldest: Statement;
  private readonly stmtGetAppointment: Statement;
  private readonly stmtRecordAppointment: Statement;
  private readonly stmtMailboxStatus: Statement;

  /**
   * Runs a function in an immediate transaction, or in a savepoint inside one. Made once:
   * better-sqlite3's `db.transaction(fn)` builds four wrapper functions for every call.
   */
  private readonly immediate: (fn: () => unknown) => unknown;

  constructor(readonly file: string, opts: LedgerOptions = {}) {
    this.now = opts.now ?? (() => new Date());
    this.db = openDatabase(file, opts);
    const db = this.db;
    const cols = Object.values(MESSAGE_COLUMNS).filter((c) => c !== 'id');
    this.stmtInsertMessage = new MessageReader(db.prepare(`INSERT INTO messages (${cols.join(', ')}) VALUES (${cols.map((c) => '@' + c).join(', ')}) RETURNING *`));
    this.stmtGet = new MessageReader(db.prepare('SELECT * FROM messages WHERE id = ?'));
    this.stmtState = db.prepare('SELECT direction, state FROM messages WHERE id = ?');
    this.stmtFindByMessageId = new MessageReader(db.prepare('SELECT * FROM messages WHERE mailbox = ? AND direction = ? AND message_id = ?'));
    this.stmtFindByMessageIdAnyMailbox = db.prepare('SELECT * FROM messages WHERE message_id = ? ORDER BY id LIMIT 1');
    this.stmtInsertEvent = db.prepare(
      'INSERT INTO events (message_row_id, at, type, from_state, to_state, detail) VALUES (?, ?, ?, ?, ?, ?)',
    );
    this.stmtEvents = db.prepare('SELECT * FROM events WHERE message_row_id = ? ORDER BY id');
    const due = `mailbox = @mailbox AND direction = @direction AND state IN (SELECT value FROM json_each(@states))
      AND (next_attempt_at IS NULL OR next_attempt_at <= @now)`;
    this.stmtDue = new MessageReader(db.prepare(`SELECT * FROM messages WHERE ${due} ORDER BY next_attempt_at, id LIMIT @limit`));
    this.stmtCountsByState = db.prepare(
      // message_counts (migration 5) is kept by triggers: a few rows to read, however big the ledger.
      `SELECT state, SUM(n) AS n FROM message_counts
       WHERE (@mailbox IS NULL OR mailbox = @mailbox) AND (@direction IS NULL OR direction = @direction)
       GROUP BY state HAVING SUM(n) > 0`,
    );
    // One state at a time: messages_age then gives the oldest first, where a list of states would sort them all.
    this.stmtOldest = db.prepare('SELECT * FROM messages WHERE mailbox = ? AND direction = ? AND state = ? ORDER BY created_at, id LIMIT 1');
    this.stmtGetAppointment = db.prepare('SELECT * FROM appointments WHERE appointment_key = ?');
    // Out-of-order replays never regress the record: only a newer (or equal) event replaces it.
    this.stmtRecordAppointment = db.prepare(
      `INSERT INTO appointments (appointment_key, direction, event_kind, trigger_event, start_at, status, at, message_row_id)
       VALUES (@key, @direction, @event_kind, @trigger_event, @start_at, @status, @at, @message_row_id)
       ON CONFLICT (appointment_key, direction) DO UPDATE SET
         event_kind = excluded.event_kind, trigger_event = excluded.trigger_event, start_at = excluded.start_at,
         status = excluded.status, at = excluded.at, message_row_id = excluded.message_row_id
       WHERE excluded.at >= appointments.at`,
    );
    this.stmtMailboxStatus = db.prepare('SELECT * FROM mailbox_status WHERE mailbox = ?');

    this.immediate = db.transaction((fn: () => unknown) => fn()).immediate;
  }

  private statement(sql: string): Statement {
    let stmt = this.prepared.get(sql);
    if (!stmt) this.prepared.set(sql, (stmt = this.db.prepare(sql)));
    return stmt;
  }

  private reader(sql: string): MessageReader {
    let reader = this.readers.get(sql);
    if (!reader) this.readers.set(sql, (reader = new MessageReader(this.db.prepare(sql))));
    return reader;
  }

  private currentState(id: number): RowState | undefined {
    return this.stmtState.get(id) as RowState | undefined;
  }

  private stamp(): string {
    return this.now().toISOString();
  }

  private insertEvent(id: number, at: string, type: string, from: MessageState | null, to: MessageState | null, detail?: object): void {
    this.stmtInsertEvent.run(id, at, type, from, to, detail === undefined ? null : JSON.stringify(detail));
  }

  insertMessage(row: NewMessage, event?: EventInput): MessageRow {
    const { recoveryMark, patch } = checkNewRow(row);
    const { direction, mailbox, state } = row;
    const values: Record<string, unknown> = {};
    for (const c of Object.values(MESSAGE_COLUMNS)) values[c] = null;
    for (const [col, value] of patchColumns(patch, PATCHABLE_FIELDS, MESSAGE_COLUMNS)) values[col] = value;
    const at = this.stamp();
    Object.assign(values, { direction, mailbox, state, created_at: at, updated_at: at });
    values.message_type ??= 'DATA';
    values.chunks_done ??= 0;
    values.compress ??= 0;
    values.attempts ??= 0;
    values.processing_starts ??= 0;
    values.claim_id ??= newClaimId();
    values.recovery_mark = recoveryMark;
    delete values.id;
    return this.transaction(() => {
      let created: MessageRow;
      try {
        created = this.stmtInsertMessage.get(values) as MessageRow;
      } catch (err) {
        if (isUniqueViolation(err)) throw duplicateOnInsert(row, values.message_id, err);
        throw err;
      }
      this.insertEvent(created.id, at, event?.type ?? 'created', null, state, event?.detail);
      return created;
    });
  }

  transition(id: number, to: MessageState, opts: TransitionOptions = {}): MessageRow {
    return this.transaction(() => this.transitionRow(id, to, opts));
  }

  private transitionRow(id: number, to: MessageState, opts: TransitionOptions): MessageRow {
    const at = this.stamp();
    const { row: current, mark, patch } = checkMove(id, this.currentState(id), to, opts, at);
    const updated = this.updateRow(id, patch, at, { from: current.state, to }, mark);
    // Unreachable under the immediate transaction's lock; kept as a guard should the isolation ever change.
    if (!updated) throw conflict(`message ${id} changed state while being moved to ${to}`);
    this.insertEvent(id, at, opts.event?.type ?? 'transition', current.state, to, opts.event?.detail);
    return updated;
  }

  setMark(id: number, mark: RecoveryMark | null, opts: { from?: MessageState[]; patch?: MessagePatch; event?: EventInput } = {}): MessageRow {
    return this.transaction(() => {
      checkMarkChange(id, this.currentState(id), mark, opts.from);
      const at = this.stamp();
      const updated = this.updateRow(id, opts.patch ?? {}, at, undefined, mark);
      if (!updated) throw notFound(id);
      if (opts.event) this.insertEvent(id, at, opts.event.type, null, null, { ...opts.event.detail, mark });
      return updated;
    });
  }

  update(id: number, patch: MessagePatch, event?: EventInput): MessageRow {
    return this.transaction(() => {
      const at = this.stamp();
      const updated = this.updateRow(id, patch, at);
      if (!updated) throw notFound(id);
      if (event) this.insertEvent(id, at, event.type, null, null, event.detail);
      return updated;
    });
  }

  /** UPDATE … RETURNING with the patch's columns; statements are cached per column set. */
  private updateRow(id: number, patch: MessagePatch, at: string, move?: { from: MessageState; to: MessageState }, mark?: RecoveryMark | null): MessageRow | undefined {
    const pairs = patchColumns(patch, PATCHABLE_FIELDS, MESSAGE_COLUMNS);
    if (mark !== undefined) pairs.push(['recovery_mark', mark]);
    const key = pairs.map(([c]) => c).join(',') + (move ? '|move' : '');
    let stmt = this.updateStatements.get(key);
    if (!stmt) {
      const sets = pairs.map(([c]) => `${c} = @${c}`);
      sets.push('updated_at = @updated_at');
      if (move) sets.push('state = @to');
      stmt = new MessageReader(this.db.prepare(`UPDATE messages SET ${sets.join(', ')} WHERE id = @id${move ? ' AND state = @from' : ''} RETURNING *`));
      this.updateStatements.set(key, stmt);
    }
    const params: Record<string, unknown> = Object.fromEntries(pairs);
    params.id = id;
    params.updated_at = at;
    if (move) Object.assign(params, move);
    try {
      return stmt.get(params);
    } catch (err) {
      if (isUniqueViolation(err)) throw duplicateOnUpdate(params.message_id, err);
      throw err;
    }
  }

  recordEvent(id: number, type: string, detail?: object): void {
    if (!this.currentState(id)) throw notFound(id);
    this.insertEvent(id, this.stamp(), type, null, null, detail);
  }

  get(id: number): MessageRow | undefined {
    return this.stmtGet.get(id);
  }

  findByMessageId(mailbox: string, direction: Direction, messageId: string): MessageRow | undefined {
    return this.stmtFindByMessageId.get(mailbox, direction, messageId);
  }

  findByClaimId(claimId: string): MessageRow | undefined {
    const row = this.db.prepare('SELECT * FROM messages WHERE claim_id = ?').get(claimId) as Row | undefined;
    return row ? messageFromSql(row) : undefined;
  }

  findByRef(ref: string): MessageRow | undefined {
    const trimmed = ref.trim();
    const id = refRowId(trimmed);
    const byId = id === undefined ? undefined : this.get(id);
    if (byId) return byId;
    const row = this.stmtFindByMessageIdAnyMailbox.get(trimmed) as Row | undefined;
    return row ? messageFromSql(row) : undefined;
  }

  /**
   * The WHERE clause of a filter, after `messages` (and the index to read, for the filters a
   * partial index of migration 8 answers: named, so statistics can never steer recovery back
   * to reading every row of a state).
   */
  private where(filter: Omit<ListFilter, 'limit'>): { sql: string; params: Record<string, unknown> } {
    const clauses: string[] = [];
    const params: Record<string, unknown> = {};
    const add = (clause: string, name: string, value: unknown) => {
      clauses.push(clause);
      params[name] = value;
    };
    if (filter.state) add('state = @state', 'state', filter.state);
    if (filter.direction) add('direction = @direction', 'direction', filter.direction);
    if (filter.mailbox) add('mailbox = @mailbox', 'mailbox', filter.mailbox);
    if (filter.workflow) add('workflow_id = @workflow', 'workflow', filter.workflow);
    if (filter.since) add('created_at >= @since', 'since', toSql(filter.since));
    if (filter.unacknowledged) clauses.push("acknowledged_at IS NULL AND direction = 'in'");
    if (filter.recoveryMark) add('recovery_mark = @mark', 'mark', filter.recoveryMark);
    // A prefix compared as text: LIKE would read _ and % in the path as wildcards.
    if (filter.payloadUnder) add('substr(payload_path, 1, length(@dir)) = @dir', 'dir', filter.payloadUnder);
    const index = filter.recoveryMark ? 'INDEXED BY messages_marked ' : filter.unacknowledged ? 'INDEXED BY messages_unacknowledged ' : '';
    return { sql: index + (clauses.length ? `WHERE ${clauses.join(' AND ')}` : ''), params };
  }

  list(filter: ListFilter = {}): MessageRow[] {
    const { sql, params } = this.where(filter);
    const limit = filter.limit ?? DEFAULT_LIST_LIMIT;
    return this.reader(`SELECT * FROM messages ${sql} ORDER BY id DESC LIMIT @limit`).all({ ...params, limit });
  }

  *iterate(filter: Omit<ListFilter, 'limit'> = {}): IterableIterator<MessageRow> {
    const { sql, params } = this.where(filter);
    // A statement of its own: a cached one would be busy for a second iteration of the same filter (another mailbox's).
    yield* new MessageReader(this.db.prepare(`SELECT * FROM messages ${sql} ORDER BY id`)).iterate(params);
  }

  browse(filter: BrowseFilter): MessageRow[] {
    const clauses: string[] = [];
    const params: Record<string, unknown> = { limit: filter.limit };
    const add = (clause: string, name: string, value: unknown) => {
      if (value === undefined || value === '') return;
      clauses.push(clause);
      params[name] = value;
    };
    const states = filter.state === undefined ? [] : ([] as MessageState[]).concat(filter.state);
    // One state: `=` lets the (state) index give rows newest first without a sort.
    if (states.length === 1) add('state = @state', 'state', states[0]);
    else if (states.length > 1) add('state IN (SELECT value FROM json_each(@states))', 'states', JSON.stringify(states));
    // Unary + keeps SQLite off the work-queue index for these broad columns: walking ids newest
    // first stops after one page, where that index would collect and sort every matching row.
    add('+mailbox = @mailbox', 'mailbox', filter.mailbox);
    add('+direction = @direction', 'direction', filter.direction);
    add('workflow_id = @workflow', 'workflow', filter.workflow);
    add('message_id = @messageId', 'messageId', filter.messageId);
    add('local_id = @localId', 'localId', filter.localId);
    // A substring cannot use an index for lookup, but scanning the small file-name index beats scanning the table.
    add('id IN (SELECT id FROM messages WHERE file_name IS NOT NULL AND instr(file_name, @fileName) > 0)', 'fileName', filter.fileName);
    // With a date range, "newest first" walks the created_at index backwards, so an old range is
    // reached directly; the page cursor is then (created_at, id) of the last row shown.
    const byTime = filter.from !== undefined || filter.to !== undefined;
    add('created_at >= @from', 'from', filter.from && toSql(filter.from));
    add('created_at < @to', 'to', filter.to && toSql(filter.to));
    if (byTime) add('(created_at, id) < (SELECT created_at, id FROM messages WHERE id = @before)', 'before', filter.before);
    else add('id < @before', 'before', filter.before);
    const where = clauses.length ? `WHERE ${clauses.join(' AND ')}` : '';
    const order = byTime ? 'created_at DESC, id DESC' : 'id DESC';
    return (this.db.prepare(`SELECT * FROM messages ${where} ORDER BY ${order} LIMIT @limit`).all(params) as Row[]).map(messageFromSql);
  }

  linkedReports(messageId: string): MessageRow[] {
    const rows = this.db.prepare("SELECT * FROM messages WHERE linked_message_id = ? AND message_type = 'REPORT' ORDER BY id").all(messageId) as Row[];
    return rows.map(messageFromSql);
  }

  throughput(since: Date, unit: ThroughputUnit): ThroughputRow[] {
    const width = unit === 'hour' ? 13 : 10;
    // The ORs are the partial index's own condition, word for word (migration 10): SQLite uses a
    // partial index only when the query's WHERE implies the index's.
    return this.db
      .prepare(
        `SELECT substr(at, 1, ${width}) AS period,
           SUM(to_state = 'sent') AS sent, SUM(to_state = 'delivered') AS received,
           SUM(to_state IN ('failed', 'quarantined', 'undeliverable')) AS failed
         FROM events
         WHERE (to_state = 'sent' OR to_state = 'delivered' OR to_state = 'failed' OR to_state = 'quarantined' OR to_state = 'undeliverable')
           AND at >= ?
         GROUP BY period ORDER BY period`,
      )
      .all(toSql(since)) as ThroughputRow[];
  }

  events(id: number): EventRow[] {
    return (this.stmtEvents.all(id) as Row[]).map(eventFromSql);
  }

  countsByState(mailbox?: string, direction?: Direction): Partial<Record<MessageState, number>> {
    const out: Partial<Record<MessageState, number>> = {};
    const rows = this.stmtCountsByState.all({ mailbox: mailbox ?? null, direction: direction ?? null }) as Array<{ state: MessageState; n: number }>;
    for (const r of rows) out[r.state] = r.n;
    return out;
  }

  oldest(mailbox: string, direction: Direction, states: MessageState[]): MessageRow | undefined {
    let oldest: Row | undefined;
    for (const state of states) {
      const row = this.stmtOldest.get(mailbox, direction, state) as Row | undefined;
      if (row && (!oldest || (row.created_at as string) < (oldest.created_at as string) || (row.created_at === oldest.created_at && (row.id as number) < (oldest.id as number)))) oldest = row;
    }
    return oldest ? messageFromSql(oldest) : undefined;
  }

  due(mailbox: string, direction: Direction, states: MessageState[], now: Date, limit: number): MessageRow[] {
    return this.stmtDue.all({ mailbox, direction, states: JSON.stringify(states), now: now.toISOString(), limit });
  }

  getAppointment(key: string): AppointmentRecord | undefined {
    return appointmentFromRows(key, this.stmtGetAppointment.all(key) as Row[]);
  }

  recordAppointment(key: string, direction: Direction, rec: AppointmentInput): void {
    this.stmtRecordAppointment.run({
      key,
      direction,
      event_kind: rec.eventKind,
      trigger_event: toSql(rec.trigger),
      start_at: toSql(rec.startAt),
      status: toSql(rec.status),
      at: toSql(rec.at ?? this.now()),
      message_row_id: toSql(rec.messageRowId),
    });
  }

  findEarlierCopy(q: EarlierCopyQuery): MessageRow | undefined {
    const match = q.businessId === null ? 'received_sha256 = @sha AND business_id IS NULL' : 'business_id = @businessId';
    return this.reader(
      `SELECT * FROM messages WHERE mailbox = @mailbox AND direction = 'in' AND peer = @peer AND ${match}
       AND workflow_id IS @workflowId AND created_at >= @since AND id != @excludeId
       AND state IN (SELECT value FROM json_each(@states)) ORDER BY id LIMIT 1`,
    ).get({ mailbox: q.mailbox, peer: q.peer, businessId: q.businessId, sha: q.receivedSha256, workflowId: q.workflowId, since: q.since.toISOString(), excludeId: q.excludeId, states: JSON.stringify(q.states) });
  }

  latestEvent(mailbox: string, peer: string, key: string): LatestEvent | undefined {
    const row = this.statement('SELECT event_time, row_id, sha256 FROM latest_events WHERE mailbox = ? AND peer = ? AND key = ?').get(mailbox, peer, key) as Row | undefined;
    return row ? { eventTime: row.event_time as string, rowId: row.row_id as number, sha256: row.sha256 as string | null } : undefined;
  }

  recordLatestEvent(mailbox: string, peer: string, key: string, e: LatestEvent): void {
    this.statement(
      `INSERT INTO latest_events (mailbox, peer, key, event_time, row_id, sha256) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (mailbox, peer, key) DO UPDATE SET event_time = excluded.event_time, row_id = excluded.row_id, sha256 = excluded.sha256
       WHERE excluded.event_time > latest_events.event_time`,
    ).run(mailbox, peer, key, e.eventTime, e.rowId, e.sha256);
  }

  findSentByBusinessId(mailbox: string, peer: string, businessId: string): MessageRow | undefined {
    const row = this.statement("SELECT * FROM messages WHERE mailbox = ? AND direction = 'out' AND peer = ? AND business_id = ? ORDER BY state IN ('sent', 'acknowledged') DESC, id DESC LIMIT 1").get(mailbox, peer, businessId) as Row | undefined;
    return row ? messageFromSql(row) : undefined;
  }

  overdueAcks(mailbox: string, now: Date, limit: number): MessageRow[] {
    const rows = this.statement(`SELECT * FROM ${OVERDUE} ORDER BY ack_due_at LIMIT ?`).all(mailbox, now.toISOString(), limit) as Row[];
    return rows.map(messageFromSql);
  }

  countOverdueAcks(mailbox: string, now: Date): number {
    return (this.statement(`SELECT COUNT(*) AS n FROM ${OVERDUE}`).get(mailbox, now.toISOString()) as { n: number }).n;
  }

  setMessageKeys(rowId: number, keys: string[]): void {
    const insert = this.statement('INSERT OR IGNORE INTO message_keys (row_id, key) VALUES (?, ?)');
    this.transaction(() => {
      for (const key of keys) insert.run(rowId, key);
    });
  }

  earlierUnsent(row: MessageRow): MessageRow | undefined {
    if (!row.eventTime) return undefined;
    const found = this.statement(
      `SELECT m.* FROM message_keys k JOIN message_keys o ON o.key = k.key AND o.row_id != k.row_id JOIN messages m ON m.id = o.row_id
       WHERE k.row_id = ? AND m.mailbox = ? AND m.direction = 'out' AND m.state IN ('claiming', 'queued', 'uploading', 'needs_review')
       AND m.event_time < ? ORDER BY m.event_time LIMIT 1`,
    ).get(row.id, row.mailbox, row.eventTime) as Row | undefined;
    return found ? messageFromSql(found) : undefined;
  }

  mailboxStatus(mailbox: string): MailboxStatus | undefined {
    const row = this.stmtMailboxStatus.get(mailbox) as Row | undefined;
    return row ? mailboxStatusFromSql(row) : undefined;
  }

  setMailboxStatus(mailbox: string, patch: MailboxStatusPatch): void {
    const pairs = patchColumns(patch, MAILBOX_STATUS_FIELDS, MAILBOX_STATUS_COLUMNS);
    const key = pairs.map(([c]) => c).join(',');
    let stmt = this.statusStatements.get(key);
    if (!stmt) {
      const cols = pairs.map(([c]) => c);
      const update = cols.length ? `DO UPDATE SET ${cols.map((c) => `${c} = excluded.${c}`).join(', ')}` : 'DO NOTHING';
      stmt = this.db.prepare(
        `INSERT INTO mailbox_status (mailbox${cols.map((c) => ', ' + c).join('')}) VALUES (@mailbox${cols.map((c) => ', @' + c).join('')})
         ON CONFLICT (mailbox) ${update}`,
      );
      this.statusStatements.set(key, stmt);
    }
    stmt.run({ mailbox, ...Object.fromEntries(pairs) });
  }

  /** Groups writes into one commit (one fsync): nested calls join the outer transaction. */
  transaction<T>(fn: () => T): T {
    return this.immediate(fn) as T;
  }

  purge(opts: PurgeOptions): PurgeResult {
    const cutoff = opts.olderThan.toISOString();
    const limit = opts.batchRows ?? PURGE_BATCH;
    const payloads: string[] = [];
    let batches = 0;
    /** Runs `batch` until it finds less than a full batch (true) or maxBatches is reached (false). */
    const drain = (batch: () => number): boolean => {
      for (;;) {
        if (this.transaction(batch) < limit) return true;
        if (opts.maxBatches !== undefined && ++batches >= opts.maxBatches) return false;
      }
    };
    // A purge of rows deletes first and then clears the payloads of rows it keeps: had it cleared
    // first, every call of a stepped purge would scan again past rows it is about to delete.
    if (opts.payloadsOnly) return { rows: 0, payloads, done: drain(this.clearPayloadsBatch(cutoff, opts, limit, payloads)) };
    let rows = 0;
    const deleteBatch = this.deleteSettledBatch(cutoff, limit, payloads);
    const deleted = this.withoutForeignKeyChecks(() =>
      drain(() => {
        const n = deleteBatch();
        rows += n;
        return n;
      }),
    );
    if (!deleted || !drain(this.clearPayloadsBatch(cutoff, opts, limit, payloads))) return { rows, payloads, done: false };
    this.statement('DELETE FROM appointments WHERE at < ?').run(cutoff);
    return { rows, payloads, done: true };
  }

  /** One batch of payload copies the daemon no longer needs: forgotten here, the caller deletes the files. */
  private clearPayloadsBatch(cutoff: string, opts: PurgeOptions, limit: number, payloads: string[]): () => number {
    const at = opts.now.toISOString();
    const states = JSON.stringify(payloadStatesToClear(opts.payloadsOnly));
    // Named: the state test's OR would otherwise draw SQLite to messages_state_updated and a sort of every older row.
    const select = this.statement(
      `SELECT id, payload_path, ctl_path FROM messages INDEXED BY messages_payload_age
       WHERE (payload_path IS NOT NULL OR ctl_path IS NOT NULL) AND (direction = 'out' OR state = 'quarantined') AND updated_at < @cutoff
         AND ${STATE_FOR_DIRECTION}
       ORDER BY updated_at LIMIT @limit`,
    ).raw();
    // One statement each for the batch, not two a row: a payloads-only purge takes 17% fewer instructions (docs/performance.md §5).
    const clear = this.statement('UPDATE messages SET payload_path = NULL, ctl_path = NULL WHERE id IN (SELECT value FROM json_each(?))');
    const record = this.statement(
      "INSERT INTO events (message_row_id, at, type, from_state, to_state, detail) SELECT value, ?, 'payload_purged', NULL, NULL, NULL FROM json_each(?)",
    );
    return () => {
      const rows = select.all({ cutoff, states, limit }) as Array<[id: number, payloadPath: string | null, ctlPath: string | null]>;
      if (rows.length === 0) return 0;
      const ids = JSON.stringify(rows.map(([id]) => id));
      clear.run(ids);
      record.run(at, ids);
      for (const [, payloadPath, ctlPath] of rows) for (const p of [payloadPath, ctlPath]) if (p) payloads.push(p);
      return rows.length;
    };
  }

  /**
   * One batch of settled rows and their events; rows still in play are never selected. The batch
   * does what the foreign keys would (their events first, their ordering keys, their appointments'
   * links), each in one statement for the batch, and the purge runs it with SQLite's per-row
   * checks off (withoutForeignKeyChecks): they cost ~12% of a purge's instructions (docs/performance.md §5).
   */
  private deleteSettledBatch(cutoff: string, limit: number, payloads: string[]): () => number {
    const select = this.statement(
      `SELECT id FROM messages
       WHERE state IN (SELECT value FROM json_each(@settled)) AND updated_at < @cutoff
       LIMIT @limit`,
    ).pluck();
    // Only payloads that are ours (see PAYLOAD_PURGE_STATES); in/ files belong to the receiving application.
    // Most rows this old have none left (payload retention is shorter), so few strings reach JavaScript.
    const ours = this.statement(
      `SELECT payload_path, ctl_path FROM messages
       WHERE id IN (SELECT value FROM json_each(@ids)) AND (payload_path IS NOT NULL OR ctl_path IS NOT NULL)
         AND ${STATE_FOR_DIRECTION}`,
    ).raw();
    const setGuard = this.statement('UPDATE purge_guard SET active = ? WHERE id = 1');
    const dependents = [
      'DELETE FROM events WHERE message_row_id IN (SELECT value FROM json_each(?))',
      'DELETE FROM message_keys WHERE row_id IN (SELECT value FROM json_each(?))',
      'UPDATE appointments SET message_row_id = NULL WHERE message_row_id IN (SELECT value FROM json_each(?))',
    ].map((sql) => this.statement(sql));
    const deleteMessages = this.statement('DELETE FROM messages WHERE id IN (SELECT value FROM json_each(?))');
    const settled = JSON.stringify(SETTLED_STATES);
    const states = JSON.stringify(PAYLOAD_PURGE_STATES);
    return () => {
      const found = select.all({ settled, cutoff, limit }) as number[];
      if (found.length === 0) return 0;
      const ids = JSON.stringify(found);
      for (const paths of ours.all({ ids, states }) as Array<Array<string | null>>) for (const p of paths) if (p) payloads.push(p);
      setGuard.run(1);
      for (const statement of dependents) statement.run(ids);
      deleteMessages.run(ids);
      setGuard.run(0);
      return found.length;
    };
  }

  /**
   * Runs `fn` with SQLite's foreign-key checks off, then on again. Only for work that does the
   * checks' work itself; inside a transaction the pragma is a no-op, so there they stay on.
   */
  private withoutForeignKeyChecks<T>(fn: () => T): T {
    if (this.db.inTransaction || !this.db.pragma('foreign_keys', { simple: true })) return fn();
    this.db.pragma('foreign_keys = OFF');
    try {
      return fn();
    } finally {
      this.db.pragma('foreign_keys = ON');
    }
  }

  /** SQLite online backup into a 0600 temp file, then an atomic rename over `file`. */
  async backup(file: string): Promise<void> {
    const target = path.resolve(file);
    if (target === path.resolve(this.file)) throw new MeshdError('LEDGER_BACKUP_FAILED', 'the backup file cannot be the ledger itself', 'choose another path');
    const tmp = `${target}.${process.pid}.tmp`;
    try {
      fs.rmSync(tmp, { force: true });
      fs.closeSync(fs.openSync(tmp, 'wx', 0o600));
      await this.db.backup(tmp);
      fs.chmodSync(tmp, 0o600);
      const fd = fs.openSync(tmp, 'r+');
      try {
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, target);
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      throw new MeshdError(
        'LEDGER_BACKUP_FAILED',
        `backup to ${target} failed: ${err instanceof Error ? err.message : String(err)}`,
        'check that the directory exists and is writable, and that there is free space',
        'failure',
        { cause: err },
      );
    }
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

/**
 * A fresh claim id (32 hex): spool and temp files are named by it, never by a row id. The first
 * 12 hex digits are the time in milliseconds and the other 20 (80 bits) are random, so the name
 * stays unguessable while claims made together sit together in the claim-id index: a retention
 * purge of old rows then deletes from one end of that index instead of touching a random page
 * per row (2 × faster at a million rows, docs/performance.md §5).
 */
export function newClaimId(now = Date.now()): string {
  return now.toString(16).padStart(12, '0') + randomBytes(10).toString('hex');
}

/**
 * Sizes the next purge batch so that one takes about PURGE_BATCH_MS: a bigger batch shares index
 * pages and the commit's fsync among more rows, but holds the event loop (and the write lock)
 * for longer. The same rows cost 3 × more on a slow disk or a busy machine than an idle one.
 */
export function nextBatchRows(rows: number, tookMs: number): number {
  if (tookMs < PURGE_BATCH_MS / 2) return Math.min(rows * 2, PURGE_BATCH_MAX);
  if (tookMs > PURGE_BATCH_MS * 1.5) return Math.max(Math.floor(rows / 2), PURGE_BATCH_MIN);
  return rows;
}

/**
 * A purge one batch (one short transaction) at a time, handing the event loop back in between:
 * a retention purge of a big ledger never holds up a running cycle for more than a batch.
 * `stop()` true ends it early (the ledger is about to close); what was purged so far is
 * returned, for its files.
 */
export async function purgeInSteps(ledger: LedgerStore, opts: Omit<PurgeOptions, 'maxBatches' | 'batchRows'>, stop: () => boolean = () => false): Promise<Omit<PurgeResult, 'done'>> {
  const total = { rows: 0, payloads: [] as string[] };
  let batchRows = PURGE_BATCH;
  for (;;) {
    const started = performance.now();
    const r = ledger.purge({ ...opts, maxBatches: 1, batchRows });
    batchRows = nextBatchRows(batchRows, performance.now() - started);
    total.rows += r.rows;
    total.payloads.push(...r.payloads);
    if (r.done) return total;
    await new Promise((resolve) => setImmediate(resolve));
    if (stop()) return total;
  }
}

/** Opens (creating and migrating if needed) the ledger at `file`. */
export function openLedger(file: string, opts: LedgerOptions = {}): SqliteLedger {
  return new SqliteLedger(file, opts);
}

/** Where the ledger lives under the configured data directory. */
export function ledgerPath(dataDir: string): string {
  return path.join(dataDir, 'meshd.db');
}
