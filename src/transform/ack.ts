/**
 * Application acknowledgements (docs/formats/acknowledgements.md): meshd's answer to a message it
 * received, in the message's own format (FHIR R4 MessageHeader.response, HL7 v2 ACK with MSA),
 * and the reading of such an answer back. Pure: ids derive from the original, never from the clock.
 */
import { createHash } from 'node:crypto';
import { batchHeader, businessIdHl7, hdName, parseFhir, payloadFacts, sniff } from './business';
import { splitMessages } from './fhir-r4/read';
import { nameUuid } from './fhir-r4/write';
import { SYSTEM } from './fhir-r4/uk-core';
import { formatDtm } from './hl7v2/datetime';
import { messageParts } from './hl7v2/input';
import { Hl7Message, type Segment } from './hl7v2/message';
import { comps, e, fill, segment } from './hl7v2/write-patient';
import { instantFromDate } from './time';

export type AckCode = 'ok' | 'transient-error' | 'fatal-error';

/** Why a message was refused: a meshd error code and a text that never holds patient values. */
export interface AckReason {
  code: string;
  text: string;
}

export interface BuiltAck {
  payload: Buffer;
  format: 'fhir-r4' | 'hl7v2';
  /** The acknowledgement's own business id (as payloadFacts gives it). */
  businessId: string;
  /** The business id of the message acknowledged (as payloadFacts gives it for the original). */
  refersTo: string;
}

export interface AckReading {
  /** The business id of the message acknowledged, as payloadFacts gives it for that message. */
  refersTo: string;
  code: AckCode;
  /** The reason text(s) given, when any. */
  reason?: string;
  /** The reason's code (meshd error code, else the HL7 error code), when given. */
  reasonCode?: string;
  /** The acknowledgement's own business id. */
  ackId?: string;
}

/** meshd error codes in an OperationOutcome's details (docs/formats/acknowledgements.md). */
export const ERROR_CODE_SYSTEM = 'https://fhir.meshd.dev/CodeSystem/error-code';

const MSA_CODE: Record<AckCode, string> = { ok: 'AA', 'transient-error': 'AE', 'fatal-error': 'AR' };
/** Original mode (A…) and enhanced mode (C…, commit level) both read back. */
const ACK_CODE: Record<string, AckCode> = { AA: 'ok', CA: 'ok', AE: 'transient-error', CE: 'transient-error', AR: 'fatal-error', CR: 'fatal-error' };
const RESPONSE_CODES: readonly string[] = ['ok', 'transient-error', 'fatal-error'];
/** HL7 table 0357 code meshd names in ERR: 207 application internal error (the meshd code follows as an alternate). */
const HL7_ERROR = { code: '207', text: 'Application internal error', system: 'HL70357' };

/**
 * The acknowledgement of `original` in its own format, or undefined when there is nothing to
 * acknowledge in-format: no business id, not FHIR messages or HL7 v2 messages, or an HL7 v2 batch
 * without a batch control id. A payload of several messages is acknowledged as a whole, by the
 * batch's business id. The ack's id derives from that id and the code: rebuilt after a crash, it
 * is the same message.
 */
export function buildAck(original: Buffer, format: string | undefined, code: AckCode, reason: AckReason | undefined, now: Date): BuiltAck | undefined {
  try {
    const facts = payloadFacts(original, format);
    const refersTo = facts?.businessId;
    if (!facts || refersTo === undefined) return undefined;
    if (facts.format === 'hl7v2') return hl7Ack(original, refersTo, facts.messages.length > 1, code, reason, now);
    if (facts.format === 'fhir-r4') return fhirAck(original, refersTo, code, reason, now);
    return undefined;
  } catch {
    return undefined;
  }
}

