/**
 * Canonical records → FHIR R4 (UK Core) JSON. Default: one message Bundle per record
 * (MessageHeader with meshd's event code, the focus Appointment or Patient, and the
 * Practitioner/Location/Organization/Slot it references); several records → a collection
 * Bundle of message Bundles. `options.output = 'resources'`: no MessageHeader; a single
 * registration gives a bare Patient, anything else a collection Bundle of the resources.
 * fullUrls are urn:uuid derived from the record's content, so output is reproducible.
 */
import { createHash, hash as oneShotHash, type Hash } from 'node:crypto';
import { writeAll, type FormatWriter, type TransformIssue, type WriteContext, type WriteResult } from '../format';
import {
  appointmentKey,
  isCleared,
  triValue,
  type Appointment,
  type CanonicalRecord,
  type CodedText,
  type HumanName,
  type Identifier,
  type Instant,
  type Patient,
  type Practitioner,
  type Tri,
} from '../model';
import { addMinutes, formatIsoDateTime } from '../time';
import { REFERENCE_SYSTEM } from './read';
import { EXTENSION, MESHD, PROFILE, SYSTEM } from './uk-core';
import { codeIssues, structuralIssues } from './validate';

type Json = Record<string, any>;

const EVENT_DISPLAY: Readonly<Record<string, string>> = {
  register: 'Patient registered', update: 'Patient details updated', merge: 'Patient records merged', 'delete-person': 'Patient record deleted',
  book: 'Appointment booked', reschedule: 'Appointment rescheduled', modify: 'Appointment modified', cancel: 'Appointment cancelled',
  discontinue: 'Appointment series discontinued', delete: 'Appointment entered in error', noshow: 'Patient did not attend', reminder: 'Appointment reminder',
};

/** ODS codes are short upper-case alphanumerics (RRF, G82080, Y12345, RRF12). */
const ODS_LIKE = /^[A-Z0-9]{3,10}$/;

class RecordWriter {
  readonly entries: Array<{ fullUrl: string; resource: Json }> = [];
  readonly errors: string[][] = [];
  readonly notes: TransformIssue[] = [];
  private readonly cleared: string[] = [];

  /** The record's content hashed once; each role's id hashes this with the role name. */
  private readonly seed: Buffer;

  constructor(
    content: string,
    private readonly index: number,
  ) {
    this.seed = oneShotHash('sha1', content, 'buffer');
  }

  uuid(role: string): string {
    return nameUuid(this.seed, role);
  }

  add(role: string, resource: Json): string {
    const fullUrl = `urn:uuid:${this.uuid(role)}`;
    this.entries.push({ fullUrl, resource });
    return fullUrl;
  }

  fail(path: string, text: string): void {
    this.errors.push([path, text]);
  }

  note(position: string, field: string, text: string, code = 'FIELD_DROPPED'): void {
    this.notes.push({ code, message: this.index, position, field, text });
  }

  /** A Tri value for FHIR: cleared has no FHIR form in a full resource, so it is omitted. */
  val<T>(v: Tri<T>, field: string): T | undefined {
    if (isCleared(v)) this.cleared.push(field);
    return triValue(v);
  }

  flushClearedNote(): void {
    if (this.cleared.length) {
      this.note('record', this.cleared.join(', '), `cleared values are written as absent elements (FHIR resources have no "delete this value" marker): ${this.cleared.join(', ')}`, 'FHIR_CLEARED_OMITTED');
    }
  }

