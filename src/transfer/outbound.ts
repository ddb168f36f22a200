import { promises as fs } from 'node:fs';
import { basename, join } from 'node:path';
import { MeshdError } from '../errors';
import type { MessageRow } from '../ledger';
import { checkOutboundControl, ctlDateTime, formatControlFile, parseControlFile, type ControlFile } from './ctl';
import { claimBatch, finishClaim, scanOutbox } from './claim';
import { StopRequested, type MailboxContext } from './context';
import { copyRegular, exists, freeName, fsyncDir, moveFile, PRIVATE_FILE_MODE, readRegular, removeName, SHARED_FILE_MODE, writeFileAtomic } from '../safe-fs';
import { checkSpool, fileFacts, moveOrphans, payloadInSpool, spoolPaths, type SpoolProblem } from './spool';
import { mapLimit } from './pool';

/**
 * The send pipeline, one mailbox at a time:
 *   recover → scan out/ → claim (ledger row + move into the spool) → transform → upload
 *   (message id and each chunk recorded as accepted) → sent (files to sent/).
 * A crash at any point is finished or parked by `recoverOutbound` on the next start.
 */

/** Marks a first POST in flight: if we find it after a restart, its outcome is unknown. */
const POST_IN_FLIGHT = 'POST_IN_FLIGHT';
/**
 * Rows uploaded per group commit. Small on purpose: if meshd dies mid-group, every first POST
 * of the group has an unknown outcome and is parked for review, so the group bounds that.
 */
const UPLOAD_BATCH = 16;
/** Files taken from out/ per group commit. */
const CLAIM_BATCH = 64;

export async function sha256File(path: string): Promise<string> {
  return (await fileFacts(path)).sha256;
}

// ---------------------------------------------------------------------------------------
// Recovery

/** Finishes or parks whatever a crash left half-done. Idempotent; runs on the first cycle of each process. */
export async function recoverOutbound(ctx: MailboxContext): Promise<void> {
  const { ledger, mailbox } = ctx;
  await adoptRowIdSpoolNames(ctx);
  for (const row of [...ledger.iterate({ mailbox: mailbox.id, direction: 'out', state: 'claiming' })]) {
    await finishClaim(ctx, row);
  }
  for (const row of [...ledger.iterate({ mailbox: mailbox.id, direction: 'out', state: 'queued' })]) {
    if (row.errorCode !== POST_IN_FLIGHT) continue;
    if (ctx.config.ledger.ambiguousSend === 'resend') {
      ledger.update(row.id, { errorCode: null, errorText: null }, { type: 'resend_after_unknown_outcome', detail: { policy: 'resend' } });
      ctx.log.warn('SEND_RESEND_POLICY', 'first upload of a message was interrupted; resending as ledger.ambiguousSend is resend', { row: row.id });
    } else {
      ledger.transition(row.id, 'needs_review', {
        from: ['queued'],
        patch: { errorCode: 'MESH_AMBIGUOUS', errorText: 'meshd stopped during the first upload; MESH may or may not have the message' },
        event: { type: 'outcome_unknown', detail: { reason: 'interrupted during first POST /outbox' } },
      });
      ctx.log.warn('SEND_NEEDS_REVIEW', 'first upload was interrupted; message parked for review (never resent blindly)', { row: row.id });
    }
  }
  for (const row of [...ledger.iterate({ mailbox: mailbox.id, direction: 'out', state: 'sent' })]) {
    if (row.errorCode === FILING || (row.payloadPath && row.payloadPath.startsWith(ctx.spool))) await finishSent(ctx, row);
  }
  for (const row of [...ledger.iterate({ mailbox: mailbox.id, direction: 'out', state: 'failed' })]) {
    if (row.errorText?.startsWith(FILING_PREFIX)) await fileFailed(ctx, row);
  }
  for (const row of [...ledger.iterate({ mailbox: mailbox.id, direction: 'out', state: 'queued' })]) {
    // Its conversion was started twice and never finished: it killed the process both times.
    if (row.processingStarts >= 2) await failOutbound(ctx, row, 'POISON', `converting this message stopped meshd ${row.processingStarts} times; it is set aside so the rest of the mailbox goes on`);
  }
  await reconcileSpool(ctx);
}

/**
 * The spool and the ledger must agree: a row waiting to send whose spool copy is missing is
 * parked for review, and a spool file no row owns is moved to orphans/ (never sent). Run at
 * start and by `meshd ledger restore`.
 */
