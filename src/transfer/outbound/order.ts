import type { RouteConfig } from '../../config/types';
import type { MessageRow } from '../../ledger';
import { readHead, readRegularUpTo } from '../../safe-fs';
import { sniffHead } from '../../transform/sniff';
import type { MailboxContext } from '../context';
import { orderingKey } from '../ordering-key';
import type { Payload } from './upload';

/**
 * What a send means (docs/ledger.md, "Business semantics"): its business id and event time are
 * recorded once, before its first POST, from the payload that goes (converted or not), so a
 * resend after an unclear outcome keeps them; its appointment and patient keys make a later event
 * wait while an earlier one for the same appointment or patient is still to be sent.
 */

/** How long a send waits before the order is checked again. */
const ORDER_WAIT_MS = 30_000;

export async function recordSendFacts(ctx: MailboxContext, row: MessageRow, payload: Payload): Promise<MessageRow> {
  if (row.businessId || row.eventTime || row.messageId || !row.peer) return row;
  // Only a payload that can mean something: converted by the route, or looking like HL7 v2 or FHIR.
  if (!row.transform && sniffHead(payload.bytes?.subarray(0, 512) ?? (await readHead(payload.path, 512))) === undefined) return row;
  const cap = ctx.config.transform.maxInputBytes;
  const bytes = payload.bytes ?? (await readRegularUpTo(payload.path, cap));
  if (typeof bytes === 'number' || bytes.length > cap) return row; // over the cap: not loaded, nothing recorded
  const { payloadFacts } = await import('../../transform/business');
  const facts = payloadFacts(bytes, row.transform?.split('>')[1]);
  if (!facts || (!facts.businessId && !facts.eventTime)) return row;
  const keys = [...new Set(facts.messages.flatMap((m) => m.keys.map((k) => orderingKey(row.peer!, k))))];
  return ctx.ledger.transaction(() => {
    ctx.ledger.setMessageKeys(row.id, keys);
    return ctx.ledger.update(row.id, { businessId: facts.businessId ?? null, eventTime: facts.eventTime ?? null }, { type: 'business_facts', detail: { businessId: facts.businessId, eventTime: facts.eventTime, keys: keys.length } });
  });
}

/**
 * True when an earlier event for one of the row's appointments or patients is still to be sent:
 * the row waits (it is looked at again after ORDER_WAIT_MS), so the recipient gets them in order.
 */
export function mustWait(ctx: MailboxContext, row: MessageRow): boolean {
  if (row.messageId) return false; // already partly in MESH: finish it
  const earlier = ctx.ledger.earlierUnsent(row);
  if (!earlier) return false;
  const first = row.errorCode !== 'WAITING_FOR_EARLIER';
  ctx.ledger.update(
    row.id,
    { errorCode: 'WAITING_FOR_EARLIER', errorText: `waits for message row ${earlier.id}, an earlier event for the same appointment or patient`, nextAttemptAt: new Date(ctx.now().getTime() + ORDER_WAIT_MS) },
    first ? { type: 'waiting_for_earlier', detail: { earlier: earlier.id } } : undefined,
  );
  if (first) ctx.log.info('SEND_WAITS_FOR_EARLIER', 'a later event waits until an earlier one for the same appointment or patient is sent', { row: row.id, earlier: earlier.id });
  return true;
}

/** When a business ACK for this send falls due, if its route sets ackTimeout and it has a business id to be named by. */
export function ackDueAt(ctx: MailboxContext, row: MessageRow): string | undefined {
  if (!row.businessId) return undefined;
  const route: RouteConfig | undefined = ctx.mailbox.routes.find((r) => r.direction === 'out' && r.ackTimeout && r.workflow === row.workflowId && r.to === row.peer);
  return route?.ackTimeout ? new Date(ctx.now().getTime() + route.ackTimeout * 1000).toISOString() : undefined;
}

/** Most overdue sends reported per check: the rest are found next time. */
const OVERDUE_BATCH = 500;

/**
 * Raises ACK_OVERDUE once per sent message whose business ACK did not arrive by its route's
 * ackTimeout (event, log and metric; `meshd status` and /readyz count them). Returns how many
 * are overdue now, reported before or not.
 */
export function checkOverdueAcks(ctx: MailboxContext): number {
  const overdue = ctx.ledger.overdueAcks(ctx.mailbox.id, ctx.now(), OVERDUE_BATCH);
  for (const row of overdue) {
    if (row.errorCode === 'ACK_OVERDUE') continue;
    ctx.ledger.update(row.id, { errorCode: 'ACK_OVERDUE', errorText: `no business acknowledgement from ${row.peer} by ${row.ackDueAt}` }, { type: 'ack_overdue', detail: { due: row.ackDueAt } });
    ctx.log.warn('ACK_OVERDUE', `a sent message has had no business acknowledgement from ${row.peer} since ${row.ackDueAt}; MESH delivered it, but the receiving system has not said it accepted it`, {
      code: 'ACK_OVERDUE',
      row: row.id,
      messageId: row.messageId,
    });
  }
  return overdue.length;
}
