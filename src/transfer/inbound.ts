import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { RouteConfig } from '../config/types';
import { MeshdError } from '../errors';
import { MeshNotFoundError } from '../mesh/errors';
import type { MessageRow } from '../ledger';
import { ctlDateTime, formatControlFile, type ControlFile } from './ctl';
import type { InboundMeta, MailboxContext } from './context';
import { globToRegExp } from './folders';
import { fsyncDir, fsyncFile, moveFile, safeFileName, writeFileAtomic } from '../safe-fs';
import { sha256File } from './spool';
import { mapLimit } from './pool';

/**
 * The receive pipeline: list every page → skip what the ledger already delivered (only
 * re-acknowledge it) → download into temp/ → transform if a route says → rename into in/ →
 * one directory fsync for the batch → ledger `delivered` (one commit) → acknowledge →
 * `acknowledged`. A crash anywhere repeats at most the download, never the local delivery,
 * and no acknowledgement is ever sent before its file is durably in in/ (or failed/).
 */

const RECEIVE_BATCH = 128;
const DOWNLOAD_CONCURRENCY = 16;
/** MESH's default inbox page: a full page means more may be waiting (drain at once). */
const FULL_PAGE = 500;
const MAX_DRAIN_ROUNDS = 50;

type Outcome =
  | { kind: 'deliver'; row: MessageRow; meta: InboundMeta; path: string; bytes: number; sha256: string; ctl?: string }
  | { kind: 'report'; row: MessageRow; meta: InboundMeta; ctl?: string }
  | { kind: 'quarantine'; row: MessageRow; meta?: InboundMeta; code: string; reason: string; path?: string; ack: boolean }
  | { kind: 'retry'; row: MessageRow; code: string; reason: string }
  | { kind: 'ack-only'; row: MessageRow }
  | { kind: 'skip' };

/** The mex-FileName never chooses a path: files in in/ are named by the (sanitised) message id. */
export function inboundFileName(messageId: string): string {
  return `${safeFileName(messageId, 'message')}.dat`;
}

function matchInboundRoute(routes: RouteConfig[], meta: InboundMeta): RouteConfig | undefined {
  return routes.find(
    (r) =>
      r.direction === 'in' &&
      globToRegExp(r.workflow).test(meta.workflowId ?? '') &&
      (!r.from || r.from.toUpperCase() === (meta.from ?? '').toUpperCase()),
  );
}

function inboundControl(ctx: MailboxContext, meta: InboundMeta): ControlFile {
  const report = meta.messageType === 'REPORT';
  return {
    messageType: report ? 'Report' : 'Data',
    fromDts: meta.from ?? '',
    toDts: meta.to ?? ctx.mailbox.id,
    workflowId: meta.workflowId ?? '',
    subject: meta.subject,
    localId: meta.localId,
    dtsId: report ? (meta.linkedMessageId ?? meta.messageId) : meta.messageId,
    partnerId: meta.partnerId,
    isCompressed: meta.compressed,
    encrypted: meta.encrypted,
    dataChecksum: meta.checksum,
    fileName: meta.fileName,
    contentType: meta.contentType,
    statusRecords: [
      {
        dateTime: meta.statusTimestamp ?? ctlDateTime(ctx.now()),
        event: meta.statusEvent ?? 'TRANSFER',
        status: meta.statusSuccess ?? (report ? 'ERROR' : 'SUCCESS'),
        statusCode: meta.statusCode ?? (report ? '' : '00'),
        description: meta.statusDescription ?? (report ? 'Report' : 'Transferred to recipient mailbox'),
      },
    ],
  };
}

