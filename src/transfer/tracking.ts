import { MeshdError } from '../errors';
import type { MailboxContext } from './context';

/**
 * Follow-up of sent messages by tracking. MESH asks clients not to poll tracking often, so
 * each message is checked on a widening interval and only a few per run; REPORTs (inbound)
 * remain the main signal of non-delivery.
 */
const TRACK_PER_RUN = 20;

function nextCheck(now: Date, sentAt: string): Date {
  const age = now.getTime() - Date.parse(sentAt);
  const wait = age < 3_600_000 ? 15 * 60_000 : age < 86_400_000 ? 3_600_000 : 6 * 3_600_000;
  return new Date(now.getTime() + wait);
}

export async function trackingCycle(ctx: MailboxContext): Promise<{ checked: number; acknowledged: number; undeliverable: number }> {
  const { ledger, mesh, log, mailbox } = ctx;
  const now = ctx.now();
  const result = { checked: 0, acknowledged: 0, undeliverable: 0 };
  for (const row of ledger.due(mailbox.id, 'out', ['sent'], now, TRACK_PER_RUN)) {
    if (ctx.stopping() || !row.messageId) break;
    let status: { status: string; statusCode?: string; description?: string };
    try {
      status = await mesh.track(row.messageId);
    } catch (err) {
      const code = err instanceof MeshdError ? err.code : 'TRACKING_FAILED';
      ledger.update(row.id, { nextAttemptAt: nextCheck(now, row.createdAt) }, { type: 'tracking_failed', detail: { code } });
      log.warn('TRACKING_FAILED', `tracking failed: ${(err as Error).message}`, { row: row.id, code });
      continue;
    }
    result.checked++;
    const s = status.status.toLowerCase();
    if (s === 'acknowledged') {
      ledger.transition(row.id, 'acknowledged', { from: ['sent'], patch: { acknowledgedAt: now }, event: { type: 'tracking', detail: { status: s } } });
      result.acknowledged++;
    } else if (s === 'undeliverable' || s === 'error') {
      ledger.transition(row.id, 'undeliverable', {
        from: ['sent'],
        patch: { errorCode: `MESH_${status.statusCode ?? 'UNDELIVERABLE'}`, errorText: status.description ?? s, reportCode: status.statusCode ?? null },
        event: { type: 'tracking', detail: { status: s, code: status.statusCode } },
      });
      log.warn('SEND_UNDELIVERABLE', `tracking says a sent message is ${s}`, { row: row.id, messageId: row.messageId, code: status.statusCode });
      result.undeliverable++;
    } else {
      ledger.update(row.id, { nextAttemptAt: nextCheck(now, row.createdAt) }, { type: 'tracking', detail: { status: s } });
    }
  }
  return result;
}
