import { H, parseChunkRange, type MessageType } from './protocol';

/** What MESH tells us about a message in its download / HEAD headers. */
export interface MessageMeta {
  messageId: string;
  messageType: MessageType;
  from?: string;
  to?: string;
  workflowId?: string;
  fileName?: string;
  localId?: string;
  subject?: string;
  partnerId?: string;
  contentType?: string;
  contentChecksum?: string;
  contentCompressed?: boolean;
  contentEncrypted?: boolean;
  /** 0 for REPORTs (`1:0`), 1 for unchunked messages. */
  totalChunks: number;
  /** REPORT fields. */
  linkedMessageId?: string;
  statusCode?: string;
  statusEvent?: string;
  statusDescription?: string;
  statusSuccess?: string;
  statusTimestamp?: string;
}

export type RawHeaders = Record<string, string | string[] | undefined>;

export function header(headers: RawHeaders, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  const s = Array.isArray(v) ? v[0] : v;
  return s === undefined || s === '' ? undefined : s;
}

function flag(v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  return /^(y|yes|true)$/i.test(v.trim());
}

export function metaFromHeaders(headers: RawHeaders, fallbackId: string): MessageMeta {
  const h = (n: string) => header(headers, n);
  const range = parseChunkRange(h(H.chunkRange));
  const totalHeader = h(H.totalChunks);
  const total = range ? range.total : totalHeader !== undefined && /^\d+$/.test(totalHeader) ? Number(totalHeader) : 1;
  const type = (h(H.messageType) ?? 'DATA').toUpperCase() === 'REPORT' ? 'REPORT' : 'DATA';
  return {
    messageId: h(H.messageId) ?? fallbackId,
    messageType: type,
    from: h(H.from),
    to: h(H.to),
    workflowId: h(H.workflowId),
    fileName: h(H.fileName),
    localId: h(H.localId),
    subject: h(H.subject),
    partnerId: h(H.partnerId),
    contentType: h(H.contentType) ?? h('content-type'),
    contentChecksum: h(H.contentChecksum),
    contentCompressed: flag(h(H.contentCompressed)),
    contentEncrypted: flag(h(H.contentEncrypted)),
    totalChunks: total,
    linkedMessageId: h(H.linkedMsgId),
    statusCode: h(H.statusCode),
    statusEvent: h(H.statusEvent),
    statusDescription: h(H.statusDescription),
    statusSuccess: h(H.statusSuccess),
    statusTimestamp: h(H.statusTimestamp),
  };
}