/** Downloads and places one message; never acknowledges (the batch does, after its fsync). */
async function fetchOne(ctx: MailboxContext, row: MessageRow): Promise<Outcome> {
  const { folders, mesh, log } = ctx;
  const id = row.messageId!;
  const temp = join(folders.temp, `${safeFileName(id, 'message')}.part`);
  let meta: InboundMeta;
  let bytes: number;
  try {
    ({ meta, bytes } = await mesh.download(id, temp));
  } catch (err) {
    await fs.rm(temp, { force: true });
    const e = err instanceof MeshdError ? err : undefined;
    if (e?.code === 'MESH_MESSAGE_TOO_LARGE') {
      return { kind: 'quarantine', row, code: 'SIZE_CAP', reason: e.message, ack: false };
    }
    return { kind: 'retry', row, code: e?.code ?? 'DOWNLOAD_FAILED', reason: (err as Error).message };
  }
  try {
    if (meta.messageType === 'REPORT') {
      await fs.rm(temp, { force: true });
      let ctl: string | undefined;
      if (ctx.mailbox.controlFiles) {
        ctl = join(folders.in, `${safeFileName(id, 'report')}.ctl`);
        await writeFileAtomic(ctl, formatControlFile(inboundControl(ctx, meta)), 0o640, false);
      }
      return { kind: 'report', row, meta, ctl };
    }
    let payload = temp;
    const route = matchInboundRoute(ctx.mailbox.routes, meta);
    if (route?.transform) {
      const input = await fs.readFile(temp);
      let result;
      try {
        result = await ctx.transform(input, route.transform.from, route.transform.to, { direction: 'in', rowId: row.id });
      } catch (err) {
        return quarantinePayload(ctx, row, meta, temp, err instanceof MeshdError ? err.code : 'TRANSFORM_FAILED', (err as Error).message);
      }
      if (result.errors.length > 0) {
        const lines = result.errors.map((e) => `message ${e.message ?? '?'} ${e.position ?? ''} ${e.field ?? ''}: ${e.code}: ${e.text}`);
        const copy = join(folders.failed, `${safeFileName(id, 'message')}.partial.dat`);
        await fs.copyFile(temp, copy);
        await writeFileAtomic(`${copy}.reason`, lines.join('\n') + '\n', 0o640, false);
        log.warn('TRANSFORM_PARTIAL', `${result.errors.length} of ${result.messageCount} messages could not be converted; original kept in failed/`, { messageId: id });
      }
      payload = join(folders.temp, `${safeFileName(id, 'message')}.out`);
      await fs.writeFile(payload, result.output);
    }
    await fsyncFile(payload);
    const sha256 = await sha256File(payload);
    const target = join(folders.in, inboundFileName(id));
    await fs.rename(payload, target);
    if (payload !== temp) await fs.rm(temp, { force: true });
    let ctl: string | undefined;
    if (ctx.mailbox.controlFiles) {
      ctl = join(folders.in, inboundFileName(id).replace(/\.dat$/, '.ctl'));
      await writeFileAtomic(ctl, formatControlFile(inboundControl(ctx, meta)), 0o640, false);
    }
    return { kind: 'deliver', row, meta, path: target, bytes, sha256, ctl };
  } catch (err) {
    // A local write error (disk full, permissions): keep the message unacknowledged in MESH.
    await fs.rm(temp, { force: true });
    log.error('IN_WRITE_FAILED', `could not write a received message into the mailbox folder: ${(err as Error).message}`, { messageId: id });
    return { kind: 'retry', row, code: 'IN_WRITE_FAILED', reason: (err as Error).message };
  }
}

async function quarantinePayload(ctx: MailboxContext, row: MessageRow, meta: InboundMeta, temp: string, code: string, reason: string): Promise<Outcome> {
  const target = join(ctx.folders.failed, inboundFileName(row.messageId!));
  await fsyncFile(temp);
  await moveFile(temp, target);
  await writeFileAtomic(`${target}.reason`, `${code}: ${reason}\n`, 0o640, false);
  return { kind: 'quarantine', row, meta, code, reason, path: target, ack: true };
}

function metaPatch(meta: InboundMeta) {
  return {
    peer: meta.from ?? null,
    workflowId: meta.workflowId ?? null,
    localId: meta.localId ?? null,
    subject: meta.subject ?? null,
    messageType: meta.messageType,
    fileName: meta.fileName ?? null,
    linkedMessageId: meta.linkedMessageId ?? null,
    reportCode: meta.messageType === 'REPORT' ? (meta.statusCode ?? null) : null,
  };
}