  /** Sets `obj[key]` (and `_key` provenance) for an instant-typed element. */
  putInstant(obj: Json, key: string, inst: Instant | undefined, path: string): boolean {
    if (!inst) return false;
    if (inst.precision === 'year' || inst.precision === 'month' || inst.precision === 'day') {
      this.fail(path, 'has no time of day; FHIR needs a full instant (date, time and offset)');
      return false;
    }
    obj[key] = formatIsoDateTime(inst, 'second');
    const sub: Json[] = [];
    if (inst.precision === 'hour' || inst.precision === 'minute') sub.push({ url: 'precision', valueCode: inst.precision });
    if (inst.assumedZone) sub.push({ url: 'assumedZone', valueBoolean: true });
    if (sub.length) obj[`_${key}`] = { extension: [{ url: MESHD.instantProvenance, extension: sub }] };
    return true;
  }

  // ------------------------------------------------------------ datatypes

  identifier(id: Identifier, bookingReference = false): Json {
    const out: Json = { system: id.system, value: id.value };
    if (bookingReference) out.type = { coding: [{ system: MESHD.identifierType, code: 'booking-reference' }] };
    else if (id.type) out.type = { coding: [{ system: SYSTEM.identifierType, code: id.type }] };
    if (id.assigner) out.assigner = { display: id.assigner };
    return out;
  }

  codeable(c: CodedText): Json {
    const out: Json = {};
    if (c.coding?.length) {
      out.coding = c.coding.map((x) => {
        const cd: Json = {};
        if (x.system) cd.system = x.system;
        cd.code = x.code;
        if (x.display) cd.display = x.display;
        return cd;
      });
    }
    if (c.text) out.text = c.text;
    return out;
  }

  name(n: HumanName): Json {
    const out: Json = {};
    if (n.use) out.use = n.use;
    if (n.family) out.family = n.family;
    if (n.given?.length) out.given = [...n.given];
    if (n.prefix?.length) out.prefix = [...n.prefix];
    if (n.suffix?.length) out.suffix = [...n.suffix];
    if (n.text) out.text = n.text;
    if (n.period) out.period = { ...n.period };
    return out;
  }

  // ------------------------------------------------------------ resources

  practitionerResource(p: Practitioner): Json {
    const r: Json = { resourceType: 'Practitioner', meta: { profile: [PROFILE.practitioner] } };
    if (p.identifiers.length) r.identifier = p.identifiers.map((i) => this.identifier(i));
    if (p.name) r.name = [this.name(p.name)];
    return r;
  }

  organizationResource(o: { identifiers: Identifier[]; name?: string }): Json {
    const r: Json = { resourceType: 'Organization', meta: { profile: [PROFILE.organization] } };
    if (o.identifiers.length) r.identifier = o.identifiers.map((i) => this.identifier(i));
    if (o.name) r.name = o.name;
    return r;
  }

  /** Organization entry for a message party: ODS system when the code looks like one. */
  partyOrganization(role: string, code: string): string {
    const system = ODS_LIKE.test(code) ? SYSTEM.odsOrganization : `urn:meshd:local:${role}`;
    return this.add(role, this.organizationResource({ identifiers: [{ system, value: code }] }));
  }

