import { readAll, type ReadContext, type ReadResult } from '../format';
import {
  CLEARED,
  SYSTEMS,
  hasPatientIdentity,
  localSystem,
  triValue,
  type Appointment,
  type AppointmentEventKind,
  type AppointmentStatus,
  type CanonicalRecord,
  type Code,
  type CodedText,
  type Identifier,
  type Instant,
  type LocationParticipant,
  type MessageInfo,
  type ParticipationStatus,
  type PractitionerParticipant,
  type RegistrationEventKind,
  type Tri,
} from '../model';
import { addMinutes } from '../time';
import { parseDtm } from './datetime';
import { messageParts } from './input';
import { Issues, issue } from './issues';
import { Hl7Message, type Segment, position } from './message';
import { readIdentifiers, readPatient, readXcn } from './read-patient';

/** ER7 bytes → canonical records (docs/mapping-basis.md, HL7 v2 structures). One bad message never stops the others. */

/** Marker for SCH-6 values meshd wrote as a required default (not a real reason). */
export const DEFAULT_REASON_SYSTEM = 'MESHD';

const ADT_EVENTS: Record<string, RegistrationEventKind> = {
  A04: 'register',
  A28: 'register',
  A08: 'update',
  A31: 'update',
  A34: 'merge',
  A36: 'merge',
  A39: 'merge',
  A40: 'merge',
  A29: 'delete-person',
};

const SIU_EVENTS: Record<string, AppointmentEventKind> = {
  S12: 'book',
  S13: 'reschedule',
  S14: 'modify',
  S15: 'cancel',
  S16: 'discontinue',
  S17: 'delete',
  S18: 'modify',
  S19: 'modify',
  S20: 'modify',
  S21: 'modify',
  S22: 'modify',
  S26: 'noshow',
};

/**
 * HL7 table 0278 filler status → FHIR status (every code of the table; `DC` is the short form
 * some feeds send for Discontinued). Blocked is a slot state, not an appointment one: pending.
 */
export const FILLER_STATUS: Record<string, AppointmentStatus> = {
  PENDING: 'pending',
  WAITLIST: 'waitlist',
  BOOKED: 'booked',
  OVERBOOK: 'booked',
  STARTED: 'checked-in',
  COMPLETE: 'fulfilled',
  CANCELLED: 'cancelled',
  DISCONTINUED: 'cancelled',
  DC: 'cancelled',
  DELETED: 'entered-in-error',
  BLOCKED: 'pending',
  NOSHOW: 'noshow',
};

const PARTICIPANT_STATUS: Record<string, ParticipationStatus> = {
  BOOKED: 'accepted',
  PENDING: 'tentative',
  WAITLIST: 'tentative',
  CANCELLED: 'declined',
  DELETED: 'declined',
  NOSHOW: 'declined',
};

const V2_0276 = new Set(['CHECKUP', 'EMERGENCY', 'FOLLOWUP', 'ROUTINE', 'WALKIN']);
const CANCEL_REASONS = new Set([
  'pat', 'pat-crs', 'pat-cpp', 'pat-dec', 'pat-fb', 'pat-lt', 'pat-mt', 'pat-mv', 'pat-preg', 'pat-swl', 'pat-ucp', 'prov', 'prov-pers', 'prov-dch',
  'prov-edu', 'prov-hosp', 'prov-labs', 'prov-mri', 'prov-onc', 'maint', 'meds-inc', 'other', 'oth-cms', 'oth-err', 'oth-fin', 'oth-iv', 'oth-int',
  'oth-mu', 'oth-room', 'oth-oerr', 'oth-swie', 'oth-weath',
]);

