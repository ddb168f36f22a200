import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { RouteConfig } from '../config/types';
import { MeshdError } from '../errors';
import { BadMessageIdError, MeshNotFoundError, MeshProtocolError, MessageTooLargeError, SuspectedBombError } from '../mesh/errors';
import { isMessageId } from '../mesh/protocol';
import type { MessageRow } from '../ledger';
import { ctlDateTime, formatControlFile, type ControlFile } from './ctl';
import type { InboundMeta, MailboxContext } from './context';
import { globToRegExp } from './folders';
import {
  copyRegular,
  createExclusive,
  exists,
  fsyncDir,
  moveFile,
  openRegular,
  PRIVATE_FILE_MODE,
  removeName,
  safeFileName,
  SHARED_FILE_MODE,
  writeFileAtomic,
  writeTemp,
} from '../safe-fs';
import { mapLimit } from './pool';

/**
 * The receive pipeline: list every page → refuse ids not of MESH's shape → skip what the ledger
 * already delivered (only re-acknowledge it) → download into temp/<claimId>.part (exclusive,
 * 0600) while free space stays above transfer.minFreeBytes → transform if a route says →
 * stage the .ctl in temp/ → rename the .ctl, then the .dat, into in/ → one directory fsync for
 * the batch → ledger `delivered` (one commit) → acknowledge → `acknowledged`. A crash anywhere
 * repeats at most the download, never the local delivery, and no acknowledgement is ever sent
 * before its file is durably in in/ (or failed/).
 */

const RECEIVE_BATCH = 128;
const DOWNLOAD_CONCURRENCY = 16;
/** MESH's default inbox page: a full page means more may be waiting (drain at once). */
const FULL_PAGE = 500;
const MAX_DRAIN_ROUNDS = 50;

/** How much may arrive between two free-space checks during a download. */
const SPACE_CHECK_EVERY = 1024 * 1024;

type Outcome =
  | { kind: 'deliver'; row: MessageRow; meta: InboundMeta; path: string; bytes: number; sha256: string; ctl?: string }
  | { kind: 'report'; row: MessageRow; meta: InboundMeta; ctl?: string }
  | { kind: 'quarantine'; row: MessageRow; meta?: InboundMeta; code: string; reason: string; path?: string; ack: boolean }
  /** counted: a permanent failure of this message (counts towards retry.attempts). */
  | { kind: 'retry'; row: MessageRow; code: string; reason: string; counted: boolean }
  | { kind: 'ack-only'; row: MessageRow }
  | { kind: 'skip' };

/** What one receive cycle learnt that stops it: free space ran short. */
interface CycleState {
  diskLow?: DiskSpaceLowError;
}

/** Free space in a mailbox's filesystem would drop below transfer.minFreeBytes. */
export class DiskSpaceLowError extends MeshdError {
  constructor(free: number, minFree: number) {
    super(
      'IN_DISK_LOW',
      `free space in the mailbox folder is ${free} bytes; downloads pause below transfer.minFreeBytes (${minFree}); messages stay in MESH and are fetched once space is freed`,
      'free disk space in the mailbox folder (or lower transfer.minFreeBytes)',
      'failure',
    );
  }
}

/** Ledger code of a message refused because its MESH id is not of MESH's shape. */
export const BAD_MESSAGE_ID = 'MESH_BAD_MESSAGE_ID';

/**
 * Files in in/ and failed/ are named by the message id, which is checked to be of MESH's shape
 * before it names anything (the mex-FileName never chooses a path), so names never collide.
 */
export function inboundFileName(messageId: string): string {
  return `${safeFileName(messageId, 'message')}.dat`;
}

/** A row's working files in temp/: named by its random claim id, never a row or MESH id. */
function tempNames(ctx: MailboxContext, row: MessageRow): { part: string; out: string; ctl: string } {
  const base = join(ctx.folders.temp, row.claimId!);
  return { part: `${base}.part`, out: `${base}.out`, ctl: `${base}.ctl` };
}

