/**
 * What a payload means for duplicate detection and ordering (docs/formats/acknowledgements.md,
 * Business identity): its business id, its event time and the appointment and patient keys
 * its messages touch. Pure and total: hostile input gives undefined, never an exception.
 */
import { createHash } from 'node:crypto';
import type { ReadResult } from './format';
import { splitMessages, type MessageUnit } from './fhir-r4/read';
import { fhirXmlToJson } from './fhir-r4/xml';
import { parseDtm } from './hl7v2/datetime';
import { messageParts } from './hl7v2/input';
import { Hl7Message } from './hl7v2/message';
import { appointmentKey, localSystem, triValue, type CanonicalRecord, type Instant, type Patient } from './model';
import { getFormat } from './registry';
import { contentStart, sniffHead } from './sniff';
import { parseIsoDateTime } from './time';

export interface MessageFacts {
  /** Business id: FHIR MessageHeader.id (else Bundle.id); HL7 v2 businessIdHl7(MSH-10, MSH-3, MSH-4); CSV the row's message_id. */
  id?: string;
  /** Event time as UTC ISO 8601 with milliseconds and Z ("2026-06-21T08:30:00.000Z"); undefined when the message has none. */
  eventTime?: string;
  /**
   * Ordering keys: an appointment event's `appointment:<appointmentKey(ev)>`; a registration's (or an
   * appointment's without an id) `patient:nhs:<NHS number>` when the number is verified (status 01),
   * else `patient:local:<system>|<value>` of the first local identifier. The caller prefixes the sender mailbox.
   */
  keys: string[];
}

export interface PayloadFacts {
  /** Registry name: 'fhir-r4' | 'hl7v2' | 'csv'. */
  format: string;
  /**
   * One message: its id. Several: the batch/file id if the format has one (HL7 BHS-11/FHS-11,
   * the outer FHIR Bundle.id), else `batch:<sha256 hex of the message ids joined by \n>`;
   * undefined when any message lacks an id.
   */
  businessId?: string;
  /** Latest event time among the messages, when any has one. */
  eventTime?: string;
  messages: MessageFacts[];
}

type Json = Record<string, any>;

/** An HL7 v2 business id: MSH-10 qualified by the sending application and facility ("PAS|RX1|MSG0001"). */
export function businessIdHl7(controlId: string, sendingApp?: string, sendingFacility?: string): string {
  // `|` separates the parts, so it (and the escape character itself) is escaped inside them.
  const part = (s: string | undefined) => (s ?? '').replace(/%/g, '%25').replace(/\|/g, '%7C');
  return `${part(sendingApp)}|${part(sendingFacility)}|${part(controlId)}`;
}

/**
 * Facts of a payload in `format`, or sniffed when format is undefined (HL7 v2 if it starts, after
 * an optional BOM/whitespace, with MSH|, FHS| or BHS|; FHIR R4 if it is a JSON object with a
 * resourceType; CSV only when named). Unreadable or unrecognised input gives undefined.
 */
export function payloadFacts(input: Buffer, format?: string): PayloadFacts | undefined {
  try {
    const sniffed = format === undefined ? sniff(input) : { format, doc: undefined };
    if (!sniffed) return undefined;
    if (sniffed.format === 'hl7v2') return hl7Facts(input);
    if (sniffed.format === 'fhir-r4') return fhirFacts(input, sniffed.doc ?? parseFhir(input));
    if (sniffed.format === 'csv') return csvFacts(input);
    return undefined;
  } catch {
    // Defensive: a reader bug or a pathological input must not stop the pipeline.
    return undefined;
  }
}

/** The format of a payload, from its first bytes (and, for JSON, the parsed document). */
export function sniff(input: Buffer): { format: 'hl7v2' | 'fhir-r4'; doc?: Json } | undefined {
  const format = sniffHead(input);
  if (format === 'hl7v2') return { format };
  if (format !== 'fhir-r4' || input[contentStart(input)] !== 0x7b) return undefined; // '{': JSON only here
  const doc = parseFhir(input);
  return doc ? { format: 'fhir-r4', doc } : undefined;
}

/** A JSON (or FHIR XML) resource, or undefined when the input is neither. */
export function parseFhir(input: Buffer): Json | undefined {
  const text = input.toString('utf8').replace(/^\uFEFF/, '');
  let doc: unknown;
  try {
    doc = text.trimStart().startsWith('<') ? fhirXmlToJson(text) : JSON.parse(text);
  } catch {
    return undefined;
  }
  return doc && typeof doc === 'object' && !Array.isArray(doc) && typeof (doc as Json).resourceType === 'string' ? (doc as Json) : undefined;
}

// ---------------------------------------------------------------- shared

