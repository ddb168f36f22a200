import { basename } from 'node:path';
import { MeshdError } from '../../errors';
import { newClaimId, type MessageRow } from '../../ledger';
import { copyRegular, fsyncDir, PRIVATE_FILE_MODE } from '../../safe-fs';
import type { MailboxContext, SendHeaders, SendProgress } from '../context';
import { globToRegExp } from '../folders';
import { fileFacts, spoolPaths } from '../spool';
import { failOutbound } from './file';
import { uploadBatch } from './upload';

/**
 * `meshd send FILE`: the daemon's send steps for one file on a one-shot mailbox context. The
 * file is claimed by copy (the user's file is read through a descriptor and never moved), then
 * checked, converted if an outbound route for this file name and workflow says so (not with
 * `raw`), uploaded, and filed into sent/ (with its .ctl) or failed/, exactly as the daemon would.
 */

/**
 * Far in the future: the daemon's uploader never takes a row this process is sending. Should
 * the process die mid-send, the daemon's start-up recovery finds the row (and its in-flight
 * mark) and settles it as it settles its own.
 */
const HELD_BY_THIS_PROCESS = new Date('9999-12-31T00:00:00Z');

/** The headers a person gives (mex-FileName defaults to the file's own name), and how to send. */
export interface ByHandOptions extends Pick<SendHeaders, 'to' | 'workflowId' | 'subject' | 'localId' | 'fileName' | 'contentType'> {
  chunkSize: number;
  compress: boolean;
  /** Skip the routes' transforms: send the bytes as they are. */
  raw?: boolean;
  /** Told as MESH takes each chunk (a progress bar). */
  onChunk?: SendProgress['onChunk'];
}

export async function sendByHand(ctx: MailboxContext, file: string, opts: ByHandOptions): Promise<{ row: MessageRow; result: { messageId: string; chunks: number; bytes: number } }> {
  const fileName = opts.fileName ?? basename(file);
  const route = opts.raw ? undefined : ctx.mailbox.routes.find((r) => r.direction === 'out' && r.match && r.workflow === opts.workflowId && globToRegExp(r.match).test(fileName) && r.transform);
  const claimId = newClaimId();
  const spool = spoolPaths(ctx, { claimId, id: 0 });
  await copyRegular(file, spool.data, PRIVATE_FILE_MODE);
  await fsyncDir(ctx.spool);
  const facts = await fileFacts(spool.data);
  const row = ctx.ledger.insertMessage(
    {
      direction: 'out',
      mailbox: ctx.mailbox.id,
      state: 'queued',
      claimId,
      peer: opts.to.toUpperCase(),
      workflowId: opts.workflowId,
      subject: opts.subject ?? null,
      localId: opts.localId ?? null,
      messageType: 'DATA',
      fileName,
      payloadPath: spool.data,
      sizeBytes: facts.size,
      sha256: facts.sha256,
      sourceMtimeMs: facts.mtimeMs,
      compress: opts.compress,
      chunkSize: opts.chunkSize,
      transform: route?.transform ? `${route.transform.from}>${route.transform.to}` : null,
      nextAttemptAt: HELD_BY_THIS_PROCESS,
    },
    { type: 'claimed', detail: { file: fileName, mode: 'meshd send' } },
  );
  // The one upload path, seen through a port that adds what only a person's command carries.
  let result: { messageId: string; chunks: number; bytes: number } | undefined;
  let error: unknown;
  const port = ctx.mesh;
  const headers = (h: SendHeaders): SendHeaders => ({ ...h, ...(opts.contentType ? { contentType: opts.contentType } : {}) });
  const own: MailboxContext = {
    ...ctx,
    mesh: {
      ...port,
      send: async (path, h, progress, resume) => {
        try {
          result = await port.send(path, headers(h), { ...progress, onChunk: (n, total) => (progress.onChunk(n, total), opts.onChunk?.(n, total)) }, resume);
          return result;
        } catch (err) {
          error = err;
          throw err;
        }
      },
    },
  };
  await uploadBatch(own, [row]);
  const after = ctx.ledger.get(row.id)!;
  if (after.state === 'sent' && result) return { row: after, result };
  // Left to retry later (a transient fault): a person's command ends here, so it is failed,
  // kept in failed/ for `meshd ledger retry`, rather than sent by the daemon behind their back.
  if (after.state === 'queued') await failOutbound(own, after, after.errorCode ?? 'SEND_FAILED', after.errorText ?? 'not sent');
  if (error instanceof MeshdError) throw error;
  throw new MeshdError(after.errorCode ?? 'SEND_FAILED', after.errorText ?? 'the message was not sent', `meshd ledger show ${row.id}`, after.state === 'needs_review' ? 'ambiguous' : 'failure');
}