/** The payload read a message at a time (see messageParts): one part per message. */
export function* readHl7v2Parts(input: Buffer, _ctx?: ReadContext): Generator<ReadResult> {
  let messages = 0;
  for (const split of messageParts(input)) {
    messages += split.messageCount;
    const result: ReadResult = { records: [], errors: split.errors, notes: split.notes, messageCount: split.messageCount };
    for (const raw of split.messages) {
      const issues = new Issues(raw.index);
      let records: CanonicalRecord[] = [];
      try {
        records = readMessage(raw.text, issues);
      } catch {
        // Defensive: a reader bug must quarantine the one message, not crash the batch.
        issues.error('HL7_UNREADABLE', undefined, undefined, 'message could not be read (internal reader error); quarantine it and report the sample');
      }
      result.notes.push(...issues.notes);
      if (issues.errors.length) {
        result.errors.push(...issues.errors);
        continue;
      }
      for (const record of records) result.records.push({ record, message: raw.index });
    }
    yield result;
  }
  if (messages === 0) {
    yield { records: [], errors: [issue('HL7_NO_MESSAGE', undefined, undefined, undefined, 'no MSH segment found: the input is not HL7 v2 ER7')], notes: [], messageCount: 0 };
  }
}

export function readHl7v2(input: Buffer, ctx?: ReadContext): ReadResult {
  return readAll(readHl7v2Parts(input, ctx));
}

function readMessage(text: string, issues: Issues): CanonicalRecord[] {
  const parsed = Hl7Message.parse(text);
  if (!(parsed instanceof Hl7Message)) {
    issues.error('HL7_BAD_MESSAGE', 'MSH', undefined, `message ${parsed.problem}`);
    return [];
  }
  const msg = parsed;
  const msh = msg.segments[0];
  const type = msg.get(msh, { field: 9, comp: 1 }).toUpperCase();
  const trigger = msg.get(msh, { field: 9, comp: 2 }).toUpperCase();
  if (!type || !trigger) {
    issues.error('HL7_MISSING_FIELD', 'MSH-9', 'message.type', 'MSH-9 message type and trigger event are required');
    return [];
  }
  const info = readMessageInfo(msg, msh, `${type}^${trigger}`, issues);
  if (type === 'ADT') return readAdt(msg, trigger, info, issues);
  if (type === 'SIU') return readSiu(msg, trigger, info, issues);
  issues.error('HL7_UNSUPPORTED_MESSAGE', 'MSH-9', 'message.type', `message type ${type} is not supported (ADT and SIU are)`);
  return [];
}

function instantAt(msg: Hl7Message, seg: Segment | undefined, field: number, comp: number, name: string, issues: Issues, required = false): Instant | undefined {
  if (!seg) return undefined;
  const v = msg.get(seg, { field, comp });
  if (!v || v === '""') return undefined;
  const t = parseDtm(v);
  if (t.ok) return t.instant;
  const pos = position(seg.name, field, undefined, comp > 1 ? comp : undefined);
  if (required || t.problem !== 'invalid') issues.error(t.problem === 'invalid' ? 'HL7_BAD_DATE' : 'HL7_TIME_AMBIGUOUS', pos, name, `${pos} ${t.text}`);
  else issues.note('HL7_BAD_DATE', pos, name, `${pos} ${t.text}; ignored`);
  return undefined;
}

function readMessageInfo(msg: Hl7Message, msh: Segment, sourceEvent: string, issues: Issues): MessageInfo {
  const info: MessageInfo = { sourceEvent };
  const senderApp = msg.get(msh, { field: 3 });
  const senderOrg = msg.get(msh, { field: 4 });
  const receiverApp = msg.get(msh, { field: 5 });
  const receiverOrg = msg.get(msh, { field: 6 });
  if (senderApp || senderOrg) info.sender = { ...(senderApp && { application: senderApp }), ...(senderOrg && { organization: senderOrg }) };
  if (receiverApp || receiverOrg) info.receiver = { ...(receiverApp && { application: receiverApp }), ...(receiverOrg && { organization: receiverOrg }) };
  const id = msg.get(msh, { field: 10 });
  if (id) info.messageId = id;
  // A bad MSH-7 is only noted: it does not change what the message says.
  const sent = msg.get(msh, { field: 7 });
  if (sent) {
    const t = parseDtm(sent);
    if (t.ok) info.sentAt = t.instant;
    else issues.note('HL7_BAD_DATE', 'MSH-7', 'message.sentAt', `MSH-7 ${t.text}; ignored`);
  }
  const evn = msg.first('EVN');
  if (evn) {
    const recorded = msg.get(evn, { field: 2 });
    if (recorded) {
      const t = parseDtm(recorded);
      if (t.ok) info.recordedAt = t.instant;
      else issues.note('HL7_BAD_DATE', 'EVN-2', 'message.recordedAt', `EVN-2 ${t.text}; ignored`);
    }
  }
  return info;
}

