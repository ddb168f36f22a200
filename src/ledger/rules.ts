import { MeshdError } from '../errors';
import { appointmentEventFromSql } from './columns';
import { INITIAL_STATES, MessageState, canMark, canTransition, predecessors, type RecoveryMark } from './states';
import type { AppointmentRecord, MessagePatch, MessageRow, NewMessage, ReceivedRow, SendableRow, TransitionOptions } from './types';

/** The ledger's rules, the same for every backend: which rows, moves and marks are allowed. */

export function conflict(message: string, hint?: string): MeshdError {
  return new MeshdError('LEDGER_CONFLICT', message, hint);
}

export function notFound(id: number | string): MeshdError {
  return new MeshdError('LEDGER_NOT_FOUND', `no ledger row ${id}`, 'list rows with `meshd ledger list`');
}

export function duplicateOnInsert(row: { mailbox: string; direction: string }, messageId: unknown, cause: unknown): MeshdError {
  return new MeshdError('LEDGER_DUPLICATE', `mailbox ${row.mailbox} already has a ${row.direction} row for MESH message ${String(messageId)}`, undefined, 'failure', { cause });
}

export function duplicateOnUpdate(messageId: unknown, cause: unknown): MeshdError {
  return new MeshdError('LEDGER_DUPLICATE', `another row of this mailbox and direction already has MESH message id ${String(messageId)}`, undefined, 'failure', { cause });
}

/** Splits a new row into its fixed parts and its patch, refusing a bad start state or mark. */
export function checkNewRow(row: NewMessage): { recoveryMark: RecoveryMark | null; patch: MessagePatch } {
  if (!INITIAL_STATES[row.direction]?.includes(row.state)) {
    throw new MeshdError(
      'LEDGER_INVALID_STATE',
      `a new ${row.direction} row cannot start in state ${row.state}`,
      `start in one of: ${(INITIAL_STATES[row.direction] ?? []).join(', ')}`,
    );
  }
  const { direction, mailbox: _mailbox, state, recoveryMark = null, ...patch } = row;
  if (!canMark(direction, state, recoveryMark)) throw conflict(`a new ${direction} row in state ${state} cannot carry the recovery mark ${recoveryMark}`);
  return { recoveryMark, patch };
}

/** What the checks of a move or a mark change read of the current row. */
export type RowState = Pick<MessageRow, 'direction' | 'state'>;

/** Checks a move of the current row to `to`; returns the mark and patch to write with it. */
export function checkMove<R extends RowState>(id: number, current: R | undefined, to: MessageState, opts: TransitionOptions, at: string): { row: R; mark: RecoveryMark | null; patch: MessagePatch } {
  if (!current) throw notFound(id);
  if (opts.from && !opts.from.includes(current.state)) {
    throw conflict(`message ${id} is ${current.state}, not ${opts.from.join(' or ')}; it was not moved to ${to}`);
  }
  if (!canTransition(current.direction, current.state, to)) {
    const legal = predecessors(current.direction, to);
    throw conflict(
      `message ${id} (${current.direction}) cannot move from ${current.state} to ${to}`,
      legal.length ? `only ${legal.join(', ')} rows can move to ${to}` : `no ${current.direction} row can move to ${to}`,
    );
  }
  const mark = opts.mark ?? null;
  if (!canMark(current.direction, to, mark)) throw conflict(`message ${id} cannot carry the recovery mark ${mark} in state ${to}`);
  const patch: MessagePatch = { ...opts.patch };
  if (to === MessageState.Acknowledged && patch.acknowledgedAt === undefined) patch.acknowledgedAt = at;
  return { row: current, mark, patch };
}

/** Checks a mark change on the current row in its current state; returns the row. */
export function checkMarkChange<R extends RowState>(id: number, current: R | undefined, mark: RecoveryMark | null, from?: MessageState[]): R {
  if (!current) throw notFound(id);
  if (from && !from.includes(current.state)) throw conflict(`message ${id} is ${current.state}, not ${from.join(' or ')}; its recovery mark was not changed`);
  if (!canMark(current.direction, current.state, mark)) throw conflict(`message ${id} cannot carry the recovery mark ${mark} in state ${current.state}`);
  return current;
}

/** A row id if the reference is one (findByRef: else it is a MESH message id). */
export function refRowId(ref: string): number | undefined {
  return /^\d{1,15}$/.test(ref) ? Number(ref) : undefined;
}

/** An appointment record from its (at most two) rows, one per direction. */
export function appointmentFromRows(key: string, rows: Array<Record<string, unknown>>): AppointmentRecord | undefined {
  if (rows.length === 0) return undefined;
  const record: AppointmentRecord = { key };
  for (const r of rows) {
    if (r.direction === 'out') record.lastSent = appointmentEventFromSql(r);
    else record.lastReceived = appointmentEventFromSql(r);
  }
  return record;
}

function malformed(row: MessageRow, what: string): MeshdError {
  return new MeshdError('LEDGER_BAD_ROW', `ledger row ${row.id} (${row.direction}, ${row.state}) has no ${what}`, 'this is a meshd bug: report it with `meshd ledger show <id>`');
}

/** An inbound row as the receive pipeline holds it (its MESH id and claim id present). */
export function receivedRow(row: MessageRow): ReceivedRow {
  if (row.direction !== 'in' || !row.messageId) throw malformed(row, 'MESH message id');
  if (!row.claimId) throw malformed(row, 'claim id');
  return row as ReceivedRow;
}

/** An outbound row ready to upload (its claim id, recipient and workflow present). */
export function sendableRow(row: MessageRow): SendableRow {
  if (row.direction !== 'out' || !row.claimId) throw malformed(row, 'claim id');
  if (!row.peer || !row.workflowId) throw malformed(row, 'recipient and workflow');
  return row as SendableRow;
}
