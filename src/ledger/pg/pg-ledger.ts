import { MeshdError } from '../../errors';
import {
  MAILBOX_STATUS_COLUMNS,
  MESSAGE_COLUMNS,
  PATCHABLE_FIELDS,
  eventFromSql,
  mailboxStatusFromSql,
  messageFromSql,
  patchColumns,
  toSql,
} from '../columns';
import { newClaimId } from '../sqlite-ledger';
import {
  type Direction,
  MessageState,
  PAYLOAD_PURGE_STATES,
  SETTLED_STATES,
  payloadStatesToClear,
  type RecoveryMark,
} from '../states';
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
} from '../types';
import { PgQueryError, type PgRow, SyncPg } from './bridge';
import { runPgMigrations } from './schema';
import { appointmentFromRows, checkMarkChange, checkMove, checkNewRow, conflict, duplicateOnInsert, duplicateOnUpdate, notFound, refRowId } from '../rules';

const DEFAULT_LIST_LIMIT = 100;
/** Purge and iterate work in batches: short transactions, bounded memory. */
const BATCH = 500;
const MAILBOX_STATUS_FIELDS = new Set(Object.keys(MAILBOX_STATUS_COLUMNS));
const UNIQUE_VIOLATION = '23505';

/**
 * Runs inside every write transaction for a mailbox, before the write, with the transaction's
 * own connection; throws to refuse the write. The daemon's leases (daemon/lease.ts) check the
 * caller's fencing number here, so a host that lost a mailbox can never commit for it again.
 */
export type WriteFence = (mailbox: string, query: (sql: string, params: unknown[]) => PgRow[]) => void;

export interface PgLedgerOptions {
  /** Refuse a database without the ledger's tables instead of creating them (read-only CLI commands). */
  create?: boolean;
  /** Injectable clock for stamps (tests). */
  now?: () => Date;
}

function isUniqueViolation(err: unknown): boolean {
  return err instanceof PgQueryError && err.code === UNIQUE_VIOLATION;
}

/** PostgreSQL's booleans and jsonb as SQLite returns them, so columns.ts maps both backends' rows. */
function sqliteShape(r: PgRow): PgRow {
  if (typeof r.compress === 'boolean') r.compress = r.compress ? 1 : 0;
  if (typeof r.last_poll_ok === 'boolean') r.last_poll_ok = r.last_poll_ok ? 1 : 0;
  if (r.detail !== null && typeof r.detail === 'object') r.detail = JSON.stringify(r.detail);
  return r;
}

const message = (r: PgRow): MessageRow => messageFromSql(sqliteShape(r));

/**
 * The PostgreSQL ledger (several meshd hosts sharing one database): the same contract as
 * SqliteLedger, with row locks where SQLite relies on its single writer. Synchronous through
 * SyncPg; one connection per instance.
 */
/** Sent rows of a mailbox ($2) still waiting for a business ACK due by $1 (messages_ack_waiting, migration 7). */
const OVERDUE = "ack_due_at IS NOT NULL AND ack_due_at <= $1 AND mailbox = $2 AND direction = 'out' AND state IN ('sent', 'acknowledged')";

export class PgLedger implements LedgerStore {
  private readonly db: SyncPg;
  private readonly now: () => Date;
  private depth = 0;
  private fence: WriteFence | undefined;

  constructor(
    url: string,
    opts: PgLedgerOptions = {},
    /** How the database is named in messages (never the URL: it may hold a password). */
    readonly where = 'the PostgreSQL database',
  ) {
    this.now = opts.now ?? (() => new Date());
    this.db = new SyncPg(url);
    try {
      runPgMigrations(this.db, where, { create: opts.create });
    } catch (err) {
      this.db.close();
      throw err;
    }
  }

  /** Fences every later write (undefined: unfenced, as the CLI's operator commands write). */
  setWriteFence(fence: WriteFence | undefined): void {
    this.fence = fence;
  }

  private fenced(mailbox: string): void {
    this.fence?.(mailbox, (sql, params) => this.rows(sql, params));
  }