// ------------------------------------------------------------------ ADT

function readAdt(msg: Hl7Message, trigger: string, info: MessageInfo, issues: Issues): CanonicalRecord[] {
  let event = ADT_EVENTS[trigger];
  if (!event) {
    event = 'update';
    issues.note('HL7_EVENT_AS_UPDATE', 'MSH-9.2', 'event', `ADT ${trigger} carries no registration change of its own; its patient data is read as an update`);
  }
  const pids = msg.all('PID');
  if (pids.length === 0) {
    issues.error('HL7_MISSING_SEGMENT', 'PID', 'patient', 'ADT message has no PID segment');
    return [];
  }
  if (event !== 'merge') {
    const pid = pids[0];
    const pd1 = nextBefore(msg, pid, 'PD1', ['PID']);
    const patient = readPatient(msg, pid, pd1, issues);
    if (!patient) return [];
    if (!triValue(patient.nhsNumber) && patient.identifiers.length === 0) {
      issues.error('HL7_MISSING_FIELD', 'PID-3', 'patient.identifiers', 'PID-3 holds no usable identifier');
      return [];
    }
    return [{ kind: 'registration', event, message: info, patient }];
  }
  // Merges: each PID/MRG pair is one merge (ADT_A39 repeats the pair).
  const records: CanonicalRecord[] = [];
  for (const [pair, pid] of pids.entries()) {
    const pd1 = nextBefore(msg, pid, 'PD1', ['PID']);
    const mrg = nextBefore(msg, pid, 'MRG', ['PID']);
    if (!mrg) {
      issues.error('HL7_MISSING_SEGMENT', 'MRG', 'patient.mergedFrom', `PID/MRG pair ${pair + 1} has no MRG segment`);
      continue;
    }
    const patient = readPatient(msg, pid, pd1, issues);
    if (!patient) continue;
    const old = readIdentifiers(msg, mrg, 1, issues);
    if (old.bad) continue;
    const mergedFrom: Identifier[] = [...(old.nhsNumber ? [{ system: SYSTEMS.nhsNumber, value: old.nhsNumber }] : []), ...old.identifiers];
    if (mergedFrom.length === 0) {
      issues.error('HL7_MISSING_FIELD', 'MRG-1', 'patient.mergedFrom', 'MRG-1 holds no prior identifier');
      continue;
    }
    patient.mergedFrom = mergedFrom;
    records.push({ kind: 'registration', event: 'merge', message: info, patient });
  }
  return issues.errors.length ? [] : records;
}

/** The first `name` segment after `from`, stopping at any of `stop`. */
function nextBefore(msg: Hl7Message, from: Segment, name: string, stop: string[]): Segment | undefined {
  for (let i = from.index + 1; i < msg.segments.length; i++) {
    const s = msg.segments[i];
    if (s.name === name) return s;
    if (stop.includes(s.name)) return undefined;
  }
  return undefined;
}

// ------------------------------------------------------------------ SIU

function codedText(msg: Hl7Message, rep: string, defaultSystem: (code: string, system: string) => string): CodedText | undefined {
  const code = msg.leaf(rep, 1);
  const text = msg.leaf(rep, 2);
  const system = msg.leaf(rep, 3);
  if (!code && !text) return undefined;
  const out: CodedText = {};
  if (code) {
    const c: Code = { system: defaultSystem(code, system), code };
    if (text) c.display = text;
    out.coding = [c];
  } else out.text = text;
  return out;
}

