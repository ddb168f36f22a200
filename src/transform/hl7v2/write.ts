import { createHash } from 'node:crypto';
import { writeAll, type AppointmentHistory, type FormatWriter, type TransformIssue, type WriteContext, type WriteResult } from '../format';
import {
  SYSTEMS,
  appointmentKey,
  hasPatientIdentity,
  isCleared,
  localAuthority,
  triValue,
  type AppointmentEvent,
  type CanonicalRecord,
  type CodedText,
  type Identifier,
  type Instant,
  type LocationParticipant,
  type ParticipationStatus,
  type PatientRegistration,
} from '../model';
import { isValidNhsNumber } from '../nhs-number';
import { instantFromDate } from '../time';
import { formatDtm } from './datetime';
import { issue } from './issues';
import { DEFAULT_REASON_SYSTEM, FILLER_STATUS as READ_FILLER_STATUS } from './read';
import { comps, cx, e, fill, patientSegments, segment, tri, xcn } from './write-patient';

/**
 * Canonical records → HL7 v2.4 ER7, HL7 UK style (docs/mapping-basis.md, Writing HL7 v2). One message per record,
 * except consecutive merges of one source message, which share one A40 (PID/MRG pairs).
 */

export interface TriggerChoice {
  trigger: string;
  fillerStatus: string;
}

/** Canonical status of each SCH-25 code meshd writes. */
const FILLER_STATUS_OF: Record<string, string> = {
  Pending: 'pending', Waitlist: 'waitlist', Booked: 'booked', Started: 'checked-in', Complete: 'fulfilled',
  Cancelled: 'cancelled', Discontinued: 'cancelled', Deleted: 'entered-in-error', Noshow: 'noshow',
};

const FILLER_STATUS: Record<string, string> = {
  proposed: 'Pending',
  pending: 'Pending',
  waitlist: 'Waitlist',
  booked: 'Booked',
  arrived: 'Started',
  'checked-in': 'Started',
  fulfilled: 'Complete',
  cancelled: 'Cancelled',
  noshow: 'Noshow',
  'entered-in-error': 'Deleted',
};

/** SCH-6 is required; when there is no real reason we send these, marked with system MESHD. */
const DEFAULT_REASON: Record<string, string> = {
  S12: 'BOOK^New booking',
  S13: 'RESCHED^Rescheduled',
  S14: 'MODIFY^Modified',
  S15: 'CANCEL^Cancelled',
  S16: 'DISCON^Discontinued',
  S17: 'DELETE^Entered in error',
  S26: 'NOSHOW^Did not attend',
};

/** Appointment fields SIU v2.4 has no agreed home for: written nowhere, so always noted. */
const NOT_CARRIED = ['bookingReference', 'reason', 'priority', 'deliveryChannel', 'slot', 'organization'] as const;

const PARTICIPANT_STATUS: Record<ParticipationStatus, string> = { accepted: 'Booked', tentative: 'Pending', declined: 'Cancelled', 'needs-action': 'Pending' };

/**
 * Picks the SIU trigger (docs/formats/hl7v2.md, SIU trigger selection): the event kind and status first, then, for book and
 * modify, the ledger's previous state. Without a previous state, book → S12 and modify → S14.
 */
export function selectTrigger(ev: AppointmentEvent, previous?: AppointmentHistory): TriggerChoice | { error: string } {
  const status = ev.appointment.status;
  const filler = FILLER_STATUS[status] ?? 'Booked';
  if (ev.event === 'reminder') return { error: 'a reminder has no SIU trigger event; send reminders as notify-csv' };
  if (ev.event === 'discontinue') return { trigger: 'S16', fillerStatus: 'Discontinued' };
  if (ev.event === 'cancel' || status === 'cancelled') return { trigger: 'S15', fillerStatus: 'Cancelled' };
  if (ev.event === 'delete' || status === 'entered-in-error') return { trigger: 'S17', fillerStatus: 'Deleted' };
  if (ev.event === 'noshow' || status === 'noshow') return { trigger: 'S26', fillerStatus: 'Noshow' };
  if (ev.event === 'reschedule') return { trigger: 'S13', fillerStatus: filler };
  if (!previous) return { trigger: ev.event === 'book' ? 'S12' : 'S14', fillerStatus: filler };
  // A booking after a cancellation or deletion is a new booking for the receiver.
  if (ev.event === 'book' && ['cancel', 'delete', 'discontinue'].includes(previous.lastEvent)) return { trigger: 'S12', fillerStatus: filler };
  const start = triValue(ev.appointment.start);
  if (start && previous.start && Date.parse(previous.start) !== Date.parse(start.utc)) return { trigger: 'S13', fillerStatus: filler };
  return { trigger: 'S14', fillerStatus: filler };
}

