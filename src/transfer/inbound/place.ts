import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { RouteConfig } from '../../config/types';
import type { ReceivedRow } from '../../ledger';
import { moveFile, openRegular, readRegularUpTo, removeName, safeFileName, SHARED_FILE_MODE, writeTemp } from '../../safe-fs';
import type { InboundMeta, MailboxContext } from '../context';
import { ctlDateTime, type ControlFile } from '../ctl';
import { globToRegExp } from '../folders';

/** Names, control files and placement of received messages in in/. */

/**
 * Files in in/ and failed/ are named by the message id, which is checked to be of MESH's shape
 * before it names anything (the mex-FileName never chooses a path), so names never collide.
 */
export function inboundFileName(messageId: string): string {
  return `${safeFileName(messageId, 'message')}.dat`;
}

/** A row's working files in temp/: named by its random claim id, never a row or MESH id. */
export function tempNames(ctx: MailboxContext, row: ReceivedRow): { part: string; out: string; ctl: string } {
  const base = join(ctx.folders.temp, row.claimId);
  return { part: `${base}.part`, out: `${base}.out`, ctl: `${base}.ctl` };
}

export function matchInboundRoute(routes: RouteConfig[], meta: InboundMeta): RouteConfig | undefined {
  return routes.find(
    (r) =>
      r.direction === 'in' &&
      globToRegExp(r.workflow).test(meta.workflowId ?? '') &&
      (!r.from || r.from.toUpperCase() === (meta.from ?? '').toUpperCase()),
  );
}

/** The Java-client control file written beside a received message (or alone, for a REPORT). */
export function inboundControl(ctx: MailboxContext, meta: InboundMeta): ControlFile {
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
    isCompressed: meta.contentCompressed,
    encrypted: meta.contentEncrypted,
    dataChecksum: meta.contentChecksum,
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

/** The ledger fields a received message's headers give. */
export function metaPatch(meta: InboundMeta) {
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

/**
 * Puts a payload (and its control file) into in/ in the order a consumer can trust: the .ctl
 * is staged in temp/ and renamed first, the .dat last, so a .dat never appears without its
 * .ctl; if the .dat cannot be placed the .ctl is taken back, so neither stays visible.
 * `opened`: the payload's own descriptor, if the caller holds it (its mode is set through it).
 */
export async function placePair(payload: string, target: string, ctl?: { temp: string; target: string; content: string }, opened?: FileHandle): Promise<void> {
  if (ctl) {
    // Created with its final mode (whatever stood at its temp name removed): the move needs no chmod.
    await writeTemp(ctl.temp, ctl.content, SHARED_FILE_MODE);
    await moveFile(ctl.temp, ctl.target);
  }
  try {
    await moveFile(payload, target, SHARED_FILE_MODE, opened);
  } catch (err) {
    if (ctl) await removeName(ctl.target);
    throw err;
  }
}

/**
 * The payload to convert, read through a descriptor — or, past transform.maxInputBytes, the
 * reason it is not loaded into memory at all (checked on the open file before reading).
 */
export async function readForConversion(ctx: MailboxContext, path: string): Promise<Buffer | string> {
  const max = ctx.config.transform.maxInputBytes;
  const read = await readRegularUpTo(path, max);
  return typeof read === 'number' ? `payload is ${read} bytes; conversion reads at most transform.maxInputBytes (${max}); kept unconverted` : read;
}

export async function sha256Of(handle: FileHandle): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of handle.createReadStream({ start: 0, autoClose: false })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** sha256 and size of a file meshd wrote, read without following a link. */
export async function hashRegular(path: string): Promise<{ sha256: string; size: number }> {
  const { handle, stat } = await openRegular(path);
  try {
    return { sha256: await sha256Of(handle), size: stat.size };
  } finally {
    await handle.close();
  }
}
