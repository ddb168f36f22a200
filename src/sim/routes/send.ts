import { randomUUID } from 'node:crypto';
import { rename } from 'node:fs/promises';
import { H, MAX_REQUEST_BYTES, parseChunkRange } from '../../mesh/protocol';
import { receiveBody, type BodyResult } from '../body';
import type { RequestContext } from '../context';
import { sendEmpty, sendError, sendJson, type MeshErrorDetail } from '../http';
import { contentEncoding, header, mexHeaderProblem } from './headers';

/**
 * Send (POST /outbox, chunk 1) and chunk upload (POST /outbox/{id}/{n}). Headers are checked
 * before the body is read; bodies stream to a temp file and are renamed into place only when
 * complete, so an aborted upload leaves nothing behind. The 100 MB per-request limit gives
 * 413 (standard HTTP "payload too large"): the spec states the limit but no MESH error code,
 * and 417 is reserved for send failures that carry a MESH code.
 */

export async function sendMessage(ctx: RequestContext): Promise<void> {
  const { state, req, mailbox } = ctx;
  const h = req.headers;
  const reject = (status: number, e: Omit<MeshErrorDetail, 'event'>): void => refuse(ctx, status, { event: 'SEND', ...e });

  const problem = mexHeaderProblem(h);
  if (problem) return reject(400, { code: '06', msg: problem });
  const toRaw = header(h, H.to)?.trim();
  if (!toRaw) return reject(400, { code: '08', msg: 'mex-To header is required' });
  const workflowId = header(h, H.workflowId)?.trim();
  if (!workflowId) return reject(400, { code: '06', msg: 'mex-WorkflowID header is required' });
  const encoding = contentEncoding(h);
  if (!encoding.ok) return reject(422, { code: 'UnsupportedContentEncoding', msg: `Content-Encoding "${encoding.value}" is not supported: use gzip or none` });
  const from = header(h, H.from)?.trim();
  if (from && from.toUpperCase() !== mailbox) return reject(417, { code: '07', msg: 'Invalid From Address: mex-From must be the authenticated mailbox' });
  const rangeText = header(h, H.chunkRange);
  const range = rangeText === undefined ? { index: 1, total: 1 } : parseChunkRange(rangeText);
  if (!range || range.index !== 1 || range.total < 1) {
    return reject(417, { code: 'InvalidHeaderChunks', msg: 'mex-Chunk-Range on the first request must be 1:N with N >= 1' });
  }
  const to = toRaw.toUpperCase();
  if (!state.knowsMailbox(to)) return reject(417, { code: '12', msg: 'Unregistered to address' });
  if (!state.workflowPermitted(workflowId, mailbox, to)) {
    return reject(417, { code: '17', msg: `Workflow ID ${workflowId} is not registered for the sender or the recipient` });
  }

  const now = state.clock.now();
  const id = state.store.newId(now);
  const result = await receiveChunk(ctx, id, 1);
  if (!result) return;
  await rename(result.file, state.store.chunkPath(id, 1));
  state.store.create(
    {
      type: 'DATA',
      sender: mailbox,
      recipient: to,
      workflowId,
      status: 'uploading',
      chunks: range.total,
      contentEncoding: encoding.value === 'gzip' ? 'gzip' : undefined,
      localId: header(h, H.localId),
      subject: header(h, H.subject),
      fileName: header(h, H.fileName),
      partnerId: header(h, H.partnerId),
      checksum: header(h, H.contentChecksum),
      compressed: header(h, H.contentCompressed),
      encrypted: header(h, H.contentEncrypted),
      contentType: header(h, H.contentType),
      httpContentType: header(h, 'content-type'),
    },
    now,
    id,
  );
  state.store.addChunk(id, 1, result.bytes, encoding.value, state.clock.now());
  if (acceptThenReset(ctx)) return;
  sendJson(ctx.res, 202, { message_id: id });
}

