import { createHash } from 'node:crypto';
import type { RouteConfig } from '../../config/types';
import type { LatestEvent, ReceivedRow } from '../../ledger';
import { PRIVATE_FILE_MODE, writeFileAtomic } from '../../safe-fs';
import type { AckCode, AckReason } from '../../transform/ack';
import type { PayloadFacts } from '../../transform/business';
import type { InboundMeta, MailboxContext } from '../context';
import { orderingKey } from '../ordering-key';
import { fileFacts, spoolPaths } from '../spool';

/**
 * What a received payload means, beyond its bytes (docs/ledger.md, "Business semantics"):
 * whether it was received before (duplicate), whether a newer event for the same appointment or
 * patient came first (stale), the business acknowledgement owed to its sender, and whether it
 * is itself an acknowledgement of something this mailbox sent.
 */

/** The facts the ledger keeps of a received payload. Ordering keys are hashed: a patient key holds an NHS number. */
export interface Recorded {
  businessId: string | null;
  eventTime: string | null;
  receivedSha256: string;
  keys: Array<{ key: string; eventTime: string }>;
}

/** An acknowledgement written to the spool, to be queued in the same commit as the row it answers. */
export interface PendingAck {
  claimId: string;
  path: string;
  size: number;
  sha256: string;
  mtimeMs: number;
  businessId: string;
  refersTo: string;
  code: AckCode;
  peer: string;
  workflowId: string;
  fileName: string;
}

/** A sent message an acknowledgement names, and what the acknowledgement said. */
export interface Confirmation {
  /** Who acknowledged, and the business id of what they acknowledge. */
  peer: string;
  refersTo: string;
  code: AckCode;
  /** The refusal as the acknowledgement gave it: "CODE: text". */
  reason?: string;
}

/** What one receive pass has decided but not yet committed: copies and events seen in the pass. */
export interface PassMemory {
  copies: Map<string, { rowId: number; sha256: string }>;
  latest: Map<string, LatestEvent>;
}

export type Verdict =
  | { kind: 'new' }
  | { kind: 'duplicate'; first: number }
  /** Kept in failed/, not delivered: older than a newer event (stale), or conflicting with another row (review). */
  | { kind: 'set-aside'; state: 'stale' | 'needs_review'; related: number; code: 'STALE_EVENT' | 'DUPLICATE_ID_CONFLICT' | 'EVENT_TIME_CONFLICT'; reason: string };

const NEW: Verdict = { kind: 'new' };

/** The duplicate check, then the ordering check; none for a payload a person decided on. */
export function checkMeaning(ctx: MailboxContext, row: ReceivedRow, meta: InboundMeta, route: RouteConfig | undefined, facts: Recorded, pass: PassMemory, decided: boolean): Verdict {
  if (decided) return NEW;
  const duplicate = checkDuplicate(ctx, row, meta, route, facts, pass);
  return duplicate.kind === 'new' ? checkOrder(ctx, meta, route, facts, pass) : duplicate;
}

export function isAckWorkflow(meta: InboundMeta): boolean {
  return /_ACK$/i.test(meta.workflowId ?? '');
}

/** Facts of a payload (business id, event times, keys), read from bytes already in memory. */
export async function payloadMeaning(input: Buffer | undefined, route: RouteConfig | undefined, sha256: string, sender: string): Promise<Recorded> {
  let facts: PayloadFacts | undefined;
  if (input) {
    const { payloadFacts } = await import('../../transform/business');
    facts = payloadFacts(input, route?.transform?.from);
  }
  const keys = (facts?.messages ?? []).flatMap((m) => (m.eventTime ? m.keys.map((k) => ({ key: orderingKey(sender, k), eventTime: m.eventTime! })) : []));
  return { businessId: facts?.businessId ?? null, eventTime: facts?.eventTime ?? null, receivedSha256: sha256, keys };
}

function keyKind(key: string): string {
  return key.startsWith('patient:') ? 'patient' : 'appointment';
}

/**
 * Duplicates (issue 12 §2): from the same sender and workflow, within payload retention, the same
 * business id and content is a duplicate; the same id with other content goes to review; with no
 * business id, the same content is a duplicate.
 */