function ei(id: Identifier | undefined): string {
  if (!id) return '';
  const local = localAuthority(id.system);
  if (local !== undefined || id.system.startsWith('urn:meshd:local:')) return comps(e(id.value), e(id.assigner ?? local ?? ''));
  // A real URL system survives as EI.3 universal id with type URI.
  return comps(e(id.value), e(id.assigner ?? ''), e(id.system), 'URI');
}

function ce(c: CodedText | undefined, systemName: (system: string) => string = (s) => localAuthority(s) ?? ''): string {
  if (!c) return '';
  const coding = c.coding?.[0];
  if (!coding) return comps('', e(c.text));
  return comps(e(coding.code), e(coding.display ?? c.text), e(systemName(coding.system)));
}

function codeSystemName(system: string): string {
  if (system === SYSTEMS.appointmentReason) return 'HL70276';
  if (system === SYSTEMS.cancellationReason) return '';
  return localAuthority(system) ?? '';
}

function pl(l: LocationParticipant): string {
  const poc = l.identifiers.find((i) => i.system.startsWith('urn:meshd:local:'))?.value;
  const site = l.identifiers.find((i) => i.system === SYSTEMS.odsSite)?.value;
  return comps(e(poc), '', '', e(site), '', '', '', '', e(l.name));
}

const VERSIONS = new Set(['2.4', '2.5', '2.5.1', '2.6', '2.7', '2.7.1', '2.8']);

/** MSH-12: 2.4 unless the route asks for a later version (`version` option; others are noted in writeHl7v2). */
function versionOf(ctx: WriteContext): string {
  const v = String(ctx.options?.version ?? '2.4');
  return VERSIONS.has(v) ? v : '2.4';
}

/** SCH-25: the filler status as received when it still says what the status says (keeps `Dc`), else the table's. */
function fillerStatusFor(a: AppointmentEvent['appointment'], fallback: string): string {
  const received = a.fillerStatus?.trim();
  return received && READ_FILLER_STATUS[received.toUpperCase()] === FILLER_STATUS_OF[fallback] ? received : fallback;
}

function messageId(record: CanonicalRecord, index: number): string {
  if (record.message.messageId) return record.message.messageId;
  return 'M' + createHash('sha1').update(JSON.stringify(record)).update(String(index)).digest('hex').slice(0, 19);
}

function msh(record: CanonicalRecord, type: string, index: number, now: Instant, ctx: WriteContext): string {
  const m = record.message;
  const opt = ctx.options ?? {};
  const f: string[] = [];
  f[2] = '^~\\&';
  f[3] = e(String(opt.sendingApplication ?? m.sender?.application ?? ''));
  f[4] = e(String(opt.sendingFacility ?? m.sender?.organization ?? ''));
  f[5] = e(String(opt.receivingApplication ?? m.receiver?.application ?? ''));
  f[6] = e(String(opt.receivingFacility ?? m.receiver?.organization ?? ''));
  f[7] = formatDtm(m.sentAt ?? now, opt.offsets === 'always');
  f[9] = type;
  f[10] = e(messageId(record, index));
  f[11] = String(opt.processingId ?? 'P');
  f[12] = versionOf(ctx);
  // MSH-1 is the field separator itself: the join below supplies it.
  return 'MSH|' + fill(f, 18).slice(1).join('|').replace(/\|+$/, '');
}

