/**
 * MESH API v2 facts shared by the client (src/mesh) and the simulator (src/sim):
 * header names, media types, limits and error codes, as docs/mesh-protocol.md explains them.
 * The simulator may import this file and nothing else from src/mesh.
 */

export const API_PREFIX = '/messageexchange';
export const ACCEPT_V2 = 'application/vnd.mesh.v2+json';

/** Header names as MESH documents them; compare case-insensitively (Node lower-cases them). */
export const H = {
  to: 'mex-to',
  from: 'mex-from',
  workflowId: 'mex-workflowid',
  chunkRange: 'mex-chunk-range',
  totalChunks: 'mex-total-chunks',
  subject: 'mex-subject',
  localId: 'mex-localid',
  fileName: 'mex-filename',
  partnerId: 'mex-partnerid',
  contentChecksum: 'mex-content-checksum',
  contentCompressed: 'mex-content-compressed',
  contentEncrypted: 'mex-content-encrypted',
  contentType: 'mex-content-type',
  messageId: 'mex-messageid',
  messageType: 'mex-messagetype',
  addressType: 'mex-addresstype',
  version: 'mex-version',
  statusCode: 'mex-statuscode',
  statusEvent: 'mex-statusevent',
  statusDescription: 'mex-statusdescription',
  statusSuccess: 'mex-statussuccess',
  statusTimestamp: 'mex-statustimestamp',
  linkedMsgId: 'mex-linkedmsgid',
  clientVersion: 'mex-clientversion',
  osName: 'mex-osname',
  osVersion: 'mex-osversion',
  osArchitecture: 'mex-osarchitecture',
  javaVersion: 'mex-javaversion',
} as const;

/** Maximum lengths of send headers; longer values get 400 / code 06. */
export const HEADER_MAX_LENGTH: Record<string, number> = {
  [H.to]: 100,
  [H.workflowId]: 300,
  [H.chunkRange]: 20,
  [H.subject]: 500,
  [H.localId]: 300,
  [H.fileName]: 300,
  [H.partnerId]: 500,
  [H.contentChecksum]: 100,
  [H.contentType]: 100,
};

/** Every request body must stay under this many bytes (MESH hard limit). */
export const MAX_REQUEST_BYTES = 100_000_000;
/** Largest chunked message we allow (the spec contradicts itself between 20 GB and 100 GB). */
export const MAX_MESSAGE_BYTES = 20_000_000_000;

/**
 * The shape of a MESH message id (letters, digits, `_` and `-`, at most 100 characters). An id
 * outside it is a protocol error: ids name files, so `.x`/`x` or `a/b`/`a_b` must never collide.
 */
export const MESSAGE_ID_PATTERN = /^[A-Za-z0-9_-]{1,100}$/;

export function isMessageId(id: unknown): id is string {
  return typeof id === 'string' && MESSAGE_ID_PATTERN.test(id);
}

/** Default for transfer.maxCompressionRatio: gzip'd bodies inflating past this are suspected bombs. */
export const DEFAULT_MAX_COMPRESSION_RATIO = 1000;

export const INBOX_PAGE_DEFAULT = 500;
export const INBOX_PAGE_MIN = 10;
export const INBOX_PAGE_MAX = 5000;

/** Days an unacknowledged message waits in an inbox before MESH reports it undelivered (code 14). */
export const INBOX_EXPIRY_DAYS = 5;
/** Tokens whose timestamp is further than this from server time are refused. */
export const TOKEN_MAX_SKEW_MS = 2 * 60 * 60 * 1000;

export type MessageType = 'DATA' | 'REPORT';
export type TrackingStatus = 'uploading' | 'accepted' | 'acknowledged' | 'undeliverable' | 'error';

/** MESH server error codes (docs/mesh-protocol.md, Errors). Not the Java client's .ctl status codes. */
export const MESH_ERROR: Record<string, string> = {
  '02': 'Data file is missing or inaccessible',
  '06': 'Malformed headers or control file',
  '07': 'Invalid From address',
  '08': 'Missing To address',
  '09': 'Invalid control file version',
  '11': 'Invalid message type',
  '12': 'Unregistered To address',
  '14': 'Undelivered message',
  '15': 'Bad CP-IS file',
  '16': 'Sender is not allowed to send messages of this type',
  '17': 'Workflow ID not registered for mailbox',
  '18': 'ONS workflow not enabled via MESH',
  '19': 'Invalid expiry period',
  '20': 'Message does not exist',
};

/** v2 error body: `{message_id?, internal_id?, detail: [{event, code, msg}]}`. */
export interface MeshErrorBodyV2 {
  message_id?: string;
  internal_id?: string;
  detail: Array<{ event?: string; code?: string; msg?: string }>;
}

/** v2 inbox page. `links.next` is relative and opaque. */
export interface InboxPageV2 {
  messages: string[];
  links?: { self?: string; next?: string };
  approx_inbox_count?: number;
}

/** v2 tracking response (snake_case). */
export interface TrackingV2 {
  message_id: string;
  local_id?: string | null;
  workflow_id?: string | null;
  filename?: string | null;
  expiry_time?: string | null;
  upload_timestamp?: string | null;
  recipient?: string | null;
  recipient_name?: string | null;
  recipient_ods_code?: string | null;
  recipient_org_code?: string | null;
  recipient_org_name?: string | null;
  status: TrackingStatus;
  status_success?: boolean | null;
  status_event?: string | null;
  status_timestamp?: string | null;
  status_description?: string | null;
  status_code?: string | null;
}

/** v2 endpoint lookup / workflow search response. */
export interface LookupV2 {
  results: Array<{ mailbox_id: string; mailbox_name?: string }>;
}

/** Parses `n:N`; N may be 0 for REPORTs (`1:0`). Returns undefined when malformed. */
export function parseChunkRange(value: string | undefined): { index: number; total: number } | undefined {
  if (!value) return undefined;
  const m = /^\s*(\d+)\s*:\s*(\d+)\s*$/.exec(value);
  if (!m) return undefined;
  return { index: Number(m[1]), total: Number(m[2]) };
}

/** The MESH operations, as metrics and log events name them (meshd_mesh_requests_total{endpoint}). */
export const MESH_ENDPOINTS = ['handshake', 'ping', 'inbox', 'metadata', 'download', 'ack', 'send', 'tracking', 'lookup', 'workflows'] as const;
export type MeshEndpoint = (typeof MESH_ENDPOINTS)[number];
