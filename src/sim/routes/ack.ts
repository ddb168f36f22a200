import type { RequestContext } from '../context';
import { sendEmpty, sendError } from '../http';

/**
 * Acknowledge: the message leaves the inbox for good (later downloads get 410). Repeating
 * an acknowledgement is harmless (200), so a client that lost the first answer can retry.
 */
export async function acknowledge(ctx: RequestContext): Promise<void> {
  const { store, clock } = ctx.state;
  const id = ctx.params.id;
  const message = store.get(id);
  if (!message || message.status === 'uploading') {
    sendError(ctx.res, 404, { event: 'ACK', code: '20', msg: 'Message does not exist', messageId: id });
    return;
  }
  if (message.recipient !== ctx.mailbox) {
    sendError(ctx.res, 403, { event: 'ACK', code: 'Forbidden', msg: 'only the recipient may acknowledge a message', messageId: id });
    return;
  }
  if (message.status === 'undeliverable' || message.status === 'error') {
    sendError(ctx.res, 410, { event: 'ACK', code: '20', msg: 'message expired before it was acknowledged', messageId: id });
    return;
  }
  if (message.status === 'accepted') {
    const now = clock.now().toISOString();
    store.update(id, { status: 'acknowledged', acknowledgedAt: now, acknowledgedBy: ctx.mailbox });
    if (message.type === 'DATA') {
      store.update(id, { statusEvent: 'ACK', statusDescription: 'Message acknowledged', statusTimestamp: now });
      // Gone for good: free the disk (benchmarks push hundreds of MiB through).
      store.removeBodies(id);
    }
  }
  sendEmpty(ctx.res, 200);
}