export async function reconcileSpool(ctx: MailboxContext): Promise<{ parked: number[]; orphans: string[] }> {
  const parked: number[] = [];
  for (const state of ['queued', 'uploading'] as const) {
    for (const row of [...ctx.ledger.iterate({ mailbox: ctx.mailbox.id, direction: 'out', state })]) {
      if (payloadInSpool(ctx, row) && !(await exists(row.payloadPath!))) {
        await parkForReview(ctx, row, { code: 'SPOOL_MISSING', text: 'the spool copy of this message is missing; nothing was sent from it' });
        parked.push(row.id);
      }
    }
  }
  return { parked, orphans: await moveOrphans(ctx, ctx.spool, 'out') };
}

/**
 * Before ledger migration 2, spool files were named by row id. A row that still points at such
 * a file (an upgrade with work in flight) has it renamed to its claim id; any other file named
 * that way is owned by nobody and goes to orphans/.
 */
async function adoptRowIdSpoolNames(ctx: MailboxContext): Promise<void> {
  for (const state of ['queued', 'uploading', 'needs_review', 'sent', 'failed'] as const) {
    for (const row of [...ctx.ledger.iterate({ mailbox: ctx.mailbox.id, direction: 'out', state })]) {
      const old = join(ctx.spool, `${row.id}.dat`);
      if (row.payloadPath !== old) continue;
      const now = spoolPaths(ctx, row);
      for (const ext of ['dat', 'ctl', 'send'] as const) {
        const from = join(ctx.spool, `${row.id}.${ext}`);
        if (await exists(from)) await fs.rename(from, now[ext === 'dat' ? 'data' : ext]);
      }
      ctx.ledger.update(row.id, { payloadPath: now.data, ctlPath: row.ctlPath === join(ctx.spool, `${row.id}.ctl`) ? now.ctl : row.ctlPath }, { type: 'spool_renamed', detail: { to: 'claim id' } });
    }
  }
}

/** Anything that makes the payload doubtful parks the row for a person; nothing is sent from it. */
async function parkForReview(ctx: MailboxContext, row: MessageRow, problem: SpoolProblem): Promise<void> {
  ctx.ledger.transition(row.id, 'needs_review', {
    from: ['queued', 'uploading'],
    patch: { errorCode: problem.code, errorText: problem.text },
    event: { type: 'spool_check_failed', detail: { code: problem.code } },
  });
  ctx.log.error('SEND_NEEDS_REVIEW', `${row.fileName}: ${problem.text}; parked for review`, { row: row.id, code: problem.code });
}

// ---------------------------------------------------------------------------------------
// Transform and upload

function backoffMs(attempts: number): number {
  return Math.min(60_000 * 2 ** Math.max(0, attempts - 1), 3_600_000);
}

/**
 * Makes sure the payload is in the spool (a row retried by an operator still points at failed/
 * or sent/) and applies the route's transform once, writing the converted payload beside it.
 */