  patientResource(p: Patient, path: string): Json {
    const r: Json = { resourceType: 'Patient', meta: { profile: [PROFILE.patient] } };
    const restricted = this.val(p.restricted, 'patient.restricted');
    if (restricted) r.meta.security = [{ system: SYSTEM.confidentiality, code: restricted, display: restricted === 'R' ? 'restricted' : 'very restricted' }];
    const ids: Json[] = [];
    const nhs = this.val(p.nhsNumber, 'patient.nhsNumber');
    if (nhs) {
      const id: Json = { system: SYSTEM.nhsNumber, value: nhs };
      const status = this.val(p.nhsNumberVerification, 'patient.nhsNumberVerification');
      if (status) {
        id.extension = [{ url: EXTENSION.nhsNumberVerification, valueCodeableConcept: { coding: [{ system: SYSTEM.verificationEngland, code: status }] } }];
      }
      ids.push(id);
    } else if (p.nhsNumberVerification !== undefined && !isCleared(p.nhsNumberVerification)) {
      this.note(`${path}.identifier`, 'patient.nhsNumberVerification', 'verification status without an NHS number is not written');
    }
    for (const i of p.identifiers) ids.push(this.identifier(i));
    if (ids.length) r.identifier = ids;
    const names = this.val(p.names, 'patient.names');
    if (names?.length) r.name = names.map((n) => this.name(n));
    const telecom = this.val(p.telecom, 'patient.telecom');
    if (telecom?.length) r.telecom = telecom.map((t) => ({ system: t.system, value: t.value, ...(t.use ? { use: t.use } : {}), ...(t.period ? { period: { ...t.period } } : {}) }));
    const gender = this.val(p.gender, 'patient.gender');
    if (gender) r.gender = gender;
    const birthDate = this.val(p.birthDate, 'patient.birthDate');
    if (birthDate) r.birthDate = birthDate;
    if (p.birthTime && hasTime(p.birthTime)) {
      const ext: Json = { url: EXTENSION.birthTime };
      if (this.putInstant(ext, 'valueDateTime', p.birthTime, `${path}.birthDate.extension`)) r._birthDate = { extension: [ext] };
    }
    const deceased = this.val(p.deceased, 'patient.deceased');
    const deceasedAt = this.val(p.deceasedAt, 'patient.deceasedAt');
    if (deceasedAt && hasTime(deceasedAt)) {
      this.putInstant(r, 'deceasedDateTime', deceasedAt, `${path}.deceasedDateTime`);
    } else if (deceasedAt) r.deceasedDateTime = deceasedAt.local;
    else if (deceased !== undefined) r.deceasedBoolean = deceased;
    const addresses = this.val(p.addresses, 'patient.addresses');
    if (addresses?.length) {
      r.address = addresses.map((a) => {
        const out: Json = {};
        if (a.use) out.use = a.use;
        if (a.lines?.length) out.line = [...a.lines];
        if (a.city) out.city = a.city;
        if (a.district) out.district = a.district;
        if (a.postalCode) out.postalCode = a.postalCode;
        if (a.country) out.country = a.country;
        if (a.text) out.text = a.text;
        if (a.period) out.period = { ...a.period };
        return out;
      });
    }
    const gps: Json[] = [];
    const practice = this.val(p.gpPractice, 'patient.gpPractice');
    if (practice) {
      // PDS style: a logical reference by ODS code, no Organization resource needed.
      gps.push({ type: 'Organization', identifier: { system: SYSTEM.odsOrganization, value: practice }, ...(p.gpPracticeName ? { display: p.gpPracticeName } : {}) });
    }
    const gp = this.val(p.generalPractitioner, 'patient.generalPractitioner');
    if (gp) {
      // Contained, so the Patient stays self-contained even when written bare.
      (r.contained ??= []).push({ ...this.practitionerResource(gp), id: 'gp' });
      gps.push({ reference: '#gp', type: 'Practitioner' });
    }
    if (gps.length) r.generalPractitioner = gps;
    const ethnic = this.val(p.ethnicCategory, 'patient.ethnicCategory');
    if (ethnic) {
      const system = ethnic.system === SYSTEM.ethnicOld ? SYSTEM.ethnicEngland : ethnic.system;
      r.extension = [{ url: EXTENSION.ethnicCategory, valueCodeableConcept: { coding: [{ system, code: ethnic.code, ...(ethnic.display ? { display: ethnic.display } : {}) }] } }];
    }
    if (p.mergedFrom?.length) {
      r.link = p.mergedFrom.map((i) => ({ other: { type: 'Patient', identifier: this.identifier(i) }, type: 'replaces' }));
    }
    return r;
  }

