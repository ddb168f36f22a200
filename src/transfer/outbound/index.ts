import { promises as fs } from 'node:fs';
import { MeshdError } from '../../errors';
import { readRegular } from '../../safe-fs';
import { checkOutboundControl, parseControlFile } from '../ctl';
import type { MailboxContext } from '../context';
import { claimBatch, scanOutbox } from './claim';
import { checkOverdueAcks } from './order';
import { finishSentBatch } from './file';
import { uploadBatch } from './upload';
import { backgroundQueue } from '../pool';
import { ClaimedBytes } from '../spool';

/**
 * The send pipeline, one mailbox at a time (docs/architecture.md, "The message path"):
 *   recover (once, recover.ts) → scan out/ and claim (claim.ts) → check, convert and upload
 *   (upload.ts) → file into sent/ or failed/, or park for review (file.ts).
 */

export { recoverOutbound, reconcileSpool } from './recover';
export { claimBatch, scanOutbox } from './claim';
export { checkOverdueAcks } from './order';

/**
 * Rows uploaded per group commit. Small on purpose: if meshd dies mid-group, every first POST
 * of the group has an unknown outcome and is parked for review, so the group bounds that.
 */
const UPLOAD_BATCH = 16;
/** Files taken from out/ per group commit. */
const CLAIM_BATCH = 64;

/**
 * One pass of the send side: take new files, upload what is due. Recovery runs before the first.
 * The three steps overlap: files are claimed in batches while the first batches upload, and a
 * sent batch is filed into sent/ while the next one uploads (one filing at a time).
 */
export async function sendCycle(ctx: MailboxContext): Promise<{ claimed: number; sent: number }> {
  const candidates = await scanOutbox(ctx);
  // Small payloads' claimed bytes, kept for their upload in this cycle (spool.ts).
  const held = new ClaimedBytes();
  let claimed = 0;
  let claiming = true;
  let claimedMore = wakeUp();
  const claims = (async () => {
    try {
      for (let i = 0; i < candidates.length && !ctx.stopping(); i += CLAIM_BATCH) {
        claimed += await claimBatch(ctx, candidates.slice(i, i + CLAIM_BATCH), held);
        claimedMore.wake();
      }
    } finally {
      claiming = false;
      claimedMore.wake();
    }
  })().then(() => undefined, (err: unknown) => ({ err }));
  // Sent batches are filed into sent/ one after another in the background, while the next ones upload.
  const filing = backgroundQueue();
  let sent = 0;
  const uploads = (async () => {
    while (!ctx.stopping()) {
      const due = ctx.ledger.due(ctx.mailbox.id, 'out', ['queued', 'uploading'], ctx.now(), UPLOAD_BATCH);
      if (due.length === 0) {
        if (!claiming) break;
        await claimedMore.wait;
        claimedMore = wakeUp();
        continue;
      }
      sent += await uploadBatch(ctx, due, (rows) => filing.add(() => finishSentBatch(ctx, rows)), held);
    }
  })().then(() => undefined, (err: unknown) => ({ err }));
  // Every step is waited for, whatever fails, before a failure is reported.
  const ended = [await uploads, await claims, await filing.settled().then(() => undefined, (err: unknown) => ({ err }))];
  const failed = ended.find((e) => e !== undefined);
  if (failed) throw failed.err;
  checkOverdueAcks(ctx);
  return { claimed, sent };
}

function wakeUp(): { wait: Promise<void>; wake: () => void } {
  let wake!: () => void;
  const wait = new Promise<void>((resolve) => (wake = resolve));
  return { wait, wake };
}

/** What a cycle would send, without moving a file or calling MESH (`meshd run --dry-run`). */
export async function planOutbound(ctx: MailboxContext): Promise<Array<{ file: string; to?: string; workflow?: string; transform?: string; problem?: string }>> {
  const plan = [];
  for (const c of await scanOutbox(ctx, { dryRun: true })) {
    const item: { file: string; to?: string; workflow?: string; transform?: string; problem?: string } = { file: c.name };
    try {
      if (c.ctlPath) {
        const ctl = parseControlFile(await readRegular(c.ctlPath));
        checkOutboundControl(ctl);
        item.to = ctl.toDts;
        item.workflow = ctl.workflowId;
      } else if (c.route) {
        item.to = c.route.to;
        item.workflow = c.route.workflow;
        if (c.route.transform) {
          item.transform = `${c.route.transform.from}>${c.route.transform.to}`;
          const size = (await fs.lstat(c.dataPath)).size;
          if (size > ctx.config.transform.maxInputBytes) throw new MeshdError('TOO_LARGE_TO_CONVERT', `${size} bytes is over transform.maxInputBytes; it would be set aside, not converted`);
          const r = await ctx.transform(await readRegular(c.dataPath), c.route.transform.from, c.route.transform.to, { direction: 'out', rowId: 0 });
          if (r.errors.length) item.problem = `${r.errors.length} of ${r.messageCount} messages would be quarantined`;
        }
      }
      if ((await fs.lstat(c.dataPath)).size === 0) item.problem = 'empty file: MESH refuses it';
    } catch (err) {
      item.problem = (err as Error).message;
    }
    plan.push(item);
  }
  return plan;
}