/** Per message index, the keys its records touch (read by the format's own reader). */
function keysByMessage(input: Buffer, format: string): { keys: Map<number, Set<string>>; records: Map<number, CanonicalRecord>; count: number } {
  const keys = new Map<number, Set<string>>();
  const records = new Map<number, CanonicalRecord>();
  let count = 0;
  const parts: Iterable<ReadResult> = getFormat(format).readParts!(input);
  for (const part of parts) {
    count += part.messageCount;
    for (const { record, message } of part.records) {
      if (!records.has(message)) records.set(message, record);
      const set = keys.get(message) ?? new Set<string>();
      keys.set(message, set);
      for (const k of recordKeys(record)) set.add(k);
    }
  }
  return { keys, records, count };
}

/**
 * An appointment event is ordered against that appointment's events; a registration against the
 * patient's registrations. A later change to one appointment must not make a booking of another
 * appointment of the same patient stale; the patient key stands in only when the appointment has
 * no id of its own.
 */
function recordKeys(record: CanonicalRecord): string[] {
  const appointment = record.kind === 'appointment' ? appointmentKey(record) : undefined;
  if (appointment) return [`appointment:${appointment}`];
  const patient = patientKey(record.patient);
  return patient ? [patient] : [];
}

/** NHS number when verified (01), else the first local identifier (an MRN first). */
function patientKey(p: Patient | undefined): string | undefined {
  if (!p) return undefined;
  const nhs = triValue(p.nhsNumber);
  if (nhs && triValue(p.nhsNumberVerification) === '01') return `patient:nhs:${nhs}`;
  const usable = p.identifiers.filter((i) => i.value !== '' && i.system !== localSystem(undefined));
  const local = usable.find((i) => i.type === 'MR') ?? usable[0];
  return local ? `patient:local:${local.system}|${local.value}` : undefined;
}

function utcOf(i: Instant | undefined): string | undefined {
  return i?.utc;
}

function latest(times: Array<string | undefined>): string | undefined {
  let best: string | undefined;
  for (const t of times) if (t !== undefined && (best === undefined || t > best)) best = t;
  return best;
}

/** The payload's facts from its messages and, when it has several, its own batch id. */
function assemble(format: string, messages: MessageFacts[], batchId: string | undefined): PayloadFacts | undefined {
  if (messages.length === 0) return undefined;
  const eventTime = latest(messages.map((m) => m.eventTime));
  let businessId: string | undefined;
  if (messages.length === 1) businessId = messages[0].id;
  else if (batchId) businessId = batchId;
  else if (messages.every((m) => m.id !== undefined)) {
    businessId = 'batch:' + createHash('sha256').update(messages.map((m) => m.id).join('\n')).digest('hex');
  }
  return { format, ...(businessId !== undefined && { businessId }), ...(eventTime !== undefined && { eventTime }), messages };
}

function fact(id: string | undefined, eventTime: string | undefined, keys: Set<string> | undefined): MessageFacts {
  return { ...(id && { id }), ...(eventTime && { eventTime }), keys: [...(keys ?? [])] };
}

// ---------------------------------------------------------------- HL7 v2

/**
 * Straight from the segments, so a message the reader refuses still has its id:
 * MSH-10 (qualified by MSH-3/MSH-4), event time EVN-2 else MSH-7.
 */
function hl7Facts(input: Buffer): PayloadFacts | undefined {
  const read = keysByMessage(input, 'hl7v2');
  const messages: MessageFacts[] = [];
  let count = 0;
  for (const part of messageParts(input)) {
    count += part.messageCount;
    for (const raw of part.messages) {
      const msg = Hl7Message.parse(raw.text);
      if (!(msg instanceof Hl7Message)) {
        messages[raw.index] = { keys: [] };
        continue;
      }
      const msh = msg.segments[0];
      const control = msg.get(msh, { field: 10 });
      const id = control ? businessIdHl7(control, hdName(msg, msh, 3), hdName(msg, msh, 4)) : undefined;
      const evn = msg.first('EVN');
      const eventTime = dtmUtc(msg.get(evn, { field: 2 })) ?? dtmUtc(msg.get(msh, { field: 7 }));
      messages[raw.index] = fact(id, eventTime, read.keys.get(raw.index));
    }
  }
  // Messages that could not even be decoded (bad MSH-18) keep their place, without an id.
  for (let i = 0; i < count; i++) messages[i] ??= { keys: [] };
  return assemble('hl7v2', messages, batchHeaderId(input));
}

/** HD.1 namespace id, else HD.2 universal id: what identifies an application or facility. */
export function hdName(msg: Hl7Message, seg: Hl7Message['segments'][number], field: number): string {
  return msg.get(seg, { field, comp: 1 }) || msg.get(seg, { field, comp: 2 });
}

