import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import { basename, join } from 'node:path';
import type { RouteConfig } from '../config/types';
import { MeshdError } from '../errors';
import type { MessageRow, NewMessage } from '../ledger';
import { checkOutboundControl, ctlDateTime, formatControlFile, parseControlFile, type ControlFile } from './ctl';
import { StopRequested, type MailboxContext } from './context';
import { globToRegExp, isInProgressName } from './folders';
import { exists, freeName, fsyncDir, moveFile, writeFileAtomic } from '../safe-fs';
import { mapLimit } from './pool';

/**
 * The send pipeline, one mailbox at a time:
 *   recover → scan out/ → claim (ledger row + move into the spool) → transform → upload
 *   (message id and each chunk recorded as accepted) → sent (files to sent/).
 * A crash at any point is finished or parked by `recoverOutbound` on the next start.
 */

/** Marks a first POST in flight: if we find it after a restart, its outcome is unknown. */
const POST_IN_FLIGHT = 'POST_IN_FLIGHT';
/** .ctl files alone in out/ longer than this are quarantined (their .dat never came). */
const ORPHAN_CTL_GRACE_MS = 5 * 60_000;
/**
 * Rows uploaded per group commit. Small on purpose: if meshd dies mid-group, every first POST
 * of the group has an unknown outcome and is parked for review, so the group bounds that.
 */
const UPLOAD_BATCH = 16;
/** Files taken from out/ per group commit. */
const CLAIM_BATCH = 64;

export interface Candidate {
  /** The data file's name in out/. */
  name: string;
  dataPath: string;
  ctlPath?: string;
  route?: RouteConfig;
}

/** Problems reported once per file name per process (unmatched files are left alone). */
const reported = new Set<string>();

function reportOnce(ctx: MailboxContext, key: string, event: string, message: string, fields: Record<string, unknown>): void {
  const k = `${ctx.mailbox.id}:${key}`;
  if (reported.has(k)) return;
  reported.add(k);
  ctx.log.warn(event, message, fields);
}