  /** The fence for the mailbox of row `id` (which never changes), if there is a fence and a row. */
  private fencedRow(id: number): void {
    if (!this.fence) return;
    const [row] = this.rows('SELECT mailbox FROM messages WHERE id = $1', [id]);
    if (row) this.fenced(row.mailbox as string);
  }

  private stamp(): string {
    return this.now().toISOString();
  }

  private rows(sql: string, params: unknown[] = []): PgRow[] {
    return this.db.rows(sql, params);
  }

  private insertEvent(id: number, at: string, type: string, from: MessageState | null, to: MessageState | null, detail?: object): void {
    this.rows('INSERT INTO events (message_row_id, at, type, from_state, to_state, detail) VALUES ($1, $2, $3, $4, $5, $6)', [
      id,
      at,
      type,
      from,
      to,
      detail === undefined ? null : JSON.stringify(detail),
    ]);
  }

  /** The same event for many rows in one statement, in id order. */
  private insertEvents(ids: number[], at: string, type: string, from: MessageState | null, to: MessageState | null, detail?: object): void {
    if (ids.length === 0) return;
    this.rows(
      `INSERT INTO events (message_row_id, at, type, from_state, to_state, detail)
       SELECT id, $2, $3, $4, $5, $6 FROM unnest($1::bigint[]) WITH ORDINALITY AS t (id, n) ORDER BY n`,
      [ids, at, type, from, to, detail === undefined ? null : JSON.stringify(detail)],
    );
  }

  insertMessage(row: NewMessage, event?: EventInput): MessageRow {
    const { recoveryMark, patch } = checkNewRow(row);
    const { direction, mailbox, state } = row;
    const values: Record<string, unknown> = {};
    for (const [col, value] of patchColumns(patch, PATCHABLE_FIELDS, MESSAGE_COLUMNS)) values[col] = value;
    const at = this.stamp();
    Object.assign(values, { direction, mailbox, state, created_at: at, updated_at: at, recovery_mark: recoveryMark });
    values.claim_id ??= newClaimId();
    // Columns left out take their defaults (message_type DATA, counters 0, compress false).
    const cols = Object.keys(values).filter((c) => values[c] !== null || !['message_type', 'chunks_done', 'compress', 'attempts', 'processing_starts'].includes(c));
    return this.transaction(() => {
      this.fenced(mailbox);
      let inserted: PgRow;
      try {
        [inserted] = this.rows(
          `INSERT INTO messages (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')}) RETURNING *`,
          cols.map((c) => values[c]),
        );
      } catch (err) {
        if (isUniqueViolation(err)) throw duplicateOnInsert(row, values.message_id, err);
        throw err;
      }
      const created = message(inserted);
      this.insertEvent(created.id, at, event?.type ?? 'created', null, state, event?.detail);
      return created;
    });
  }

  /** The row, locked until the transaction ends: concurrent hosts move it one at a time. */
  private lockRow(id: number): MessageRow | undefined {
    const [row] = this.rows('SELECT * FROM messages WHERE id = $1 FOR UPDATE', [id]);
    return row ? message(row) : undefined;
  }

  transition(id: number, to: MessageState, opts: TransitionOptions = {}): MessageRow {
    return this.transaction(() => {
      const at = this.stamp();
      const { row: current, mark, patch } = checkMove(id, this.lockRow(id), to, opts, at);
      this.fenced(current.mailbox);
      const updated = this.updateRow(id, patch, at, { from: current.state, to }, mark);
      if (!updated) throw conflict(`message ${id} changed state while being moved to ${to}`);
      this.insertEvent(id, at, opts.event?.type ?? 'transition', current.state, to, opts.event?.detail);
      return updated;
    });
  }

  setMark(id: number, mark: RecoveryMark | null, opts: { from?: MessageState[]; patch?: MessagePatch; event?: EventInput } = {}): MessageRow {
    return this.transaction(() => {
      this.fenced(checkMarkChange(id, this.lockRow(id), mark, opts.from).mailbox);
      const at = this.stamp();
      const updated = this.updateRow(id, opts.patch ?? {}, at, undefined, mark);
      if (!updated) throw notFound(id);
      if (opts.event) this.insertEvent(id, at, opts.event.type, null, null, { ...opts.event.detail, mark });
      return updated;
    });
  }

