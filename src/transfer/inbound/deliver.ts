import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { MeshdError } from '../../errors';
import type { RouteConfig } from '../../config/types';
import type { ReceivedRow } from '../../ledger';
import { BadMessageIdError, MeshProtocolError, MessageTooLargeError, SuspectedBombError } from '../../mesh/errors';
import { copyRegular, createOwnTemp, moveFile, PRIVATE_FILE_MODE, readHead, removeName, safeFileName, SHARED_FILE_MODE, writeFileAtomic } from '../../safe-fs';
import { sniffHead } from '../../transform/sniff';
import { issueSummary, type InboundMeta, type MailboxContext, type TransformIssueRef } from '../context';
import { formatControlFile } from '../ctl';
import { checkMeaning, isAckWorkflow, payloadMeaning, prepareAck, readConfirmation, rememberDelivered, type Confirmation, type PassMemory, type PendingAck, type Recorded } from './meaning';
import { hashRegular, inboundControl, inboundFileName, matchInboundRoute, placePair, readForConversion, tempNames } from './place';

/**
 * Download and delivery of one message: the only path from bytes to in/, used by the daemon's
 * poll, `meshd receive` and an operator's retry of a kept payload. Nothing here acknowledges:
 * the batch does, after its directory fsync and ledger commit (batch.ts).
 */

export type Outcome =
  | { kind: 'deliver'; row: ReceivedRow; meta: InboundMeta; path: string; bytes: number; sha256: string; ctl?: string; notes: TransformIssueRef[]; facts?: Recorded; ack?: PendingAck; confirms?: Confirmation }
  | { kind: 'report'; row: ReceivedRow; meta: InboundMeta; ctl?: string }
  /** error: what the MESH client or the disk said, when the outcome comes from an error. */
  | { kind: 'quarantine'; row: ReceivedRow; meta?: InboundMeta; code: string; reason: string; path?: string; ack: boolean; error?: unknown; facts?: Recorded; businessAck?: PendingAck }
  /** The same message again: acknowledged to MESH, not delivered; linked to the first copy. */
  | { kind: 'duplicate'; row: ReceivedRow; meta: InboundMeta; first: number; facts: Recorded; businessAck?: PendingAck }
  /** Older than an event already received (stale), or conflicting with one (review): kept in failed/, not delivered. */
  | { kind: 'set-aside'; row: ReceivedRow; meta: InboundMeta; state: 'stale' | 'needs_review'; related: number; code: string; reason: string; path: string; facts: Recorded; businessAck?: PendingAck }
  /** A business acknowledgement of one of our sends, linked and not written to in/. */
  | { kind: 'consumed'; row: ReceivedRow; meta: InboundMeta; confirms: Confirmation }
  /** counted: a permanent failure of this message (counts towards retry.attempts). */
  | { kind: 'retry'; row: ReceivedRow; code: string; reason: string; counted: boolean; error?: unknown }
  | { kind: 'ack-only'; row: ReceivedRow }
  | { kind: 'skip' };