export async function sendChunk(ctx: RequestContext): Promise<void> {
  const { state, req, mailbox } = ctx;
  const { store } = state;
  const id = ctx.params.id;
  const reject = (status: number, e: Omit<MeshErrorDetail, 'event' | 'messageId'>): void =>
    refuse(ctx, status, { event: 'SEND', messageId: id, ...e });

  const message = store.get(id);
  if (!message || message.type !== 'DATA') return reject(404, { code: '20', msg: 'Message does not exist' });
  if (message.sender !== mailbox) return reject(403, { code: 'Forbidden', msg: 'only the sender may upload chunks of a message' });
  if (!/^\d{1,9}$/.test(ctx.params.n)) return reject(404, { code: '20', msg: `chunk "${ctx.params.n}" is not a chunk number` });
  const n = Number(ctx.params.n);
  const problem = mexHeaderProblem(req.headers);
  if (problem) return reject(400, { code: '06', msg: problem });
  const range = parseChunkRange(header(req.headers, H.chunkRange));
  if (!range || range.index !== n || range.total !== message.chunks) {
    return reject(417, {
      code: 'InvalidHeaderChunks',
      msg: `mex-Chunk-Range must be ${n}:${message.chunks} (this chunk number and the first chunk's total)`,
    });
  }
  if (n < 1 || n > message.chunks) return reject(406, { code: 'InvalidHeaderChunks', msg: `chunk ${n} is beyond the message's ${message.chunks} chunks` });
  // Only a finished message refuses a chunk (MESH's 423). A chunk sent again before then, as a
  // client does when it never saw the answer (or died mid-upload and resumed), replaces the first.
  if (message.status !== 'uploading') return reject(423, { code: 'MessageFinalised', msg: 'message already complete' });
  const encoding = contentEncoding(req.headers);
  if (!encoding.ok) return reject(422, { code: 'UnsupportedContentEncoding', msg: `Content-Encoding "${encoding.value}" is not supported: use gzip or none` });
  if (encoding.value !== (message.contentEncoding ?? 'identity')) {
    return reject(417, { code: 'InvalidContentEncoding', msg: 'cannot change content encoding: every chunk must use the Content-Encoding of chunk 1' });
  }

  const result = await receiveChunk(ctx, id, n);
  if (!result) return;
  // Another upload of this chunk completed the message meanwhile: this copy is not stored.
  if (message.status !== 'uploading') {
    await store.discard(result.file);
    return reject(423, { code: 'MessageFinalised', msg: 'message already complete' });
  }
  await rename(result.file, store.chunkPath(id, n));
  store.addChunk(id, n, result.bytes, encoding.value, state.clock.now());
  if (acceptThenReset(ctx)) return;
  sendEmpty(ctx.res, 202);
}

/**
 * Streams chunk n to a file of this request's own (two uploads of one chunk may overlap) for the
 * caller to rename into place; answers the client itself and returns undefined when it failed.
 */
async function receiveChunk(ctx: RequestContext, id: string, n: number): Promise<{ bytes: number; file: string } | undefined> {
  const { store } = ctx.state;
  const event = { event: 'SEND', messageId: n > 1 ? id : undefined };
  const declared = Number(header(ctx.req.headers, 'content-length') ?? NaN);
  if (declared > MAX_REQUEST_BYTES) {
    // Refuse on the declared length at once rather than after 100 MB have crossed the wire.
    refuse(ctx, 413, { ...event, code: 'PayloadTooLarge', msg: `request body exceeds ${MAX_REQUEST_BYTES} bytes: send smaller chunks` });
    return undefined;
  }
  await store.chunkDir(id);
  const tmp = `${store.chunkPath(id, n)}.${randomUUID()}.part`;
  const result: BodyResult = await receiveBody(ctx.req, tmp, { limit: MAX_REQUEST_BYTES, resetMidBody: ctx.fault.kind === 'reset' });
  switch (result.kind) {
    case 'aborted':
      if (n === 1) store.removeBodies(id);
      return undefined;
    case 'failed':
      if (n === 1) store.removeBodies(id);
      sendError(ctx.res, 500, { ...event, code: 'StorageFailed', msg: 'the simulator could not store the body' });
      return undefined;
    case 'too-large':
      if (n === 1) store.removeBodies(id);
      sendError(ctx.res, 413, { ...event, code: 'PayloadTooLarge', msg: `request body exceeds ${MAX_REQUEST_BYTES} bytes: send smaller chunks` });
      return undefined;
    case 'ok':
      if (result.bytes === 0) {
        await store.discard(tmp);
        if (n === 1) store.removeBodies(id);
        sendError(ctx.res, 417, { ...event, code: '02', msg: 'Data file is missing or inaccessible: the request body is empty' });
        return undefined;
      }
      return { bytes: result.bytes, file: tmp };
  }
}

/** Fault "reset-after-accept": the message is stored, but the client never sees the 202. */
function acceptThenReset(ctx: RequestContext): boolean {
  if (ctx.fault.kind !== 'reset-after-accept') return false;
  ctx.res.socket?.destroy();
  return true;
}

/** Answers an error before the body is read, then reads and discards the body. */
function refuse(ctx: RequestContext, status: number, e: MeshErrorDetail): void {
  sendError(ctx.res, status, e);
  ctx.req.resume();
}