function checkDuplicate(ctx: MailboxContext, row: ReceivedRow, meta: InboundMeta, route: RouteConfig | undefined, facts: Recorded, pass: PassMemory): Verdict {
  if (route?.duplicates === 'deliver') return NEW;
  const sender = meta.from ?? '';
  const passKey = `${sender}\n${meta.workflowId ?? ''}\n${facts.businessId ?? `sha256:${facts.receivedSha256}`}`;
  const retentionMs = ctx.config.ledger.payloadRetentionDays * 86_400_000;
  const earlier =
    pass.copies.get(passKey) ??
    (() => {
      const first = ctx.ledger.findEarlierCopy({
        mailbox: ctx.mailbox.id,
        peer: sender,
        workflowId: meta.workflowId ?? null,
        businessId: facts.businessId,
        receivedSha256: facts.receivedSha256,
        since: new Date(ctx.now().getTime() - retentionMs),
        excludeId: row.id,
        states: ['delivered', 'acknowledged'],
      });
      return first?.receivedSha256 ? { rowId: first.id, sha256: first.receivedSha256 } : undefined;
    })();
  if (!earlier) {
    pass.copies.set(passKey, { rowId: row.id, sha256: facts.receivedSha256 });
    return { kind: 'new' };
  }
  if (earlier.sha256 === facts.receivedSha256) return { kind: 'duplicate', first: earlier.rowId };
  return {
    kind: 'set-aside',
    state: 'needs_review',
    related: earlier.rowId,
    code: 'DUPLICATE_ID_CONFLICT',
    reason: `business id already received in message row ${earlier.rowId} with different content; nothing delivered: a person must decide which is right`,
  };
}

/**
 * Ordering (issue 12 §3): per sender and appointment or patient key, an event older than the
 * newest already received is stale; an equal time with other content goes to review.
 */
function checkOrder(ctx: MailboxContext, meta: InboundMeta, route: RouteConfig | undefined, facts: Recorded, pass: PassMemory): Verdict {
  if (route?.ordering !== 'enforce') return NEW;
  const sender = meta.from ?? '';
  for (const { key, eventTime } of facts.keys) {
    const stored = ctx.ledger.latestEvent(ctx.mailbox.id, sender, key);
    const seen = pass.latest.get(key);
    const latest = !stored || (seen && seen.eventTime > stored.eventTime) ? seen : stored;
    if (!latest) continue;
    if (latest.eventTime > eventTime) {
      return { kind: 'set-aside', state: 'stale', related: latest.rowId, code: 'STALE_EVENT', reason: `an event of ${eventTime} for the same ${keyKind(key)} is older than one of ${latest.eventTime} already received (message row ${latest.rowId}); not delivered as current` };
    }
    if (latest.eventTime === eventTime && latest.sha256 !== facts.receivedSha256) {
      return { kind: 'set-aside', state: 'needs_review', related: latest.rowId, code: 'EVENT_TIME_CONFLICT', reason: `an event of ${eventTime} for the same ${keyKind(key)} was already received with other content (message row ${latest.rowId}); a person must decide which is right` };
    }
  }
  return { kind: 'new' };
}

/** Remembers a payload that will be delivered, so later messages of the same pass see it. */
export function rememberDelivered(row: ReceivedRow, facts: Recorded, pass: PassMemory): void {
  for (const { key, eventTime } of facts.keys) {
    const seen = pass.latest.get(key);
    if (!seen || seen.eventTime < eventTime) pass.latest.set(key, { eventTime, rowId: row.id, sha256: facts.receivedSha256 });
  }
}

/** The newest event time per key of a payload (a batch may hold several events for one key). */
export function latestPerKey(facts: Recorded): Map<string, string> {
  const out = new Map<string, string>();
  for (const { key, eventTime } of facts.keys) if ((out.get(key) ?? '') < eventTime) out.set(key, eventTime);
  return out;
}

/**
 * The business acknowledgement a route with `ack: true` owes the sender, written to the spool under
 * a fresh claim id; the caller queues it in the commit that settles the received row. Never for an
 * acknowledgement (no loops), nor for a payload with no business id to name.
 */