async function preparePayload(ctx: MailboxContext, row: MessageRow): Promise<string | undefined> {
  const spool = spoolPaths(ctx, row);
  if (row.payloadPath && row.payloadPath !== spool.data) {
    if (!(await exists(spool.data))) {
      if (!(await exists(row.payloadPath))) {
        await failOutbound(ctx, row, 'PAYLOAD_MISSING', `the payload ${row.payloadPath} is gone; nothing to send`);
        return undefined;
      }
      await moveFile(row.payloadPath, spool.data, PRIVATE_FILE_MODE);
      await fsyncDir(ctx.spool);
    }
    row = ctx.ledger.update(row.id, { payloadPath: spool.data }, { type: 'respooled', detail: { from: row.payloadPath } });
  }
  // Before the first POST and before each resume: the spool copy must still be what was claimed.
  const problem = await checkSpool(ctx, row);
  if (problem) {
    await parkForReview(ctx, row, problem);
    return undefined;
  }
  if (!row.transform) return spool.data;
  if (await exists(spool.send)) return spool.send;
  const [from, to] = row.transform.split('>');
  const cap = ctx.config.transform.maxInputBytes;
  if ((row.sizeBytes ?? 0) > cap) {
    await failOutbound(ctx, row, 'TOO_LARGE_TO_CONVERT', `${row.sizeBytes} bytes is over transform.maxInputBytes (${cap}); it was not loaded. Raise the cap or send it on a route without a transform`);
    return undefined;
  }
  // Committed before converting: if this conversion kills the process twice, recovery sets it aside (POISON).
  row = ctx.ledger.update(row.id, { processingStarts: row.processingStarts + 1 }, { type: 'processing_started', detail: { step: 'transform' } });
  const input = await readRegular(spool.data);
  let result;
  try {
    result = await ctx.transform(input, from, to, { direction: 'out', rowId: row.id });
  } catch (err) {
    await failOutbound(ctx, row, err instanceof MeshdError ? err.code : 'TRANSFORM_FAILED', (err as Error).message);
    return undefined;
  }
  if (result.errors.length > 0) {
    // Part of a batch was bad: the good messages go; the bad ones are reported with the original kept.
    const keep = join(ctx.folders.failed, await freeName(ctx.folders.failed, row.fileName ?? `${row.id}.dat`));
    await copyRegular(spool.data, keep);
    const lines = result.errors.map((e) => `message ${e.message ?? '?'} ${e.position ?? ''} ${e.field ?? ''}: ${e.code}: ${e.text}`);
    await writeFileAtomic(`${keep}.reason`, lines.join('\n') + '\n');
    ctx.ledger.recordEvent(row.id, 'transform_partial', { quarantined: result.errors.length, of: result.messageCount, copy: keep });
    ctx.log.warn('TRANSFORM_PARTIAL', `${result.errors.length} of ${result.messageCount} messages in ${row.fileName} could not be converted; a copy with reasons is in failed/`, {
      row: row.id,
    });
  }
  await writeFileAtomic(spool.send, result.output, PRIVATE_FILE_MODE);
  ctx.ledger.update(row.id, { processingStarts: 0 }, { type: 'transformed', detail: { transform: row.transform, messages: result.messageCount } });
  return spool.send;
}

/** errorText of a failed row whose files are still being moved to failed/ (cleared when done). */
const FILING_PREFIX = '[filing] ';

/**
 * Refused by MESH or unconvertible: the row moves to `failed` first (with the target path and a
 * filing mark), then the files move to failed/ with a reason, then the mark is cleared — so a
 * crash in between is finished by recovery and the payload never stays behind in the spool.
 */
async function failOutbound(ctx: MailboxContext, row: MessageRow, code: string, text: string): Promise<void> {
  const [plan] = await planTargets(ctx, ctx.folders.failed, [{ ...row, errorCode: null }]);
  const failedRow = ctx.ledger.transition(row.id, 'failed', {
    patch: { payloadPath: plan.target, errorCode: code, errorText: FILING_PREFIX + text, processingStarts: 0 },
    event: { type: 'failed', detail: { code, reason: text } },
  });
  await fileFailed(ctx, failedRow);
  ctx.log.error('SEND_FAILED', `message from ${row.fileName} was refused and moved to failed/: ${text}`, { row: row.id, code });
}

async function fileFailed(ctx: MailboxContext, row: MessageRow): Promise<void> {
  const spool = spoolPaths(ctx, row);
  const target = row.payloadPath!;
  const text = (row.errorText ?? '').slice(FILING_PREFIX.length);
  const code = row.errorCode ?? 'FAILED';
  if (await exists(spool.data)) await moveFile(spool.data, target, SHARED_FILE_MODE);
  if (await exists(spool.ctl)) {
    const ctl = await readCtlOr(spool.ctl);
    ctl.statusRecords.push({ dateTime: ctlDateTime(ctx.now()), event: 'TRANSFER', status: 'ERROR', statusCode: code, description: text });
    await writeFileAtomic(join(ctx.folders.failed, ctlNameFor(basename(target))), formatControlFile(ctl));
  }
  await writeFileAtomic(`${target}.reason`, `${code}: ${text}\n`);
  await removeSpoolLeftovers(ctx, row);
  ctx.ledger.update(row.id, { ctlPath: null, errorText: text }, { type: 'filed', detail: { failed: target } });
}

async function readCtlOr(path: string): Promise<ControlFile> {
  try {
    return parseControlFile(await readRegular(path));
  } catch {
    return { statusRecords: [] };
  }
}

/** sent/NAME.dat pairs with sent/NAME.ctl; a plain file NAME gets NAME.ctl beside it. */
function ctlNameFor(dataName: string): string {
  return /\.dat$/i.test(dataName) ? dataName.replace(/\.dat$/i, '.ctl') : `${dataName}.ctl`;
}