function finish(lines: string[]): string {
  const text = lines.join('\r');
  // HL7 UK: printable ASCII unless agreed; name UTF-8 in MSH-18 when we need it.
  if (/^[\x20-\x7e\r]*$/.test(text)) return text + '\r';
  const [first, ...rest] = lines;
  const f = first.split('|');
  while (f.length < 18) f.push('');
  f[17] = 'UNICODE UTF-8';
  return [f.join('|'), ...rest].join('\r') + '\r';
}

const ADT: Record<string, { trigger: string; structure: string }> = {
  register: { trigger: 'A28', structure: 'ADT_A05' },
  update: { trigger: 'A31', structure: 'ADT_A05' },
  merge: { trigger: 'A40', structure: 'ADT_A39' },
  'delete-person': { trigger: 'A29', structure: 'ADT_A21' },
};

function writeAdt(group: PatientRegistration[], index: number, now: Instant, ctx: WriteContext, notes: TransformIssue[]): string {
  const first = group[0];
  // Receivers that track visits want A04/A08 (ADT_A01) instead of A28/A31 (person, ADT_A05).
  const asked = first.event === 'register' ? ctx.options?.register : first.event === 'update' ? ctx.options?.update : undefined;
  const { trigger, structure } = asked === 'A04' || asked === 'A08' ? { trigger: asked, structure: 'ADT_A01' } : ADT[first.event];
  const offsets = ctx.options?.offsets === 'always';
  const lines = [msh(first, `ADT^${trigger}^${structure}`, index, now, ctx)];
  lines.push(segment('EVN', [trigger, formatDtm(first.message.recordedAt ?? first.message.sentAt ?? now, offsets)]));
  const note = (field: string, text: string, position?: string) => notes.push(issue('FIELD_NOT_CARRIED', index, position, field, text));
  for (const r of group) {
    lines.push(...patientSegments(r.patient, note, now.utc.slice(0, 10)));
    if (r.event === 'merge') {
      const old = (r.patient.mergedFrom ?? []).map(cx).join('~');
      lines.push(segment('MRG', [old]));
    }
  }
  if (first.event !== 'merge') lines.push('PV1|1|N');
  return finish(lines);
}