export async function prepareAck(ctx: MailboxContext, row: ReceivedRow, meta: InboundMeta, route: RouteConfig | undefined, input: Buffer | undefined, code: AckCode, reason?: AckReason): Promise<PendingAck | undefined> {
  if (!route?.ack || isAckWorkflow(meta) || !input || !meta.from) return undefined;
  const { buildAck } = await import('../../transform/ack');
  const built = buildAck(input, route.transform?.from, code, reason, ctx.now());
  if (!built) {
    ctx.log.warn('ACK_NOT_POSSIBLE', 'the route asks for a business acknowledgement, but the payload has no business id its format can name (e.g. an HL7 batch without BHS-11); none sent', { messageId: row.messageId });
    return undefined;
  }
  // Named by the row it answers and the answer: a payload processed again after a stop rewrites
  // the same spool file, and an answer already queued is not queued twice.
  const claimId = createHash('sha256').update(`${row.claimId}\n${code}`).digest('hex').slice(0, 32);
  if (ctx.ledger.findByClaimId(claimId)) return undefined;
  const path = spoolPaths(ctx, { claimId, id: 0 }).data;
  await writeFileAtomic(path, built.payload, PRIVATE_FILE_MODE, false);
  const facts = await fileFacts(path);
  return {
    claimId,
    path,
    size: facts.size,
    sha256: facts.sha256,
    mtimeMs: facts.mtimeMs,
    businessId: built.businessId,
    refersTo: built.refersTo,
    code,
    peer: meta.from.toUpperCase(),
    workflowId: `${meta.workflowId ?? ''}_ACK`,
    fileName: `${row.messageId}.ack.${built.format === 'hl7v2' ? 'hl7' : 'json'}`,
  };
}

/** Queues a prepared acknowledgement: an outbound row like any other, linked to the row it answers. Inside the settling transaction. */
export function queueAck(ctx: MailboxContext, answered: number, ack: PendingAck): void {
  ctx.ledger.insertMessage(
    {
      direction: 'out',
      mailbox: ctx.mailbox.id,
      state: 'queued',
      claimId: ack.claimId,
      peer: ack.peer,
      workflowId: ack.workflowId,
      messageType: 'DATA',
      fileName: ack.fileName,
      payloadPath: ack.path,
      sizeBytes: ack.size,
      sha256: ack.sha256,
      sourceMtimeMs: ack.mtimeMs,
      compress: ctx.config.transfer.compress,
      chunkSize: ctx.config.transfer.chunkSize,
      businessId: ack.businessId,
      relatedRowId: answered,
    },
    { type: 'ack_queued', detail: { answers: answered, code: ack.code, refersTo: ack.refersTo } },
  );
}

/** Reads an acknowledgement received on an _ACK workflow and finds the sent row it names. */
export async function readConfirmation(ctx: MailboxContext, meta: InboundMeta, input: Buffer | undefined): Promise<Confirmation | undefined> {
  if (!input || !meta.from) return undefined;
  const { readAck } = await import('../../transform/ack');
  const reading = readAck(input);
  if (!reading) return undefined;
  const peer = meta.from.toUpperCase();
  if (!ctx.ledger.findSentByBusinessId(ctx.mailbox.id, peer, reading.refersTo)) return undefined;
  const reason = [reading.reasonCode, reading.reason].filter(Boolean).join(': ');
  return { peer, refersTo: reading.refersTo, code: reading.code, ...(reason ? { reason } : {}) };
}

/**
 * Moves the sent row an acknowledgement names to confirmed or rejected. Inside the settling
 * transaction, so two acknowledgements of one business id in a pass (a message sent twice) each
 * find a send still waiting.
 */
export function applyConfirmation(ctx: MailboxContext, ackRowId: number, c: Confirmation): void {
  const { ledger, log } = ctx;
  const sent = ledger.findSentByBusinessId(ctx.mailbox.id, c.peer, c.refersTo);
  if (!sent) return;
  const positive = c.code === 'ok';
  if (sent.state !== 'sent' && sent.state !== 'acknowledged') {
    ledger.recordEvent(sent.id, 'ack_received_again', { ack: ackRowId, code: c.code });
    return;
  }
  ledger.transition(sent.id, positive ? 'confirmed' : 'rejected', {
    from: ['sent', 'acknowledged'],
    patch: { relatedRowId: ackRowId, ...(positive ? { errorCode: null, errorText: null } : { errorCode: c.code === 'transient-error' ? 'ACK_TRANSIENT_ERROR' : 'ACK_REJECTED', errorText: c.reason ?? `the recipient answered ${c.code}` }) },
    event: { type: 'business_ack', detail: { ack: ackRowId, code: c.code, reason: c.reason } },
  });
  if (!positive) log.warn('SEND_REJECTED', `the recipient's system refused a sent message: ${c.reason ?? c.code}`, { row: sent.id, messageId: sent.messageId, code: c.code });
}
