import { promises as fs } from 'node:fs';
import { join, sep } from 'node:path';
import type { ListFilter, MessageRow, MessageState } from '../../ledger';
import { exists } from '../../safe-fs';
import type { MailboxContext } from '../context';
import { moveOrphans, payloadInSpool, spoolPaths } from '../spool';
import { finishClaim } from './claim';
import { failOutbound, fileFailed, finishSentBatch, parkForReview } from './file';

/**
 * Rows of a state that may need a step, as ledger filters (any of them): `sent` rows stay until
 * tracking settles them and `failed` ones until retention, so those are narrowed to marked rows
 * (an index) rather than all read.
 */
type Candidates = (ctx: MailboxContext) => Array<Pick<ListFilter, 'recoveryMark' | 'payloadUnder'>>;
const ALL: Candidates = () => [{}];
const inSpool = (ctx: MailboxContext) => ({ payloadUnder: join(ctx.spool, sep) });

/**
 * What a crash can leave half-done on the send side, and who finishes it: one row of the table
 * per (state, condition). Run once per process and mailbox, before the first cycle; idempotent.
 */
const RECOVERY: ReadonlyArray<{ handler: string; state: MessageState; candidates: Candidates; needs: (row: MessageRow, ctx: MailboxContext) => boolean; run: (ctx: MailboxContext, row: MessageRow) => Promise<void> }> = [
  // Stopped between the ledger row and the move into the spool.
  { handler: 'finish-claim', state: 'claiming', candidates: ALL, needs: () => true, run: finishClaim },
  // The first POST may have reached MESH: never resent blindly.
  { handler: 'unknown-outcome', state: 'queued', candidates: () => [{ recoveryMark: 'post_in_flight' }], needs: (row) => row.recoveryMark === 'post_in_flight', run: unknownOutcome },
  // Its conversion was started twice and never finished: it killed the process both times.
  { handler: 'poison', state: 'queued', candidates: ALL, needs: (row) => row.processingStarts >= 2, run: poison },
  // Sent, but its files were not (all) moved to sent/.
  // (A row is recorded sent already marked filing, its payload still in the spool; migration 9.)
  { handler: 'finish-sent', state: 'sent', candidates: () => [{ recoveryMark: 'filing' }], needs: (row) => row.recoveryMark === 'filing', run: (ctx, row) => finishSentBatch(ctx, [row]) },
  // Failed, but its files were not (all) moved to failed/.
  { handler: 'finish-failed', state: 'failed', candidates: () => [{ recoveryMark: 'filing' }], needs: (row) => row.recoveryMark === 'filing', run: fileFailed },
];

export async function recoverOutbound(ctx: MailboxContext): Promise<void> {
  await adoptRowIdSpoolNames(ctx);
  for (const step of RECOVERY) {
    const rows = step.candidates(ctx).flatMap((narrow) => [...ctx.ledger.iterate({ mailbox: ctx.mailbox.id, direction: 'out', state: step.state, ...narrow })]);
    for (const row of rows) {
      const now = ctx.ledger.get(row.id)!; // an earlier step (or filter) may have moved it
      if (now.state !== step.state || !step.needs(now, ctx)) continue;
      ctx.log.info('RECOVERY', `finishing what a stop left half-done: ${step.handler}`, { handler: step.handler, row: row.id });
      await step.run(ctx, now);
    }
  }
  await reconcileSpool(ctx);
}

async function unknownOutcome(ctx: MailboxContext, row: MessageRow): Promise<void> {
  if (ctx.config.ledger.ambiguousSend === 'resend') {
    ctx.ledger.setMark(row.id, null, { event: { type: 'resend_after_unknown_outcome', detail: { policy: 'resend' } } });
    ctx.log.warn('SEND_RESEND_POLICY', 'first upload of a message was interrupted; resending as ledger.ambiguousSend is resend', { row: row.id });
    return;
  }
  ctx.ledger.transition(row.id, 'needs_review', {
    from: ['queued'],
    patch: { errorCode: 'MESH_SEND_AMBIGUOUS', errorText: 'meshd stopped during the first upload; MESH may or may not have the message' },
    event: { type: 'outcome_unknown', detail: { reason: 'interrupted during first POST /outbox' } },
  });
  ctx.log.warn('SEND_NEEDS_REVIEW', 'first upload was interrupted; message parked for review (never resent blindly)', { row: row.id, code: 'MESH_SEND_AMBIGUOUS' });
}

async function poison(ctx: MailboxContext, row: MessageRow): Promise<void> {
  await failOutbound(ctx, row, 'POISON', `converting this message stopped meshd ${row.processingStarts} times; it is set aside so the rest of the mailbox goes on`);
}

const ROW_ID_NAME = /^\d+\.(dat|ctl|send)$/;

/**
 * Before ledger migration 2, spool files were named by row id. A row that still points at such
 * a file (an upgrade with work in flight) has it renamed to its claim id; any other file named
 * that way is owned by nobody and goes to orphans/.
 */
async function adoptRowIdSpoolNames(ctx: MailboxContext): Promise<void> {
  // Only a spool holding such names can need it: the rows are not read otherwise (sent and
  // failed rows stay until retention).
  const names = await fs.readdir(ctx.spool).catch(() => [] as string[]);
  if (!names.some((n) => ROW_ID_NAME.test(n))) return;
  for (const state of ['queued', 'uploading', 'needs_review', 'sent', 'failed'] as const) {
    for (const row of [...ctx.ledger.iterate({ mailbox: ctx.mailbox.id, direction: 'out', state, ...inSpool(ctx) })]) {
      const old = join(ctx.spool, `${row.id}.dat`);
      if (row.payloadPath !== old) continue;
      const now = spoolPaths(ctx, row);
      for (const ext of ['dat', 'ctl', 'send'] as const) {
        const from = join(ctx.spool, `${row.id}.${ext}`);
        if (await exists(from)) await fs.rename(from, now[ext === 'dat' ? 'data' : ext]);
      }
      ctx.ledger.update(row.id, { payloadPath: now.data, ctlPath: row.ctlPath === join(ctx.spool, `${row.id}.ctl`) ? now.ctl : row.ctlPath }, { type: 'spool_renamed', detail: { to: 'claim id' } });
    }
  }
}

/**
 * The spool and the ledger must agree: a row waiting to send whose spool copy is missing is
 * parked for review, and a spool file no row owns is moved to orphans/ (never sent). Run at
 * start and by `meshd ledger restore`.
 */
export async function reconcileSpool(ctx: MailboxContext): Promise<{ parked: number[]; orphans: string[] }> {
  const parked: number[] = [];
  for (const state of ['queued', 'uploading'] as const) {
    for (const row of [...ctx.ledger.iterate({ mailbox: ctx.mailbox.id, direction: 'out', state })]) {
      if (payloadInSpool(ctx, row) && !(await exists(row.payloadPath!))) {
        await parkForReview(ctx, row, { code: 'SPOOL_MISSING', text: 'the spool copy of this message is missing; nothing was sent from it' });
        parked.push(row.id);
      }
    }
  }
  return { parked, orphans: await moveOrphans(ctx, ctx.spool, 'out') };
}