function writeSiu(ev: AppointmentEvent, choice: TriggerChoice, index: number, now: Instant, ctx: WriteContext, notes: TransformIssue[]): string {
  const a = ev.appointment;
  const offsets = ctx.options?.offsets === 'always';
  const dtm = (i: Instant) => formatDtm(i, offsets);
  const t = choice.trigger;
  const lines = [msh(ev, `SIU^${t}^SIU_S12`, index, now, ctx)];
  const start = triValue(a.start);
  const end = triValue(a.end);
  const dur = triValue(a.minutesDuration);
  const s: string[] = [];
  s[1] = ei(a.placerId);
  s[2] = ei(a.fillerId);
  const realReason = (t === 'S15' || t === 'S16' || t === 'S26') && a.cancellationReason !== undefined;
  s[6] = realReason ? tri(a.cancellationReason, (r) => ce(r, codeSystemName)) : `${DEFAULT_REASON[t]}^${DEFAULT_REASON_SYSTEM}`;
  s[7] = tri(a.appointmentType, (c) => ce(c, codeSystemName));
  s[9] = tri(a.minutesDuration, String);
  s[10] = dur !== undefined ? 'min' : '';
  s[11] = start || end ? comps('', '', dur !== undefined ? `M${dur}` : '', start ? dtm(start) : '', end ? dtm(end) : '') : '';
  const contact = a.practitioners?.[0] ? xcn(a.practitioners[0]) : typeof ctx.options?.serviceUser === 'string' ? ctx.options.serviceUser : '';
  s[16] = contact;
  s[20] = contact;
  s[25] = fillerStatusFor(a, choice.fillerStatus);
  s[26] = ei(a.basedOn?.[0]);
  lines.push(segment('SCH', fill(s, 26)));
  // 2.5+ receivers read timing from TQ1 (SCH-11 stays for those that still look there).
  if (versionOf(ctx) !== '2.4' && (start || end)) lines.push(segment('TQ1', ['1', '', '', '', '', dur !== undefined ? `${dur}^min` : '', start ? dtm(start) : '', end ? dtm(end) : '']));
  if (isCleared(a.comment)) lines.push('NTE|1||""');
  else if (typeof a.comment === 'string') a.comment.split('\n').forEach((line, i) => lines.push(segment('NTE', [String(i + 1), '', e(line)])));
  if (ev.patient) {
    lines.push(...patientSegments(ev.patient, (field, text, position) => notes.push(issue('FIELD_NOT_CARRIED', index, position, field, text)), now.utc.slice(0, 10)));
  }
  if (a.specialty !== undefined) lines.push(segment('PV1', ['1', 'O', ...Array(7).fill(''), tri(a.specialty, (sp) => e(sp.coding?.[0]?.code ?? sp.text ?? ''))]));
  lines.push('RGS|1|A');
  const timing = (startField: number, durField: number): string[] => {
    const f: string[] = [];
    if (start) f[startField] = dtm(start);
    if (dur !== undefined) {
      f[durField] = String(dur);
      f[durField + 1] = 'min';
    }
    return f;
  };
  (a.serviceTypes ?? []).forEach((st, i) => {
    const f = timing(4, 7);
    f[1] = String(i + 1);
    f[2] = 'A';
    f[3] = ce(st);
    f[10] = fillerStatusFor(a, choice.fillerStatus);
    lines.push(segment('AIS', fill(f, 10)));
  });
  (a.locations ?? []).forEach((l, i) => {
    const f = timing(6, 9);
    f[1] = String(i + 1);
    f[2] = 'A';
    f[3] = pl(l);
    f[4] = l.type ? comps(e(l.type.code), e(l.type.display), e(localAuthority(l.type.system) ?? '')) : '';
    f[12] = l.status ? PARTICIPANT_STATUS[l.status] : '';
    lines.push(segment('AIL', fill(f, 12)));
  });
  (a.practitioners ?? []).forEach((p, i) => {
    const f = timing(6, 9);
    f[1] = String(i + 1);
    f[2] = 'A';
    f[3] = xcn(p);
    f[4] = ce(p.role);
    f[12] = p.status ? PARTICIPANT_STATUS[p.status] : '';
    lines.push(segment('AIP', fill(f, 12)));
  });
  return finish(lines);
}

/** The field holding an NHS number that fails the Modulus 11 check, if any (patient and merged-from records). */
function badNhsNumber(r: CanonicalRecord): string | undefined {
  const p = r.patient;
  if (!p) return undefined;
  const nhs = triValue(p.nhsNumber);
  if (nhs !== undefined && !isValidNhsNumber(nhs)) return 'patient.nhsNumber';
  if ((p.mergedFrom ?? []).some((i) => i.system === SYSTEMS.nhsNumber && !isValidNhsNumber(i.value))) return 'patient.mergedFrom';
  return undefined;
}

/** Records → ER7 messages, a group at a time; `options.batch` wraps them in FHS/BHS…BTS/FTS. */
export function hl7v2Writer(ctx: WriteContext = {}): FormatWriter {
  const now = instantFromDate(ctx.now ? ctx.now() : new Date());
  const batch = ctx.options?.batch === true || ctx.options?.batch === 'true';
  const stamp = formatDtm(now);
  // The batch header goes before the first message, the trailer (with the count) after the last.
  let header = batch ? `FHS|^~\\&|||||${stamp}\rBHS|^~\\&|||||${stamp}\r` : '';
  let count = 0;
  // What each record written leaves per appointment key, so later records of this conversion
  // see earlier ones (the ledger only knows earlier files).
  const written = new Map<string, AppointmentHistory>();
  const take = () => {
    const h = header;
    header = '';
    return h;
  };
  return {
    write(records, first) {
      const result = writeGroup(records, first, now, ctx, written);
      count += result.messages;
      return { ...result.written, output: Buffer.from(take() + result.text, 'utf8') };
    },
    end() {
      const asked = ctx.options?.version;
      const notes = asked !== undefined && !VERSIONS.has(String(asked)) ? [issue('HL7_VERSION_UNSUPPORTED', undefined, 'MSH-12', 'options.version', `version option is not one meshd writes (${[...VERSIONS].join(', ')}); wrote 2.4`)] : [];
      return { output: Buffer.from(batch ? `${take()}BTS|${count}\rFTS|1\r` : '', 'utf8'), errors: [], notes };
    },
  };
}