  appointmentResource(a: Appointment, patientUrl: string | undefined, path: string): Json {
    const r: Json = { resourceType: 'Appointment', meta: { profile: [PROFILE.appointment] } };
    const ext: Json[] = [];
    if (a.organization) {
      const url = this.add('booking-organization', this.organizationResource(a.organization));
      ext.push({ url: EXTENSION.bookingOrganization, valueReference: { reference: url, type: 'Organization' } });
    }
    const channel = this.val(a.deliveryChannel, 'appointment.deliveryChannel');
    if (channel) ext.push({ url: EXTENSION.deliveryChannel, valueCodeableConcept: { coding: [{ system: SYSTEM.deliveryChannel, code: channel }] } });
    if (a.fillerStatus) ext.push({ url: MESHD.fillerStatus, valueString: a.fillerStatus });
    if (ext.length) r.extension = ext;
    const ids: Json[] = [];
    if (a.placerId) ids.push(this.identifier({ ...a.placerId, type: 'PLAC' }));
    if (a.fillerId) ids.push(this.identifier({ ...a.fillerId, type: 'FILL' }));
    if (a.bookingReference) ids.push(this.identifier(a.bookingReference, true));
    if (ids.length) r.identifier = ids;
    r.status = a.status;
    const cancel = this.val(a.cancellationReason, 'appointment.cancellationReason');
    if (cancel) {
      // app-4: cancelationReason only with cancelled or noshow.
      if (a.status === 'cancelled' || a.status === 'noshow') r.cancelationReason = this.codeable(cancel);
      else this.note(`${path}.cancelationReason`, 'appointment.cancellationReason', `cancellation reason not written: R4 allows it only when status is cancelled or noshow (app-4)`);
    }
    if (a.serviceTypes?.length) r.serviceType = a.serviceTypes.map((s) => this.codeable(s));
    const specialty = this.val(a.specialty, 'appointment.specialty');
    if (specialty) r.specialty = [this.codeable(specialty)];
    const type = this.val(a.appointmentType, 'appointment.appointmentType');
    if (type) r.appointmentType = this.codeable(type);
    const reason = this.val(a.reason, 'appointment.reason');
    if (reason) r.reasonCode = [this.codeable(reason)];
    const priority = this.val(a.priority, 'appointment.priority');
    if (priority !== undefined) r.priority = priority;
    let start = this.val(a.start, 'appointment.start');
    let end = this.val(a.end, 'appointment.end');
    const minutes = this.val(a.minutesDuration, 'appointment.minutesDuration');
    if (start && !end && minutes !== undefined && minutes > 0) {
      end = addMinutes(start, minutes);
      this.note(`${path}.end`, 'appointment.end', 'end computed as start + minutesDuration (R4 app-2 needs both or neither)', 'FHIR_END_COMPUTED');
    }
    if (start && !end && ['proposed', 'cancelled', 'waitlist'].includes(a.status)) {
      // app-3 lets these statuses go without times; a lone start would break app-2.
      start = undefined;
      this.note(`${path}.start`, 'appointment.start', `start not written: no end or duration, and R4 needs both or neither (allowed for a ${a.status} appointment)`, 'FHIR_START_DROPPED');
    }
    if (start && !end) this.fail(`${path}.end`, 'is missing and cannot be computed (no duration); R4 app-2 needs start and end together');
    if (!start && end) this.fail(`${path}.start`, 'is missing while end is present; R4 app-2 needs start and end together');
    if (!start && !['proposed', 'cancelled', 'waitlist'].includes(a.status)) {
      this.fail(`${path}.start`, `is required when status is ${a.status} (R4 app-3)`);
    }
    this.putInstant(r, 'start', start, `${path}.start`);
    this.putInstant(r, 'end', end, `${path}.end`);
    if (minutes !== undefined) {
      if (Number.isInteger(minutes) && minutes > 0) r.minutesDuration = minutes;
      else this.note(`${path}.minutesDuration`, 'appointment.minutesDuration', 'duration not written: R4 needs a positive whole number of minutes');
    }
    if (a.slot) {
      if (a.slot.start && a.slot.end && hasTime(a.slot.start) && hasTime(a.slot.end)) {
        const slot: Json = { resourceType: 'Slot', schedule: { display: 'not known' }, status: 'busy' };
        if (a.slot.id) slot.identifier = [{ value: a.slot.id }];
        this.putInstant(slot, 'start', a.slot.start, `${path}.slot.start`);
        this.putInstant(slot, 'end', a.slot.end, `${path}.slot.end`);
        r.slot = [{ reference: this.add('slot', slot), type: 'Slot' }];
      } else {
        if (a.slot.id) r.slot = [{ type: 'Slot', identifier: { value: a.slot.id } }];
        if (a.slot.start || a.slot.end) this.note(`${path}.slot`, 'appointment.slot', 'slot times not written: a Slot needs both start and end with a time of day');
      }
    }
    const comment = this.val(a.comment, 'appointment.comment');
    if (comment) r.comment = comment;
    if (a.basedOn?.length) {
      r.basedOn = a.basedOn.map((b) => (b.system === REFERENCE_SYSTEM ? { reference: b.value } : { type: 'ServiceRequest', identifier: { system: b.system, value: b.value } }));
    }
    const participants: Json[] = [];
    if (patientUrl) participants.push({ actor: { reference: patientUrl, type: 'Patient' }, status: 'accepted' });
    (a.practitioners ?? []).forEach((p, i) => {
      const { role, status, ...who } = p;
      const url = referenceOnly(who) ?? this.add(`practitioner-${i}`, this.practitionerResource(who));
      participants.push({ ...(role ? { type: [this.codeable(role)] } : {}), actor: { reference: url, type: 'Practitioner' }, ...participantStatus(status) });
    });
    (a.locations ?? []).forEach((l, i) => {
      const literal = referenceOnly(l);
      if (literal) {
        participants.push({ actor: { reference: literal, type: 'Location' }, ...participantStatus(l.status) });
        return;
      }
      const loc: Json = { resourceType: 'Location', meta: { profile: [PROFILE.location] } };
      if (l.identifiers.length) loc.identifier = l.identifiers.map((x) => this.identifier(x));
      if (l.name) loc.name = l.name;
      if (l.type) loc.type = [{ coding: [{ ...(l.type.system ? { system: l.type.system } : {}), code: l.type.code, ...(l.type.display ? { display: l.type.display } : {}) }] }];
      const url = this.add(`location-${i}`, loc);
      participants.push({ actor: { reference: url, type: 'Location' }, ...participantStatus(l.status) });
    });
    if (participants.length === 0) this.fail(`${path}.participant`, 'has no patient, practitioner or location (R4 needs at least one participant)');
    r.participant = participants;
    return r;
  }
}