/** What one receive pass shares: whether free space ran short, and the one message in processing. */
export interface CycleState {
  diskLow?: DiskSpaceLowError;
  /**
   * Payloads that are parsed (converted, or read for a business id) are processed one at a time
   * (downloads run side by side), so the poison guard counts a stop only against the message
   * that was being processed, never against every download of a batch.
   */
  processing?: Promise<unknown>;
  /** Copies and events decided in this pass, not yet committed (duplicates and ordering within a batch). */
  memory?: PassMemory;
  /** Free space as last read in this pass (spaceGuard). */
  space?: SpaceReading;
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

/** Enough of a payload to tell HL7 v2 or FHIR from anything else (after a BOM and whitespace). */
const SNIFF_BYTES = 512;
/**
 * A download up to this size hands back all its bytes (as written and hashed), so a payload that
 * is parsed is not read from its file again. At most 16 downloads run at once: 4 MiB in all.
 */
const WHOLE_PAYLOAD_BYTES = 256 * 1024;

/** Ledger code of a message refused because its MESH id is not of MESH's shape. */
export const BAD_MESSAGE_ID = 'MESH_BAD_MESSAGE_ID';

/**
 * How much may arrive between two free-space checks: one reading serves that many bytes. Small
 * beside transfer.minFreeBytes (2 GiB by default); at 1 MiB, a big download read free space
 * before every 1 MiB write and waited for it (256 statfs calls per 128 MiB).
 */
const SPACE_CHECK_EVERY = 16 * 1024 * 1024;
/** …and is read again when older than this, however little arrived. */
const SPACE_READING_MS = 1000;

/** The last free-space reading of a receive pass and the bytes its downloads reserved since. */
export interface SpaceReading {
  free: number;
  since: number;
  at: number;
}

async function freeBytes(ctx: MailboxContext): Promise<number> {
  const [temp, inDir] = await Promise.all([fs.statfs(ctx.folders.temp), fs.statfs(ctx.folders.in)]);
  return Math.min(temp.bavail * temp.bsize, inDir.bavail * inDir.bsize);
}

/**
 * The downloads' free-space check (transfer.minFreeBytes), on temp/ and in/: before each starts,
 * on each chunk's announced length, and as bytes arrive. The downloads of a pass share one
 * reading, and what each reserves counts against it for all, until SPACE_CHECK_EVERY bytes or
 * SPACE_READING_MS later: two statfs calls per 16 MiB, not per message.
 */
export function spaceGuard(minFree: number, pass: { space?: SpaceReading }, readFree: () => Promise<number>): (bytes: number) => Promise<void> {
  return async (bytes) => {
    let r = pass.space;
    if (!r || r.since + bytes >= SPACE_CHECK_EVERY || performance.now() - r.at > SPACE_READING_MS) {
      r = pass.space = { free: await readFree(), since: 0, at: performance.now() };
    }
    r.since += bytes;
    if (r.free - r.since < minFree) throw new DiskSpaceLowError(r.free, minFree);
  };
}

/** Downloads one message into temp/<claimId>.part, then delivers it. */
export async function fetchOne(ctx: MailboxContext, row: ReceivedRow, cycle: CycleState): Promise<Outcome> {
  if (cycle.diskLow) return { kind: 'skip' };
  const temp = tempNames(ctx, row);
  let meta: InboundMeta;
  let bytes: number;
  let hashed: { sha256: string; head: Buffer };
  let handle: FileHandle | undefined;
  try {
    // temp/<claimId>.* are this row's names: whatever stands there (a planted link) is removed, not followed.
    handle = await createOwnTemp(temp.part, PRIVATE_FILE_MODE);
    const reserve = spaceGuard(ctx.config.transfer.minFreeBytes, cycle, () => freeBytes(ctx));
    await reserve(0);
    ({ meta, bytes, ...hashed } = await ctx.mesh.download(row.messageId, { handle, reserve, headBytes: WHOLE_PAYLOAD_BYTES }));
    await handle.sync();
  } catch (err) {
    await handle?.close().catch(() => undefined);
    await removeName(temp.part);
    return downloadFailure(ctx, row, cycle, err);
  }
  // Held open until the delivery is over, so placing the payload sets its mode through this
  // descriptor rather than opening the file again by name.
  try {
    return await deliverPayload(ctx, row, meta, { path: temp.part, bytes, sha256: hashed.sha256, head: hashed.head, kept: false, handle }, cycle);
  } finally {
    // Its bytes were fsync'd before anything used them: closing only lets the descriptor go.
    await handle.close().catch(() => undefined);
  }
}

/**
 * Converts (if a route says) and places one payload: `source` is the download in temp/, or a
 * payload kept in failed/ that an operator sent back (`kept`: it stays where it is). A payload
 * that is parsed goes one at a time per pass, under the poison guard (committed before, cleared
 * after); a local write failure leaves the message for the next try.
 */
export function deliverPayload(
  ctx: MailboxContext,
  row: ReceivedRow,
  meta: InboundMeta,
  source: Source,
  cycle: CycleState,
  /** A person retried it out of needs_review or stale: deliver it without the duplicate and ordering checks. */
  decided = false,
): Promise<Outcome> {
  const memory = (cycle.memory ??= { copies: new Map(), latest: new Map() });
  const placement: Placement = {};
  // Only a payload that is parsed can stop the process by what it holds (a conversion, a
  // business id read): those run one at a time under the poison guard. Any other payload is
  // only hashed, checked for an earlier copy (decided in one synchronous step) and moved, so it
  // goes side by side with the rest of the batch. Placing into in/ depends on nothing in the
  // payload, so it is outside the guard either way, while the next message is processed.
  if (!mayBeParsed(ctx, meta, source)) return processPayload(ctx, row, meta, source, memory, decided, placement).then((o) => place(ctx, row, source, o, placement));
  const run = (cycle.processing ?? Promise.resolve()).then(async () => {
    // Poison guard: committed before the conversion or delivery, cleared once it is over. (Not
    // folded into the next message's commit: a stop in between would count against this one.)
    ctx.ledger.update(row.id, { processingStarts: row.processingStarts + 1 });
    const outcome = await processPayload(ctx, row, meta, source, memory, decided, placement);
    ctx.ledger.update(row.id, { processingStarts: 0 });
    return outcome;
  });
  cycle.processing = run.catch(() => undefined);
  return run.then((o) => place(ctx, row, source, o, placement));
}

/** A delivery's last step, handed back by processPayload: the files put into in/. */
type Placement = { files?: () => Promise<void> };

/** Places a delivery's files; a local write failure leaves the message in MESH for the next try. */
async function place(ctx: MailboxContext, row: ReceivedRow, source: Source, outcome: Outcome, placement: Placement): Promise<Outcome> {
  if (!placement.files) return outcome;
  try {
    await placement.files();
    return outcome;
  } catch (err) {
    return writeFailed(ctx, row, source, err);
  }
}

/** A local write error (disk full, permissions): the message stays unacknowledged in MESH. It is no crash, so not poison. */
async function writeFailed(ctx: MailboxContext, row: ReceivedRow, source: Source, err: unknown): Promise<Outcome> {
  for (const name of Object.values(tempNames(ctx, row))) await removeName(name).catch(() => undefined);
  if (!source.kept) await removeName(source.path).catch(() => undefined);
  ctx.log.error('IN_WRITE_FAILED', `could not write a received message into the mailbox folder: ${(err as Error).message}`, { messageId: row.messageId });
  return { kind: 'retry', row, code: 'IN_WRITE_FAILED', reason: (err as Error).message, counted: false };
}

/** True unless the payload is known (from its head, handed back by the download) to be left unparsed. */
function mayBeParsed(ctx: MailboxContext, meta: InboundMeta, source: Source): boolean {
  if (meta.messageType === 'REPORT') return false;
  return !source.head || isParsed(matchInboundRoute(ctx.mailbox.routes, meta), meta, source.head);
}

/** A payload that can mean something is read and parsed: a route converts it, it is an acknowledgement, or it looks like HL7 v2 or FHIR. */
function isParsed(route: RouteConfig | undefined, meta: InboundMeta, head: Buffer): boolean {
  return !!route?.transform || isAckWorkflow(meta) || sniffHead(head) !== undefined;
}

async function processPayload(ctx: MailboxContext, row: ReceivedRow, meta: InboundMeta, source: Source, pass: PassMemory, decided: boolean, placement: Placement): Promise<Outcome> {
  const { folders, log } = ctx;
  const id = row.messageId;
  const dropSource = async () => {
    if (!source.kept) await removeName(source.path);
  };
  try {
    if (meta.messageType === 'REPORT') {
      await dropSource();
      let ctl: string | undefined;
      if (ctx.mailbox.controlFiles) {
        ctl = join(folders.in, `${safeFileName(id, 'report')}.ctl`);
        await writeFileAtomic(ctl, formatControlFile(inboundControl(ctx, meta)), SHARED_FILE_MODE, false);
      }
      return { kind: 'report', row, meta, ctl };
    }
    const route = matchInboundRoute(ctx.mailbox.routes, meta);
    // Read once, up to transform.maxInputBytes, for the conversion, the business checks and an ACK —
    // only a payload that can mean something (a route converts it, or it looks like HL7 v2 or FHIR).
    // Any payload is still checked for duplicates by its hash.
    const readable = isParsed(route, meta, source.head ?? (await readHead(source.path, SNIFF_BYTES)));
    const whole = source.head?.length === source.bytes && source.bytes <= ctx.config.transform.maxInputBytes ? source.head : undefined;
    const read = readable ? (whole ?? (await readForConversion(ctx, source.path))) : undefined;
    const input = typeof read === 'string' ? undefined : read;
    if (isAckWorkflow(meta)) {
      const confirms = await readConfirmation(ctx, meta, input);
      if (confirms && !route?.deliverAcks) {
        await dropSource();
        return { kind: 'consumed', row, meta, confirms };
      }
      if (!confirms) log.warn('ACK_UNLINKED', 'an acknowledgement names no message this mailbox sent; delivered into in/ as it is', { messageId: id });
      return await deliver(ctx, row, meta, source, placement, route, input, undefined, confirms);
    }
    const facts = await payloadMeaning(input, route, source.sha256, meta.from ?? '');
    const verdict = checkMeaning(ctx, row, meta, route, facts, pass, decided);
    switch (verdict.kind) {
      case 'duplicate': {
        await dropSource();
        log.info('IN_DUPLICATE', `the same message was received before (message row ${verdict.first}); acknowledged, not delivered again`, { messageId: id, first: verdict.first });
        return { kind: 'duplicate', row, meta, first: verdict.first, facts, businessAck: await prepareAck(ctx, row, meta, route, input, 'ok') };
      }
      case 'set-aside': {
        const { state, code, reason, related } = verdict;
        const path = await keepInFailed(ctx, row, source, code, reason);
        log.warn(state === 'stale' ? 'IN_STALE' : 'IN_NEEDS_REVIEW', `${reason}; kept in failed/`, { messageId: id, code });
        // A stale event is refused, so its sender is told; a conflict waits for a person.
        const businessAck = state === 'stale' ? await prepareAck(ctx, row, meta, route, input, 'fatal-error', { code, text: reason }) : undefined;
        return { kind: 'set-aside', row, meta, state, related, code, reason, path, facts, businessAck };
      }
      case 'new':
        break;
    }
    if (route?.transform && input === undefined) {
      const outcome = await setAside(ctx, row, meta, source, 'TOO_LARGE_TO_CONVERT', String(read));
      return { ...outcome, facts };
    }
    const outcome = await deliver(ctx, row, meta, source, placement, route, input, facts);
    // Remembered now, before its files are placed: the next message of the pass is judged against it.
    if (outcome.kind === 'deliver') rememberDelivered(row, facts, pass);
    return outcome;
  } catch (err) {
    return writeFailed(ctx, row, source, err);
  }
}

/**
 * head: the payload's first bytes (all of them up to WHOLE_PAYLOAD_BYTES), when handed back by
 * the download; handle: the download's own descriptor, open while it is delivered.
 */
type Source = { path: string; bytes: number; sha256: string; head?: Buffer; kept: boolean; handle?: FileHandle };

/**
 * Converts (if the route says) one payload, with the business ACK it earns; its placing in in/
 * is handed back in `placement` (done by the caller, outside the poison guard).
 */
async function deliver(
  ctx: MailboxContext,
  row: ReceivedRow,
  meta: InboundMeta,
  source: Source,
  placement: Placement,
  route: RouteConfig | undefined,
  input: Buffer | undefined,
  facts: Recorded | undefined,
  /** An acknowledgement delivered as well (deliverAcks): the send it confirms. */
  confirms?: Confirmation,
): Promise<Outcome> {
  const { folders, log } = ctx;
  const id = row.messageId;
  const temp = tempNames(ctx, row);
  let payload = source.path;
  let delivered = { sha256: source.sha256, size: source.bytes };
  let notes: TransformIssueRef[] = [];
  let ackCode: 'ok' | 'fatal-error' = 'ok';
  let ackReason: { code: string; text: string } | undefined;
  if (route?.transform && input) {
    const out = await createOwnTemp(temp.out, PRIVATE_FILE_MODE);
    let result;
    try {
      result = await ctx.transform(input, route.transform.from, route.transform.to, { direction: 'in', rowId: row.id, eventTime: facts?.eventTime ?? undefined }, out.fd);
      await out.sync();
    } catch (err) {
      await out.close();
      await removeName(temp.out);
      const code = err instanceof MeshdError ? err.code : 'TRANSFORM_FAILED';
      const outcome = await setAside(ctx, row, meta, source, code, (err as Error).message);
      const reason = { code, text: issueReasonText(err) };
      return { ...outcome, ...(facts ? { facts } : {}), businessAck: await prepareAck(ctx, row, meta, route, input, 'fatal-error', reason) };
    }
    await out.close();
    notes = result.notes;
    if (result.errors.length > 0) {
      const lines = result.errors.map((e) => `message ${e.message ?? '?'} ${e.position ?? ''} ${e.field ?? ''}: ${e.code}: ${e.text}`);
      const copy = join(folders.failed, `${safeFileName(id, 'message')}.partial.dat`);
      await copyRegular(source.path, copy, SHARED_FILE_MODE);
      await writeFileAtomic(`${copy}.reason`, lines.join('\n') + '\n', SHARED_FILE_MODE, false);
      log.warn('TRANSFORM_PARTIAL', `${result.failedMessages} of ${result.messageCount} messages could not be converted; original kept in failed/`, { messageId: id });
      ackCode = 'fatal-error';
      ackReason = { code: 'PARTLY_REFUSED', text: `${result.failedMessages} of ${result.messageCount} messages were refused (${[...new Set(result.errors.map((e) => e.code))].join(', ')}); the others were accepted` };
    }
    payload = temp.out;
    delivered = await hashRegular(payload);
  } else if (source.kept) {
    // The kept copy stays in failed/: deliver a copy of it.
    await removeName(temp.out);
    await copyRegular(source.path, temp.out, PRIVATE_FILE_MODE);
    payload = temp.out;
  }
  const businessAck = await prepareAck(ctx, row, meta, route, input, ackCode, ackReason);
  const target = join(folders.in, inboundFileName(id));
  const ctl = ctx.mailbox.controlFiles ? target.replace(/\.dat$/, '.ctl') : undefined;
  const control = ctl ? { temp: temp.ctl, target: ctl, content: formatControlFile(inboundControl(ctx, meta)) } : undefined;
  placement.files = async () => {
    await placePair(payload, target, control, payload === source.path ? source.handle : undefined);
    if (!source.kept && payload !== source.path) await removeName(source.path);
  };
  return { kind: 'deliver', row, meta, path: target, bytes: delivered.size, sha256: delivered.sha256, ctl, notes, ...(facts ? { facts } : {}), ...(businessAck ? { ack: businessAck } : {}), ...(confirms ? { confirms } : {}) };
}

/** Why a conversion refused a payload, for an acknowledgement: codes and positions only, never values. */
function issueReasonText(err: unknown): string {
  const issues = (err as { issues?: TransformIssueRef[] }).issues;
  if (!issues?.length) return err instanceof MeshdError ? `refused: ${err.code}` : 'refused: the payload could not be converted';
  return issues
    .slice(0, 5)
    .map((i) => [i.message !== undefined ? `message ${i.message + 1}` : undefined, i.position, i.code].filter(Boolean).join(' '))
    .join('; ');
}

/** Sorts a download failure: pause (disk), quarantine (too large, bomb, poison after N tries) or retry. */
function downloadFailure(ctx: MailboxContext, row: ReceivedRow, cycle: CycleState, err: unknown): Outcome {
  const outcome = sortFailure(ctx, row, cycle, err);
  return outcome.kind === 'quarantine' || outcome.kind === 'retry' ? { ...outcome, error: err } : outcome;
}

function sortFailure(ctx: MailboxContext, row: ReceivedRow, cycle: CycleState, err: unknown): Outcome {
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

/**
 * A payload that cannot be converted: kept in failed/ with its reason (written first) and
 * acknowledged like any filed message. A kept payload is already there and stays.
 */
async function setAside(ctx: MailboxContext, row: ReceivedRow, meta: InboundMeta, source: { path: string; kept: boolean }, code: string, reason: string): Promise<Extract<Outcome, { kind: 'quarantine' }>> {
  if (source.kept) return { kind: 'quarantine', row, meta, code, reason, path: source.path, ack: false };
  return { kind: 'quarantine', row, meta, code, reason, path: await keepInFailed(ctx, row, source, code, reason), ack: true };
}

/** Moves a payload to failed/ with a .reason beside it (written first); a kept payload stays where it is. */
async function keepInFailed(ctx: MailboxContext, row: ReceivedRow, source: { path: string; kept: boolean }, code: string, reason: string): Promise<string> {
  if (source.kept) return source.path;
  const target = join(ctx.folders.failed, inboundFileName(row.messageId));
  await writeFileAtomic(`${target}.reason`, `${code}: ${reason}\n`, SHARED_FILE_MODE, false);
  await moveFile(source.path, target, SHARED_FILE_MODE);
  return target;
}

/** What the ledger keeps of a delivery's conversion notes. */
export function notesDetail(notes: TransformIssueRef[]): object {
  return notes.length ? { notes: issueSummary(notes) } : {};
}
