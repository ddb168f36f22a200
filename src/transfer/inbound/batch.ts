import { MeshdError, type ErrorKind } from '../../errors';
import { receivedRow, type ReceivedRow } from '../../ledger';
import { isMessageId } from '../../mesh/protocol';
import { fsyncDir } from '../../safe-fs';
import type { InboundMeta, MailboxContext } from '../context';
import { mapLimit } from '../pool';
import { BAD_MESSAGE_ID, fetchOne, notesDetail, type CycleState, type Outcome } from './deliver';
import { applyConfirmation, latestPerKey, queueAck, type Recorded } from './meaning';
import { metaPatch } from './place';

/**
 * A batch of listed messages: rows recorded, downloads and deliveries (16 at a time), one
 * directory fsync, one ledger commit, then acknowledgements and one more commit. No message is
 * ever acknowledged before its file is durably in in/ (or failed/).
 */

const DOWNLOAD_CONCURRENCY = 16;
const BAD_ID_REASON = "MESH listed a message id that is not of MESH's shape (letters, digits, _ and -, at most 100)";

/** What became of one message, for a person (`meshd receive`) or a count (the daemon). */
export interface Received {
  messageId: string;
  outcome: Outcome['kind'];
  acknowledged: boolean;
  meta?: InboundMeta;
  path?: string;
  bytes?: number;
  code?: string;
  reason?: string;
  /** Of a failure: how a person's command should end (src/cli/exit.ts). */
  kind?: ErrorKind;
}

export async function receiveBatch(ctx: MailboxContext, ids: string[], cycle: CycleState, opts: { acknowledge: boolean } = { acknowledge: true }): Promise<Received[]> {
  const { ledger, mailbox, log } = ctx;
  const work: ReceivedRow[] = [];
  const ackOnly: ReceivedRow[] = [];
  const refused: string[] = [];
  ledger.transaction(() => {
    for (const id of ids) {
      const found = ledger.findByMessageId(mailbox.id, 'in', id);
      const row = found && receivedRow(found);
      if (!row && !isMessageId(id)) {
        // An id that could collide with another's file name: refused before it names anything,
        // left unacknowledged so its sender is told at expiry.
        ledger.insertMessage({ direction: 'in', mailbox: mailbox.id, messageId: id, state: 'quarantined', errorCode: BAD_MESSAGE_ID, errorText: BAD_ID_REASON }, { type: 'quarantined', detail: { code: BAD_MESSAGE_ID, acknowledge: false } });
        refused.push(id);
      } else if (!row) {
        work.push(receivedRow(ledger.insertMessage({ direction: 'in', mailbox: mailbox.id, messageId: id, state: 'receiving' }, { type: 'listed' })));
      } else if (row.state === 'receiving') {
        work.push(row);
      } else if (row.state === 'delivered' || row.state === 'acknowledged') {
        ackOnly.push(row); // delivered before; MESH still lists it, so only the acknowledgement is missing
      } else if (row.state === 'quarantined' && !row.acknowledgedAt && row.payloadPath) {
        ackOnly.push(row);
      } else if (row.state === 'duplicate' || row.state === 'stale' || row.state === 'needs_review') {
        ackOnly.push(row); // settled here (first copy linked, or kept in failed/): MESH only waits for the acknowledgement

      }
      // quarantined without a payload (over the size cap) stays in MESH until an operator retries it
    }
  });
  for (const id of refused) log.error('IN_BAD_MESSAGE_ID', 'MESH listed a malformed message id; quarantined, nothing written, not acknowledged', { messageId: JSON.stringify(id).slice(0, 120) });
  const outcomes: Outcome[] = await mapLimit(work, DOWNLOAD_CONCURRENCY, (row) => (ctx.stopping() ? Promise.resolve<Outcome>({ kind: 'skip' }) : fetchOne(ctx, row, cycle)));
  for (const row of ackOnly) outcomes.push({ kind: 'ack-only', row });
  const results = await settle(ctx, outcomes, opts);
  const badId = (messageId: string): Received => ({ messageId, outcome: 'quarantine', acknowledged: false, code: BAD_MESSAGE_ID, reason: BAD_ID_REASON, kind: 'input' });
  return [...refused.map(badId), ...results];
}

/**
 * Records outcomes (after one directory fsync) and acknowledges what may be. A row whose MESH
 * acknowledgement was given before (a kept payload an operator retried) goes straight on to
 * `acknowledged` when delivered.
 */
