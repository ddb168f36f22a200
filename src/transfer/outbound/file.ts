import { join } from 'node:path';
import { companionFiles, type MessageRow } from '../../ledger';
import { exists, freeName, fsyncDir, moveOwnFile, readRegular, removeName, SHARED_FILE_MODE, writeFileAtomic } from '../../safe-fs';
import type { MailboxContext } from '../context';
import { ctlDateTime, formatControlFile, parseControlFile, type ControlFile } from '../ctl';
import { FS_CONCURRENCY, mapLimit, mutex } from '../pool';
import { spoolPaths, type SpoolProblem } from '../spool';

/**
 * Where an outbound row ends: its files filed into sent/ or failed/, or the row parked for a
 * person. Filing records the target path with the `filing` recovery mark first, then moves the
 * files, then clears the mark, so a crash at any point is redone by recovery without a second
 * copy, a lost control file or a path pointing nowhere.
 */

/** Anything that makes the payload doubtful parks the row for a person; nothing is sent from it. */
export async function parkForReview(ctx: MailboxContext, row: MessageRow, problem: SpoolProblem): Promise<void> {
  ctx.ledger.transition(row.id, 'needs_review', {
    from: ['queued', 'uploading'],
    patch: { errorCode: problem.code, errorText: problem.text },
    event: { type: 'spool_check_failed', detail: { code: problem.code } },
  });
  ctx.log.error('SEND_NEEDS_REVIEW', `${row.fileName}: ${problem.text}; parked for review`, { row: row.id, code: problem.code });
}

/**
 * Taking a free name in failed/ and filling it, one at a time per process: rows of a batch are
 * handled side by side, and two of them picking the same free name would replace one file.
 */
export const failedNames = mutex();

/** Refused by MESH or unusable: the row moves to `failed` (target path, filing mark), then the files follow. */
export function failOutbound(ctx: MailboxContext, row: MessageRow, code: string, text: string): Promise<void> {
  return failedNames(() => failNow(ctx, row, code, text));
}

async function failNow(ctx: MailboxContext, row: MessageRow, code: string, text: string): Promise<void> {
  // fileFailed writes the control file and a .reason beside the payload.
  const [plan] = await planTargets(ctx, ctx.folders.failed, [{ ...row, recoveryMark: null }], companionFiles);
  const failedRow = ctx.ledger.transition(row.id, 'failed', {
    patch: { payloadPath: plan.target, errorCode: code, errorText: text, processingStarts: 0 },
    mark: 'filing',
    event: { type: 'failed', detail: { code, reason: text } },
  });
  await fileFailed(ctx, failedRow);
  ctx.log.error('SEND_FAILED', `message from ${row.fileName} was refused and moved to failed/: ${text}`, { row: row.id, code });
}

/** Moves a failed row's files to its recorded path in failed/, with the .ctl status and a .reason. Idempotent. */
export async function fileFailed(ctx: MailboxContext, row: MessageRow): Promise<void> {
  const spool = spoolPaths(ctx, row);
  const target = row.payloadPath!;
  const text = row.errorText ?? '';
  const code = row.errorCode ?? 'FAILED';
  await moveOwnFile(spool.data, target, SHARED_FILE_MODE);
  if (row.ctlPath && (await exists(spool.ctl))) {
    const ctl = await readCtlOr(spool.ctl);
    ctl.statusRecords.push({ dateTime: ctlDateTime(ctx.now()), event: 'TRANSFER', status: 'ERROR', statusCode: code, description: text });
    await writeFileAtomic(companionFiles(target)[0], formatControlFile(ctl));
  }
  await writeFileAtomic(`${target}.reason`, `${code}: ${text}\n`);
  await removeSpoolLeftovers(ctx, row);
  ctx.ledger.setMark(row.id, null, { patch: { ctlPath: null }, event: { type: 'filed', detail: { failed: target } } });
}

async function readCtlOr(path: string): Promise<ControlFile> {
  try {
    return parseControlFile(await readRegular(path));
  } catch {
    return { statusRecords: [] };
  }
}

/**
 * Files a batch of sent payloads into sent/: one directory fsync and two commits per batch; the
 * rows' file work runs side by side. Only one batch of a mailbox is filed at a time (the names it
 * picks are free only until it has moved its files).
 */