/** Processes one batch of listed ids. */
async function receiveBatch(ctx: MailboxContext, ids: string[]): Promise<{ delivered: number; acknowledged: number }> {
  const { ledger, mailbox, log } = ctx;
  const work: MessageRow[] = [];
  const ackOnly: MessageRow[] = [];
  ledger.transaction(() => {
    for (const id of ids) {
      const row = ledger.findByMessageId(mailbox.id, 'in', id);
      if (!row) {
        work.push(ledger.insertMessage({ direction: 'in', mailbox: mailbox.id, messageId: id, state: 'receiving' }, { type: 'listed' }));
      } else if (row.state === 'receiving') {
        work.push(row);
      } else if (row.state === 'delivered' || row.state === 'acknowledged') {
        ackOnly.push(row); // delivered before; MESH still lists it, so only the acknowledgement is missing
      } else if (row.state === 'quarantined' && !row.acknowledgedAt && row.payloadPath) {
        ackOnly.push(row);
      }
      // quarantined without a payload (over the size cap) stays in MESH until an operator retries it
    }
  });
  const outcomes: Outcome[] = await mapLimit(work, DOWNLOAD_CONCURRENCY, (row) => (ctx.stopping() ? Promise.resolve<Outcome>({ kind: 'skip' }) : fetchOne(ctx, row)));
  for (const row of ackOnly) outcomes.push({ kind: 'ack-only', row });

  // Group commit: one directory fsync for every file placed by this batch, then one ledger commit.
  await fsyncDir(ctx.folders.in);
  if (outcomes.some((o) => o.kind === 'quarantine' && o.path)) await fsyncDir(ctx.folders.failed);
  const toAck: Array<{ row: MessageRow; ackState: 'acknowledged' | 'quarantined' }> = [];
  let delivered = 0;
  ledger.transaction(() => {
    for (const o of outcomes) {
      switch (o.kind) {
        case 'deliver':
          ledger.transition(o.row.id, 'delivered', {
            from: ['receiving'],
            patch: { ...metaPatch(o.meta), payloadPath: o.path, ctlPath: o.ctl ?? null, sizeBytes: o.bytes, sha256: o.sha256, errorCode: null, errorText: null },
            event: { type: 'delivered', detail: { file: o.path, bytes: o.bytes } },
          });
          toAck.push({ row: o.row, ackState: 'acknowledged' });
          delivered++;
          break;
        case 'report':
          ledger.transition(o.row.id, 'delivered', {
            from: ['receiving'],
            patch: { ...metaPatch(o.meta), ctlPath: o.ctl ?? null, sizeBytes: 0 },
            event: { type: 'report', detail: { code: o.meta.statusCode, linked: o.meta.linkedMessageId, description: o.meta.statusDescription } },
          });
          applyReport(ctx, o.meta);
          toAck.push({ row: o.row, ackState: 'acknowledged' });
          break;
        case 'quarantine':
          ledger.transition(o.row.id, 'quarantined', {
            from: ['receiving'],
            patch: { ...(o.meta ? metaPatch(o.meta) : {}), payloadPath: o.path ?? null, errorCode: o.code, errorText: o.reason },
            event: { type: 'quarantined', detail: { code: o.code, reason: o.reason, acknowledge: o.ack } },
          });
          if (o.ack) toAck.push({ row: o.row, ackState: 'quarantined' });
          break;
        case 'retry':
          ledger.update(o.row.id, { errorCode: o.code, errorText: o.reason, attempts: (o.row.attempts ?? 0) + 1 }, { type: 'receive_retry_later', detail: { code: o.code } });
          break;
        case 'ack-only':
          toAck.push({ row: o.row, ackState: o.row.state === 'quarantined' ? 'quarantined' : 'acknowledged' });
          break;
        case 'skip':
          break;
      }
    }
  });
  for (const o of outcomes) {
    if (o.kind === 'quarantine') log.warn('IN_QUARANTINED', `message quarantined: ${o.reason}`, { messageId: o.row.messageId, code: o.code, acknowledged: o.ack });
    if (o.kind === 'retry') log.warn('IN_RETRY_LATER', `message left in MESH to retry: ${o.reason}`, { messageId: o.row.messageId, code: o.code });
    if (o.kind === 'deliver') log.info('IN_DELIVERED', 'message delivered into in/', { messageId: o.row.messageId, bytes: o.bytes });
  }

  const acked = await mapLimit(toAck, DOWNLOAD_CONCURRENCY, async (a) => {
    try {
      await ctx.mesh.acknowledge(a.row.messageId!);
      return a;
    } catch (err) {
      log.warn('ACK_FAILED', `acknowledgement failed; it will be repeated next poll: ${(err as Error).message}`, { messageId: a.row.messageId });
      return undefined;
    }
  });
  const at = ctx.now().toISOString();
  let acknowledged = 0;
  ledger.transaction(() => {
    for (const a of acked) {
      if (!a) continue;
      const current = ledger.get(a.row.id)!;
      if (a.ackState === 'acknowledged' && current.state === 'delivered') {
        ledger.transition(a.row.id, 'acknowledged', { from: ['delivered'], patch: { acknowledgedAt: at }, event: { type: 'acknowledged' } });
      } else if (!current.acknowledgedAt) {
        ledger.update(a.row.id, { acknowledgedAt: at }, { type: 'acknowledged' });
      }
      acknowledged++;
    }
  });
  return { delivered, acknowledged };
}