/** One record → its resources (focus first after the MessageHeader) and issues. */
function buildRecord(record: CanonicalRecord, index: number, messageMode: boolean, now: () => Date) {
  const w = new RecordWriter(JSON.stringify(record), index);
  const base = messageMode ? 'Bundle.entry' : 'entry';
  const msg = record.message;
  if (messageMode) w.add('header', {}); // filled in below, once the focus is known
  let focusUrl: string;
  if (record.kind === 'appointment') {
    const apptAt = w.entries.length;
    focusUrl = w.add('appointment', {});
    const patientAt = w.entries.length;
    const literal = record.patient ? referenceOnly(record.patient) : undefined;
    const patientUrl = literal ?? (record.patient ? w.add('patient', {}) : undefined);
    w.entries[apptAt].resource = w.appointmentResource(record.appointment, patientUrl, `${base}[${apptAt}].resource`);
    if (record.patient && !literal) w.entries[patientAt].resource = w.patientResource(record.patient, `${base}[${patientAt}].resource`);
    if (!messageMode) w.entries[apptAt].resource.meta.tag = [{ system: MESHD.eventTag, code: record.event }];
  } else {
    const at = w.entries.length;
    focusUrl = w.add('patient', {});
    w.entries[at].resource = w.patientResource(record.patient, `${base}[${at}].resource`);
    if (!messageMode) w.entries[at].resource.meta.tag = [{ system: MESHD.eventTag, code: record.event }];
  }
  if (messageMode) {
    const sender = msg.sender?.organization ? w.partyOrganization('sender', msg.sender.organization) : undefined;
    const receiver = msg.receiver?.organization ? w.partyOrganization('receiver', msg.receiver.organization) : undefined;
    // The message's business id (what an acknowledgement's response.identifier names): derived
    // from the record like every id here, so converting the same input again gives the same one.
    const header: Json = { resourceType: 'MessageHeader', id: w.uuid('header') };
    const ext: Json[] = [];
    if (msg.sourceEvent) ext.push({ url: MESHD.sourceEvent, valueString: msg.sourceEvent });
    if (msg.recordedAt && hasTime(msg.recordedAt)) {
      const holder: Json = {};
      if (w.putInstant(holder, 'valueDateTime', msg.recordedAt, 'MessageHeader.extension')) ext.push({ url: MESHD.recordedAt, ...holder });
    } else if (msg.recordedAt) w.note('MessageHeader.extension', 'message.recordedAt', 'event time without a time of day not written');
    if (ext.length) header.extension = ext;
    header.eventCoding = { system: SYSTEM.meshdEvent, code: record.event, display: EVENT_DISPLAY[record.event] ?? record.event };
    if (msg.receiver) {
      const who = msg.receiver.application ?? msg.receiver.organization ?? 'unknown';
      header.destination = [{ ...(msg.receiver.application ? { name: msg.receiver.application } : {}), endpoint: `urn:meshd:endpoint:${encodeURIComponent(who)}`, ...(receiver ? { receiver: { reference: receiver } } : {}) }];
    }
    if (sender) header.sender = { reference: sender };
    const from = msg.sender?.application ?? msg.sender?.organization ?? 'unknown';
    header.source = { ...(msg.sender?.application ? { name: msg.sender.application } : {}), endpoint: `urn:meshd:endpoint:${encodeURIComponent(from)}` };
    header.focus = [{ reference: focusUrl }];
    w.entries[0].resource = header;
  }
  w.flushClearedNote();
  const bundle: Json = { resourceType: 'Bundle', id: w.uuid('bundle') };
  bundle.type = messageMode ? 'message' : 'collection';
  if (messageMode) {
    if (msg.messageId) bundle.identifier = { value: msg.messageId };
    const sent = msg.sentAt && hasTime(msg.sentAt) ? msg.sentAt : undefined;
    if (!w.putInstant(bundle, 'timestamp', sent, 'Bundle.timestamp')) bundle.timestamp = now().toISOString();
  }
  bundle.entry = w.entries;
  return { writer: w, bundle };
}