export async function finishSentBatch(ctx: MailboxContext, rows: MessageRow[]): Promise<void> {
  if (rows.length === 0) return;
  const { ledger } = ctx;
  // fileSent writes a control file beside the payload when the mailbox has them.
  const planned = await planTargets(ctx, ctx.folders.sent, rows, ctx.mailbox.controlFiles ? (name) => [companionFiles(name)[0]] : undefined);
  ledger.transaction(() => {
    for (const p of planned) if (p.fresh) ledger.setMark(p.row.id, 'filing', { patch: { payloadPath: p.target }, event: { type: 'filing', detail: { sent: p.target } } });
  });
  await mapLimit(planned, FS_CONCURRENCY, (p) => fileSent(ctx, p.row, p.target, p.fresh));
  await fsyncDir(ctx.folders.sent);
  await mapLimit(planned, FS_CONCURRENCY, (p) => removeSpoolLeftovers(ctx, p.row));
  ledger.transaction(() => {
    for (const p of planned) ledger.setMark(p.row.id, null, { patch: { ctlPath: null }, event: { type: 'filed', detail: { sent: p.target } } });
  });
}

/**
 * Target paths for a batch: the recorded one when redoing, else a free name (unique within the
 * batch) whose `companions` (the files written beside it) are free too.
 */
async function planTargets(
  ctx: MailboxContext,
  dir: string,
  rows: MessageRow[],
  companions?: (name: string) => string[],
): Promise<Array<{ row: MessageRow; target: string; fresh: boolean }>> {
  const taken = new Set<string>();
  const out = [];
  const redo = (row: MessageRow) => row.recoveryMark === 'filing' && !!row.payloadPath && !row.payloadPath.startsWith(ctx.spool);
  const wanted = (row: MessageRow) => row.fileName ?? `${row.messageId ?? row.id}.dat`;
  // Each row's first choice is looked up side by side; clashes within the batch are settled in order.
  const firstFree = await mapLimit(rows, FS_CONCURRENCY, (row) => (redo(row) ? Promise.resolve('') : freeName(dir, wanted(row), companions)));
  for (const [i, row] of rows.entries()) {
    if (redo(row)) {
      out.push({ row, target: row.payloadPath!, fresh: false });
      continue;
    }
    let name = firstFree[i];
    for (let n = 1; taken.has(name); n++) name = await freeName(dir, suffixed(row.fileName ?? `${row.id}.dat`, n), companions);
    taken.add(name);
    out.push({ row, target: join(dir, name), fresh: true });
  }
  return out;
}

function suffixed(name: string, i: number): string {
  const dot = name.lastIndexOf('.');
  return dot > 0 ? `${name.slice(0, dot)}.${i}${name.slice(dot)}` : `${name}.${i}`;
}

/**
 * The spool files a row leaves once its payload has been moved out: its .ctl, and a converted
 * .send. A row has a spool .ctl only if it claimed one (`ctlPath`, cleared once filed), so a
 * route's send, with neither, costs no file-system call here.
 */
async function removeSpoolLeftovers(ctx: MailboxContext, row: MessageRow): Promise<void> {
  const spool = spoolPaths(ctx, row);
  await Promise.all([...(row.ctlPath ? [spool.ctl] : []), ...(row.transform ? [spool.send] : [])].map(removeName));
}

/**
 * Moves a sent payload from the spool to `target` and writes its control file (dir not synced).
 * Idempotent: a payload already moved is left; a control file is rewritten only while the
 * spool still holds the original .ctl, or when none was written yet. `fresh`: the target was
 * picked just now with its control file's name free (planTargets), so none can be ours yet.
 */
async function fileSent(ctx: MailboxContext, row: MessageRow, target: string, fresh: boolean): Promise<void> {
  const spool = spoolPaths(ctx, row);
  await moveOwnFile(spool.data, target, SHARED_FILE_MODE);
  if (!ctx.mailbox.controlFiles) return;
  const [ctlTarget] = companionFiles(target);
  const original = row.ctlPath && (await exists(spool.ctl)) ? spool.ctl : undefined;
  if (!original && !fresh && (await exists(ctlTarget))) return;
  const ctl = original ? await readCtlOr(original) : { statusRecords: [] };
  const written: ControlFile = {
    ...ctl,
    fromDts: ctl.fromDts ?? ctx.mailbox.id,
    toDts: ctl.toDts ?? row.peer ?? undefined,
    workflowId: ctl.workflowId ?? row.workflowId ?? undefined,
    subject: ctl.subject ?? row.subject ?? undefined,
    localId: ctl.localId ?? row.localId ?? undefined,
    dtsId: row.messageId ?? undefined,
    statusRecords: [
      ...ctl.statusRecords,
      { dateTime: ctlDateTime(ctx.now()), event: 'TRANSFER', status: 'SUCCESS', statusCode: '00', description: 'Transferred to the MESH server' },
    ],
  };
  await writeFileAtomic(ctlTarget, formatControlFile(written), SHARED_FILE_MODE, false);
}