async function freeBytes(dir: string): Promise<number> {
  const st = await fs.statfs(dir);
  return st.bavail * st.bsize;
}

/**
 * The download's free-space check (transfer.minFreeBytes), on temp/ and in/: before starting,
 * on each chunk's announced length, and every SPACE_CHECK_EVERY bytes as they arrive.
 */
function spaceGuard(ctx: MailboxContext): (bytes: number) => Promise<void> {
  const minFree = ctx.config.transfer.minFreeBytes;
  let pending = 0;
  let checked = false;
  return async (bytes) => {
    pending += bytes;
    if (checked && pending < SPACE_CHECK_EVERY) return;
    const free = Math.min(await freeBytes(ctx.folders.temp), await freeBytes(ctx.folders.in));
    if (free - pending < minFree) throw new DiskSpaceLowError(free, minFree);
    pending = 0;
    checked = true;
  };
}

async function sha256Of(handle: FileHandle): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of handle.createReadStream({ start: 0, autoClose: false })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** sha256 of a file meshd wrote, read without following a link. */
async function sha256Regular(path: string): Promise<string> {
  const { handle } = await openRegular(path);
  try {
    return await sha256Of(handle);
  } finally {
    await handle.close();
  }
}

function matchInboundRoute(routes: RouteConfig[], meta: InboundMeta): RouteConfig | undefined {
  return routes.find(
    (r) =>
      r.direction === 'in' &&
      globToRegExp(r.workflow).test(meta.workflowId ?? '') &&
      (!r.from || r.from.toUpperCase() === (meta.from ?? '').toUpperCase()),
  );
}

function inboundControl(ctx: MailboxContext, meta: InboundMeta): ControlFile {
  const report = meta.messageType === 'REPORT';
  return {
    messageType: report ? 'Report' : 'Data',
    fromDts: meta.from ?? '',
    toDts: meta.to ?? ctx.mailbox.id,
    workflowId: meta.workflowId ?? '',
    subject: meta.subject,
    localId: meta.localId,
    dtsId: report ? (meta.linkedMessageId ?? meta.messageId) : meta.messageId,
    partnerId: meta.partnerId,
    isCompressed: meta.compressed,
    encrypted: meta.encrypted,
    dataChecksum: meta.checksum,
    fileName: meta.fileName,
    contentType: meta.contentType,
    statusRecords: [
      {
        dateTime: meta.statusTimestamp ?? ctlDateTime(ctx.now()),
        event: meta.statusEvent ?? 'TRANSFER',
        status: meta.statusSuccess ?? (report ? 'ERROR' : 'SUCCESS'),
        statusCode: meta.statusCode ?? (report ? '' : '00'),
        description: meta.statusDescription ?? (report ? 'Report' : 'Transferred to recipient mailbox'),
      },
    ],
  };
}

