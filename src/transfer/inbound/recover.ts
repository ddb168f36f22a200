import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { DECIDED_BY_PERSON, receivedRow, type MessageState, type ReceivedRow } from '../../ledger';
import { MeshNotFoundError } from '../../mesh/errors';
import { exists, fsyncDir, moveFile, removeName, SHARED_FILE_MODE, writeFileAtomic } from '../../safe-fs';
import type { InboundMeta, MailboxContext } from '../context';
import { moveOrphans } from '../spool';
import { settle } from './batch';
import { deliverPayload, type Outcome } from './deliver';
import { hashRegular, inboundFileName, tempNames } from './place';

/**
 * What a crash can leave half-done on the receive side, finished once per process before the
 * first poll: poison set aside, downloads cut off cleared, acknowledgements cut off repeated.
 */
export async function recoverInbound(ctx: MailboxContext): Promise<number> {
  const { ledger, mailbox, log } = ctx;
  await quarantinePoison(ctx);
  // Downloads a crash cut off are owned by rows still `receiving`: the messages are still in MESH
  // and are fetched again. Anything in temp/ that no row owns is moved aside, never delivered.
  for (const row of receiving(ctx)) {
    for (const name of Object.values(tempNames(ctx, row))) await removeName(name);
  }
  await moveOrphans(ctx, ctx.folders.temp, 'in');
  // Settled states keep their rows until retention: only the unacknowledged few are read, not
  // every quarantined message of the last months at each `run --once`.
  const unacked = (state: MessageState) => [...ledger.iterate({ mailbox: mailbox.id, direction: 'in', state, unacknowledged: true })];
  const pending = [
    ...ledger.iterate({ mailbox: mailbox.id, direction: 'in', state: 'delivered' }),
    ...unacked('quarantined').filter((r) => r.payloadPath),
    ...(['duplicate', 'stale', 'needs_review'] as const).flatMap(unacked),
  ].map(receivedRow);
  let done = 0;
  for (const row of pending) {
    if (ctx.stopping()) break;
    log.info('RECOVERY', 'finishing what a stop left half-done: reacknowledge', { handler: 'reacknowledge', messageId: row.messageId });
    let detail: object = {};
    try {
      await ctx.mesh.acknowledge(row.messageId);
    } catch (err) {
      if (!(err instanceof MeshNotFoundError)) {
        log.warn('ACK_FAILED', `acknowledgement failed; it will be repeated: ${(err as Error).message}`, { messageId: row.messageId });
        continue;
      }
      detail = { note: 'no longer in MESH: already acknowledged' };
    }
    const at = ctx.now();
    if (row.state === 'delivered') ledger.transition(row.id, 'acknowledged', { from: ['delivered'], patch: { acknowledgedAt: at }, event: { type: 'acknowledged', detail } });
    else ledger.update(row.id, { acknowledgedAt: at }, { type: 'acknowledged', detail });
    done++;
  }
  return done;
}

async function isRegularFile(path: string): Promise<boolean> {
  const st = await lstat(path).catch(() => undefined);
  return st?.isFile() === true;
}

function receiving(ctx: MailboxContext): ReceivedRow[] {
  return [...ctx.ledger.iterate({ mailbox: ctx.mailbox.id, direction: 'in', state: 'receiving' })].map(receivedRow);
}

/**
 * Messages whose conversion or delivery began twice and never finished (the process died both
 * times): quarantined POISON so the rest of the mailbox carries on. A downloaded payload is
 * kept in failed/ with a .reason and then acknowledged like a conversion failure; one never
 * downloaded stays in MESH, unacknowledged, so its sender is told at expiry.
 */
async function quarantinePoison(ctx: MailboxContext): Promise<void> {
  const { ledger, log } = ctx;
  for (const row of receiving(ctx)) {
    if (row.processingStarts < 2) continue;
    // Stopped after its file was placed in in/ and before that was recorded: delivered, not poison.
    const placed = join(ctx.folders.in, inboundFileName(row.messageId));
    if (!row.payloadPath && !(await exists(tempNames(ctx, row).part)) && (await isRegularFile(placed))) {
      log.info('RECOVERY', 'finishing what a stop left half-done: placed-before-stop', { handler: 'placed-before-stop', messageId: row.messageId });
      const { sha256, size } = await hashRegular(placed);
      ledger.transition(row.id, 'delivered', { from: ['receiving'], patch: { payloadPath: placed, sizeBytes: size, sha256, processingStarts: 0 }, event: { type: 'delivered', detail: { file: placed, recovered: true } } });
      continue;
    }
    log.info('RECOVERY', 'finishing what a stop left half-done: inbound-poison', { handler: 'inbound-poison', messageId: row.messageId });
    const reason = `processing began ${row.processingStarts} times and the process stopped each time; not tried again`;
    let payloadPath = row.payloadPath; // reprocessing a kept copy: it stays where it is
    const part = tempNames(ctx, row).part;
    if (!payloadPath && (await exists(part))) {
      payloadPath = join(ctx.folders.failed, inboundFileName(row.messageId));
      await writeFileAtomic(`${payloadPath}.reason`, `POISON: ${reason}\n`, SHARED_FILE_MODE, false);
      await moveFile(part, payloadPath, SHARED_FILE_MODE);
      await fsyncDir(ctx.folders.failed);
    }
    ledger.transition(row.id, 'quarantined', {
      from: ['receiving'],
      patch: { payloadPath, errorCode: 'POISON', errorText: reason, processingStarts: 0 },
      event: { type: 'quarantined', detail: { code: 'POISON', reason, acknowledge: Boolean(payloadPath) } },
    });
    log.error('IN_POISON', `message quarantined: ${reason}`, { messageId: row.messageId, kept: payloadPath ?? undefined });
  }
}

/**
 * Quarantined payloads an operator sent back for another try (`meshd ledger retry`) after MESH
 * was already acknowledged: they are never listed again, so they go through the same delivery
 * from the copy kept in failed/ — converted by the route as it is now.
 */
/** True when the row's last operator retry took it out of needs_review or stale: a person decided it goes. */
function decidedByPerson(ctx: MailboxContext, row: ReceivedRow): boolean {
  const retry = ctx.ledger.events(row.id).findLast((e) => e.type === 'operator_retry');
  return DECIDED_BY_PERSON.includes(retry?.detail?.previousState as MessageState);
}

export async function reprocessKept(ctx: MailboxContext): Promise<number> {
  const rows = receiving(ctx).filter((r) => r.payloadPath && r.acknowledgedAt);
  const outcomes: Outcome[] = [];
  for (const row of rows) {
    if (ctx.stopping()) break;
    const meta: InboundMeta = { messageId: row.messageId, messageType: 'DATA', totalChunks: row.chunksTotal ?? 1, from: row.peer ?? undefined, workflowId: row.workflowId ?? undefined, subject: row.subject ?? undefined, localId: row.localId ?? undefined, fileName: row.fileName ?? undefined };
    const kept = await hashRegular(row.payloadPath!).catch(() => undefined);
    outcomes.push(
      kept
        ? await deliverPayload(ctx, row, meta, { path: row.payloadPath!, bytes: kept.size, sha256: kept.sha256, kept: true }, {}, decidedByPerson(ctx, row))
        : { kind: 'quarantine', row, meta, code: 'PAYLOAD_MISSING', reason: `the kept payload ${row.payloadPath} is gone`, ack: false },
    );
  }
  if (outcomes.length === 0) return 0;
  const results = await settle(ctx, outcomes, { acknowledge: true });
  return results.filter((r) => r.outcome === 'deliver').length;
}
