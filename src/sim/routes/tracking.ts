import { type TrackingV2 } from '../../mesh/protocol';
import { odsOf } from '../pki';
import type { RequestContext } from '../context';
import { sendError, sendJson } from '../http';
import type { SimMessage } from '../store';

/** Tracking (sender only: anyone else gets 404, as in MESH), v2 snake_case body. */
export async function tracking(ctx: RequestContext): Promise<void> {
  const id = ctx.url.searchParams.get('messageID');
  if (!id) {
    sendError(ctx.res, 400, { event: 'TRACK', code: '06', msg: 'query parameter messageID is required (exactly that case)' });
    return;
  }
  const message = ctx.state.store.get(id);
  if (!message || message.type !== 'DATA' || message.sender !== ctx.mailbox) {
    sendError(ctx.res, 404, { event: 'TRACK', code: '20', msg: 'Message does not exist', messageId: id });
    return;
  }
  sendJson(ctx.res, 200, trackingBody(message, ctx.state.inboxExpiryMs));
}

/** Deprecated tracking by local id: 404 none, 300 several, else the one message. */
export async function trackingByLocalId(ctx: RequestContext): Promise<void> {
  const localId = ctx.params.localId;
  const matches = ctx.state.store.all().filter((m) => m.type === 'DATA' && m.sender === ctx.mailbox && m.localId === localId);
  if (matches.length === 0) {
    sendError(ctx.res, 404, { event: 'TRACK', code: '20', msg: 'no message with that local id' });
    return;
  }
  if (matches.length > 1) {
    sendJson(ctx.res, 300, { messages: matches.map((m) => m.id) });
    return;
  }
  sendJson(ctx.res, 200, trackingBody(matches[0], ctx.state.inboxExpiryMs));
}

export function trackingBody(m: SimMessage, inboxExpiryMs: number): TrackingV2 {
  const success = m.status === 'uploading' ? null : m.status === 'accepted' || m.status === 'acknowledged';
  return {
    message_id: m.id,
    local_id: m.localId ?? null,
    workflow_id: m.workflowId,
    filename: m.fileName ?? `${m.id}.dat`,
    expiry_time: m.acceptedAt ? new Date(Date.parse(m.acceptedAt) + inboxExpiryMs).toISOString() : null,
    upload_timestamp: m.createdAt,
    recipient: m.recipient,
    recipient_name: `Simulated mailbox ${m.recipient}`,
    recipient_ods_code: odsOf(m.recipient),
    recipient_org_code: odsOf(m.recipient),
    recipient_org_name: `Simulated organisation ${odsOf(m.recipient)}`,
    status: m.status,
    status_success: success,
    status_event: m.statusEvent ?? (m.status === 'uploading' ? 'UPLOAD' : null),
    status_timestamp: m.statusTimestamp ?? null,
    status_description: m.statusDescription ?? (m.status === 'uploading' ? 'Waiting for the remaining chunks' : null),
    status_code: m.statusCode ?? null,
  };
}