/** Options: `output: 'message' | 'resources'`, `validate: 'light' | 'full'`, `pretty: true`. */
export function fhirR4Writer(ctx?: WriteContext): FormatWriter {
  const opts = ctx?.options ?? {};
  const messageMode = opts.output !== 'resources';
  // Structural validation of what we write costs tens of microseconds a Bundle: on by default.
  const full = opts.validate !== 'light';
  const now = ctx?.now ?? (() => new Date());
  const out = new CollectionOutput(Boolean(opts.pretty));
  // The same message twice in one batch gives the same Bundle id: the repeat gets its own,
  // so the collection's fullUrls stay unique (bdl-7).
  const repeats = new Map<string, number>();
  // With output=resources, entries shared by several records (same content) are written once.
  const written = new Set<string>();
  let first: { record: CanonicalRecord; bundle: Json } | undefined;
  let count = 0;
  return {
    write(records, offset) {
      const errors: TransformIssue[] = [];
      const notes: TransformIssue[] = [];
      const appointments: WriteResult['appointments'] = [];
      const chunks: string[] = [];
      records.forEach((record, k) => {
        const index = offset + k;
        const bundle = writeRecord(record, index, messageMode, full, now, errors, notes);
        if (!bundle) return;
        if (record.kind === 'appointment') {
          const start = triValue(record.appointment.start);
          appointments.push({ key: appointmentKey(record) ?? '', event: record.event, status: record.appointment.status, ...(start ? { start: start.utc } : {}) });
        }
        let entries: Json[];
        if (messageMode) {
          const n = repeats.get(bundle.id) ?? 0;
          repeats.set(bundle.id, n + 1);
          if (n > 0) bundle.id = nameUuid(bundle.id, `repeat ${n}`);
          entries = [{ fullUrl: `urn:uuid:${bundle.id}`, resource: bundle }];
        } else {
          entries = bundle.entry.filter((e: Json) => !written.has(e.fullUrl) && written.add(e.fullUrl));
        }
        // One record alone is written as its own document: hold it until a second one comes.
        if (count++ === 0) {
          first = { record, bundle };
          for (const e of entries) out.hold(e);
        } else for (const e of entries) chunks.push(out.entry(e));
      });
      return { output: Buffer.from(chunks.join(''), 'utf8'), errors, notes, appointments };
    },
    end() {
      const alone = count === 1 ? first : undefined;
      if (alone && messageMode) return { output: Buffer.from(out.document(alone.bundle), 'utf8'), errors: [], notes: [] };
      if (alone?.record.kind === 'registration') return { output: Buffer.from(out.document(alone.bundle.entry[0].resource), 'utf8'), errors: [], notes: [] };
      const { tail, head } = out.close();
      return { output: Buffer.from(tail, 'utf8'), head: Buffer.from(head, 'utf8'), errors: [], notes: [] };
    },
  };
}