/** How many uploads run at once; each is one HTTPS request stream. */
const UPLOAD_CONCURRENCY = 16;

/**
 * Uploads queued or part-uploaded rows. The "first POST in flight" marks of a whole group are
 * committed together before any POST (one fsync); each message id is committed the moment MESH
 * gives it, so only a POST cut off in flight is ever parked for review; the `sent` outcomes of
 * the group share one commit.
 */
export async function uploadBatch(ctx: MailboxContext, rows: MessageRow[]): Promise<number> {
  const { ledger, mesh, log } = ctx;
  const prepared: Array<{ row: MessageRow; payload: string }> = [];
  for (const row of rows) {
    const payload = await preparePayload(ctx, row);
    if (payload) prepared.push({ row, payload });
  }
  ledger.transaction(() => {
    for (const p of prepared) {
      const first = !(p.row.state === 'uploading' && p.row.messageId);
      p.row = ledger.update(
        p.row.id,
        first ? { errorCode: POST_IN_FLIGHT, errorText: null, attempts: (p.row.attempts ?? 0) + 1 } : { attempts: (p.row.attempts ?? 0) + 1 },
        first ? { type: 'upload_started' } : { type: 'upload_resumed', detail: { fromChunk: (p.row.chunksDone ?? 0) + 1 } },
      );
    }
  });
  const outcomes = await mapLimit(prepared, UPLOAD_CONCURRENCY, async ({ row, payload }) => {
    const resume = row.state === 'uploading' && row.messageId ? { messageId: row.messageId, chunksDone: row.chunksDone ?? 0 } : undefined;
    try {
      const result = await mesh.send(
        payload,
        {
          to: row.peer!,
          workflowId: row.workflowId!,
          subject: row.subject ?? undefined,
          localId: row.localId ?? undefined,
          fileName: row.fileName ? basename(row.fileName) : undefined,
          chunkSize: row.chunkSize ?? ctx.config.transfer.chunkSize,
          compress: row.compress,
        },
        {
          onMessageId: (messageId, total) => {
            // Committed the moment MESH answers: from here a restart resumes (or just files it)
            // instead of parking it as an unknown outcome.
            ledger.transition(row.id, 'uploading', {
              from: ['queued'],
              patch: { messageId: messageId, chunksTotal: total, chunksDone: 1, errorCode: null, errorText: null },
              event: { type: 'message_id', detail: { messageId: messageId, chunks: total } },
            });
            log.debug('SEND_ACCEPTED', 'MESH accepted the first chunk', { row: row.id, messageId, chunks: total });
          },
          onChunk: (n, total) => {
            if (n > 1) ledger.update(row.id, { chunksDone: n, chunksTotal: total }, { type: 'chunk_sent', detail: { chunk: n, of: total } });
            if (n < total && ctx.stopping()) throw new StopRequested();
          },
        },
        resume,
      );
      return { row, payload, result };
    } catch (err) {
      return { row, payload, err };
    }
  });
  let sent = 0;
  const done: MessageRow[] = [];
  // After the last chunk: a file that changed while it was being sent is not recorded as sent.
  const changed = await Promise.all(outcomes.map((o) => ('result' in o && o.result ? checkSpool(ctx, o.row, { hash: false }) : undefined)));
  ledger.transaction(() => {
    outcomes.forEach((o, i) => {
      if (!('result' in o) || !o.result || changed[i]) return;
      const r = o.result;
      done.push(
        ledger.transition(o.row.id, 'sent', {
          from: ['uploading', 'queued'],
          patch: {
            messageId: r.messageId,
            chunksDone: r.chunks,
            chunksTotal: r.chunks,
            errorCode: null,
            errorText: null,
            nextAttemptAt: new Date(ctx.now().getTime() + 10 * 60_000).toISOString(),
          },
          event: { type: 'sent', detail: { messageId: r.messageId, chunks: r.chunks, bytes: r.bytes } },
        }),
      );
      sent++;
    });
  });
  for (const [i, o] of outcomes.entries()) {
    const problem = changed[i];
    if (!problem || !('result' in o) || !o.result) continue;
    ledger.update(o.row.id, { messageId: o.result.messageId }, { type: 'sent_but_changed', detail: { messageId: o.result.messageId } });
    await parkForReview(ctx, ledger.get(o.row.id)!, { code: problem.code, text: `MESH has message ${o.result.messageId}, but ${problem.text}` });
  }
  for (const row of done) log.info('SEND_COMPLETE', `sent ${row.fileName} as ${row.messageId}`, { row: row.id, messageId: row.messageId, chunks: row.chunksTotal });
  await finishSentBatch(ctx, done);
  for (const o of outcomes) {
    if ('err' in o && o.err && !(o.err instanceof StopRequested)) await recordSendError(ctx, o.row.id, o.err);
  }
  return sent;
}