function ceSystem(_code: string, system: string): string {
  return localSystem(system || undefined);
}

function appointmentIdentifier(msg: Hl7Message, seg: Segment, field: number, type: 'PLAC' | 'FILL'): Identifier | undefined {
  const rep = msg.reps(seg, field)[0];
  if (!rep) return undefined;
  const value = msg.leaf(rep, 1);
  if (!value || value === '""') return undefined;
  const ns = msg.leaf(rep, 2);
  const universal = msg.leaf(rep, 3);
  const isUri = universal !== '' && msg.leaf(rep, 4).toUpperCase() === 'URI';
  const id: Identifier = { system: isUri ? universal : localSystem(ns || undefined), value, type };
  if (ns) id.assigner = ns;
  return id;
}

function durationMinutes(amount: string, units: string): number | undefined {
  const n = Number(amount);
  if (!amount || !Number.isFinite(n) || n <= 0) return undefined;
  const u = units.trim().toLowerCase();
  if (u === '' || u === 'min' || u === 'mins' || u === 'minutes' || u === 'm') return n;
  if (u === 's' || u === 'sec' || u === 'secs' || u === 'seconds') return n / 60;
  if (u === 'h' || u === 'hr' || u === 'hrs' || u === 'hours') return n * 60;
  if (u === 'd' || u === 'day' || u === 'days') return n * 1440;
  return undefined;
}

/** A duration in whole minutes from an amount field and a units field (component `unitsComp`). */
function duration(msg: Hl7Message, issues: Issues, seg: Segment | undefined, amountField: number, unitsField: number, unitsComp = 1): number | undefined {
  if (!seg) return undefined;
  const amount = msg.get(seg, { field: amountField });
  if (!amount || amount === '""') return undefined;
  const mins = durationMinutes(amount, msg.get(seg, { field: unitsField, comp: unitsComp }));
  const where = `${seg.name}-${amountField}`;
  if (mins === undefined) {
    issues.note('HL7_UNKNOWN_CODE', where, 'appointment.minutesDuration', 'duration or its units not understood (s, min, h, d are); duration ignored');
    return undefined;
  }
  if (Number.isInteger(mins)) return mins;
  issues.note('HL7_ROUNDED', where, 'appointment.minutesDuration', 'duration is not a whole number of minutes; rounded up');
  return Math.ceil(mins);
}

/** SCH-11.3 (TQ duration) "M30", "H2", "S90", "D1" → minutes. */
function schTimingDuration(text: string): number | undefined {
  const m = /^([SMHD])(\d+)$/i.exec(text.trim());
  if (!m) return undefined;
  const n = Number(m[2]);
  const mins = { S: n / 60, M: n, H: n * 60, D: n * 1440 }[m[1].toUpperCase() as 'S' | 'M' | 'H' | 'D'];
  return mins > 0 ? Math.ceil(mins) : undefined;
}

function statusFor(trigger: string, fillerStatus: string, issues: Issues): AppointmentStatus {
  const code = fillerStatus === '""' ? '' : fillerStatus.trim();
  const mapped = FILLER_STATUS[code.toUpperCase()];
  if (code && !mapped) issues.note('HL7_UNKNOWN_FILLER_STATUS', 'SCH-25', 'appointment.status', 'filler status is not in HL7 table 0278; read as pending (not booked) and kept as received');
  switch (trigger) {
    case 'S15':
    case 'S16':
      return 'cancelled';
    case 'S17':
      return 'entered-in-error';
    case 'S26':
      return 'noshow';
  }
  return mapped ?? (code ? 'pending' : 'booked');
}