function spoolPaths(ctx: MailboxContext, rowId: number) {
  return {
    data: join(ctx.spool, `${rowId}.dat`),
    ctl: join(ctx.spool, `${rowId}.ctl`),
    send: join(ctx.spool, `${rowId}.send`),
  };
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

// ---------------------------------------------------------------------------------------
// Recovery

/** Finishes or parks whatever a crash left half-done. Idempotent; runs on the first cycle of each process. */
export async function recoverOutbound(ctx: MailboxContext): Promise<void> {
  const { ledger, mailbox } = ctx;
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
}

/** A claim that stopped between the ledger row and the move: finish it, or fail it if the file is gone. */
async function finishClaim(ctx: MailboxContext, row: MessageRow): Promise<void> {
  const spool = spoolPaths(ctx, row.id);
  const outData = row.payloadPath ?? '';
  const outCtl = row.ctlPath ?? undefined;
  if (!(await exists(spool.data)) && outData && (await exists(outData))) await moveFile(outData, spool.data);
  if (outCtl && !(await exists(spool.ctl)) && (await exists(outCtl))) await moveFile(outCtl, spool.ctl);
  if (await exists(spool.data)) {
    await fsyncDir(ctx.spool);
    ctx.ledger.transition(row.id, 'queued', {
      from: ['claiming'],
      patch: { payloadPath: spool.data, ctlPath: outCtl ? spool.ctl : null },
      event: { type: 'claimed', detail: { recovered: true } },
    });
    return;
  }
  ctx.ledger.transition(row.id, 'failed', {
    from: ['claiming'],
    patch: { errorCode: 'FILE_VANISHED', errorText: 'the file disappeared from out/ while it was being taken' },
    event: { type: 'claim_failed', detail: { reason: 'file vanished' } },
  });
  ctx.log.warn('OUT_FILE_VANISHED', 'a file disappeared from out/ while it was being taken; nothing was sent', { row: row.id, file: row.fileName });
}

// ---------------------------------------------------------------------------------------
// Scan and claim

/** Lists what out/ holds that is complete and ready; quarantines what can never be sent. */
export async function scanOutbox(ctx: MailboxContext, opts: { dryRun?: boolean } = {}): Promise<Candidate[]> {
  const { folders, mailbox } = ctx;
  const settleMs = ctx.config.schedule.settleSeconds * 1000;
  const now = ctx.now().getTime();
  let names: string[];
  try {
    names = (await fs.readdir(folders.out)).sort();
  } catch (err) {
    throw new MeshdError('OUT_UNREADABLE', `cannot read ${folders.out}: ${(err as Error).message}`, 'check the folder exists and meshd may read it');
  }
  const byLowerName = new Map(names.map((n) => [n.toLowerCase(), n]));
  const ready: Candidate[] = [];
  const outRoutes = mailbox.routes.filter((r) => r.direction === 'out' && r.match);

  const settled = async (path: string): Promise<boolean | undefined> => {
    try {
      const st = await fs.stat(path);
      return st.isFile() && now - st.mtimeMs >= settleMs;
    } catch {
      return undefined; // vanished or unreadable
    }
  };

  for (const name of names) {
    if (isInProgressName(name)) continue;
    const lower = name.toLowerCase();
    const path = join(folders.out, name);
    if (mailbox.controlFiles && lower.endsWith('.ctl')) {
      const stem = name.slice(0, -4);
      const dat = byLowerName.get(`${stem.toLowerCase()}.dat`);
      if (dat) continue; // handled with its .dat
      try {
        const st = await fs.stat(path);
        if (now - st.mtimeMs >= Math.max(settleMs, ORPHAN_CTL_GRACE_MS) && !opts.dryRun) {
          await quarantineUnsendable(ctx, { name, ctlPath: path }, 'CTL_WITHOUT_DAT', `control file ${name} has no matching .dat file`);
        }
      } catch {
        /* vanished: nothing to do */
      }
      continue;
    }
    if (mailbox.controlFiles && lower.endsWith('.dat')) {
      const stem = name.slice(0, -4);
      const ctlName = byLowerName.get(`${stem.toLowerCase()}.ctl`);
      if (ctlName) {
        const ctlPath = join(folders.out, ctlName);
        if ((await settled(path)) && (await settled(ctlPath))) ready.push({ name, dataPath: path, ctlPath });
        continue;
      }
    }
    const route = outRoutes.find((r) => globToRegExp(r.match!).test(name));
    if (!route) {
      if (!(mailbox.controlFiles && lower.endsWith('.dat'))) {
        reportOnce(ctx, name, 'OUT_UNMATCHED', 'file in out/ matches no route and is left alone', { file: name });
      }
      continue;
    }
    if (await settled(path)) ready.push({ name, dataPath: path, route });
  }
  return ready;
}

/** Moves an unsendable file (and its .ctl) to failed/ with a reason file, recording it in the ledger. */
async function quarantineUnsendable(
  ctx: MailboxContext,
  item: { name: string; dataPath?: string; ctlPath?: string; ctl?: ControlFile },
  code: string,
  reason: string,
): Promise<void> {
  const { ledger, mailbox, folders } = ctx;
  // Files first, then the row: a crash in between leaves the file safe in failed/, never re-sent.
  const moved: { data?: string; ctl?: string } = {};
  if (item.dataPath && (await exists(item.dataPath))) {
    moved.data = join(folders.failed, await freeName(folders.failed, basename(item.dataPath)));
    await moveFile(item.dataPath, moved.data);
  }
  if (item.ctlPath && (await exists(item.ctlPath))) {
    moved.ctl = join(folders.failed, await freeName(folders.failed, basename(item.ctlPath)));
    await moveFile(item.ctlPath, moved.ctl);
  }
  const reasonPath = join(folders.failed, await freeName(folders.failed, `${item.name}.reason`));
  await writeFileAtomic(reasonPath, `${code}: ${reason}\n`);
  const row = ledger.insertMessage(
    {
      direction: 'out',
      mailbox: mailbox.id,
      state: 'failed',
      fileName: item.name,
      peer: item.ctl?.toDts ?? null,
      workflowId: item.ctl?.workflowId ?? null,
      localId: item.ctl?.localId ?? null,
      payloadPath: moved.data ?? null,
      ctlPath: moved.ctl ?? null,
      errorCode: code,
      errorText: reason,
    },
    { type: 'quarantined', detail: { code, reason, failed: reasonPath } },
  );
  ctx.log.warn('OUT_QUARANTINED', `${reason}; moved to failed/`, { code, file: item.name, row: row.id });
}

/** Reads what a candidate needs before it is taken; quarantines it if it can never be sent. */
async function inspectCandidate(ctx: MailboxContext, c: Candidate): Promise<NewMessage | undefined> {
  let ctl: ControlFile | undefined;
  if (c.ctlPath) {
    try {
      ctl = parseControlFile(await fs.readFile(c.ctlPath));
      checkOutboundControl(ctl);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // vanished: nothing to take
      const code = err instanceof MeshdError ? err.code : 'CTL_UNREADABLE';
      await quarantineUnsendable(ctx, { name: c.name, dataPath: c.dataPath, ctlPath: c.ctlPath }, code, (err as Error).message);
      return undefined;
    }
  }
  let size: number;
  try {
    size = (await fs.stat(c.dataPath)).size;
  } catch {
    return undefined; // vanished before we took it: it was never ours
  }
  if (size === 0) {
    await quarantineUnsendable(ctx, { name: c.name, dataPath: c.dataPath, ctlPath: c.ctlPath, ctl }, 'EMPTY_FILE', `${c.name} is empty; MESH refuses empty messages`);
    return undefined;
  }
  const route = c.route;
  return {
    direction: 'out',
    mailbox: ctx.mailbox.id,
    state: 'claiming',
    peer: (ctl?.toDts ?? route?.to ?? '').toUpperCase() || null,
    workflowId: ctl?.workflowId ?? route?.workflow ?? null,
    subject: ctl?.subject ?? route?.subject ?? null,
    localId: ctl?.localId ?? null,
    messageType: 'DATA',
    fileName: c.name,
    payloadPath: c.dataPath,
    ctlPath: c.ctlPath ?? null,
    sizeBytes: size,
    compress: ctl?.compress === false ? false : ctx.config.transfer.compress,
    transform: route?.transform ? `${route.transform.from}>${route.transform.to}` : null,
    chunkSize: ctx.config.transfer.chunkSize,
  };
}

/**
 * Takes candidates: records the intent (one commit for the batch), moves the files into the
 * spool, syncs the spool once, confirms (one commit). A crash between the steps is finished
 * by recoverOutbound, so a file is never sent twice from out/ nor lost between the two places.
 */
export async function claimBatch(ctx: MailboxContext, candidates: Candidate[]): Promise<number> {
  const { ledger } = ctx;
  const intents: NewMessage[] = [];
  for (const c of candidates) {
    const intent = await inspectCandidate(ctx, c);
    if (intent) intents.push(intent);
  }
  if (intents.length === 0) return 0;
  const rows = ledger.transaction(() => intents.map((i) => ledger.insertMessage(i, { type: 'claiming', detail: { file: i.fileName, mode: i.ctlPath ? 'control-file' : 'route' } })));
  const moved: Array<{ row: MessageRow; ctl: string | null } | undefined> = [];
  for (const row of rows) {
    const spool = spoolPaths(ctx, row.id);
    try {
      await moveFile(row.payloadPath!, spool.data);
      if (row.ctlPath) await moveFile(row.ctlPath, spool.ctl);
      moved.push({ row, ctl: row.ctlPath ? spool.ctl : null });
    } catch {
      moved.push(undefined); // recovery below settles it (finishes the move or records the loss)
    }
  }
  await fsyncDir(ctx.spool);
  await fsyncDir(ctx.folders.out);
  let claimed = 0;
  ledger.transaction(() => {
    for (const m of moved) {
      if (!m) continue;
      ledger.transition(m.row.id, 'queued', { from: ['claiming'], patch: { payloadPath: spoolPaths(ctx, m.row.id).data, ctlPath: m.ctl }, event: { type: 'claimed' } });
      claimed++;
    }
  });
  for (const [i, m] of moved.entries()) {
    if (!m) await finishClaim(ctx, rows[i]);
    else ctx.log.info('OUT_CLAIMED', `took ${m.row.fileName} from out/`, { row: m.row.id, file: m.row.fileName });
  }
  return claimed;
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
  const spool = spoolPaths(ctx, row.id);
  if (row.payloadPath && row.payloadPath !== spool.data) {
    if (!(await exists(spool.data))) {
      if (!(await exists(row.payloadPath))) {
        await failOutbound(ctx, row, 'PAYLOAD_MISSING', `the payload ${row.payloadPath} is gone; nothing to send`);
        return undefined;
      }
      await moveFile(row.payloadPath, spool.data);
      await fsyncDir(ctx.spool);
    }
    row = ctx.ledger.update(row.id, { payloadPath: spool.data }, { type: 'respooled', detail: { from: row.payloadPath } });
  }
  if (!row.transform) return spool.data;
  if (await exists(spool.send)) return spool.send;
  const [from, to] = row.transform.split('>');
  const input = await fs.readFile(spool.data);
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
    await fs.copyFile(spool.data, keep);
    const lines = result.errors.map((e) => `message ${e.message ?? '?'} ${e.position ?? ''} ${e.field ?? ''}: ${e.code}: ${e.text}`);
    await writeFileAtomic(`${keep}.reason`, lines.join('\n') + '\n');
    ctx.ledger.recordEvent(row.id, 'transform_partial', { quarantined: result.errors.length, of: result.messageCount, copy: keep });
    ctx.log.warn('TRANSFORM_PARTIAL', `${result.errors.length} of ${result.messageCount} messages in ${row.fileName} could not be converted; a copy with reasons is in failed/`, {
      row: row.id,
    });
  }
  await writeFileAtomic(spool.send, result.output);
  ctx.ledger.recordEvent(row.id, 'transformed', { transform: row.transform, messages: result.messageCount });
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
    patch: { payloadPath: plan.target, errorCode: code, errorText: FILING_PREFIX + text },
    event: { type: 'failed', detail: { code, reason: text } },
  });
  await fileFailed(ctx, failedRow);
  ctx.log.error('SEND_FAILED', `message from ${row.fileName} was refused and moved to failed/: ${text}`, { row: row.id, code });
}