async function recordSendError(ctx: MailboxContext, rowId: number, err: unknown): Promise<void> {
  const { ledger, log } = ctx;
  const row = ledger.get(rowId)!;
  const e = err instanceof MeshdError ? err : new MeshdError('SEND_ERROR', (err as Error).message, undefined, 'failure');
  if (e.kind === 'ambiguous' && row.state === 'queued') {
    if (ctx.config.ledger.ambiguousSend === 'resend') {
      ledger.update(rowId, { errorCode: e.code, errorText: e.message, nextAttemptAt: new Date(ctx.now().getTime() + backoffMs(row.attempts ?? 1)).toISOString() }, { type: 'outcome_unknown', detail: { policy: 'resend' } });
      log.warn('SEND_RESEND_POLICY', 'outcome of the first upload is unknown; will resend as ledger.ambiguousSend is resend', { row: rowId });
      return;
    }
    ledger.transition(rowId, 'needs_review', {
      from: ['queued'],
      patch: { errorCode: e.code, errorText: e.message },
      event: { type: 'outcome_unknown', detail: { code: e.code, reason: e.message } },
    });
    log.warn('SEND_NEEDS_REVIEW', 'MESH may or may not have this message; parked for review (meshd ledger resolve)', { row: rowId, code: e.code });
    return;
  }
  if (e.kind === 'rejected' || e.kind === 'input') {
    await failOutbound(ctx, ledger.get(rowId)!, e.code, e.message);
    return;
  }
  // Transient, auth, TLS: keep the payload and try again later with backoff.
  const next = new Date(ctx.now().getTime() + backoffMs(row.attempts ?? 1)).toISOString();
  ledger.update(rowId, { errorCode: e.code, errorText: e.message, nextAttemptAt: next }, { type: 'send_retry_later', detail: { code: e.code, next } });
  log.warn('SEND_RETRY_LATER', `send failed, will retry at ${next}: ${e.message}`, { row: rowId, code: e.code });
}

/**
 * Files a batch of sent payloads into sent/. The target name is recorded first (with a FILING
 * mark), then the files move, then the mark is cleared, so a crash at any point is redone by
 * recovery without a second copy, a lost control file or a dangling path. One directory fsync
 * and two commits per batch.
 */
async function finishSentBatch(ctx: MailboxContext, rows: MessageRow[]): Promise<void> {
  if (rows.length === 0) return;
  const { ledger } = ctx;
  const planned = await planTargets(ctx, ctx.folders.sent, rows);
  ledger.transaction(() => {
    for (const p of planned) if (p.fresh) ledger.update(p.row.id, { payloadPath: p.target, errorCode: FILING }, { type: 'filing', detail: { sent: p.target } });
  });
  for (const p of planned) await fileSent(ctx, p.row, p.target);
  await fsyncDir(ctx.folders.sent);
  for (const p of planned) await removeSpoolLeftovers(ctx, p.row);
  ledger.transaction(() => {
    for (const p of planned) ledger.update(p.row.id, { ctlPath: null, errorCode: null }, { type: 'filed', detail: { sent: p.target } });
  });
}

/** Marks a row whose payload is being moved out of the spool into sent/ or failed/. */
const FILING = 'FILING';

/** Target paths for a batch: the recorded one when redoing, else a free name (unique within the batch). */
async function planTargets(ctx: MailboxContext, dir: string, rows: MessageRow[]): Promise<Array<{ row: MessageRow; target: string; fresh: boolean }>> {
  const taken = new Set<string>();
  const out = [];
  for (const row of rows) {
    if (row.errorCode === FILING && row.payloadPath && !row.payloadPath.startsWith(ctx.spool)) {
      out.push({ row, target: row.payloadPath, fresh: false });
      continue;
    }
    let name = await freeName(dir, row.fileName ?? `${row.messageId ?? row.id}.dat`);
    for (let i = 1; taken.has(name); i++) name = await freeName(dir, suffixed(row.fileName ?? `${row.id}.dat`, i));
    taken.add(name);
    out.push({ row, target: join(dir, name), fresh: true });
  }
  return out;
}

