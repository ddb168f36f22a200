import type { LookupV2 } from '../../mesh/protocol';
import type { RequestContext } from '../context';
import { sendJson } from '../http';

/** Endpoint lookup and workflow search (no token needed, as in the spec), v2 shape. */
export async function endpointLookup(ctx: RequestContext): Promise<void> {
  sendJson(ctx.res, 200, results(ctx.state.receivers(ctx.params.workflow, ctx.params.ods)));
}

export async function workflowSearch(ctx: RequestContext): Promise<void> {
  sendJson(ctx.res, 200, results(ctx.state.receivers(ctx.params.workflow)));
}

export async function ping(ctx: RequestContext): Promise<void> {
  sendJson(ctx.res, 200, { env: 'sim', build_label: 'meshd-sim', status: 'running', outcome: 'Yes' });
}

function results(mailboxes: string[]): LookupV2 {
  return { results: mailboxes.map((mailbox_id) => ({ mailbox_id, mailbox_name: `Simulated mailbox ${mailbox_id}` })) };
}