function readSiu(msg: Hl7Message, trigger: string, info: MessageInfo, issues: Issues): CanonicalRecord[] {
  const event = SIU_EVENTS[trigger];
  if (!event) {
    issues.error('HL7_UNSUPPORTED_EVENT', 'MSH-9.2', 'event', `SIU ${trigger} is not an appointment event meshd carries (S12–S22, S26 are)`);
    return [];
  }
  if (trigger >= 'S18' && trigger <= 'S22') {
    issues.note('HL7_EVENT_AS_MODIFY', 'MSH-9.2', 'event', `SIU ${trigger} changes one resource; read as a modification of the whole appointment`);
  }
  const sch = msg.first('SCH');
  if (!sch) {
    issues.error('HL7_MISSING_SEGMENT', 'SCH', 'appointment', 'SIU message has no SCH segment');
    return [];
  }
  const fillerStatus = msg.get(sch, { field: 25 });
  const appt: Appointment = { status: statusFor(trigger, fillerStatus, issues) };
  const placer = appointmentIdentifier(msg, sch, 1, 'PLAC');
  const filler = appointmentIdentifier(msg, sch, 2, 'FILL');
  if (placer) appt.placerId = placer;
  if (filler) appt.fillerId = filler;
  if (!placer && !filler) {
    issues.error('HL7_MISSING_FIELD', 'SCH-2', 'appointment.fillerId', 'neither SCH-1 (placer) nor SCH-2 (filler) appointment id is valued; the appointment cannot be identified');
    return [];
  }
  if (fillerStatus && fillerStatus !== '""') appt.fillerStatus = fillerStatus;
  // SCH-26 placer order number: the referral the booking is based on (e-RS UBRN when sent).
  const order = msg.reps(sch, 26)[0];
  if (order && msg.leaf(order, 1)) {
    const ns = msg.leaf(order, 2);
    const universal = msg.leaf(order, 3);
    const isUri = universal !== '' && msg.leaf(order, 4).toUpperCase() === 'URI';
    appt.basedOn = [{ system: isUri ? universal : localSystem(ns || undefined), value: msg.leaf(order, 1), ...(ns && { assigner: ns }) }];
  }

  // Event reason: a cancellation reason only on cancel/discontinue/no-show triggers.
  if (event === 'cancel' || event === 'discontinue' || event === 'noshow') {
    if (msg.fieldCleared(sch, 6)) appt.cancellationReason = CLEARED;
    else {
      const rep = msg.reps(sch, 6)[0];
      if (rep && msg.leaf(rep, 3) !== DEFAULT_REASON_SYSTEM) {
        const r = codedText(msg, rep, (code, system) => (CANCEL_REASONS.has(code) && !system ? SYSTEMS.cancellationReason : ceSystem(code, system)));
        if (r) appt.cancellationReason = r;
      }
    }
  }

  if (msg.fieldCleared(sch, 7)) appt.appointmentType = CLEARED;
  else {
    const rep = msg.reps(sch, 7)[0];
    const t = rep ? codedText(msg, rep, (code, system) => ((system === '' || system.toUpperCase() === 'HL70276') && V2_0276.has(code.toUpperCase()) ? SYSTEMS.appointmentReason : ceSystem(code, system))) : undefined;
    if (t) appt.appointmentType = t;
  }

  // Start/end: TQ1-7/8 (2.5+), SCH-11.4/.5 (2.4), then AIS-4 / AIL-6.
  const tq1 = msg.first('TQ1');
  const ais = msg.first('AIS');
  const ail = msg.first('AIL');
  const aip = msg.first('AIP');
  if (msg.fieldCleared(sch, 9)) appt.minutesDuration = CLEARED;
  else {
    // Duration: SCH-9/10, else SCH-11.3 ("M30", meshd's own writer), TQ1-6, AIS-7/8, AIL-9/10, AIP-9/10.
    const mins =
      duration(msg, issues, sch, 9, 10) ??
      schTimingDuration(msg.get(sch, { field: 11, comp: 3 })) ??
      duration(msg, issues, tq1, 6, 6, 2) ??
      duration(msg, issues, ais, 7, 8) ??
      duration(msg, issues, ail, 9, 10) ??
      duration(msg, issues, aip, 9, 10);
    if (mins !== undefined) appt.minutesDuration = mins;
  }
  const start =
    instantAt(msg, tq1, 7, 1, 'appointment.start', issues, true) ??
    instantAt(msg, sch, 11, 4, 'appointment.start', issues, true) ??
    instantAt(msg, ais, 4, 1, 'appointment.start', issues, true) ??
    instantAt(msg, ail, 6, 1, 'appointment.start', issues, true);
  const end = instantAt(msg, tq1, 8, 1, 'appointment.end', issues, true) ?? instantAt(msg, sch, 11, 5, 'appointment.end', issues, true);
  if (issues.errors.length) return [];
  if (start) appt.start = start;
  if (end) appt.end = end;
  else if (start && typeof appt.minutesDuration === 'number') appt.end = addMinutes(start, appt.minutesDuration);
  if (start && end) {
    const span = (Date.parse(end.utc) - Date.parse(start.utc)) / 60_000;
    if (span < 0) {
      issues.error('HL7_END_BEFORE_START', tq1 && msg.get(tq1, { field: 8 }) ? 'TQ1-8' : 'SCH-11.5', 'appointment.end', 'the appointment ends before it starts');
      return [];
    }
    if (typeof appt.minutesDuration === 'number' && appt.minutesDuration !== span) {
      issues.note('HL7_DURATION_MISMATCH', 'SCH-9', 'appointment.minutesDuration', 'the duration does not match the start and end times; start and end kept, duration kept as sent');
    }
  }

  const comment = appointmentNotes(msg, sch, issues);
  if (comment !== undefined) appt.comment = comment;

  // Resource groups: every RGS group's AIS/AIL/AIP adds to the one appointment.
  const serviceTypes: CodedText[] = [];
  const locations: LocationParticipant[] = [];
  const practitioners: PractitionerParticipant[] = [];
  let droppedAig = false;
  for (const seg of msg.segments) {
    if (seg.name === 'AIS') {
      const rep = msg.reps(seg, 3)[0];
      const s = rep ? codedText(msg, rep, ceSystem) : undefined;
      if (s) serviceTypes.push(s);
    } else if (seg.name === 'AIL') {
      const l = readLocation(msg, seg);
      if (l) locations.push(l);
    } else if (seg.name === 'AIP') {
      const rep = msg.reps(seg, 3)[0];
      const p = rep ? readXcn(msg, rep) : undefined;
      if (!p) continue;
      const pp: PractitionerParticipant = p;
      const roleRep = msg.reps(seg, 4)[0];
      const role = roleRep ? codedText(msg, roleRep, ceSystem) : undefined;
      if (role) pp.role = role;
      const st = PARTICIPANT_STATUS[msg.get(seg, { field: 12 }).toUpperCase()];
      if (st) pp.status = st;
      practitioners.push(pp);
    } else if (seg.name === 'AIG') droppedAig = true;
  }
  if (serviceTypes.length) appt.serviceTypes = serviceTypes;
  if (locations.length) appt.locations = locations;
  if (practitioners.length) appt.practitioners = practitioners;
  if (droppedAig) issues.note('FIELD_DROPPED', 'AIG', 'appointment', 'general resources (AIG: equipment, devices) are not carried by the canonical model');

  const pv1 = msg.first('PV1');
  const service = pv1 ? msg.tri(pv1, { field: 10 }) : undefined;
  if (service === CLEARED) appt.specialty = CLEARED;
  else if (typeof service === 'string') {
    appt.specialty = { coding: [{ system: /^\d{3}$/.test(service) ? SYSTEMS.practiceSetting : localSystem('PV1-10'), code: service }] };
  }

  const record: CanonicalRecord = { kind: 'appointment', event, message: info, appointment: appt };
  const pids = msg.all('PID');
  const pid = pids[0];
  if (pid) {
    const patient = readPatient(msg, pid, nextBefore(msg, pid, 'PD1', ['RGS', 'PID']), issues);
    if (!patient) return [];
    record.patient = patient;
  }
  if (!hasPatientIdentity(record.patient)) {
    issues.error('HL7_NO_PATIENT_IDENTITY', pid ? 'PID-3' : 'PID', 'patient.identifiers', 'an appointment needs its patient identified by an NHS number or a local identifier with its assigning authority (PID-3 CX.4)');
    return [];
  }
  if (pids.length > 1) {
    issues.note('HL7_PATIENT_DROPPED', 'PID', 'patient', `the message names ${pids.length} patients; only the first is carried (the canonical appointment has one patient)`);
  }
  return [record];
}