/** A REPORT about one of our sends: link it and move the outbound row on. */
function applyReport(ctx: MailboxContext, meta: InboundMeta): void {
  const { ledger, mailbox, log } = ctx;
  if (!meta.linkedMessageId) return;
  const out = ledger.findByMessageId(mailbox.id, 'out', meta.linkedMessageId);
  if (!out) {
    log.warn('REPORT_UNLINKED', 'a REPORT names a message this ledger did not send', { linked: meta.linkedMessageId, code: meta.statusCode });
    return;
  }
  const failed = meta.statusSuccess?.toUpperCase() === 'ERROR' || (meta.statusCode !== undefined && meta.statusCode !== '00');
  if (failed && out.state === 'sent') {
    ledger.transition(out.id, 'undeliverable', {
      patch: { reportCode: meta.statusCode ?? null, errorCode: `MESH_${meta.statusCode ?? 'REPORT'}`, errorText: meta.statusDescription ?? 'undeliverable' },
      event: { type: 'report_received', detail: { code: meta.statusCode, event: meta.statusEvent, description: meta.statusDescription, report: meta.messageId } },
    });
    log.warn('SEND_UNDELIVERABLE', `MESH reports a sent message undeliverable: ${meta.statusDescription ?? meta.statusCode}`, {
      row: out.id,
      messageId: out.messageId,
      code: meta.statusCode,
    });
  } else {
    ledger.recordEvent(out.id, 'report_received', { code: meta.statusCode, description: meta.statusDescription });
  }
}

/**
 * Acknowledgements a crash cut off: rows delivered (or quarantined with their payload kept)
 * whose acknowledgement was never recorded. MESH may already have taken it, in which case the
 * message is gone and no longer listed, so these are not found by listing.
 */