export function writeFhirR4(records: CanonicalRecord[], ctx?: WriteContext): WriteResult {
  return writeAll(fhirR4Writer(ctx), records);
}

/** One record built and checked: its Bundle, or undefined with the reasons added to `errors`. */
function writeRecord(record: CanonicalRecord, index: number, messageMode: boolean, full: boolean, now: () => Date, errors: TransformIssue[], notes: TransformIssue[]): Json | undefined {
  let built: ReturnType<typeof buildRecord>;
  try {
    built = buildRecord(record, index, messageMode, now);
  } catch {
    errors.push({ code: 'FHIR_OUTPUT_INVALID', message: index, position: 'record', text: 'the record has a shape the FHIR writer cannot handle (not a valid canonical record)' });
    return undefined;
  }
  const { writer, bundle } = built;
  const problems = writer.errors.map(([position, text]) => ({ position, text }));
  bundle.entry.forEach((e: Json, i: number) => {
    for (const issue of codeIssues(e.resource, `Bundle.entry[${i}].resource`)) problems.push({ position: issue.path, text: issue.text });
  });
  if (full && problems.length === 0) for (const issue of structuralIssues(bundle, 'Bundle')) problems.push({ position: issue.path, text: issue.text });
  if (problems.length) {
    for (const p of problems) errors.push({ code: 'FHIR_OUTPUT_INVALID', message: index, position: p.position, field: p.position.replace(/^.*\./, ''), text: `cannot be written as valid FHIR R4: ${p.text}` });
    return undefined;
  }
  for (const n of writer.notes) notes.push(n);
  return bundle;
}

/**
 * A collection Bundle written entry by entry. Its id derives from all its entries' fullUrls
 * (reproducible), so it is hashed as they go and the opening, written first with a placeholder
 * id of the same length, is given again at the end (`head`) to overwrite it. The bytes are
 * those JSON.stringify gives for the whole Bundle.
 */
class CollectionOutput {
  entries = 0;
  /** Made when the first entry is written: a lone message Bundle never needs it. */
  private hash: Hash | undefined;
  private held: Json[] = [];

  constructor(private readonly pretty: boolean) {}