/**
 * NTEs between SCH and the patient/resource groups (Z-segments may sit between) are the
 * appointment comment; NTEs inside a resource group (after AIS/AIL/AIP/AIG) follow it, each
 * line prefixed with its segment name, e.g. "[AIS] Nil by mouth from midnight".
 */
function appointmentNotes(msg: Hl7Message, sch: Segment, issues: Issues): Tri<string> {
  const lines: string[] = [];
  const text = (s: Segment) => msg.reps(s, 3).map((r) => msg.leaf(r)).join('\n');
  for (let i = sch.index + 1; i < msg.segments.length; i++) {
    const s = msg.segments[i];
    if (s.name === 'TQ1' || s.name === 'TQ2' || s.name.startsWith('Z')) continue;
    if (s.name !== 'NTE') break;
    if (msg.fieldCleared(s, 3)) return CLEARED;
    if (text(s)) lines.push(text(s));
  }
  let group: string | undefined;
  let grouped = 0;
  for (const s of msg.segments) {
    if (['AIS', 'AIL', 'AIP', 'AIG'].includes(s.name)) group = s.name;
    else if (s.name === 'RGS' || s.name === 'PID') group = undefined;
    else if (s.name === 'NTE' && group && text(s)) {
      lines.push(`[${group}] ${text(s)}`);
      grouped++;
    }
  }
  if (grouped) issues.note('HL7_GROUP_NOTES', 'NTE', 'appointment.comment', `${grouped} resource-group note(s) (NTE after AIS/AIL/AIP/AIG) carried in the appointment comment, each prefixed with its segment`);
  return lines.length ? lines.join('\n') : undefined;
}