  update(id: number, patch: MessagePatch, event?: EventInput): MessageRow {
    return this.transaction(() => {
      this.fencedRow(id);
      const at = this.stamp();
      const updated = this.updateRow(id, patch, at);
      if (!updated) throw notFound(id);
      if (event) this.insertEvent(id, at, event.type, null, null, event.detail);
      return updated;
    });
  }

  private updateRow(id: number, patch: MessagePatch, at: string, move?: { from: MessageState; to: MessageState }, mark?: RecoveryMark | null): MessageRow | undefined {
    const pairs = patchColumns(patch, PATCHABLE_FIELDS, MESSAGE_COLUMNS);
    if (mark !== undefined) pairs.push(['recovery_mark', mark]);
    pairs.push(['updated_at', at]);
    if (move) pairs.push(['state', move.to]);
    const params = pairs.map(([, v]) => v);
    const sets = pairs.map(([c], i) => `${c} = $${i + 1}`);
    params.push(id);
    let where = `id = $${params.length}`;
    if (move) {
      params.push(move.from);
      where += ` AND state = $${params.length}`;
    }
    try {
      const [row] = this.rows(`UPDATE messages SET ${sets.join(', ')} WHERE ${where} RETURNING *`, params);
      return row ? message(row) : undefined;
    } catch (err) {
      if (isUniqueViolation(err)) throw duplicateOnUpdate(patch.messageId, err);
      throw err;
    }
  }

  recordEvent(id: number, type: string, detail?: object): void {
    this.transaction(() => {
      if (!this.get(id)) throw notFound(id);
      this.fencedRow(id);
      this.insertEvent(id, this.stamp(), type, null, null, detail);
    });
  }

  get(id: number): MessageRow | undefined {
    const [row] = this.rows('SELECT * FROM messages WHERE id = $1', [id]);
    return row ? message(row) : undefined;
  }

  findByMessageId(mailbox: string, direction: Direction, messageId: string): MessageRow | undefined {
    const [row] = this.rows('SELECT * FROM messages WHERE mailbox = $1 AND direction = $2 AND message_id = $3', [mailbox, direction, messageId]);
    return row ? message(row) : undefined;
  }

  findByClaimId(claimId: string): MessageRow | undefined {
    const [row] = this.rows('SELECT * FROM messages WHERE claim_id = $1', [claimId]);
    return row ? message(row) : undefined;
  }

  findByRef(ref: string): MessageRow | undefined {
    const trimmed = ref.trim();
    const id = refRowId(trimmed);
    const byId = id === undefined ? undefined : this.get(id);
    if (byId) return byId;
    const [row] = this.rows('SELECT * FROM messages WHERE message_id = $1 ORDER BY id LIMIT 1', [trimmed]);
    return row ? message(row) : undefined;
  }

  private filterSql(filter: Omit<ListFilter, 'limit'>, params: unknown[]): string {
    const clauses: string[] = [];
    const add = (clause: string, value: unknown) => {
      params.push(value);
      clauses.push(clause.replace('?', `$${params.length}`));
    };
    if (filter.state) add('state = ?', filter.state);
    if (filter.direction) add('direction = ?', filter.direction);
    if (filter.mailbox) add('mailbox = ?', filter.mailbox);
    if (filter.workflow) add('workflow_id = ?', filter.workflow);
    if (filter.since) add('created_at >= ?', toSql(filter.since));
    if (filter.unacknowledged) clauses.push("acknowledged_at IS NULL AND direction = 'in'");
    if (filter.recoveryMark) add('recovery_mark = ?', filter.recoveryMark);
    if (filter.payloadUnder) add('starts_with(payload_path, ?)', filter.payloadUnder);
    return clauses.length ? `WHERE ${clauses.join(' AND ')}` : '';
  }