function suffixed(name: string, i: number): string {
  const dot = name.lastIndexOf('.');
  return dot > 0 ? `${name.slice(0, dot)}.${i}${name.slice(dot)}` : `${name}.${i}`;
}

async function finishSent(ctx: MailboxContext, row: MessageRow): Promise<void> {
  await finishSentBatch(ctx, [row]);
}

async function removeSpoolLeftovers(ctx: MailboxContext, row: MessageRow): Promise<void> {
  const spool = spoolPaths(ctx, row);
  for (const p of [spool.ctl, spool.send, spool.data]) await removeName(p);
}

/**
 * Moves a sent payload from the spool to `target` and writes its control file (dir not synced).
 * Idempotent: a payload already moved is left; a control file is rewritten only while the
 * spool still holds the original .ctl, or when none was written yet.
 */
async function fileSent(ctx: MailboxContext, row: MessageRow, target: string): Promise<void> {
  const spool = spoolPaths(ctx, row);
  if (await exists(spool.data)) await moveFile(spool.data, target, SHARED_FILE_MODE);
  if (!ctx.mailbox.controlFiles) return;
  const ctlTarget = join(ctx.folders.sent, ctlNameFor(basename(target)));
  const original = (await exists(spool.ctl)) ? spool.ctl : undefined;
  if (!original && (await exists(ctlTarget))) return;
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
  await writeFileAtomic(ctlTarget, formatControlFile(written), 0o640, false);
}

const recovered = new WeakSet<MailboxContext>();

/** One pass of the send side: recover, take new files, upload what is due. */
export async function sendCycle(ctx: MailboxContext): Promise<{ claimed: number; sent: number }> {
  // Half-done work only outlives a crash, so recovery runs once per process and mailbox.
  if (!recovered.has(ctx)) {
    await recoverOutbound(ctx);
    recovered.add(ctx);
  }
  let claimed = 0;
  const candidates = await scanOutbox(ctx);
  for (let i = 0; i < candidates.length && !ctx.stopping(); i += CLAIM_BATCH) {
    claimed += await claimBatch(ctx, candidates.slice(i, i + CLAIM_BATCH));
  }
  let sent = 0;
  while (!ctx.stopping()) {
    const due = ctx.ledger.due(ctx.mailbox.id, 'out', ['queued', 'uploading'], ctx.now(), UPLOAD_BATCH);
    if (due.length === 0) break;
    sent += await uploadBatch(ctx, due);
    if (due.length < UPLOAD_BATCH) break;
  }
  return { claimed, sent };
}

/** What a cycle would send, without moving a file or calling MESH (`meshd run --dry-run`). */
export async function planOutbound(ctx: MailboxContext): Promise<Array<{ file: string; to?: string; workflow?: string; transform?: string; problem?: string }>> {
  const plan = [];
  for (const c of await scanOutbox(ctx, { dryRun: true })) {
    const item: { file: string; to?: string; workflow?: string; transform?: string; problem?: string } = { file: c.name };
    try {
      if (c.ctlPath) {
        const ctl = parseControlFile(await readRegular(c.ctlPath));
        checkOutboundControl(ctl);
        item.to = ctl.toDts;
        item.workflow = ctl.workflowId;
      } else if (c.route) {
        item.to = c.route.to;
        item.workflow = c.route.workflow;
        if (c.route.transform) {
          item.transform = `${c.route.transform.from}>${c.route.transform.to}`;
          const size = (await fs.lstat(c.dataPath)).size;
          if (size > ctx.config.transform.maxInputBytes) throw new MeshdError('TOO_LARGE_TO_CONVERT', `${size} bytes is over transform.maxInputBytes; it would be set aside, not converted`);
          const r = await ctx.transform(await readRegular(c.dataPath), c.route.transform.from, c.route.transform.to, { direction: 'out', rowId: 0 });
          if (r.errors.length) item.problem = `${r.errors.length} of ${r.messageCount} messages would be quarantined`;
        }
      }
      if ((await fs.lstat(c.dataPath)).size === 0) item.problem = 'empty file: MESH refuses it';
    } catch (err) {
      item.problem = (err as Error).message;
    }
    plan.push(item);
  }
  return plan;
}