export async function settle(ctx: MailboxContext, outcomes: Outcome[], opts: { acknowledge: boolean }): Promise<Received[]> {
  const { ledger, log } = ctx;
  await fsyncDir(ctx.folders.in);
  if (outcomes.some((o) => (o.kind === 'quarantine' && o.path) || o.kind === 'set-aside')) await fsyncDir(ctx.folders.failed);
  // Business acknowledgements were written to the spool; they are queued in the commit below.
  if (outcomes.some((o) => ('ack' in o && typeof o.ack === 'object') || ('businessAck' in o && o.businessAck))) await fsyncDir(ctx.spool);
  // 'kept': the row's own state stays (quarantined, duplicate, stale, needs_review); only the time is recorded.
  const toAck: Array<{ row: ReceivedRow; ackState: 'acknowledged' | 'kept' }> = [];
  const acknowledged = new Set<number>();
  ledger.transaction(() => {
    for (const o of outcomes) {
      switch (o.kind) {
        case 'deliver':
          ledger.transition(o.row.id, 'delivered', {
            from: ['receiving'],
            patch: { ...metaPatch(o.meta), ...factsPatch(o.facts), payloadPath: o.path, ctlPath: o.ctl ?? null, sizeBytes: o.bytes, sha256: o.sha256, errorCode: null, errorText: null, processingStarts: 0 },
            event: { type: 'delivered', detail: { file: o.path, bytes: o.bytes, ...notesDetail(o.notes) } },
          });
          if (o.facts) recordLatest(ctx, o.row.id, o.meta.from ?? '', o.facts);
          if (o.ack) queueAck(ctx, o.row.id, o.ack);
          if (o.confirms) applyConfirmation(ctx, o.row.id, o.confirms);
          if (o.row.acknowledgedAt) {
            ledger.transition(o.row.id, 'acknowledged', { from: ['delivered'], patch: { acknowledgedAt: o.row.acknowledgedAt }, event: { type: 'acknowledged', detail: { note: 'acknowledged to MESH before it was quarantined' } } });
            acknowledged.add(o.row.id);
          } else toAck.push({ row: o.row, ackState: 'acknowledged' });
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
        case 'duplicate':
          ledger.transition(o.row.id, 'duplicate', {
            from: ['receiving'],
            patch: { ...metaPatch(o.meta), ...factsPatch(o.facts), relatedRowId: o.first, errorCode: null, errorText: null, processingStarts: 0 },
            event: { type: 'duplicate', detail: { first: o.first } },
          });
          if (o.businessAck) queueAck(ctx, o.row.id, o.businessAck);
          toAck.push({ row: o.row, ackState: 'kept' });
          break;
        case 'set-aside':
          ledger.transition(o.row.id, o.state, {
            from: ['receiving'],
            patch: { ...metaPatch(o.meta), ...factsPatch(o.facts), payloadPath: o.path, relatedRowId: o.related, errorCode: o.code, errorText: o.reason, processingStarts: 0 },
            event: { type: o.state, detail: { code: o.code, related: o.related, file: o.path } },
          });
          if (o.businessAck) queueAck(ctx, o.row.id, o.businessAck);
          toAck.push({ row: o.row, ackState: 'kept' });
          break;
        case 'consumed':
          ledger.transition(o.row.id, 'delivered', {
            from: ['receiving'],
            patch: { ...metaPatch(o.meta), sizeBytes: 0, errorCode: null, errorText: null, processingStarts: 0 },
            event: { type: 'ack_consumed', detail: { refersTo: o.confirms.refersTo, code: o.confirms.code } },
          });
          applyConfirmation(ctx, o.row.id, o.confirms);
          toAck.push({ row: o.row, ackState: 'acknowledged' });
          break;
        case 'quarantine':
          if (o.businessAck) queueAck(ctx, o.row.id, o.businessAck);
          ledger.transition(o.row.id, 'quarantined', {
            from: ['receiving'],
            patch: { ...(o.meta ? metaPatch(o.meta) : {}), ...factsPatch(o.facts), payloadPath: o.path ?? null, errorCode: o.code, errorText: o.reason, processingStarts: 0, attempts: o.code === 'RECEIVE_FAILED' ? o.row.attempts + 1 : o.row.attempts },
            event: { type: 'quarantined', detail: { code: o.code, reason: o.reason, acknowledge: o.ack } },
          });
          if (o.ack && !o.row.acknowledgedAt) toAck.push({ row: o.row, ackState: 'kept' });
          break;
        case 'retry':
          ledger.update(o.row.id, { errorCode: o.code, errorText: o.reason, attempts: o.row.attempts + (o.counted ? 1 : 0), processingStarts: 0 }, { type: 'receive_retry_later', detail: { code: o.code } });
          break;
        case 'ack-only':
          toAck.push({ row: o.row, ackState: o.row.state === 'delivered' || o.row.state === 'acknowledged' ? 'acknowledged' : 'kept' });
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
    if (o.kind === 'report') log.info('MESH_REPORT_RECEIVED', `REPORT ${o.meta.statusCode ?? ''} received`, { messageId: o.row.messageId, linked: o.meta.linkedMessageId, code: o.meta.statusCode });
  }

  const acked = opts.acknowledge
    ? await mapLimit(toAck, DOWNLOAD_CONCURRENCY, async (a) => {
        try {
          await ctx.mesh.acknowledge(a.row.messageId);
          return a;
        } catch (err) {
          log.warn('ACK_FAILED', `acknowledgement failed; it will be repeated next poll: ${(err as Error).message}`, { messageId: a.row.messageId });
          return undefined;
        }
      })
    : [];
  const at = ctx.now().toISOString();
  ledger.transaction(() => {
    for (const a of acked) {
      if (!a) continue;
      const current = ledger.get(a.row.id)!;
      if (a.ackState === 'acknowledged' && current.state === 'delivered') {
        ledger.transition(a.row.id, 'acknowledged', { from: ['delivered'], patch: { acknowledgedAt: at }, event: { type: 'acknowledged' } });
      } else if (!current.acknowledgedAt) {
        ledger.update(a.row.id, { acknowledgedAt: at }, { type: 'acknowledged' });
      }
      acknowledged.add(a.row.id);
    }
  });
  return outcomes
    .filter((o): o is Exclude<Outcome, { kind: 'skip' }> => o.kind !== 'skip')
    .map((o) => ({
      messageId: o.row.messageId,
      outcome: o.kind,
      acknowledged: acknowledged.has(o.row.id),
      ...('meta' in o && o.meta ? { meta: o.meta } : {}),
      ...(o.kind === 'deliver' ? { path: o.path, bytes: o.bytes } : {}),
      ...(o.kind === 'quarantine' || o.kind === 'retry' ? failure(o) : {}),
      ...(o.kind === 'duplicate' || o.kind === 'set-aside' || o.kind === 'consumed' ? notDelivered(o) : {}),
      ...(o.kind === 'ack-only' ? settledBefore(o.row) : {}),
    }));
}

/** A message settled by an earlier receive that MESH still listed: where it went, or why it went nowhere. */
function settledBefore(row: ReceivedRow): Pick<Received, 'code' | 'reason' | 'path'> {
  const where = row.payloadPath ? { path: row.payloadPath } : {};
  if (row.state === 'delivered' || row.state === 'acknowledged') return where;
  return { code: row.errorCode ?? row.state.toUpperCase(), reason: `received before and recorded ${row.state}; not delivered`, ...where };
}

/** Why a message that arrived whole was not put in in/, for the person who asked for it. */
function notDelivered(o: Extract<Outcome, { kind: 'duplicate' | 'set-aside' | 'consumed' }>): Pick<Received, 'code' | 'reason' | 'path'> {
  if (o.kind === 'duplicate') return { code: 'DUPLICATE', reason: `the same message was received before (ledger row ${o.first}); not delivered again` };
  if (o.kind === 'consumed') return { code: 'BUSINESS_ACK', reason: 'a business acknowledgement of a message this mailbox sent; recorded against it, not written to in/' };
  return { code: o.code, reason: `${o.reason}; kept in failed/ (${o.state})`, path: o.path };
}

function failure(o: Extract<Outcome, { kind: 'quarantine' | 'retry' }>): Pick<Received, 'code' | 'reason' | 'kind'> {
  const e = o.error instanceof MeshdError ? o.error : undefined;
  return { code: e?.code ?? o.code, reason: e?.message ?? o.reason, kind: e?.kind ?? (o.kind === 'quarantine' ? 'input' : 'transient') };
}

/** The business facts a settled row keeps (migration 6). */
function factsPatch(facts: Recorded | undefined) {
  return facts ? { businessId: facts.businessId, eventTime: facts.eventTime, receivedSha256: facts.receivedSha256 } : {};
}

/** The newest event time per appointment and patient key, now that the row is delivered. */
function recordLatest(ctx: MailboxContext, rowId: number, sender: string, facts: Recorded): void {
  for (const [key, eventTime] of latestPerKey(facts)) ctx.ledger.recordLatestEvent(ctx.mailbox.id, sender, key, { eventTime, rowId, sha256: facts.receivedSha256 });
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