  list(filter: ListFilter = {}): MessageRow[] {
    const params: unknown[] = [];
    const where = this.filterSql(filter, params);
    params.push(filter.limit ?? DEFAULT_LIST_LIMIT);
    return this.rows(`SELECT * FROM messages ${where} ORDER BY id DESC LIMIT $${params.length}`, params).map(message);
  }

  /** Pages by id (keyset), so memory stays bounded; each page is its own snapshot. */
  *iterate(filter: Omit<ListFilter, 'limit'> = {}): IterableIterator<MessageRow> {
    let after = 0;
    for (;;) {
      const params: unknown[] = [];
      const where = this.filterSql(filter, params);
      params.push(after);
      const page = this.rows(`SELECT * FROM messages ${where ? where + ' AND' : 'WHERE'} id > $${params.length} ORDER BY id LIMIT ${BATCH}`, params).map(message);
      yield* page;
      if (page.length < BATCH) return;
      after = page[page.length - 1].id;
    }
  }

  browse(filter: BrowseFilter): MessageRow[] {
    const clauses: string[] = [];
    const params: unknown[] = [];
    const add = (clause: string, value: unknown) => {
      if (value === undefined || value === '') return;
      params.push(value);
      clauses.push(clause.replaceAll('?', `$${params.length}`));
    };
    const states = filter.state === undefined ? [] : ([] as MessageState[]).concat(filter.state);
    if (states.length) add('state = ANY(?::text[])', states);
    add('mailbox = ?', filter.mailbox);
    add('direction = ?', filter.direction);
    add('workflow_id = ?', filter.workflow);
    add('message_id = ?', filter.messageId);
    add('local_id = ?', filter.localId);
    add('strpos(file_name, ?) > 0', filter.fileName);
    const byTime = filter.from !== undefined || filter.to !== undefined;
    add('created_at >= ?', filter.from && toSql(filter.from));
    add('created_at < ?', filter.to && toSql(filter.to));
    if (byTime) add('(created_at, id) < (SELECT created_at, id FROM messages WHERE id = ?)', filter.before);
    else add('id < ?', filter.before);
    params.push(filter.limit);
    const where = clauses.length ? `WHERE ${clauses.join(' AND ')}` : '';
    const order = byTime ? 'created_at DESC, id DESC' : 'id DESC';
    return this.rows(`SELECT * FROM messages ${where} ORDER BY ${order} LIMIT $${params.length}`, params).map(message);
  }

  linkedReports(messageId: string): MessageRow[] {
    return this.rows("SELECT * FROM messages WHERE linked_message_id = $1 AND message_type = 'REPORT' ORDER BY id", [messageId]).map(message);
  }

  throughput(since: Date, unit: ThroughputUnit): ThroughputRow[] {
    const format = unit === 'hour' ? 'YYYY-MM-DD"T"HH24' : 'YYYY-MM-DD';
    return this.rows(
      `SELECT to_char(at AT TIME ZONE 'UTC', '${format}') AS period,
         COUNT(*) FILTER (WHERE to_state = 'sent') AS sent, COUNT(*) FILTER (WHERE to_state = 'delivered') AS received,
         COUNT(*) FILTER (WHERE to_state IN ('failed', 'quarantined', 'undeliverable')) AS failed
       FROM events WHERE to_state IN ('sent', 'delivered', 'failed', 'quarantined', 'undeliverable') AND at >= $1
       GROUP BY period ORDER BY period`,
      [toSql(since)],
    ) as unknown as ThroughputRow[];
  }

  events(id: number): EventRow[] {
    return this.rows('SELECT * FROM events WHERE message_row_id = $1 ORDER BY id', [id]).map((r) => eventFromSql(sqliteShape(r)));
  }

  countsByState(mailbox?: string, direction?: Direction): Partial<Record<MessageState, number>> {
    const out: Partial<Record<MessageState, number>> = {};
    const rows = this.rows(
      `SELECT state, COUNT(*) AS n FROM messages
       WHERE ($1::text IS NULL OR mailbox = $1) AND ($2::text IS NULL OR direction = $2) GROUP BY state`,
      [mailbox ?? null, direction ?? null],
    );
    for (const r of rows) out[r.state as MessageState] = r.n as number;
    return out;
  }

