import { promises as fs } from 'node:fs';
import { basename, join } from 'node:path';
import { MeshdError } from '../../errors';
import { companionFiles, groupCommit, sendableRow, type MessageRow, type SendableRow } from '../../ledger';
import { copyRegular, createExclusive, exists, freeName, fsyncDir, moveFile, PRIVATE_FILE_MODE, readRegular, removeName, tempPathFor, writeFileAtomic } from '../../safe-fs';
import { issueSummary, StopRequested, type MailboxContext } from '../context';
import { FS_CONCURRENCY, mapLimit, mutex } from '../pool';
import { checkSpool, spoolPaths, type ClaimedBytes, type SpoolPaths } from '../spool';
import { failedNames, failOutbound, finishSentBatch, parkForReview } from './file';
import { ackDueAt, mustWait, recordSendFacts } from './order';

/**
 * Uploading queued rows: the spool copy is checked, converted once if the route says, then sent.
 * The `post_in_flight` marks of a group are committed together before any POST; each message id
 * is committed the moment MESH gives it, so only a POST cut off in flight is ever parked.
 */

/** What an upload sends: the file at `path`, or `bytes` already read from it and checked. */
export interface Payload {
  path: string;
  bytes?: Buffer;
}

/** How many uploads run at once; each is one HTTPS request stream. */
const UPLOAD_CONCURRENCY = 16;

function backoffMs(attempts: number): number {
  return Math.min(60_000 * 2 ** Math.max(0, attempts - 1), 3_600_000);
}

/**
 * Makes sure the payload is in the spool (a row retried by an operator still points at failed/
 * or sent/) and applies the route's transform once, writing the converted payload beside it.
 * A small payload's bytes, read once by the check against the claim's hash, are what is
 * converted, or (unconverted) what its business facts are read from and what is sent.
 */
async function preparePayload(ctx: MailboxContext, row: MessageRow, held?: ClaimedBytes): Promise<Payload | undefined> {
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
  // Before the first POST and before each resume: what is sent must be what was claimed, the
  // bytes this process hashed at the claim, or else the spool copy checked against that hash.
  const claimed = held?.take(row);
  const { problem, bytes } = claimed ? { problem: undefined, bytes: claimed } : await checkSpool(ctx, row, { hash: true, keepBytes: true });
  if (problem) {
    await parkForReview(ctx, row, problem);
    return undefined;
  }
  if (!row.transform) return { path: spool.data, bytes };
  if (await exists(spool.send)) return { path: spool.send };
  const cap = ctx.config.transform.maxInputBytes;
  if ((row.sizeBytes ?? 0) > cap) {
    await failOutbound(ctx, row, 'TOO_LARGE_TO_CONVERT', `${row.sizeBytes} bytes is over transform.maxInputBytes (${cap}); it was not loaded. Raise the cap or send it on a route without a transform`);
    return undefined;
  }
  const converted = await converting(() => convert(ctx, row, spool, bytes));
  return converted === undefined ? undefined : { path: converted };
}

/**
 * Conversions run one at a time in a process (`converting`): the poison guard below counts a
 * start against each conversion in progress, and a crash must count only against the one that caused it.
 */
const converting = mutex();

/** `checked`: the spool copy's bytes, when the check before it kept them (else it is read here). */
async function convert(ctx: MailboxContext, row: MessageRow, spool: SpoolPaths, checked?: Buffer): Promise<string | undefined> {
  const [from, to] = row.transform!.split('>');
  // Committed before converting: if this conversion kills the process twice, recovery sets it aside (POISON).
  row = ctx.ledger.update(row.id, { processingStarts: row.processingStarts + 1 }, { type: 'processing_started', detail: { step: 'transform' } });
  const input = checked ?? (await readRegular(spool.data));
  // The converted payload is written as it is produced into a fresh file, renamed into place once whole.
  const temp = tempPathFor(spool.send);
  const out = await createExclusive(temp, PRIVATE_FILE_MODE);
  let result;
  try {
    result = await ctx.transform(input, from, to, { direction: 'out', rowId: row.id }, out.fd);
    await out.sync();
  } catch (err) {
    await out.close();
    await removeName(temp);
    await failOutbound(ctx, row, err instanceof MeshdError ? err.code : 'TRANSFORM_FAILED', (err as Error).message);
    return undefined;
  }
  await out.close();
  if (result.errors.length > 0) {
    // Part of a batch was bad: the good messages go; the bad ones are reported with the original kept.
    const lines = result.errors.map((e) => `message ${e.message ?? '?'} ${e.position ?? ''} ${e.field ?? ''}: ${e.code}: ${e.text}`);
    const keep = await failedNames(async () => {
      const path = join(ctx.folders.failed, await freeName(ctx.folders.failed, row.fileName ?? `${row.id}.dat`, (name) => [companionFiles(name)[1]]));
      await copyRegular(spool.data, path);
      await writeFileAtomic(companionFiles(path)[1], lines.join('\n') + '\n');
      return path;
    });
    ctx.ledger.recordEvent(row.id, 'transform_partial', { quarantined: result.failedMessages, of: result.messageCount, copy: keep, errors: issueSummary(result.errors) });
    ctx.log.warn('TRANSFORM_PARTIAL', `${result.failedMessages} of ${result.messageCount} messages in ${row.fileName} could not be converted; a copy with reasons is in failed/`, {
      row: row.id,
    });
  }
  await fs.rename(temp, spool.send);
  ctx.ledger.update(row.id, { processingStarts: 0 }, { type: 'transformed', detail: { transform: row.transform, messages: result.messageCount, ...(result.notes.length ? { notes: issueSummary(result.notes) } : {}) } });
  return spool.send;
}


