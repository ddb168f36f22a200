import type { MailboxContext } from '../context';
import { receiveBatch, type Received } from './batch';
import type { CycleState } from './deliver';
import { reprocessKept } from './recover';

/**
 * The receive pipeline (docs/architecture.md, "The message path"): list every page → refuse ids
 * not of MESH's shape → skip what the ledger already delivered (only re-acknowledge it) →
 * download into temp/<claimId>.part while free space stays above transfer.minFreeBytes
 * (deliver.ts) → convert if a route says → rename the .ctl, then the .dat, into in/ (place.ts)
 * → one directory fsync and one ledger commit for the batch → acknowledge (batch.ts). A crash
 * anywhere repeats at most the download, never the local delivery (recover.ts).
 */

export { recoverInbound, reprocessKept } from './recover';
export { inboundFileName } from './place';
export { DiskSpaceLowError, BAD_MESSAGE_ID } from './deliver';
export type { Received } from './batch';

const RECEIVE_BATCH = 128;
/** MESH's default inbox page: a full page means more may be waiting (drain at once). */
const FULL_PAGE = 500;
const MAX_DRAIN_ROUNDS = 50;

/** One pass of the receive side, draining while MESH returns full pages. Recovery runs before the first. */
export async function receiveCycle(ctx: MailboxContext): Promise<{ listed: number; delivered: number; acknowledged: number }> {
  const totals = { listed: 0, delivered: 0, acknowledged: 0 };
  totals.delivered += await reprocessKept(ctx);
  const results = await receiveMessages(ctx, { acknowledge: true }, (n) => (totals.listed += n));
  totals.delivered += results.filter((r) => r.outcome === 'deliver').length;
  totals.acknowledged += results.filter((r) => r.acknowledged).length;
  return totals;
}

/**
 * Receives what MESH lists (or only `ids`) through the batch steps; the daemon's poll and
 * `meshd receive` both come here. Throws IN_DISK_LOW after recording what was done, so the
 * poll fails with the reason while the rest waits in MESH.
 */
export async function receiveMessages(ctx: MailboxContext, opts: { acknowledge: boolean; ids?: string[] }, onListed?: (n: number) => void): Promise<Received[]> {
  const cycle: CycleState = {};
  const results: Received[] = [];
  for (let round = 0; round < MAX_DRAIN_ROUNDS && !ctx.stopping(); round++) {
    const ids = opts.ids ?? (await ctx.mesh.listInbox());
    onListed?.(ids.length);
    for (let i = 0; i < ids.length && !ctx.stopping() && !cycle.diskLow; i += RECEIVE_BATCH) {
      results.push(...(await receiveBatch(ctx, ids.slice(i, i + RECEIVE_BATCH), cycle, opts)));
    }
    if (opts.ids || ids.length < FULL_PAGE || cycle.diskLow || !opts.acknowledge) break;
  }
  if (cycle.diskLow) throw cycle.diskLow;
  return results;
}