  oldest(mailbox: string, direction: Direction, states: MessageState[]): MessageRow | undefined {
    const [row] = this.rows('SELECT * FROM messages WHERE mailbox = $1 AND direction = $2 AND state = ANY($3::text[]) ORDER BY created_at, id LIMIT 1', [
      mailbox,
      direction,
      states,
    ]);
    return row ? message(row) : undefined;
  }

  due(mailbox: string, direction: Direction, states: MessageState[], now: Date, limit: number): MessageRow[] {
    return this.rows(
      `SELECT * FROM messages WHERE mailbox = $1 AND direction = $2 AND state = ANY($3::text[]) AND (next_attempt_at IS NULL OR next_attempt_at <= $4)
       ORDER BY next_attempt_at NULLS FIRST, id LIMIT $5`,
      [mailbox, direction, states, now.toISOString(), limit],
    ).map(message);
  }

  getAppointment(key: string): AppointmentRecord | undefined {
    return appointmentFromRows(key, this.rows('SELECT * FROM appointments WHERE appointment_key = $1', [key]));
  }

  recordAppointment(key: string, direction: Direction, rec: AppointmentInput): void {
    // Out-of-order replays never regress the record: only a newer (or equal) event replaces it.
    this.rows(
      `INSERT INTO appointments (appointment_key, direction, event_kind, trigger_event, start_at, status, at, message_row_id)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (appointment_key, direction) DO UPDATE SET
         event_kind = excluded.event_kind, trigger_event = excluded.trigger_event, start_at = excluded.start_at,
         status = excluded.status, at = excluded.at, message_row_id = excluded.message_row_id
       WHERE excluded.at >= appointments.at`,
      [key, direction, rec.eventKind, toSql(rec.trigger), toSql(rec.startAt), toSql(rec.status), toSql(rec.at ?? this.now()), toSql(rec.messageRowId)],
    );
  }

  findEarlierCopy(q: EarlierCopyQuery): MessageRow | undefined {
    // $2 is the business id when there is one, else the received hash.
    const match = q.businessId === null ? 'received_sha256 = $2 AND business_id IS NULL' : 'business_id = $2';
    const [row] = this.rows(
      `SELECT * FROM messages WHERE mailbox = $1 AND direction = 'in' AND peer = $3 AND ${match}
       AND workflow_id IS NOT DISTINCT FROM $4::text AND created_at >= $5 AND id != $6 AND state = ANY($7::text[]) ORDER BY id LIMIT 1`,
      [q.mailbox, q.businessId ?? q.receivedSha256, q.peer, q.workflowId, q.since.toISOString(), q.excludeId, q.states],
    );
    return row ? message(row) : undefined;
  }

  latestEvent(mailbox: string, peer: string, key: string): LatestEvent | undefined {
    const [row] = this.rows('SELECT event_time, row_id, sha256 FROM latest_events WHERE mailbox = $1 AND peer = $2 AND key = $3', [mailbox, peer, key]);
    return row ? { eventTime: row.event_time as string, rowId: Number(row.row_id), sha256: row.sha256 as string | null } : undefined;
  }

  recordLatestEvent(mailbox: string, peer: string, key: string, e: LatestEvent): void {
    this.transaction(() => {
      this.fenced(mailbox);
      this.rows(
        `INSERT INTO latest_events (mailbox, peer, key, event_time, row_id, sha256) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (mailbox, peer, key) DO UPDATE SET event_time = excluded.event_time, row_id = excluded.row_id, sha256 = excluded.sha256
         WHERE excluded.event_time > latest_events.event_time`,
        [mailbox, peer, key, e.eventTime, e.rowId, e.sha256],
      );
    });
  }

  findSentByBusinessId(mailbox: string, peer: string, businessId: string): MessageRow | undefined {
    const [row] = this.rows("SELECT * FROM messages WHERE mailbox = $1 AND direction = 'out' AND peer = $2 AND business_id = $3 ORDER BY state IN ('sent', 'acknowledged') DESC, id DESC LIMIT 1", [mailbox, peer, businessId]);
    return row ? message(row) : undefined;
  }