/** Downloads and places one message; never acknowledges (the batch does, after its fsync). */
async function fetchOne(ctx: MailboxContext, row: MessageRow, cycle: CycleState): Promise<Outcome> {
  const { folders, mesh, log } = ctx;
  if (cycle.diskLow) return { kind: 'skip' };
  const id = row.messageId!;
  const temp = tempNames(ctx, row);
  let meta: InboundMeta;
  let bytes: number;
  try {
    // temp/<claimId>.* are this row's names: whatever stands there (a planted link) is removed, not followed.
    await removeName(temp.part);
    const handle = await createExclusive(temp.part, PRIVATE_FILE_MODE);
    try {
      const reserve = spaceGuard(ctx);
      await reserve(0);
      ({ meta, bytes } = await mesh.download(id, { handle, reserve }));
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (err) {
    await removeName(temp.part);
    return downloadFailure(ctx, row, cycle, err);
  }
  // Poison guard: committed before any conversion or delivery, reset to 0 with the outcome.
  ctx.ledger.update(row.id, { processingStarts: row.processingStarts + 1 });
  try {
    if (meta.messageType === 'REPORT') {
      await removeName(temp.part);
      let ctl: string | undefined;
      if (ctx.mailbox.controlFiles) {
        ctl = join(folders.in, `${safeFileName(id, 'report')}.ctl`);
        await writeFileAtomic(ctl, formatControlFile(inboundControl(ctx, meta)), SHARED_FILE_MODE, false);
      }
      return { kind: 'report', row, meta, ctl };
    }
    let payload = temp.part;
    const route = matchInboundRoute(ctx.mailbox.routes, meta);
    if (route?.transform) {
      const input = await readForConversion(ctx, temp.part);
      if (typeof input === 'string') return quarantinePayload(ctx, row, meta, temp.part, 'TOO_LARGE_TO_CONVERT', input);
      let result;
      try {
        result = await ctx.transform(input, route.transform.from, route.transform.to, { direction: 'in', rowId: row.id });
      } catch (err) {
        return quarantinePayload(ctx, row, meta, temp.part, err instanceof MeshdError ? err.code : 'TRANSFORM_FAILED', (err as Error).message);
      }
      if (result.errors.length > 0) {
        const lines = result.errors.map((e) => `message ${e.message ?? '?'} ${e.position ?? ''} ${e.field ?? ''}: ${e.code}: ${e.text}`);
        const copy = join(folders.failed, `${safeFileName(id, 'message')}.partial.dat`);
        await copyRegular(temp.part, copy, SHARED_FILE_MODE);
        await writeFileAtomic(`${copy}.reason`, lines.join('\n') + '\n', SHARED_FILE_MODE, false);
        log.warn('TRANSFORM_PARTIAL', `${result.errors.length} of ${result.messageCount} messages could not be converted; original kept in failed/`, { messageId: id });
      }
      payload = temp.out;
      await removeName(payload);
      await writeTemp(payload, result.output, PRIVATE_FILE_MODE);
    }
    const sha256 = await sha256Regular(payload);
    const target = join(folders.in, inboundFileName(id));
    const ctl = ctx.mailbox.controlFiles ? target.replace(/\.dat$/, '.ctl') : undefined;
    await placePair(payload, target, ctl ? { temp: temp.ctl, target: ctl, content: formatControlFile(inboundControl(ctx, meta)) } : undefined);
    await removeName(temp.part);
    return { kind: 'deliver', row, meta, path: target, bytes, sha256, ctl };
  } catch (err) {
    // A local write error (disk full, permissions): keep the message unacknowledged in MESH.
    for (const name of Object.values(temp)) await removeName(name).catch(() => undefined);
    log.error('IN_WRITE_FAILED', `could not write a received message into the mailbox folder: ${(err as Error).message}`, { messageId: id });
    return { kind: 'retry', row, code: 'IN_WRITE_FAILED', reason: (err as Error).message, counted: false };
  }
}

/**
 * Puts a payload (and its control file) into in/ in the order a consumer can trust: the .ctl
 * is staged in temp/ and renamed first, the .dat last, so a .dat never appears without its
 * .ctl; if the .dat cannot be placed the .ctl is taken back, so neither stays visible.
 */
async function placePair(payload: string, target: string, ctl?: { temp: string; target: string; content: string }): Promise<void> {
  if (ctl) {
    await removeName(ctl.temp);
    await writeTemp(ctl.temp, ctl.content, SHARED_FILE_MODE);
    await moveFile(ctl.temp, ctl.target, SHARED_FILE_MODE);
  }
  try {
    await moveFile(payload, target, SHARED_FILE_MODE);
  } catch (err) {
    if (ctl) await removeName(ctl.target);
    throw err;
  }
}

/**
 * The payload to convert, read through a descriptor — or, past transform.maxInputBytes, the
 * reason it is not loaded into memory at all (checked on the open file before reading).
 */
async function readRegularFile(path: string): Promise<Buffer> {
  const { handle } = await openRegular(path);
  try {
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

async function readForConversion(ctx: MailboxContext, path: string): Promise<Buffer | string> {
  const max = ctx.config.transform.maxInputBytes;
  const { handle, stat } = await openRegular(path);
  try {
    if (stat.size > max) return `payload is ${stat.size} bytes; conversion reads at most transform.maxInputBytes (${max}); kept unconverted`;
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

/** Sorts a download failure: pause (disk), quarantine (too large, bomb, poison after N tries) or retry. */
function downloadFailure(ctx: MailboxContext, row: MessageRow, cycle: CycleState, err: unknown): Outcome {
  const message = (err as Error).message;
  if (err instanceof DiskSpaceLowError) {
    cycle.diskLow ??= err;
    return { kind: 'retry', row, code: err.code, reason: message, counted: false };
  }
  if (err instanceof MessageTooLargeError) return { kind: 'quarantine', row, code: 'SIZE_CAP', reason: message, ack: false };
  // A REPORT linking a malformed id, or headers naming another message: no retry mends it.
  if (err instanceof BadMessageIdError) return { kind: 'quarantine', row, code: BAD_MESSAGE_ID, reason: message, ack: false };
  // Not acknowledged: nothing of it is kept, so MESH keeps it and its sender gets a REPORT at expiry.
  if (err instanceof SuspectedBombError) return { kind: 'quarantine', row, code: 'SUSPECTED_BOMB', reason: message, ack: false };
  if (err instanceof MeshProtocolError) {
    if (row.attempts + 1 >= ctx.config.retry.attempts) {
      return { kind: 'quarantine', row, code: 'RECEIVE_FAILED', reason: `${row.attempts + 1} attempts: ${message}`, ack: false };
    }
    return { kind: 'retry', row, code: err.code, reason: message, counted: true };
  }
  // Anything not from the MESH client is local (creating the temp file, disk full).
  if (!(err instanceof MeshdError) || err.code === 'IN_WRITE_FAILED') {
    ctx.log.error('IN_WRITE_FAILED', `could not write a received message into temp/: ${message}`, { messageId: row.messageId });
    return { kind: 'retry', row, code: 'IN_WRITE_FAILED', reason: message, counted: false };
  }
  return { kind: 'retry', row, code: err.code, reason: message, counted: false };
}

/** Keeps a payload in failed/ with its reason (written first), acknowledged like any filed message. */
async function quarantinePayload(ctx: MailboxContext, row: MessageRow, meta: InboundMeta, temp: string, code: string, reason: string): Promise<Outcome> {
  const target = join(ctx.folders.failed, inboundFileName(row.messageId!));
  await writeFileAtomic(`${target}.reason`, `${code}: ${reason}\n`, SHARED_FILE_MODE, false);
  await moveFile(temp, target, SHARED_FILE_MODE);
  return { kind: 'quarantine', row, meta, code, reason, path: target, ack: true };
}

function metaPatch(meta: InboundMeta) {
  return {
    peer: meta.from ?? null,
    workflowId: meta.workflowId ?? null,
    localId: meta.localId ?? null,
    subject: meta.subject ?? null,
    messageType: meta.messageType,
    fileName: meta.fileName ?? null,
    linkedMessageId: meta.linkedMessageId ?? null,
    reportCode: meta.messageType === 'REPORT' ? (meta.statusCode ?? null) : null,
  };
}

/** Processes one batch of listed ids. */
async function receiveBatch(ctx: MailboxContext, ids: string[], cycle: CycleState): Promise<{ delivered: number; acknowledged: number }> {
  const { ledger, mailbox, log } = ctx;
  const work: MessageRow[] = [];
  const ackOnly: MessageRow[] = [];
  const refused: string[] = [];
  ledger.transaction(() => {
    for (const id of ids) {
      const row = ledger.findByMessageId(mailbox.id, 'in', id);
      if (!row && !isMessageId(id)) {
        // An id that could collide with another's file name: refused before it names anything,
        // left unacknowledged so its sender is told at expiry.
        const reason = "MESH listed a message id that is not of MESH's shape (letters, digits, _ and -, at most 100)";
        ledger.insertMessage({ direction: 'in', mailbox: mailbox.id, messageId: id, state: 'quarantined', errorCode: BAD_MESSAGE_ID, errorText: reason }, { type: 'quarantined', detail: { code: BAD_MESSAGE_ID, acknowledge: false } });
        refused.push(id);
      } else if (!row) {
        work.push(ledger.insertMessage({ direction: 'in', mailbox: mailbox.id, messageId: id, state: 'receiving' }, { type: 'listed' }));
      } else if (row.state === 'receiving') {
        work.push(row);
      } else if (row.state === 'delivered' || row.state === 'acknowledged') {
        ackOnly.push(row); // delivered before; MESH still lists it, so only the acknowledgement is missing
      } else if (row.state === 'quarantined' && !row.acknowledgedAt && row.payloadPath) {
        ackOnly.push(row);
      }
      // quarantined without a payload (over the size cap) stays in MESH until an operator retries it
    }
  });
  for (const id of refused) log.error('IN_BAD_MESSAGE_ID', 'MESH listed a malformed message id; quarantined, nothing written, not acknowledged', { messageId: JSON.stringify(id).slice(0, 120) });
  const outcomes: Outcome[] = await mapLimit(work, DOWNLOAD_CONCURRENCY, (row) => (ctx.stopping() ? Promise.resolve<Outcome>({ kind: 'skip' }) : fetchOne(ctx, row, cycle)));
  for (const row of ackOnly) outcomes.push({ kind: 'ack-only', row });

  // Group commit: one directory fsync for every file placed by this batch, then one ledger commit.
  await fsyncDir(ctx.folders.in);
  if (outcomes.some((o) => o.kind === 'quarantine' && o.path)) await fsyncDir(ctx.folders.failed);
  const toAck: Array<{ row: MessageRow; ackState: 'acknowledged' | 'quarantined' }> = [];
  let delivered = 0;
  ledger.transaction(() => {
    for (const o of outcomes) {
      switch (o.kind) {
        case 'deliver':
          ledger.transition(o.row.id, 'delivered', {
            from: ['receiving'],
            patch: { ...metaPatch(o.meta), payloadPath: o.path, ctlPath: o.ctl ?? null, sizeBytes: o.bytes, sha256: o.sha256, errorCode: null, errorText: null, processingStarts: 0 },
            event: { type: 'delivered', detail: { file: o.path, bytes: o.bytes } },
          });
          toAck.push({ row: o.row, ackState: 'acknowledged' });
          delivered++;
          break;
        case 'report':
          ledger.transition(o.row.id, 'delivered', {
            from: ['receiving'],
            patch: { ...metaPatch(o.meta), ctlPath: o.ctl ?? null, sizeBytes: 0, processingStarts: 0 },
            event: { type: 'report', detail: { code: o.meta.statusCode, linked: o.meta.linkedMessageId, description: o.meta.statusDescription } },
          });
          applyReport(ctx, o.meta);
          toAck.push({ row: o.row, ackState: 'acknowledged' });
          break;
        case 'quarantine':
          ledger.transition(o.row.id, 'quarantined', {
            from: ['receiving'],
            patch: { ...(o.meta ? metaPatch(o.meta) : {}), payloadPath: o.path ?? null, errorCode: o.code, errorText: o.reason, processingStarts: 0, attempts: o.code === 'RECEIVE_FAILED' ? o.row.attempts + 1 : o.row.attempts },
            event: { type: 'quarantined', detail: { code: o.code, reason: o.reason, acknowledge: o.ack } },
          });
          if (o.ack) toAck.push({ row: o.row, ackState: 'quarantined' });
          break;
        case 'retry':
          ledger.update(o.row.id, { errorCode: o.code, errorText: o.reason, attempts: o.row.attempts + (o.counted ? 1 : 0), processingStarts: 0 }, { type: 'receive_retry_later', detail: { code: o.code } });
          break;
        case 'ack-only':
          toAck.push({ row: o.row, ackState: o.row.state === 'quarantined' ? 'quarantined' : 'acknowledged' });
          break;
        case 'skip':
          break;
      }
    }
  });
  for (const o of outcomes) {
    if (o.kind === 'quarantine') log[o.ack ? 'warn' : 'error']('IN_QUARANTINED', `message quarantined: ${o.reason}`, { messageId: o.row.messageId, code: o.code, acknowledged: o.ack });
    if (o.kind === 'retry') log.warn('IN_RETRY_LATER', `message left in MESH to retry: ${o.reason}`, { messageId: o.row.messageId, code: o.code });
    if (o.kind === 'deliver') log.info('IN_DELIVERED', 'message delivered into in/', { messageId: o.row.messageId, bytes: o.bytes });
  }

  const acked = await mapLimit(toAck, DOWNLOAD_CONCURRENCY, async (a) => {
    try {
      await ctx.mesh.acknowledge(a.row.messageId!);
      return a;
    } catch (err) {
      log.warn('ACK_FAILED', `acknowledgement failed; it will be repeated next poll: ${(err as Error).message}`, { messageId: a.row.messageId });
      return undefined;
    }
  });
  const at = ctx.now().toISOString();
  let acknowledged = 0;
  ledger.transaction(() => {
    for (const a of acked) {
      if (!a) continue;
      const current = ledger.get(a.row.id)!;
      if (a.ackState === 'acknowledged' && current.state === 'delivered') {
        ledger.transition(a.row.id, 'acknowledged', { from: ['delivered'], patch: { acknowledgedAt: at }, event: { type: 'acknowledged' } });
      } else if (!current.acknowledgedAt) {
        ledger.update(a.row.id, { acknowledgedAt: at }, { type: 'acknowledged' });
      }
      acknowledged++;
    }
  });
  return { delivered, acknowledged };
}

/** A REPORT about one of our sends: link it and move the outbound row on. */
function applyReport(ctx: MailboxContext, meta: InboundMeta): void {
  const { ledger, mailbox, log } = ctx;
  if (!meta.linkedMessageId) return;
  const out = ledger.findByMessageId(mailbox.id, 'out', meta.linkedMessageId);
  if (!out) {
    log.warn('REPORT_UNLINKED', 'a REPORT names a message this ledger did not send', { linked: meta.linkedMessageId, code: meta.statusCode });
    return;
  }
  const failed = meta.statusSuccess?.toUpperCase() === 'ERROR' || (meta.statusCode !== undefined && meta.statusCode !== '00');
  if (failed && out.state === 'sent') {
    ledger.transition(out.id, 'undeliverable', {
      patch: { reportCode: meta.statusCode ?? null, errorCode: `MESH_${meta.statusCode ?? 'REPORT'}`, errorText: meta.statusDescription ?? 'undeliverable' },
      event: { type: 'report_received', detail: { code: meta.statusCode, event: meta.statusEvent, description: meta.statusDescription, report: meta.messageId } },
    });
    log.warn('SEND_UNDELIVERABLE', `MESH reports a sent message undeliverable: ${meta.statusDescription ?? meta.statusCode}`, {
      row: out.id,
      messageId: out.messageId,
      code: meta.statusCode,
    });
  } else {
    ledger.recordEvent(out.id, 'report_received', { code: meta.statusCode, description: meta.statusDescription });
  }
}

/**
 * Acknowledgements a crash cut off: rows delivered (or quarantined with their payload kept)
 * whose acknowledgement was never recorded. MESH may already have taken it, in which case the
 * message is gone and no longer listed, so these are not found by listing.
 */
export async function recoverInbound(ctx: MailboxContext): Promise<number> {
  const { ledger, mailbox, log } = ctx;
  await quarantinePoison(ctx);
  // Downloads a crash cut off: the messages are still in MESH and will be fetched again.
  for (const name of await fs.readdir(ctx.folders.temp)) {
    if (name.endsWith('.part') || name.endsWith('.out')) await fs.rm(join(ctx.folders.temp, name), { force: true });
  }
  const pending = [
    ...ledger.iterate({ mailbox: mailbox.id, direction: 'in', state: 'delivered' }),
    ...[...ledger.iterate({ mailbox: mailbox.id, direction: 'in', state: 'quarantined' })].filter((r) => r.payloadPath && !r.acknowledgedAt),
  ];
  let done = 0;
  for (const row of pending) {
    if (ctx.stopping()) break;
    let detail: object = {};
    try {
      await ctx.mesh.acknowledge(row.messageId!);
    } catch (err) {
      if (!(err instanceof MeshNotFoundError)) {
        log.warn('ACK_FAILED', `acknowledgement failed; it will be repeated: ${(err as Error).message}`, { messageId: row.messageId });
        continue;
      }
      detail = { note: 'no longer in MESH: already acknowledged' };
    }
    const at = ctx.now();
    if (row.state === 'delivered') ledger.transition(row.id, 'acknowledged', { from: ['delivered'], patch: { acknowledgedAt: at }, event: { type: 'acknowledged', detail } });
    else ledger.update(row.id, { acknowledgedAt: at }, { type: 'acknowledged', detail });
    done++;
  }
  return done;
}

/**
 * Messages whose conversion or delivery began twice and never finished (the process died both
 * times): quarantined POISON so the rest of the mailbox carries on. A downloaded payload is
 * kept in failed/ with a .reason and then acknowledged like a conversion failure; one never
 * downloaded stays in MESH, unacknowledged, so its sender is told at expiry.
 */
async function quarantinePoison(ctx: MailboxContext): Promise<void> {
  const { ledger, mailbox, log } = ctx;
  for (const row of [...ledger.iterate({ mailbox: mailbox.id, direction: 'in', state: 'receiving' })]) {
    if (row.processingStarts < 2) continue;
    const reason = `processing began ${row.processingStarts} times and the process stopped each time; not tried again`;
    let payloadPath = row.payloadPath; // reprocessing a kept copy: it stays where it is
    const part = tempNames(ctx, row).part;
    if (!payloadPath && (await exists(part))) {
      payloadPath = join(ctx.folders.failed, inboundFileName(row.messageId!));
      await writeFileAtomic(`${payloadPath}.reason`, `POISON: ${reason}\n`, SHARED_FILE_MODE, false);
      await moveFile(part, payloadPath, SHARED_FILE_MODE);
      await fsyncDir(ctx.folders.failed);
    }
    ledger.transition(row.id, 'quarantined', {
      from: ['receiving'],
      patch: { payloadPath, errorCode: 'POISON', errorText: reason, processingStarts: 0 },
      event: { type: 'quarantined', detail: { code: 'POISON', reason, acknowledge: Boolean(payloadPath) } },
    });
    log.error('IN_POISON', `message quarantined: ${reason}`, { messageId: row.messageId, kept: payloadPath ?? undefined });
  }
}

/**
 * Quarantined payloads an operator sent back for another try (`meshd ledger retry`) after MESH
 * was already acknowledged: they are never listed again, so they are reprocessed from the copy
 * kept in failed/ — converted by the route as it is now, then delivered like any message.
 */
export async function reprocessKept(ctx: MailboxContext): Promise<number> {
  const { ledger, mailbox, folders, log } = ctx;
  const rows = [...ledger.iterate({ mailbox: mailbox.id, direction: 'in', state: 'receiving' })].filter((r) => r.payloadPath && r.acknowledgedAt);
  let delivered = 0;
  for (const row of rows) {
    if (ctx.stopping()) break;
    const meta: InboundMeta = { messageId: row.messageId!, messageType: 'DATA', from: row.peer ?? undefined, workflowId: row.workflowId ?? undefined, subject: row.subject ?? undefined, localId: row.localId ?? undefined, fileName: row.fileName ?? undefined };
    const route = matchInboundRoute(mailbox.routes, meta);
    const temp = tempNames(ctx, row);
    let output: Buffer;
    ledger.update(row.id, { processingStarts: row.processingStarts + 1 });
    try {
      const input = route?.transform ? await readForConversion(ctx, row.payloadPath!) : await readRegularFile(row.payloadPath!);
      if (typeof input === 'string') throw new MeshdError('TOO_LARGE_TO_CONVERT', input, 'raise transform.maxInputBytes if such payloads are expected', 'input');
      output = route?.transform ? (await ctx.transform(input, route.transform.from, route.transform.to, { direction: 'in', rowId: row.id })).output : input;
    } catch (err) {
      ledger.transition(row.id, 'quarantined', {
        from: ['receiving'],
        patch: { errorCode: err instanceof MeshdError ? err.code : 'TRANSFORM_FAILED', errorText: (err as Error).message, processingStarts: 0 },
        event: { type: 'quarantined', detail: { reason: (err as Error).message, retry: true } },
      });
      log.warn('IN_QUARANTINED', `reprocessing failed again: ${(err as Error).message}`, { messageId: row.messageId });
      continue;
    }
    const target = join(folders.in, inboundFileName(row.messageId!));
    try {
      await removeName(temp.out);
      await writeTemp(temp.out, output, PRIVATE_FILE_MODE);
      await placePair(temp.out, target, mailbox.controlFiles ? { temp: temp.ctl, target: target.replace(/\.dat$/, '.ctl'), content: formatControlFile(inboundControl(ctx, meta)) } : undefined);
      await fsyncDir(folders.in);
    } catch (err) {
      // A write failure is no crash: it must not count towards POISON.
      ledger.update(row.id, { processingStarts: 0 });
      await removeName(temp.out);
      throw err;
    }
    ledger.transaction(() => {
      ledger.transition(row.id, 'delivered', { from: ['receiving'], patch: { payloadPath: target, sizeBytes: output.length, errorCode: null, errorText: null, processingStarts: 0 }, event: { type: 'delivered', detail: { reprocessed: true } } });
      ledger.transition(row.id, 'acknowledged', { from: ['delivered'], patch: { acknowledgedAt: row.acknowledgedAt }, event: { type: 'acknowledged', detail: { note: 'acknowledged to MESH before it was quarantined' } } });
    });
    log.info('IN_DELIVERED', 'reprocessed message delivered into in/', { messageId: row.messageId });
    delivered++;
  }
  return delivered;
}

const recovered = new WeakSet<MailboxContext>();

/** One pass of the receive side, draining while MESH returns full pages. */
export async function receiveCycle(ctx: MailboxContext): Promise<{ listed: number; delivered: number; acknowledged: number }> {
  const totals = { listed: 0, delivered: 0, acknowledged: 0 };
  const cycle: CycleState = {};
  if (!recovered.has(ctx)) {
    totals.acknowledged += await recoverInbound(ctx);
    recovered.add(ctx);
  }
  totals.delivered += await reprocessKept(ctx);
  for (let round = 0; round < MAX_DRAIN_ROUNDS && !ctx.stopping(); round++) {
    const ids = await ctx.mesh.listInbox();
    totals.listed += ids.length;
    for (let i = 0; i < ids.length && !ctx.stopping(); i += RECEIVE_BATCH) {
      const r = await receiveBatch(ctx, ids.slice(i, i + RECEIVE_BATCH), cycle);
      totals.delivered += r.delivered;
      totals.acknowledged += r.acknowledged;
    }
    if (ids.length < FULL_PAGE || cycle.diskLow) break;
  }
  // The poll fails with the reason (readiness, metric); what could not be fetched waits in MESH.
  if (cycle.diskLow) throw cycle.diskLow;
  return totals;
}
