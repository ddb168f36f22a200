import { createWriteStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';

/**
 * Streams a request body to a file, never holding it in memory, and enforces the per-request
 * size limit while streaming. Over the limit the file is deleted and the rest of the body is
 * read and thrown away, so the client can still read our 413; a client that keeps sending
 * another `limit` bytes after that has its connection dropped.
 */
export type BodyResult =
  | { kind: 'ok'; bytes: number }
  | { kind: 'too-large'; bytes: number }
  | { kind: 'aborted' }
  | { kind: 'failed'; error: Error };

export interface ReceiveOptions {
  limit: number;
  /** Fault injection: drop the connection after the first piece of body arrives. */
  resetMidBody?: boolean;
}

export function receiveBody(req: IncomingMessage, file: string, options: ReceiveOptions): Promise<BodyResult> {
  return new Promise((resolve) => {
    const out = createWriteStream(file, { mode: 0o600 });
    let bytes = 0;
    let discarded = 0;
    let settled = false;
    const settle = (result: BodyResult): void => {
      if (settled) return;
      settled = true;
      if (result.kind !== 'ok') {
        out.destroy();
        void unlink(file).catch(() => undefined);
      }
      resolve(result);
    };

    req.on('data', (chunk: Buffer) => {
      if (settled) {
        discarded += chunk.length;
        if (discarded > options.limit) req.socket.destroy();
        return;
      }
      if (options.resetMidBody) {
        req.socket.destroy();
        settle({ kind: 'aborted' });
        return;
      }
      bytes += chunk.length;
      if (bytes > options.limit) {
        settle({ kind: 'too-large', bytes });
        return;
      }
      if (!out.write(chunk)) {
        req.pause();
        out.once('drain', () => req.resume());
      }
    });
    req.on('end', () => {
      if (settled) return;
      if (options.resetMidBody) {
        req.socket.destroy();
        settle({ kind: 'aborted' });
        return;
      }
      out.end(() => settle({ kind: 'ok', bytes }));
    });
    req.on('close', () => {
      if (!req.complete) settle({ kind: 'aborted' });
    });
    req.on('error', () => settle({ kind: 'aborted' }));
    out.on('error', (error) => {
      settle({ kind: 'failed', error });
      req.resume();
    });
  });
}