  overdueAcks(mailbox: string, now: Date, limit: number): MessageRow[] {
    return this.rows(`SELECT * FROM messages WHERE ${OVERDUE} ORDER BY ack_due_at LIMIT $3`, [now.toISOString(), mailbox, limit]).map(message);
  }

  countOverdueAcks(mailbox: string, now: Date): number {
    return Number(this.rows(`SELECT COUNT(*) AS n FROM messages WHERE ${OVERDUE}`, [now.toISOString(), mailbox])[0].n);
  }

  setMessageKeys(rowId: number, keys: string[]): void {
    if (keys.length === 0) return;
    this.transaction(() => {
      this.fencedRow(rowId);
      this.rows('INSERT INTO message_keys (row_id, key) SELECT $1, k FROM unnest($2::text[]) AS k ON CONFLICT DO NOTHING', [rowId, keys]);
    });
  }

  earlierUnsent(row: MessageRow): MessageRow | undefined {
    if (!row.eventTime) return undefined;
    const [found] = this.rows(
      `SELECT m.* FROM message_keys k JOIN message_keys o ON o.key = k.key AND o.row_id != k.row_id JOIN messages m ON m.id = o.row_id
       WHERE k.row_id = $1 AND m.mailbox = $2 AND m.direction = 'out' AND m.state IN ('claiming', 'queued', 'uploading', 'needs_review')
       AND m.event_time < $3 ORDER BY m.event_time LIMIT 1`,
      [row.id, row.mailbox, row.eventTime],
    );
    return found ? message(found) : undefined;
  }

  mailboxStatus(mailbox: string): MailboxStatus | undefined {
    const [row] = this.rows('SELECT * FROM mailbox_status WHERE mailbox = $1', [mailbox]);
    return row ? mailboxStatusFromSql(sqliteShape(row)) : undefined;
  }

  setMailboxStatus(mailbox: string, patch: MailboxStatusPatch): void {
    const pairs = patchColumns(patch, MAILBOX_STATUS_FIELDS, MAILBOX_STATUS_COLUMNS);
    const cols = pairs.map(([c]) => c);
    const update = cols.length ? `DO UPDATE SET ${cols.map((c) => `${c} = excluded.${c}`).join(', ')}` : 'DO NOTHING';
    this.transaction(() => {
      this.fenced(mailbox);
      this.rows(
      `INSERT INTO mailbox_status (mailbox${cols.map((c) => ', ' + c).join('')}) VALUES ($1${cols.map((_, i) => `, $${i + 2}`).join('')})
       ON CONFLICT (mailbox) ${update}`,
      [mailbox, ...pairs.map(([, v]) => v)],
      );
    });
  }

  /** One commit for the callback's statements; nested calls run in a savepoint, as better-sqlite3's do. */
  transaction<T>(fn: () => T): T {
    const savepoint = this.depth > 0 ? `s${this.depth}` : undefined;
    this.rows(savepoint ? `SAVEPOINT ${savepoint}` : 'BEGIN');
    this.depth++;
    let result: T;
    try {
      result = fn();
      if (result instanceof Promise) throw new MeshdError('LEDGER_BAD_TRANSACTION', 'a ledger transaction callback must not be async');
    } catch (err) {
      this.depth--;
      this.undo(savepoint);
      throw err;
    }
    this.depth--;
    this.rows(savepoint ? `RELEASE SAVEPOINT ${savepoint}` : 'COMMIT');
    return result;
  }

  private undo(savepoint: string | undefined): void {
    try {
      this.rows(savepoint ? `ROLLBACK TO SAVEPOINT ${savepoint}` : 'ROLLBACK');
      if (savepoint) this.rows(`RELEASE SAVEPOINT ${savepoint}`);
    } catch {
      // The connection is gone: PostgreSQL has rolled the transaction back; the original error is the one to report.
    }
  }

