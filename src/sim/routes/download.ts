import { createReadStream, readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { meshTimestamp } from '../clock';
import type { RequestContext } from '../context';
import { sendError } from '../http';
import type { HostileAnswer, SimMessage } from '../store';

/** A chunk up to this size, sent as stored, is read in one synchronous call. */
const SMALL_CHUNK = 64 * 1024;

/**
 * Download chunk n (1 for `/inbox/{id}`) and HEAD. 206 while more chunks follow, 200 for
 * the last. A chunk stored gzip is sent as-is with Content-Encoding: gzip when the client
 * accepts gzip, else decompressed on the way out. Bodies are streamed from disk, but for a
 * small chunk sent as stored, which is read at once.
 */
export async function download(ctx: RequestContext): Promise<void> {
  const { store } = ctx.state;
  const id = ctx.params.id;
  const message = store.get(id);
  if (!message) {
    sendError(ctx.res, 404, { event: 'RECEIVE', code: '20', msg: 'Message does not exist', messageId: id });
    return;
  }
  if (message.recipient !== ctx.mailbox) {
    sendError(ctx.res, 403, { event: 'RECEIVE', code: 'Forbidden', msg: 'only the recipient may download a message', messageId: id });
    return;
  }
  const gone = goneReason(message);
  if (gone) {
    sendError(ctx.res, 410, { event: 'RECEIVE', code: '20', msg: gone, messageId: id });
    return;
  }
  const raw = ctx.params.n ?? '1';
  const n = /^\d{1,9}$/.test(raw) ? Number(raw) : NaN;
  const last = Math.max(message.chunks, 1);
  if (!(n >= 1 && n <= last)) {
    sendError(ctx.res, 404, { event: 'RECEIVE', code: '20', msg: `chunk ${raw} does not exist: this message has ${last}`, messageId: id });
    return;
  }

  const headers = messageHeaders(message, n);
  const status = n < message.chunks ? 206 : 200;
  if (message.type === 'REPORT') {
    ctx.res.writeHead(200, { ...headers, 'content-length': '0' });
    ctx.res.end();
    return;
  }

  if (message.hostile) return sendHostile(ctx, message.hostile, headers);

  const file = store.chunkPath(id, n);
  const size = store.chunkSize(id, n) ?? (await stat(file)).size;
  const storedGzip = store.chunkEncoding(id, n) === 'gzip';
  const passGzip = storedGzip && ctx.acceptsGzip;
  if (passGzip) headers['content-encoding'] = 'gzip';
  if (!storedGzip || passGzip) headers['content-length'] = String(size);
  ctx.res.writeHead(status, headers);
  if (ctx.req.method === 'HEAD') {
    ctx.res.end();
    return;
  }

  const resetMidBody = ctx.fault.kind === 'reset';
  if (!resetMidBody && size <= SMALL_CHUNK && (!storedGzip || passGzip)) {
    // Read at once: a read stream hands open, read, read and close each to libuv's pool.
    let body: Buffer;
    try {
      body = readFileSync(file);
    } catch {
      ctx.res.destroy();
      return;
    }
    ctx.res.end(body);
    return;
  }
  const fileStream = createReadStream(file, resetMidBody ? { start: 0, end: Math.max(0, Math.floor(size / 2) - 1) } : {});
  const source: Readable = storedGzip && !passGzip ? fileStream.pipe(createGunzip()) : fileStream;
  if (resetMidBody) {
    // Fault: part of the body, then the connection drops (the client sees an aborted body).
    source.on('data', (chunk: Buffer) => ctx.res.write(chunk));
    const drop = (): void => {
      ctx.res.socket?.destroy();
    };
    source.on('end', drop);
    source.on('error', drop);
    return;
  }
  try {
    await pipeline(source, ctx.res);
  } catch {
    ctx.res.destroy();
  }
}

/**
 * Test-only: a hostile server's answer, written straight to the socket so that header lines
 * Node would refuse to send (control characters) reach the client as a bad server sends them.
 */
function sendHostile(ctx: RequestContext, answer: HostileAnswer, headers: Record<string, string>): void {
  const body = Buffer.from(answer.bodyBase64, 'base64');
  const fields = { ...headers, 'content-length': String(body.length), connection: 'close', ...(answer.contentEncoding ? { 'content-encoding': answer.contentEncoding } : {}) };
  const lines = [...Object.entries(fields).map(([k, v]) => `${k}: ${v}`), ...(answer.rawHeaders ?? [])];
  const socket = ctx.res.socket;
  ctx.res.detachSocket?.(socket!);
  socket?.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\n${lines.join('\r\n')}\r\n\r\n`, 'latin1'), ctx.req.method === 'HEAD' ? Buffer.alloc(0) : body]));
}

function goneReason(m: SimMessage): string | undefined {
  switch (m.status) {
    case 'uploading':
      return 'message is still being uploaded (not all chunks have arrived)';
    case 'acknowledged':
      return 'message has been acknowledged and cannot be downloaded again';
    case 'undeliverable':
      return 'message expired: it was not collected in time';
    case 'error':
      return 'message failed';
    default:
      return undefined;
  }
}

/** The mex-* response headers (docs/mesh-protocol.md, mex headers) (lower-case names, empty ones left out). */
export function messageHeaders(m: SimMessage, n: number): Record<string, string> {
  const isReport = m.type === 'REPORT';
  const total = isReport ? 0 : m.chunks;
  const h: Record<string, string | undefined> = {
    'content-type': isReport || m.chunks > 1 ? 'application/octet-stream' : (m.httpContentType ?? 'application/octet-stream'),
    'mex-from': isReport ? undefined : m.sender,
    'mex-to': isReport ? m.reportTo : m.recipient,
    'mex-workflowid': m.workflowId,
    'mex-messageid': m.id,
    'mex-messagetype': m.type,
    'mex-chunk-range': `${n}:${total}`,
    'mex-total-chunks': String(total),
    'mex-localid': m.localId,
    'mex-subject': m.subject,
    'mex-filename': isReport ? m.fileName : (m.fileName ?? `${m.id}.dat`),
    'mex-partnerid': m.partnerId,
    'mex-content-compressed': m.compressed,
    'mex-content-encrypted': m.encrypted,
    'mex-content-checksum': m.checksum,
    'mex-content-type': m.contentType,
    'mex-addresstype': 'ALL',
    'mex-version': '1.0',
    'mex-statuscode': m.statusCode,
    'mex-statusevent': m.statusEvent,
    'mex-statusdescription': m.statusDescription,
    'mex-statussuccess': isReport ? 'ERROR' : 'SUCCESS',
    'mex-statustimestamp': m.statusTimestamp ? meshTimestamp(new Date(m.statusTimestamp)) : undefined,
    'mex-linkedmsgid': isReport ? m.linkedMessageId : undefined,
    etag: `"${m.id}-${n}"`,
    'last-modified': new Date(m.acceptedAt ?? m.createdAt).toUTCString(),
  };
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && v !== '') out[k] = v;
  return out;
}