/** Reads an acknowledgement (FHIR or HL7 v2, sniffed); undefined when the input is not one. */
export function readAck(input: Buffer): AckReading | undefined {
  try {
    const sniffed = sniff(input);
    if (sniffed?.format === 'hl7v2') return readHl7Ack(input);
    if (sniffed?.format === 'fhir-r4' && sniffed.doc) return readFhirAck(sniffed.doc);
    return undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------- HL7 v2

function firstHl7Message(input: Buffer): Hl7Message | undefined {
  for (const part of messageParts(input)) {
    for (const raw of part.messages) {
      const msg = Hl7Message.parse(raw.text);
      return msg instanceof Hl7Message ? msg : undefined;
    }
  }
  return undefined;
}

/** HD components 1–3 of a field, escaped for meshd's own delimiters. */
function hd(msg: Hl7Message, seg: Segment, field: number): string {
  return comps(...[1, 2, 3].map((comp) => e(msg.get(seg, { field, comp }))));
}

/** HL7 UK: printable ASCII only (a reason text from elsewhere could hold more). */
function ascii(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?');
}

/**
 * The sender and control id an ack names, as written in the ack (MSH-5, MSH-6, MSA-2): the
 * message's MSH-3, MSH-4 and MSH-10; for a batch, the parts of its business id exactly (BHS-11
 * else FHS-11, and that header's fields 3 and 4), so that readAck gives back that id. A batch
 * without a control id has only the synthetic `batch:` id, which no MSA-2 can name: no ack.
 */
function acknowledged(original: Buffer, msg: Hl7Message, refersTo: string, batch: boolean): { app: string; facility: string; control: string } | undefined {
  const msh = msg.segments[0];
  if (!batch) return { app: hd(msg, msh, 3), facility: hd(msg, msh, 4), control: e(msg.get(msh, { field: 10 })) };
  const header = batchHeader(original);
  if (!header || businessIdHl7(header.control, header.app, header.facility) !== refersTo) return undefined;
  return { app: e(header.app), facility: e(header.facility), control: e(header.control) };
}

function hl7Ack(original: Buffer, refersTo: string, batch: boolean, code: AckCode, reason: AckReason | undefined, now: Date): BuiltAck | undefined {
  const msg = firstHl7Message(original);
  const acked = msg && acknowledged(original, msg, refersTo, batch);
  if (!msg || !acked) return undefined;
  const msh = msg.segments[0];
  const controlId = 'ACK' + createHash('sha256').update(`${refersTo}\n${code}`).digest('hex').slice(0, 17);
  const version = msg.get(msh, { field: 12 }) || '2.4';
  const f: string[] = [];
  // Sending and receiving sides swapped: the ack goes back to whoever sent the original.
  f[3] = hd(msg, msh, 5);
  f[4] = hd(msg, msh, 6);
  f[5] = acked.app;
  f[6] = acked.facility;
  f[7] = formatDtm(instantFromDate(now), true);
  // A batch may mix triggers: its ack names none.
  f[9] = comps('ACK', batch ? '' : e(msg.get(msh, { field: 9, comp: 2 })), 'ACK');
  f[10] = controlId;
  f[11] = e(msg.get(msh, { field: 11 })) || 'P';
  f[12] = e(version);
  f[2] = '^~\\&';
  // MSH-1 is the field separator itself: the join supplies it.
  const lines = [segment('MSH', fill(f, 12).slice(1))];
  lines.push(segment('MSA', [MSA_CODE[code], acked.control]));
  if (reason) lines.push(errSegment(version, reason));
  const payload = Buffer.from(lines.join('\r') + '\r', 'latin1');
  const businessId = businessIdHl7(controlId, hdName(msg, msh, 5), hdName(msg, msh, 6));
  return { payload, format: 'hl7v2', businessId, refersTo };
}

/**
 * ERR naming HL7 code 207 with meshd's code and text as the alternate coding: v2.5 and later in
 * ERR-3 (CWE) with severity ERR-4 `E`; v2.3/2.4 in ERR-1.4 (ELD error code, subcomponents).
 */
function errSegment(version: string, reason: AckReason): string {
  const parts = [HL7_ERROR.code, HL7_ERROR.text, HL7_ERROR.system, e(ascii(reason.code)), e(ascii(reason.text)), 'MESHD'];
  if (/^2\.[0-4](\.|$)/.test(version)) return segment('ERR', [comps('', '', '', parts.join('&'))]);
  return segment('ERR', ['', '', parts.join('^'), 'E']);
}

function readHl7Ack(input: Buffer): AckReading | undefined {
  const msg = firstHl7Message(input);
  if (!msg) return undefined;
  const msh = msg.segments[0];
  const msa = msg.first('MSA');
  if (msg.get(msh, { field: 9, comp: 1 }).toUpperCase() !== 'ACK' || !msa) return undefined;
  const code = ACK_CODE[msg.get(msa, { field: 1 }).toUpperCase()];
  const acked = msg.get(msa, { field: 2 });
  if (!code || !acked) return undefined;
  // The ack's receiving side is the original's sending side.
  const refersTo = businessIdHl7(acked, hdName(msg, msh, 5), hdName(msg, msh, 6));
  const ackControl = msg.get(msh, { field: 10 });
  const out: AckReading = { refersTo, code, ...(ackControl && { ackId: businessIdHl7(ackControl, hdName(msg, msh, 3), hdName(msg, msh, 4)) }) };
  const err = msg.first('ERR');
  // ERR-3 (CWE, v2.5+), else ERR-1.4 (v2.4 ELD, subcomponents): alternate code/text first, then HL7's.
  const cwe = (get: (n: number) => string) => ({ code: get(4) || get(1), text: get(5) || get(2) });
  const fromErr3 = err ? cwe((n) => msg.get(err, { field: 3, comp: n })) : undefined;
  const fromErr1 = err ? cwe((n) => msg.get(err, { field: 1, comp: 4, sub: n })) : undefined;
  const detail = [fromErr3, fromErr1].find((d) => d && (d.code || d.text));
  const text = detail?.text || msg.get(msa, { field: 3 });
  if (text) out.reason = text;
  if (detail?.code) out.reasonCode = detail.code;
  return out;
}

// ---------------------------------------------------------------- FHIR R4

type Json = Record<string, any>;

/** The MessageHeader of a message Bundle (its first entry), else undefined. */
function messageHeader(root: Json): Json | undefined {
  const first = Array.isArray(root.entry) ? root.entry[0]?.resource : undefined;
  return root.resourceType === 'Bundle' && root.type === 'message' && first?.resourceType === 'MessageHeader' ? first : undefined;
}

/**
 * One response message Bundle for a message Bundle, or for a Bundle of message Bundles as a
 * whole (refersTo is then the batch id): sides from the first message, its event when all
 * messages share it.
 */
function fhirAck(original: Buffer, refersTo: string, code: AckCode, reason: AckReason | undefined, now: Date): BuiltAck | undefined {
  const doc = parseFhir(original);
  // A response answers messages: every message must be a message Bundle with its MessageHeader.
  const headers = doc ? splitMessages(doc).map((unit) => messageHeader(unit.root)) : [];
  if (headers.length === 0 || headers.some((h) => !h)) return undefined;
  const header = headers[0]!;
  const events = headers.map((h) => JSON.stringify(copyCoding(h!.eventCoding) ?? null));
  const event = events.every((ev) => ev === events[0]) ? copyCoding(header.eventCoding) : undefined;
  const headerId = nameUuid('ack', refersTo, code, 'header');
  const from = Array.isArray(header.destination) ? header.destination[0] : undefined;
  const ack: Json = {
    resourceType: 'MessageHeader',
    id: headerId,
    eventCoding: event ?? { system: SYSTEM.meshdEvent, code: 'acknowledgement' },
    // Source and destination swapped: the ack goes back to whoever sent the original.
    destination: [endpoint(header.source)],
    source: endpoint(from),
    response: { identifier: refersTo, code },
  };
  const entries: Json[] = [{ fullUrl: `urn:uuid:${headerId}`, resource: ack }];
  if (reason) {
    const ooId = nameUuid('ack', refersTo, code, 'outcome');
    const issue = {
      severity: code === 'ok' ? 'information' : 'error',
      code: code === 'ok' ? 'informational' : code === 'transient-error' ? 'transient' : 'processing',
      details: { coding: [{ system: ERROR_CODE_SYSTEM, code: reason.code }], text: reason.text },
    };
    entries.push({ fullUrl: `urn:uuid:${ooId}`, resource: { resourceType: 'OperationOutcome', id: ooId, issue: [issue] } });
    ack.response.details = { reference: `urn:uuid:${ooId}` };
  }
  const bundle = { resourceType: 'Bundle', id: nameUuid('ack', refersTo, code, 'bundle'), type: 'message', timestamp: now.toISOString(), entry: entries };
  return { payload: Buffer.from(JSON.stringify(bundle), 'utf8'), format: 'fhir-r4', businessId: headerId, refersTo };
}

function copyCoding(c: unknown): Json | undefined {
  const coding = c as Json | undefined;
  if (!coding || typeof coding.code !== 'string') return undefined;
  return { ...(typeof coding.system === 'string' && { system: coding.system }), code: coding.code, ...(typeof coding.display === 'string' && { display: coding.display }) };
}

/** Name and endpoint of a MessageHeader source or destination (endpoint is required in both). */
function endpoint(side: unknown): Json {
  const s = side as Json | undefined;
  return { ...(typeof s?.name === 'string' && { name: s.name }), endpoint: typeof s?.endpoint === 'string' ? s.endpoint : 'urn:meshd:endpoint:unknown' };
}

function readFhirAck(doc: Json): AckReading | undefined {
  if (doc.resourceType !== 'Bundle' || doc.type !== 'message' || !Array.isArray(doc.entry)) return undefined;
  const header = doc.entry[0]?.resource;
  const response = header?.resourceType === 'MessageHeader' ? header.response : undefined;
  if (typeof response?.identifier !== 'string' || !RESPONSE_CODES.includes(response.code)) return undefined;
  const out: AckReading = { refersTo: response.identifier, code: response.code as AckCode };
  const ackId = typeof header.id === 'string' ? header.id : typeof doc.id === 'string' ? doc.id : undefined;
  if (ackId) out.ackId = ackId;
  const ref = response.details?.reference;
  const outcome = doc.entry.find((en: Json) => en?.resource?.resourceType === 'OperationOutcome' && typeof ref === 'string' && (en.fullUrl === ref || `OperationOutcome/${en.resource.id}` === ref))?.resource;
  const issues: Json[] = Array.isArray(outcome?.issue) ? outcome.issue.filter((i: unknown) => i && typeof i === 'object') : [];
  const texts = issues.map((i) => i.details?.text ?? i.diagnostics).filter((t): t is string => typeof t === 'string');
  if (texts.length) out.reason = texts.join('; ');
  const coded = issues.flatMap((i) => (Array.isArray(i.details?.coding) ? i.details.coding : [])).find((c: Json) => typeof c?.code === 'string');
  if (coded) out.reasonCode = coded.code;
  return out;
}