  purge(opts: PurgeOptions): PurgeResult {
    const cutoff = opts.olderThan.toISOString();
    const at = opts.now.toISOString();
    const payloads: string[] = [];
    /** Batches done so far, for `maxBatches` (a caller giving the event loop back between calls). */
    let batches = 0;
    const purgeable = `state = ANY(CASE direction WHEN 'out' THEN $2::text[] ELSE $3::text[] END)`;
    const toClear = payloadStatesToClear(opts.payloadsOnly);
    const limit = opts.batchRows ?? BATCH;

    // 1. Payload copies the daemon no longer needs: forget them here, the caller deletes the files.
    for (;;) {
      const batch = this.transaction(() => {
        const rows = this.rows(
          `UPDATE messages m SET payload_path = NULL, ctl_path = NULL
           FROM (SELECT id, payload_path, ctl_path FROM messages
                 WHERE (payload_path IS NOT NULL OR ctl_path IS NOT NULL) AND updated_at < $1 AND ${purgeable}
                 ORDER BY id LIMIT ${limit} FOR UPDATE) old
           WHERE m.id = old.id
           RETURNING m.id, old.payload_path, old.ctl_path`,
          [cutoff, toClear.out, toClear.in],
        ).sort((a, b) => (a.id as number) - (b.id as number));
        this.insertEvents(rows.map((r) => r.id as number), at, 'payload_purged', null, null);
        for (const r of rows) for (const p of [r.payload_path, r.ctl_path]) if (p) payloads.push(p as string);
        return rows.length;
      });
      if (batch < limit) break;
      if (++batches === opts.maxBatches) return { rows: 0, payloads, done: false };
    }
    if (opts.payloadsOnly) return { rows: 0, payloads, done: true };

    // 2. Settled rows and their events. Rows still in play are never selected.
    let rows = 0;
    for (;;) {
      const batch = this.transaction(() => {
        const found = this.rows(
          `SELECT id, direction, state, payload_path, ctl_path FROM messages
           WHERE state = ANY($1::text[]) AND updated_at < $2 ORDER BY id LIMIT ${limit} FOR UPDATE`,
          [SETTLED_STATES, cutoff],
        );
        if (found.length === 0) return 0;
        for (const r of found) {
          // Only payloads that are ours (see PAYLOAD_PURGE_STATES); in/ files belong to the receiving application.
          if (PAYLOAD_PURGE_STATES[r.direction as Direction].includes(r.state as MessageState)) {
            for (const p of [r.payload_path, r.ctl_path]) if (p) payloads.push(p as string);
          }
        }
        const ids = found.map((r) => r.id);
        this.rows("SELECT set_config('meshd.purge', 'on', true)");
        this.rows('DELETE FROM events WHERE message_row_id = ANY($1::bigint[])', [ids]);
        this.rows('DELETE FROM messages WHERE id = ANY($1::bigint[])', [ids]);
        this.rows("SELECT set_config('meshd.purge', 'off', true)");
        return found.length;
      });
      rows += batch;
      if (batch < limit) break;
      if (++batches === opts.maxBatches) return { rows, payloads, done: false };
    }
    this.rows('DELETE FROM appointments WHERE at < $1', [cutoff]);
    return { rows, payloads, done: true };
  }

  /** A PostgreSQL ledger is backed up with the database's own tools. */
  backup(): Promise<void> {
    return Promise.reject(
      new MeshdError('LEDGER_BACKUP_UNSUPPORTED', 'meshd ledger backup copies the SQLite ledger; this ledger is in PostgreSQL', 'back it up with pg_dump (or your PostgreSQL backups) instead', 'usage'),
    );
  }

  close(): void {
    this.db.close();
  }
}

/** Opens (creating and migrating if needed) the ledger in the PostgreSQL database at `url`. */
export function openPgLedger(url: string, opts: PgLedgerOptions = {}): PgLedger {
  return new PgLedger(url, opts, describeUrl(url));
}

/** host:port/database of a connection URL, for messages: never the user or password. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `PostgreSQL ${u.hostname}${u.port ? ':' + u.port : ''}${u.pathname}`;
  } catch {
    return 'the PostgreSQL database';
  }
}