export function writeHl7v2(records: CanonicalRecord[], ctx: WriteContext = {}): WriteResult {
  return writeAll(hl7v2Writer(ctx), records);
}

/**
 * One group of records; `first` is the index of records[0] in the whole conversion, `written` the
 * history of each appointment written so far in it (consulted before the ledger's, then updated).
 */
function writeGroup(records: CanonicalRecord[], first: number, now: Instant, ctx: WriteContext, written: Map<string, AppointmentHistory>): { written: Omit<WriteResult, 'output'>; text: string; messages: number } {
  const result: Omit<WriteResult, 'output'> = { errors: [], notes: [], appointments: [] };
  const messages: string[] = [];
  for (let k = 0; k < records.length; k++) {
    const i = first + k;
    const r = records[k];
    const bad = badNhsNumber(r);
    if (bad) {
      result.errors.push(issue('HL7_BAD_NHS_NUMBER', i, 'PID-3', bad, 'NHS number is not 10 digits with a valid Modulus 11 check digit; not written'));
      continue;
    }
    if (r.kind === 'registration') {
      const p = r.patient;
      if (!triValue(p.nhsNumber) && p.identifiers.length === 0) {
        result.errors.push(issue('HL7_MISSING_FIELD', i, 'PID-3', 'patient.identifiers', 'patient has neither an NHS number nor a local identifier; PID-3 is required'));
        continue;
      }
      const group = [r];
      // Consecutive merges from one source message share one A40 (a group holds whole messages).
      while (r.event === 'merge' && r.message.messageId) {
        const next = records[k + 1];
        if (next?.kind !== 'registration' || next.event !== 'merge' || next.message.messageId !== r.message.messageId) break;
        group.push(next);
        k++;
      }
      messages.push(writeAdt(group, first + k, now, ctx, result.notes));
      continue;
    }
    const a = r.appointment;
    if (!hasPatientIdentity(r.patient)) {
      result.errors.push(issue('HL7_NO_PATIENT_IDENTITY', i, 'PID-3', 'patient.identifiers', 'appointment has no patient identified by an NHS number or a local identifier with its authority; an SIU without one could match the wrong patient'));
      continue;
    }
    if (!a.fillerId && !a.placerId) {
      result.errors.push(issue('HL7_MISSING_FIELD', i, 'SCH-2', 'appointment.fillerId', 'appointment has neither a filler nor a placer id; SIU cannot identify it'));
      continue;
    }
    const key = appointmentKey(r);
    const previous = key ? (written.get(key) ?? ctx.previousAppointment?.(key)) : undefined;
    const choice = selectTrigger(r, previous);
    if ('error' in choice) {
      result.errors.push(issue('HL7_NO_TRIGGER', i, 'MSH-9', 'event', choice.error));
      continue;
    }
    if (!triValue(a.start)) result.notes.push(issue('HL7_MISSING_FIELD', i, 'SCH-11', 'appointment.start', 'appointment has no start; SCH-11 (required in v2.4) left empty'));
    const dropped = NOT_CARRIED.filter((f) => a[f] !== undefined && !(Array.isArray(a[f]) && (a[f] as unknown[]).length === 0));
    if (dropped.length) result.notes.push(issue('FIELD_NOT_CARRIED', i, 'SCH', 'appointment', `HL7 v2.4 SIU has no agreed place for: ${dropped.join(', ')}; not written`));
    messages.push(writeSiu(r, choice, i, now, ctx, result.notes));
    const start = triValue(a.start);
    // A record that does not send the start leaves the known one in place.
    const knownStart = start?.utc ?? previous?.start;
    if (key) written.set(key, { lastEvent: r.event, ...(knownStart && { start: knownStart }), status: a.status });
    result.appointments.push({ key: key ?? '', event: r.event, ...(start && { start: start.utc }), status: a.status, trigger: choice.trigger });
  }
  return { written: result, text: messages.join(''), messages: messages.length };
}