export async function recoverInbound(ctx: MailboxContext): Promise<number> {
  const { ledger, mailbox, log } = ctx;
  // Downloads a crash cut off: the messages are still in MESH and will be fetched again.
  for (const name of await fs.readdir(ctx.folders.temp)) {
    if (name.endsWith('.part') || name.endsWith('.out')) await fs.rm(join(ctx.folders.temp, name), { force: true });
  }
  const pending = [
    ...ledger.iterate({ mailbox: mailbox.id, direction: 'in', state: 'delivered' }),
    ...[...ledger.iterate({ mailbox: mailbox.id, direction: 'in', state: 'quarantined' })].filter((r) => r.payloadPath && !r.acknowledgedAt),
  ];
  let done = 0;
  for (const row of pending) {
    if (ctx.stopping()) break;
    let detail: object = {};
    try {
      await ctx.mesh.acknowledge(row.messageId!);
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

/**
 * Quarantined payloads an operator sent back for another try (`meshd ledger retry`) after MESH
 * was already acknowledged: they are never listed again, so they are reprocessed from the copy
 * kept in failed/ — converted by the route as it is now, then delivered like any message.
 */
export async function reprocessKept(ctx: MailboxContext): Promise<number> {
  const { ledger, mailbox, folders, log } = ctx;
  const rows = [...ledger.iterate({ mailbox: mailbox.id, direction: 'in', state: 'receiving' })].filter((r) => r.payloadPath && r.acknowledgedAt);
  let delivered = 0;
  for (const row of rows) {
    if (ctx.stopping()) break;
    const meta: InboundMeta = { messageId: row.messageId!, messageType: 'DATA', from: row.peer ?? undefined, workflowId: row.workflowId ?? undefined, subject: row.subject ?? undefined, localId: row.localId ?? undefined, fileName: row.fileName ?? undefined };
    const route = matchInboundRoute(mailbox.routes, meta);
    let output: Buffer;
    try {
      const input = await fs.readFile(row.payloadPath!);
      output = route?.transform ? (await ctx.transform(input, route.transform.from, route.transform.to, { direction: 'in', rowId: row.id })).output : input;
    } catch (err) {
      ledger.transition(row.id, 'quarantined', {
        from: ['receiving'],
        patch: { errorCode: err instanceof MeshdError ? err.code : 'TRANSFORM_FAILED', errorText: (err as Error).message },
        event: { type: 'quarantined', detail: { reason: (err as Error).message, retry: true } },
      });
      log.warn('IN_QUARANTINED', `reprocessing failed again: ${(err as Error).message}`, { messageId: row.messageId });
      continue;
    }
    const target = join(folders.in, inboundFileName(row.messageId!));
    await writeFileAtomic(target, output);
    if (mailbox.controlFiles) await writeFileAtomic(target.replace(/\.dat$/, '.ctl'), formatControlFile(inboundControl(ctx, meta)));
    ledger.transaction(() => {
      ledger.transition(row.id, 'delivered', { from: ['receiving'], patch: { payloadPath: target, sizeBytes: output.length, errorCode: null, errorText: null }, event: { type: 'delivered', detail: { reprocessed: true } } });
      ledger.transition(row.id, 'acknowledged', { from: ['delivered'], patch: { acknowledgedAt: row.acknowledgedAt }, event: { type: 'acknowledged', detail: { note: 'acknowledged to MESH before it was quarantined' } } });
    });
    log.info('IN_DELIVERED', 'reprocessed message delivered into in/', { messageId: row.messageId });
    delivered++;
  }
  return delivered;
}

const recovered = new WeakSet<MailboxContext>();

/** One pass of the receive side, draining while MESH returns full pages. */
export async function receiveCycle(ctx: MailboxContext): Promise<{ listed: number; delivered: number; acknowledged: number }> {
  const totals = { listed: 0, delivered: 0, acknowledged: 0 };
  if (!recovered.has(ctx)) {
    totals.acknowledged += await recoverInbound(ctx);
    recovered.add(ctx);
  }
  totals.delivered += await reprocessKept(ctx);
  for (let round = 0; round < MAX_DRAIN_ROUNDS && !ctx.stopping(); round++) {
    const ids = await ctx.mesh.listInbox();
    totals.listed += ids.length;
    for (let i = 0; i < ids.length && !ctx.stopping(); i += RECEIVE_BATCH) {
      const r = await receiveBatch(ctx, ids.slice(i, i + RECEIVE_BATCH));
      totals.delivered += r.delivered;
      totals.acknowledged += r.acknowledged;
    }
    if (ids.length < FULL_PAGE) break;
  }
  return totals;
}
