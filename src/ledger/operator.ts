import fs from 'node:fs';
import { MeshdError } from '../errors';
import { MessageState } from './states';
import type { LedgerStore, MessageRow } from './types';

/** What a sysadmin may do to a row by hand (`meshd ledger retry|resolve`). Every action is a recorded event. */

const RETRYABLE_OUT: readonly MessageState[] = [MessageState.Failed, MessageState.Undeliverable];
const RETRYABLE_IN: readonly MessageState[] = [MessageState.Quarantined, MessageState.NeedsReview, MessageState.Stale];

/** An inbound retry from these states is a person's decision: the kept payload is delivered without the duplicate and ordering checks. */
export const DECIDED_BY_PERSON: readonly MessageState[] = [MessageState.NeedsReview, MessageState.Stale];

function refused(row: MessageRow, what: string, hint: string): MeshdError {
  return new MeshdError('LEDGER_CONFLICT', `message ${row.id} (${row.direction}, ${row.state}) ${what}`, hint);
}

/**
 * Puts a failed/undeliverable outbound row back to `queued` (attempts reset; the payload must still exist),
 * or a quarantined inbound row back to `receiving`: reprocessed from the kept payload, or downloaded again
 * when MESH still holds it (never acknowledged).
 */
export function retryMessage(store: LedgerStore, id: number, opts: { payloadExists?: (file: string) => boolean; note?: string; via?: OperatorVia } = {}): MessageRow {
  const exists = opts.payloadExists ?? ((file: string) => fs.existsSync(file));
  const row = store.get(id);
  if (!row) throw new MeshdError('LEDGER_NOT_FOUND', `no ledger row ${id}`, 'list rows with `meshd ledger list`');
  const retryable = row.direction === 'out' ? RETRYABLE_OUT : RETRYABLE_IN;
  if (!retryable.includes(row.state)) {
    const hint =
      row.state === MessageState.NeedsReview && row.direction === 'out'
        ? 'a needs_review row is settled with `meshd ledger resolve <id> --as sent|failed --note …` first'
        : `only ${retryable.join(' or ')} ${row.direction === 'out' ? 'outbound' : 'inbound'} rows can be retried`;
    throw refused(row, 'cannot be retried', hint);
  }
  const hasPayload = !!row.payloadPath && exists(row.payloadPath);
  // An inbound message MESH still holds (never acknowledged, e.g. over the size cap) is simply downloaded again.
  const meshHasIt = row.direction === 'in' && !row.acknowledgedAt;
  if (!hasPayload && !meshHasIt) {
    const hint = row.direction === 'out' ? 'the payload was purged or moved; send the file again from out/' : 'the payload was purged and MESH no longer holds the message; ask the sender to send it again';
    throw refused(row, 'has no payload left to retry with', hint);
  }
  const to = row.direction === 'out' ? MessageState.Queued : MessageState.Receiving;
  const patch =
    row.direction === 'out'
      ? // A resend is a new MESH message: the old id stays in the event below.
        { attempts: 0, nextAttemptAt: null, errorCode: null, errorText: null, chunksDone: 0, messageId: null }
      : { attempts: 0, nextAttemptAt: null, errorCode: null, errorText: null };
  return store.transition(id, to, {
    from: [row.state],
    patch,
    event: { type: 'operator_retry', detail: { previousState: row.state, previousErrorCode: row.errorCode, previousMessageId: row.messageId, note: opts.note, via: opts.via } },
  });
}

export type ResolveAs = 'sent' | 'failed';

/** Where an operator action came from, kept in its event; absent means the CLI. */
export type OperatorVia = 'console';

/** Settles a needs_review row after a person has checked with MESH or the recipient. */
export function resolveReview(store: LedgerStore, id: number, as: ResolveAs, note: string, messageId?: string, via?: OperatorVia): MessageRow {
  const row = store.get(id);
  if (!row) throw new MeshdError('LEDGER_NOT_FOUND', `no ledger row ${id}`, 'list rows with `meshd ledger list`');
  if (row.state !== MessageState.NeedsReview) {
    throw refused(row, 'is not waiting for review', 'only needs_review rows are resolved; use `meshd ledger retry` for failed rows');
  }
  if (!note.trim()) throw new MeshdError('LEDGER_NOTE_REQUIRED', 'a resolution needs a --note saying what was checked', undefined, 'usage');
  if (messageId !== undefined && as !== 'sent') {
    throw new MeshdError('LEDGER_BAD_RESOLUTION', '--message-id only makes sense with --as sent', undefined, 'usage');
  }
  const patch =
    as === 'sent'
      ? { ...(messageId ? { messageId } : {}), errorCode: null, errorText: null }
      : { errorCode: 'RESOLVED_FAILED', errorText: 'resolved as failed by an operator' };
  return store.transition(id, as === 'sent' ? MessageState.Sent : MessageState.Failed, {
    from: [MessageState.NeedsReview],
    patch,
    event: { type: 'operator_resolve', detail: { as, note, messageId, via } },
  });
}

/**
 * The files meshd writes beside a payload it files: its control file (NAME.dat → NAME.ctl, else
 * NAME.ctl; the rule of ctlNameFor in src/transfer/outbound.ts) and NAME.reason.
 */
export function companionFiles(payloadPath: string): string[] {
  const ctl = /\.dat$/i.test(payloadPath) ? payloadPath.replace(/\.dat$/i, '.ctl') : `${payloadPath}.ctl`;
  return [ctl, `${payloadPath}.reason`];
}

export interface PurgedFiles {
  payloadsDeleted: number;
  companionsDeleted: number;
  /** Payloads already gone (a missing companion is normal: not every payload has one). */
  payloadsMissing: number;
  failures: Array<{ file: string; error: string }>;
}

/**
 * Deletes the payloads `ledger.purge` released, with their companion files. Deletes only
 * regular files and never follows a symlink: anything else is left in place and reported.
 */
export function deletePurgedFiles(payloads: string[]): PurgedFiles {
  const result: PurgedFiles = { payloadsDeleted: 0, companionsDeleted: 0, payloadsMissing: 0, failures: [] };
  const seen = new Set<string>();
  for (const payload of payloads) {
    for (const file of [payload, ...companionFiles(payload)]) {
      if (seen.has(file)) continue;
      seen.add(file);
      const companion = file !== payload;
      const outcome = unlinkRegularFile(file);
      if (outcome === 'deleted') result[companion ? 'companionsDeleted' : 'payloadsDeleted']++;
      else if (outcome === 'missing') result.payloadsMissing += companion ? 0 : 1;
      else result.failures.push({ file, error: outcome });
    }
  }
  return result;
}

function unlinkRegularFile(file: string): 'deleted' | 'missing' | string {
  try {
    const st = fs.lstatSync(file);
    if (!st.isFile()) return st.isSymbolicLink() ? 'a symlink: not followed, left in place' : 'not a regular file: left in place';
    fs.unlinkSync(file);
    return 'deleted';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'missing' : (code ?? (err as Error).message);
  }
}