function readLocation(msg: Hl7Message, seg: Segment): LocationParticipant | undefined {
  const rep = msg.reps(seg, 3)[0];
  if (!rep) return undefined;
  const pointOfCare = msg.leaf(rep, 1);
  const room = msg.leaf(rep, 2);
  const facility = msg.leaf(rep, 4, 1);
  const description = msg.leaf(rep, 9);
  const loc: LocationParticipant = { identifiers: [] };
  if (pointOfCare) loc.identifiers.push({ system: localSystem('location'), value: pointOfCare });
  // PL.4 facility carries the ODS site code by HL7 UK agreement; anything else is a name.
  if (facility && /^[A-Z0-9]{3,6}$/.test(facility)) loc.identifiers.push({ system: SYSTEMS.odsSite, value: facility });
  const name = description || room || (facility && !/^[A-Z0-9]{3,6}$/.test(facility) ? facility : '');
  if (name) loc.name = name;
  const typeRep = msg.reps(seg, 4)[0];
  if (typeRep && msg.leaf(typeRep, 1)) {
    const code = msg.leaf(typeRep, 1);
    const display = msg.leaf(typeRep, 2);
    loc.type = { system: localSystem(msg.leaf(typeRep, 3) || undefined), code, ...(display && { display }) };
  }
  const st = PARTICIPANT_STATUS[msg.get(seg, { field: 12 }).toUpperCase()];
  if (st) loc.status = st;
  return loc.identifiers.length || loc.name ? loc : undefined;
}
