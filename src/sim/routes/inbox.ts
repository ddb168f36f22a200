import { INBOX_PAGE_MAX, INBOX_PAGE_MIN, type InboxPageV2 } from '../../mesh/protocol';
import type { RequestContext } from '../context';
import { sendError, sendJson } from '../http';

/**
 * Inbox listing with v2 paging: oldest first, `max_results` 10..5000, an opaque
 * `continue_from` token and a RELATIVE `links.next`, plus `workflow_filter`.
 */
export async function listInbox(ctx: RequestContext): Promise<void> {
  const q = ctx.url.searchParams;
  const mailbox = ctx.mailbox;
  let pageSize = ctx.state.maxResults;
  const rawMax = q.get('max_results');
  if (rawMax !== null) {
    pageSize = /^\d+$/.test(rawMax) ? Number(rawMax) : NaN;
    if (!(pageSize >= INBOX_PAGE_MIN && pageSize <= INBOX_PAGE_MAX)) {
      sendError(ctx.res, 400, { event: 'INBOX', code: '06', msg: `max_results must be an integer from ${INBOX_PAGE_MIN} to ${INBOX_PAGE_MAX}` });
      return;
    }
  }
  let after = 0;
  const rawContinue = q.get('continue_from');
  if (rawContinue !== null) {
    const decoded = decodeContinue(rawContinue, mailbox);
    if (decoded === undefined) {
      sendError(ctx.res, 400, { event: 'INBOX', code: '06', msg: 'continue_from is not a token this server issued for this mailbox' });
      return;
    }
    after = decoded;
  }
  const filterText = q.get('workflow_filter');
  const filter = filterText === null || filterText === '' ? () => true : workflowFilter(filterText);

  const inbox = ctx.state.store.inbox(mailbox);
  const candidates = inbox.filter((m) => ctx.state.store.seqOf(m) > after && filter(m.workflowId));
  const page = candidates.slice(0, pageSize);
  const body: InboxPageV2 = {
    messages: page.map((m) => m.id),
    links: { self: relative(ctx, mailbox, pageSize, filterText, rawContinue ?? undefined) },
    approx_inbox_count: inbox.length,
  };
  if (candidates.length > page.length) {
    const token = encodeContinue(mailbox, ctx.state.store.seqOf(page[page.length - 1]));
    body.links!.next = relative(ctx, mailbox, pageSize, filterText, token);
  }
  sendJson(ctx.res, 200, body);
}

/** Deprecated count endpoint, v2 shape. */
export async function inboxCount(ctx: RequestContext): Promise<void> {
  sendJson(ctx.res, 200, { count: ctx.state.store.inbox(ctx.mailbox).length });
}

function relative(ctx: RequestContext, mailbox: string, pageSize: number, filter: string | null, continueFrom?: string): string {
  const q = new URLSearchParams();
  q.set('max_results', String(pageSize));
  if (filter) q.set('workflow_filter', filter);
  if (continueFrom) q.set('continue_from', continueFrom);
  return `/messageexchange/${encodeURIComponent(mailbox)}/inbox?${q.toString()}`;
}

/** Opaque to clients; bound to the mailbox so one mailbox's token is useless in another. */
export function encodeContinue(mailbox: string, seq: number): string {
  return Buffer.from(JSON.stringify({ m: mailbox, s: seq })).toString('base64url');
}

export function decodeContinue(token: string, mailbox: string): number | undefined {
  try {
    const v = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { m?: unknown; s?: unknown };
    if (v.m !== mailbox || typeof v.s !== 'number' || !Number.isInteger(v.s) || v.s < 0) return undefined;
    return v.s;
  } catch {
    return undefined;
  }
}

/**
 * The six workflow_filter forms (docs/mesh-protocol.md, Endpoints): `WF` equals, `!WF` not equal,
 * `WF*` begins with, `!WF*` does not begin with, `*X*` contains, `!*X*` does not contain.
 */
export function workflowFilter(expr: string): (workflowId: string) => boolean {
  const negate = expr.startsWith('!');
  const body = negate ? expr.slice(1) : expr;
  let test: (wf: string) => boolean;
  if (body.length > 2 && body.startsWith('*') && body.endsWith('*')) {
    const part = body.slice(1, -1);
    test = (wf) => wf.includes(part);
  } else if (body.endsWith('*')) {
    const prefix = body.slice(0, -1);
    test = (wf) => wf.startsWith(prefix);
  } else {
    test = (wf) => wf === body;
  }
  return negate ? (wf) => !test(wf) : test;
}
