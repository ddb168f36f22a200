import { MeshdError } from '../errors';

/**
 * Typed MESH failures. Callers branch on the class or `code`, never the message. Messages say
 * what failed and carry no secrets; MESH's own error code (e.g. `12`) is in `meshCode`.
 */

export interface MeshErrorDetail {
  status?: number;
  meshCode?: string;
  /** Delay the server asked for (Retry-After), in ms. */
  retryAfterMs?: number;
  cause?: unknown;
}

export class MeshError extends MeshdError {
  readonly status?: number;
  readonly meshCode?: string;
  readonly retryAfterMs?: number;
  constructor(code: string, message: string, hint: string | undefined, kind: MeshdError['kind'], detail: MeshErrorDetail = {}) {
    super(code, message, hint, kind, { cause: detail.cause });
    this.status = detail.status;
    this.meshCode = detail.meshCode;
    this.retryAfterMs = detail.retryAfterMs;
  }
}

/** 403: token, password, shared key, clock or mailbox refused. */
export class MeshAuthError extends MeshError {
  constructor(message: string, detail: MeshErrorDetail = {}) {
    super('MESH_AUTH', message, 'check the mailbox id, password, shared key and that this machine\'s clock is right (UTC within 2 hours)', 'auth', detail);
  }
}

/** 404/410: no such message or chunk, expired, or still uploading. */
export class MeshNotFoundError extends MeshError {
  constructor(message: string, detail: MeshErrorDetail = {}) {
    super('MESH_NOT_FOUND', message, 'check the message id; messages leave the inbox once acknowledged or after 5 days', 'rejected', detail);
  }
}

/** MESH refused the request (400/406/417/422/423...), with its error code where it gave one. */
export class MeshRejectedError extends MeshError {
  constructor(message: string, detail: MeshErrorDetail = {}) {
    super('MESH_REJECTED', message, 'correct the request (recipient, workflow, headers) before trying again', 'rejected', detail);
  }
}

/** 425/429/5xx/network failures that persisted after every retry. */
export class MeshTransientError extends MeshError {
  constructor(message: string, detail: MeshErrorDetail = {}) {
    super('MESH_TRANSIENT', message, 'MESH or the network is unavailable; try again later', 'transient', detail);
  }
}

/** The first POST /outbox failed in a way where MESH may have stored the message. */
export class MeshAmbiguousError extends MeshError {
  constructor(message: string, detail: MeshErrorDetail = {}) {
    super(
      'MESH_SEND_AMBIGUOUS',
      message,
      'MESH may have received the message: check `meshd track` or ask the recipient before sending again, or a duplicate may arrive',
      'ambiguous',
      detail,
    );
  }
}

export type TlsFailure =
  | 'server-untrusted'
  | 'server-hostname'
  | 'server-expired'
  | 'client-refused'
  | 'client-expired'
  | 'key-mismatch'
  | 'other';

const TLS_TEXT: Record<TlsFailure, [string, string]> = {
  'server-untrusted': ['the MESH server certificate is not trusted by tls.ca', 'set tls.ca to the CA bundle for this environment (NHS roots are private)'],
  'server-hostname': ['the MESH server certificate does not match the host name in url', 'use the host name the certificate was issued for (not an IP address or an alias)'],
  'server-expired': ['the MESH server certificate has expired or is not yet valid', 'check this machine\'s clock, then the server side'],
  'client-refused': ['the server refused our client certificate', 'check tls.cert/tls.key are the certificate issued for this environment and mailbox (CN <mailbox>.<ods>.api.mesh-client.nhs.uk)'],
  'client-expired': ['our client certificate has expired or is not yet valid', 'renew the client certificate (meshd certs) and update tls.cert/tls.key'],
  'key-mismatch': ['tls.key does not match the certificate in tls.cert', 'point tls.key at the private key the certificate was issued for'],
  other: ['TLS connection to MESH failed', 'check tls.ca, tls.cert, tls.key and the url'],
};

/** TLS/mTLS failure; the message says which side failed. */
export class MeshTlsError extends MeshError {
  constructor(
    readonly failure: TlsFailure,
    detail: MeshErrorDetail & { nodeCode?: string } = {},
  ) {
    const [what, hint] = TLS_TEXT[failure];
    super(`MESH_TLS_${failure.toUpperCase().replace(/-/g, '_')}`, `${what}${detail.nodeCode ? ` (${detail.nodeCode})` : ''}`, hint, 'auth', detail);
  }
}

/** A received message grew past transfer.maxMessageBytes when decompressed. */
export class MessageTooLargeError extends MeshError {
  constructor(limit: number) {
    super('MESH_MESSAGE_TOO_LARGE', `message is larger than the ${limit}-byte limit when decompressed`, 'raise transfer.maxMessageBytes if this size is expected', 'input');
  }
}

/**
 * MESH answered something no retry will mend: a body that lies about its Content-Encoding,
 * unparsable or oversized headers, a malformed message id. Permanent for that message.
 */
export class MeshProtocolError extends MeshError {
  constructor(message: string, detail: MeshErrorDetail = {}) {
    super('MESH_PROTOCOL', message, 'the message is kept unacknowledged in MESH so its sender is told; ask the sender or MESH support', 'rejected', detail);
  }
}