  document(doc: Json): string {
    return this.pretty ? JSON.stringify(doc, null, 2) + '\n' : JSON.stringify(doc);
  }

  /** Keeps an entry of the first record back until it is known whether a collection is needed. */
  hold(e: Json): void {
    this.held.push(e);
  }

  entry(e: Json): string {
    const held = this.held;
    this.held = [];
    return (this.entries === 0 ? this.opening(PLACEHOLDER) : '') + [...held, e].map((x) => this.one(x)).join('');
  }

  close(): { tail: string; head: string } {
    const held = this.held.map((x) => this.one(x)).join('');
    const id = uuidOf((this.hash ??= createHash('sha1')));
    const opening = this.opening(id);
    const closing = this.entries === 0 ? (this.pretty ? ']\n}\n' : ']}') : this.pretty ? '\n  ]\n}\n' : ']}';
    // Nothing was written before: the whole document is the tail.
    if (held || this.entries === 0) return { tail: opening + held + closing, head: '' };
    return { tail: closing, head: opening };
  }

  private one(e: Json): string {
    (this.hash ??= createHash('sha1')).update(String(e.fullUrl)).update('\0');
    const sep = this.entries++ === 0 ? '' : ',';
    return this.pretty ? `${sep}\n    ${JSON.stringify(e, null, 2).replace(/\n/g, '\n    ')}` : sep + JSON.stringify(e);
  }

  private opening(id: string): string {
    return this.pretty ? `{\n  "resourceType": "Bundle",\n  "id": "${id}",\n  "type": "collection",\n  "entry": [` : `{"resourceType":"Bundle","id":"${id}","type":"collection","entry":[`;
  }
}

const PLACEHOLDER = '00000000-0000-5000-8000-000000000000';

/** FHIR instants and dateTimes with a time need hours at least; a date alone is not an instant. */
function hasTime(i: Instant): boolean {
  return i.precision !== 'year' && i.precision !== 'month' && i.precision !== 'day';
}

/** R4 requires participant.status: when the source gave none, write `accepted` marked as defaulted. */
function participantStatus(status: string | undefined): Json {
  return status ? { status } : { status: 'accepted', _status: { extension: [{ url: MESHD.defaulted, valueBoolean: true }] } };
}

/**
 * A participant known only by a literal FHIR reference (read from a message that did not
 * include the resource): point at it again rather than invent a resource.
 */
function referenceOnly(entity: object): string | undefined {
  const keys = Object.keys(entity).filter((k) => (entity as Json)[k] !== undefined && k !== 'status');
  const ids = (entity as { identifiers?: Identifier[] }).identifiers;
  if (keys.length !== 1 || keys[0] !== 'identifiers' || ids?.length !== 1 || ids[0].system !== REFERENCE_SYSTEM) return undefined;
  return ids[0].value;
}

/** A name-based UUID from the parts: RFC 4122 layout, version 5 (SHA-1), variant 10xx. */
export function nameUuid(...parts: Array<string | Buffer>): string {
  // The parts (UTF-8) each followed by a NUL, in one buffer hashed in one call: a Hash object
  // per id costs more than the hashing.
  let size = 0;
  for (const p of parts) size += (typeof p === 'string' ? Buffer.byteLength(p, 'utf8') : p.length) + 1;
  const bytes = Buffer.allocUnsafe(size);
  let at = 0;
  for (const p of parts) {
    at += typeof p === 'string' ? bytes.write(p, at, 'utf8') : p.copy(bytes, at);
    bytes[at++] = 0;
  }
  return uuidText(oneShotHash('sha1', bytes, 'hex'));
}

/** The UUID of a name hash fed part by part (each part followed by a NUL). */
function uuidOf(hash: Hash): string {
  return uuidText(hash.digest('hex'));
}

function uuidText(h: string): string {
  const v = ((parseInt(h[16], 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${v}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