async function fileFailed(ctx: MailboxContext, row: MessageRow): Promise<void> {
  const spool = spoolPaths(ctx, row.id);
  const target = row.payloadPath!;
  const text = (row.errorText ?? '').slice(FILING_PREFIX.length);
  const code = row.errorCode ?? 'FAILED';
  if (await exists(spool.data)) await moveFile(spool.data, target);
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
    return parseControlFile(await fs.readFile(path));
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
  const shas = await Promise.all(outcomes.map((o) => ('result' in o && o.result ? (o.row.sha256 ? o.row.sha256 : sha256File(o.payload)) : undefined)));
  ledger.transaction(() => {
    outcomes.forEach((o, i) => {
      if (!('result' in o) || !o.result) return;
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
            sha256: shas[i] ?? null,
          },
          event: { type: 'sent', detail: { messageId: r.messageId, chunks: r.chunks, bytes: r.bytes } },
        }),
      );
      sent++;
    });
  });
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
  const spool = spoolPaths(ctx, row.id);
  for (const p of [spool.ctl, spool.send, spool.data]) await fs.rm(p, { force: true });
}

/**
 * Moves a sent payload from the spool to `target` and writes its control file (dir not synced).
 * Idempotent: a payload already moved is left; a control file is rewritten only while the
 * spool still holds the original .ctl, or when none was written yet.
 */
async function fileSent(ctx: MailboxContext, row: MessageRow, target: string): Promise<void> {
  const spool = spoolPaths(ctx, row.id);
  if (await exists(spool.data)) await moveFile(spool.data, target);
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
        const ctl = parseControlFile(await fs.readFile(c.ctlPath));
        checkOutboundControl(ctl);
        item.to = ctl.toDts;
        item.workflow = ctl.workflowId;
      } else if (c.route) {
        item.to = c.route.to;
        item.workflow = c.route.workflow;
        if (c.route.transform) {
          item.transform = `${c.route.transform.from}>${c.route.transform.to}`;
          const r = await ctx.transform(await fs.readFile(c.dataPath), c.route.transform.from, c.route.transform.to, { direction: 'out', rowId: 0 });
          if (r.errors.length) item.problem = `${r.errors.length} of ${r.messageCount} messages would be quarantined`;
        }
      }
      if ((await fs.stat(c.dataPath)).size === 0) item.problem = 'empty file: MESH refuses it';
    } catch (err) {
      item.problem = (err as Error).message;
    }
    plan.push(item);
  }
  return plan;
}