/** MESH named a message by an id not of MESH's shape (ids name files, so it is never used). */
export class BadMessageIdError extends MeshError {
  constructor(message: string) {
    super('MESH_BAD_MESSAGE_ID', message, "ids are letters, digits, _ and -, at most 100 characters; the message is left unacknowledged in MESH, so its sender is told", 'rejected');
  }
}

/** A gzip'd body inflated past transfer.maxCompressionRatio times its compressed size. */
export class SuspectedBombError extends MeshError {
  constructor(ratio: number) {
    super('MESH_SUSPECTED_BOMB', `the message inflates to more than ${ratio} times its compressed size; decompression stopped`, 'raise transfer.maxCompressionRatio only if such payloads are expected', 'input');
  }
}

/** Writing a received message locally failed (disk full, permissions): not a network error. */
export class LocalWriteError extends MeshdError {
  constructor(message: string, cause?: unknown) {
    super('IN_WRITE_FAILED', message, 'check free space and permissions of the mailbox folder', 'failure', { cause });
  }
}

/** Node/OpenSSL error codes → which TLS side failed. */
export function tlsFailureOf(err: unknown): { failure: TlsFailure; nodeCode: string } | undefined {
  const code = String((err as { code?: unknown })?.code ?? '');
  const msg = String((err as { message?: unknown })?.message ?? '');
  const probe = `${code} ${msg}`;
  if (/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_GET_ISSUER_CERT|CERT_SIGNATURE_FAILURE|CERT_UNTRUSTED|CERT_REJECTED/.test(code)) {
    return { failure: 'server-untrusted', nodeCode: code };
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return { failure: 'server-hostname', nodeCode: code };
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return { failure: 'server-expired', nodeCode: code };
  if (/ALERT_CERTIFICATE_EXPIRED/i.test(probe)) return { failure: 'client-expired', nodeCode: code };
  if (/ALERT_(CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA|HANDSHAKE_FAILURE|CERTIFICATE_UNKNOWN|ACCESS_DENIED|UNSUPPORTED_CERTIFICATE|CERTIFICATE_REVOKED)/i.test(probe)) {
    return { failure: 'client-refused', nodeCode: code };
  }
  if (/KEY_VALUES_MISMATCH/i.test(probe)) return { failure: 'key-mismatch', nodeCode: code };
  if (/^ERR_SSL_|^ERR_TLS_|^ERR_OSSL_/.test(code)) return { failure: 'other', nodeCode: code };
  return undefined;
}

/** Parsed MESH error body (v1 or v2); undefined for non-JSON bodies such as 5xx HTML/XML. */
export interface MeshErrorBody {
  code?: string;
  event?: string;
  description?: string;
}

export function parseErrorBody(text: string): MeshErrorBody | undefined {
  const trimmed = text.trim();
  if (!trimmed.startsWith('{')) return undefined;
  let body: unknown;
  try {
    body = JSON.parse(trimmed);
  } catch {
    return undefined;
  }
  if (typeof body !== 'object' || body === null) return undefined;
  const b = body as Record<string, unknown>;
  // v1: {messageID, errorEvent, errorCode, errorDescription}
  if ('errorCode' in b || 'errorDescription' in b) {
    return { code: asText(b.errorCode), event: asText(b.errorEvent), description: asText(b.errorDescription) };
  }
  // v2: {message_id, internal_id, detail:[{event, code, msg}]}; FastAPI 400s use {detail:[{loc, msg, type}]}
  if (Array.isArray(b.detail) && b.detail.length > 0 && typeof b.detail[0] === 'object' && b.detail[0] !== null) {
    const d = b.detail[0] as Record<string, unknown>;
    return { code: asText(d.code), event: asText(d.event), description: asText(d.msg) ?? asText(d.message) };
  }
  if (typeof b.detail === 'string') return { description: b.detail };
  if (typeof b.message === 'string') return { description: b.message };
  return undefined;
}

function asText(v: unknown): string | undefined {
  if (typeof v === 'string') return v.slice(0, 300);
  if (typeof v === 'number') return String(v).padStart(2, '0');
  return undefined;
}

/** `Retry-After` as seconds or an HTTP date → ms from `nowMs`; undefined when absent or bad. */
export function parseRetryAfter(value: string | string[] | undefined, nowMs: number): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\s*\d+\s*$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}

/** Builds the typed error for a non-success HTTP status. */
export function errorForStatus(status: number, bodyText: string, what: string, retryAfterMs?: number): MeshError {
  const body = parseErrorBody(bodyText);
  const meshCode = body?.code;
  const desc = body?.description ? `: ${body.description}` : '';
  const codeText = meshCode ? ` (MESH code ${meshCode})` : '';
  const detail = { status, meshCode, retryAfterMs };
  if (status === 403) {
    if (/certificate/i.test(body?.description ?? bodyText.slice(0, 300))) return new MeshTlsError('client-refused', { status });
    return new MeshAuthError(`${what} refused with 403${desc}`, detail);
  }
  if (status === 404 || status === 410) return new MeshNotFoundError(`${what}: ${status === 410 ? 'gone (expired, failed or still uploading)' : 'not found'}${desc}`, detail);
  if (status === 425 || status === 429 || status >= 500) return new MeshTransientError(`${what} failed with HTTP ${status}${codeText}${desc}`, detail);
  return new MeshRejectedError(`${what} rejected with HTTP ${status}${codeText}${desc}`, detail);
}
