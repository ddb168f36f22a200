import type { IncomingHttpHeaders } from 'node:http';
import { H, HEADER_MAX_LENGTH } from '../../mesh/protocol';

/** Send-header validation (docs/mesh-protocol.md, mex headers): length limits, control characters, URL-like values. */

export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(', ') : v;
}

const URL_LIKE = /^\s*https?:\/\//i;
const CHECKSUM_CHARS = /^[A-Za-z0-9\s:\-/]*$/;
const NO_URLS = new Set<string>([H.to, H.workflowId, H.contentChecksum]);

/** Returns what is wrong with the request's mex-* headers (→ 400 code 06), or undefined. */
export function mexHeaderProblem(headers: IncomingHttpHeaders): string | undefined {
  for (const name of Object.keys(headers)) {
    if (!name.startsWith('mex-')) continue;
    const value = header(headers, name) ?? '';
    if (hasControlCharacter(value)) return `${name} contains control characters`;
    const max = HEADER_MAX_LENGTH[name];
    if (max !== undefined && value.length > max) return `${name} is longer than ${max} characters`;
    if (NO_URLS.has(name) && URL_LIKE.test(value)) return `${name} must not be a URL`;
    if (name === H.contentChecksum && !CHECKSUM_CHARS.test(value)) return `${name} may contain only letters, digits, spaces and : - /`;
  }
  return undefined;
}

/** Content-Encoding of an upload: undefined (none), 'gzip', or the unsupported value given. */
export function contentEncoding(headers: IncomingHttpHeaders): { ok: true; value: 'gzip' | 'identity' } | { ok: false; value: string } {
  const raw = (header(headers, 'content-encoding') ?? '').trim().toLowerCase();
  if (raw === '' || raw === 'identity') return { ok: true, value: 'identity' };
  if (raw === 'gzip') return { ok: true, value: 'gzip' };
  return { ok: false, value: raw };
}

function hasControlCharacter(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}
