import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { MeshErrorBodyV2 } from '../mesh/protocol';

/** Response helpers: v2 JSON and error bodies, the one place their shapes are written. */

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/vnd.mesh.v2+json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

export function sendEmpty(res: ServerResponse, status: number, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-length': '0', ...headers });
  res.end();
}

export interface MeshErrorDetail {
  event: string;
  code: string;
  msg: string;
  messageId?: string;
}

/** v2 error body `{message_id?, internal_id, detail:[{event, code, msg}]}`. */
export function sendError(res: ServerResponse, status: number, e: MeshErrorDetail, headers: Record<string, string> = {}): void {
  const body: MeshErrorBodyV2 = {
    ...(e.messageId ? { message_id: e.messageId } : {}),
    internal_id: randomUUID(),
    detail: [{ event: e.event, code: e.code, msg: e.msg }],
  };
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, status, body, headers);
}

/** Reads a small JSON request body (admin calls). */
export async function readJson(req: IncomingMessage, limit = 1_000_000): Promise<unknown> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new Error('JSON body too large');
    parts.push(chunk as Buffer);
  }
  const text = Buffer.concat(parts).toString('utf8').trim();
  return text ? JSON.parse(text) : {};
}

export type ApiVersion = { ok: true; version: 1 | 2 } | { ok: false };

/**
 * Reads the MESH API version from Accept. No Accept, `application/json`, or v1 → 1;
 * `application/vnd.mesh.v2+json` → 2; a malformed `application/vnd.mesh.*+json` → not ok (400).
 */
export function apiVersion(accept: string | undefined): ApiVersion {
  if (!accept || !accept.trim()) return { ok: true, version: 1 };
  let best: 1 | 2 = 1;
  for (const raw of accept.split(',')) {
    const type = raw.split(';')[0].trim().toLowerCase();
    const m = /^application\/vnd\.mesh\.(.*)\+json$/.exec(type);
    if (m) {
      const v = /^v(\d+)$/.exec(m[1]);
      if (!v) return { ok: false };
      if (v[1] === '2') best = 2;
      else if (v[1] !== '1') return { ok: false };
    } else if (type.startsWith('application/vnd.mesh')) {
      return { ok: false };
    }
  }
  return { ok: true, version: best };
}

/** Whether Accept-Encoding allows gzip (`gzip` or `*` with q > 0; `gzip;q=0` refuses it). */
export function acceptsGzip(acceptEncoding: string | undefined): boolean {
  if (!acceptEncoding) return false;
  let star: boolean | undefined;
  for (const item of acceptEncoding.split(',')) {
    const [name, ...params] = item.split(';').map((p) => p.trim().toLowerCase());
    const q = params.find((p) => p.startsWith('q='));
    const allowed = q === undefined || Number(q.slice(2)) > 0;
    if (name === 'gzip' || name === 'x-gzip') return allowed;
    if (name === '*') star = allowed;
  }
  return star === true;
}