function dtmUtc(text: string): string | undefined {
  if (!text || text === '""') return undefined;
  const t = parseDtm(text);
  return t.ok ? t.instant.utc : undefined;
}

/** BHS-11 batch control id (else FHS-11 file control id), qualified by its sending app/facility. */
function batchHeaderId(input: Buffer): string | undefined {
  const header = batchHeader(input);
  return header && businessIdHl7(header.control, header.app, header.facility);
}

/**
 * The parts of an HL7 v2 batch's own id: BHS-11 (else FHS-11) and the sending application and
 * facility (field 3 and 4, first component) of the same header, as written; undefined without one.
 */
export function batchHeader(input: Buffer): { control: string; app: string; facility: string } | undefined {
  const head = input.subarray(0, 4096).toString('latin1').replace(/^(\u00ef\u00bb\u00bf)?\s*/, '');
  const found: Record<string, string[]> = {};
  for (const line of head.split(/\r\n|\r|\n/)) {
    const tag = line.slice(0, 3);
    if (tag === 'MSH') break;
    if (tag !== 'FHS' && tag !== 'BHS') continue;
    const f = line.split(line[3] ?? '|');
    const component = (s: string | undefined) => (s ?? '').split(f[1]?.[0] ?? '^')[0];
    // As in MSH, field 1 is the separator itself: field n is f[n - 1].
    if (component(f[10])) found[tag] = [component(f[10]), component(f[2]), component(f[3])];
  }
  const [control, app, facility] = found.BHS ?? found.FHS ?? [];
  return control ? { control, app, facility } : undefined;
}

// ---------------------------------------------------------------- FHIR R4

/**
 * From the JSON itself: MessageHeader.id (else Bundle.id); event time Bundle.timestamp, else
 * MessageHeader meta.lastUpdated, else the focus resource's meta.lastUpdated.
 */
function fhirFacts(input: Buffer, doc: Json | undefined): PayloadFacts | undefined {
  if (!doc) return undefined;
  const units = splitMessages(doc);
  const read = keysByMessage(input, 'fhir-r4');
  const messages = units.map((unit, i) => fhirMessageFacts(unit, read.keys.get(i)));
  const batchId = units.length > 1 && typeof doc.id === 'string' ? doc.id : undefined;
  return assemble('fhir-r4', messages, batchId);
}

function fhirMessageFacts(unit: MessageUnit, keys: Set<string> | undefined): MessageFacts {
  const root = unit.root;
  const entries = Array.isArray(root.entry) ? root.entry.filter((e: unknown) => e && typeof e === 'object') : [];
  const resources: Json[] = entries.map((e: Json) => e.resource).filter((r: unknown) => r && typeof r === 'object');
  const header = root.resourceType === 'Bundle' ? resources.find((r) => r.resourceType === 'MessageHeader') : undefined;
  const id = str(header?.id) ?? (root.resourceType === 'Bundle' ? str(root.id) : undefined);
  const focus = root.resourceType === 'Bundle' ? focusOf(header, entries, resources) : root;
  const eventTime = isoUtc(root.resourceType === 'Bundle' ? root.timestamp : undefined) ?? isoUtc(header?.meta?.lastUpdated) ?? isoUtc(focus?.meta?.lastUpdated);
  return fact(id, eventTime, keys);
}

/** The MessageHeader's first focus (by fullUrl or Type/id), else the first Appointment or Patient. */
function focusOf(header: Json | undefined, entries: Json[], resources: Json[]): Json | undefined {
  const ref = Array.isArray(header?.focus) ? str(header.focus[0]?.reference) : undefined;
  if (ref) {
    const hit = entries.find((e) => e.fullUrl === ref || (e.resource && `${e.resource.resourceType}/${e.resource.id}` === ref));
    if (hit?.resource) return hit.resource;
  }
  return resources.find((r) => r.resourceType === 'Appointment' || r.resourceType === 'Patient');
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function isoUtc(v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined;
  const t = parseIsoDateTime(v);
  return t.ok ? t.instant.utc : undefined;
}

// ---------------------------------------------------------------- CSV

/** Each row is a message: its message_id, its recorded_at (else sent_at), as the reader reads them. */
function csvFacts(input: Buffer): PayloadFacts | undefined {
  const read = keysByMessage(input, 'csv');
  const messages: MessageFacts[] = [];
  for (let i = 0; i < read.count; i++) {
    const m = read.records.get(i)?.message;
    messages.push(fact(m?.messageId, utcOf(m?.recordedAt ?? m?.sentAt), read.keys.get(i)));
  }
  return assemble('csv', messages, undefined);
}