/**
 * Uploads queued or part-uploaded rows. The "first POST in flight" marks of a whole group are
 * committed together before any POST (one fsync); each message id is committed the moment MESH
 * gives it (ids arriving together share a commit), so only a POST cut off in flight is ever
 * parked for review. A message of one chunk sent from bytes checked against its claim is
 * recorded as sent with its id; the other messages' `sent` outcomes share one commit after the
 * group's last chunks. `file` files the sent
 * rows into sent/ (the send cycle queues that behind the next group's upload).
 */
export async function uploadBatch(
  ctx: MailboxContext,
  rows: MessageRow[],
  file: (sent: MessageRow[]) => Promise<void> | void = (sent) => finishSentBatch(ctx, sent),
  held?: ClaimedBytes,
): Promise<number> {
  const { ledger, mesh, log } = ctx;
  // Rows are independent until they are sent: their checks and conversions run side by side.
  const checked = await mapLimit(rows.map(sendableRow), FS_CONCURRENCY, async (row) => {
    const payload = await preparePayload(ctx, row, held);
    return payload ? { row: sendableRow(await recordSendFacts(ctx, ledger.get(row.id)!, payload)), payload } : undefined;
  });
  // Facts of the whole group are recorded first, so an earlier event in it holds a later one back.
  const prepared = checked.filter((p): p is { row: SendableRow; payload: Payload } => !!p && !mustWait(ctx, p.row));
  ledger.transaction(() => {
    for (const p of prepared) {
      const first = !(p.row.state === 'uploading' && p.row.messageId);
      p.row = sendableRow(first
        ? ledger.setMark(p.row.id, 'post_in_flight', { from: ['queued'], patch: { errorCode: null, errorText: null, attempts: p.row.attempts + 1 }, event: { type: 'upload_started' } })
        : ledger.update(p.row.id, { attempts: p.row.attempts + 1 }, { type: 'upload_resumed', detail: { fromChunk: p.row.chunksDone + 1 } }));
    }
  });
  const commitSoon = groupCommit(ledger);
  const outcomes = await mapLimit(prepared, UPLOAD_CONCURRENCY, async ({ row, payload }) => {
    const resume = row.state === 'uploading' && row.messageId ? { messageId: row.messageId, chunksDone: row.chunksDone ?? 0 } : undefined;
    /** The row, once recorded as sent at MESH's answer (a whole message of one chunk). */
    let recorded: MessageRow | undefined;
    try {
      const result = await mesh.send(
        payload.bytes ?? payload.path,
        {
          to: row.peer,
          workflowId: row.workflowId,
          subject: row.subject ?? undefined,
          localId: row.localId ?? undefined,
          fileName: row.fileName ? basename(row.fileName) : undefined,
          chunkSize: row.chunkSize ?? ctx.config.transfer.chunkSize,
          compress: row.compress,
        },
        {
          onMessageId: async (messageId, total) => {
            // Committed as soon as MESH answers, before anything else happens to this message:
            // from here a restart resumes (or just files it) instead of parking it as an unknown
            // outcome. Answers arriving together share one commit. A message of one chunk sent
            // from bytes checked against its claim is whole at this answer, so it is recorded
            // as sent in that commit (nothing after the last chunk is left to check).
            const whole = total === 1 && payload.bytes !== undefined;
            await commitSoon(() => {
              if (whole) recorded = ledger.transition(row.id, 'sent', sentTransition(ctx, row, { messageId, chunks: 1, bytes: payload.bytes!.length }));
              else
                ledger.transition(row.id, 'uploading', {
                  from: ['queued'],
                  patch: { messageId: messageId, chunksTotal: total, chunksDone: 1, errorCode: null, errorText: null },
                  event: { type: 'message_id', detail: { messageId: messageId, chunks: total } },
                });
            }).catch((err: unknown) => {
              throw new UnrecordedMessageId(err);
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
      return { row, payload, result, recorded };
    } catch (err) {
      return { row, payload, err, recorded };
    }
  });
  // A message of one chunk sent from checked bytes was recorded as sent at MESH's answer. For the
  // others, after the last chunk: a file that changed while it was being sent is not recorded as sent.
  const finished = outcomes.map((o) => (!o.recorded && 'result' in o && o.result ? o.result : undefined));
  const changed = await Promise.all(outcomes.map(async (o, i) => (finished[i] ? (await checkSpool(ctx, o.row, { hash: false })).problem : undefined)));
  const sentNow = ledger.transaction(() => outcomes.map((o, i) => (finished[i] && !changed[i] ? ledger.transition(o.row.id, 'sent', sentTransition(ctx, o.row, finished[i])) : undefined)));
  const done = outcomes.map((o, i) => o.recorded ?? sentNow[i]).filter((row): row is MessageRow => !!row);
  for (const [i, o] of outcomes.entries()) {
    const problem = changed[i];
    const result = finished[i];
    if (!problem || !result) continue;
    ledger.update(o.row.id, { messageId: result.messageId }, { type: 'sent_but_changed', detail: { messageId: result.messageId } });
    await parkForReview(ctx, ledger.get(o.row.id)!, { code: problem.code, text: `MESH has message ${result.messageId}, but ${problem.text}` });
  }
  for (const row of done) log.info('SEND_COMPLETE', `sent ${row.fileName} as ${row.messageId}`, { row: row.id, messageId: row.messageId, chunks: row.chunksTotal });
  await file(done);
  for (const o of outcomes) {
    if (!o.recorded && 'err' in o && o.err && !(o.err instanceof StopRequested)) await recordSendError(ctx, o.row.id, o.err);
  }
  return done.length;
}

/** A row's move to `sent` once MESH has every chunk. */
function sentTransition(ctx: MailboxContext, row: MessageRow, r: { messageId: string; chunks: number; bytes: number }) {
  return {
    from: ['uploading', 'queued'] as MessageRow['state'][],
    patch: {
      messageId: r.messageId,
      chunksDone: r.chunks,
      chunksTotal: r.chunks,
      errorCode: null,
      errorText: null,
      nextAttemptAt: new Date(ctx.now().getTime() + 10 * 60_000).toISOString(),
      ackDueAt: ackDueAt(ctx, row) ?? null,
    },
    event: { type: 'sent', detail: { messageId: r.messageId, chunks: r.chunks, bytes: r.bytes } },
    // Its payload is still in the spool: filing it is what a stop from here leaves to recovery.
    mark: 'filing' as const,
  };
}

/** A first POST MESH accepted whose message id the ledger failed to record (`cause`: the ledger's error). */
class UnrecordedMessageId extends Error {
  constructor(cause: unknown) {
    super('MESH accepted the message but its id could not be recorded', { cause });
  }
}

async function recordSendError(ctx: MailboxContext, rowId: number, err: unknown): Promise<void> {
  // MESH took the first POST but the ledger could not record its id: the row stays as it stands,
  // in-flight mark and all, and the stage fails with the ledger's error. Recovery (run again
  // before the mailbox's next stage on a lost PostgreSQL connection, else at the next start)
  // parks it for review; settling it here as a retry would clear the mark and send it twice.
  if (err instanceof UnrecordedMessageId) throw err.cause;
  const { ledger, log } = ctx;
  const row = ledger.get(rowId)!;
  const e = err instanceof MeshdError ? err : new MeshdError('SEND_ERROR', (err as Error).message, undefined, 'failure');
  // The outcome is known (or handed to the resend policy): the in-flight mark goes with the record of it.
  const later = (patch: { errorCode: string; errorText: string; nextAttemptAt: string }, event: { type: string; detail: object }) =>
    row.recoveryMark ? ledger.setMark(rowId, null, { patch, event }) : ledger.update(rowId, patch, event);
  if (e.kind === 'ambiguous' && row.state === 'queued') {
    if (ctx.config.ledger.ambiguousSend === 'resend') {
      later({ errorCode: e.code, errorText: e.message, nextAttemptAt: new Date(ctx.now().getTime() + backoffMs(row.attempts)).toISOString() }, { type: 'outcome_unknown', detail: { policy: 'resend' } });
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
  const next = new Date(ctx.now().getTime() + backoffMs(row.attempts)).toISOString();
  later({ errorCode: e.code, errorText: e.message, nextAttemptAt: next }, { type: 'send_retry_later', detail: { code: e.code, next } });
  log.warn('SEND_RETRY_LATER', `send failed, will retry at ${next}: ${e.message}`, { row: rowId, code: e.code });
}

