import { H } from '../../mesh/protocol';
import type { RequestContext } from '../context';
import { sendEmpty, sendError } from '../http';

/** Handshake ("validate mailbox"): 200 with an empty v2 body; the three client headers are required. */
export async function handshake(ctx: RequestContext): Promise<void> {
  const missing = [H.clientVersion, H.osName, H.osVersion].filter((h) => !String(ctx.req.headers[h] ?? '').trim());
  if (missing.length) {
    sendError(ctx.res, 400, { event: 'HANDSHAKE', code: '06', msg: `missing required header(s): ${missing.join(', ')}` });
    return;
  }
  sendEmpty(ctx.res, 200);
}
