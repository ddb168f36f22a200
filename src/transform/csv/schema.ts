/**
 * meshd's CSV schema, version 1 (docs/formats/csv.md): one row per event, snake_case
 * columns, identifiers and codes as `value` / `system|value` / `system|code|display`.
 * This file maps one row to one canonical record and back.
 */
import {
  hasEnded,
  hasPatientIdentity,
  APPOINTMENT_EVENTS,
  APPOINTMENT_STATUSES,
  CLEARED,
  REGISTRATION_EVENTS,
  isCleared,
  localSystem,
  triValue,
  type Address,
  type AppointmentEventKind,
  type AppointmentStatus,
  type CanonicalRecord,
  type Code,
  type CodedText,
  type ContactPoint,
  type Gender,
  type HumanName,
  type Identifier,
  type Instant,
  type MessageInfo,
  type Patient,
  type Period,
  type RegistrationEventKind,
  type Tri,
} from '../model';
import { isValidNhsNumber, normaliseNhsNumber } from '../nhs-number';
import { parseIsoDateTime } from '../time';
import type { OutCell } from './rfc4180';

export const SCHEMA_VERSION = '1';

const SYS = {
  odsOrganization: 'https://fhir.nhs.uk/Id/ods-organization-code',
  odsSite: 'https://fhir.nhs.uk/Id/ods-site-code',
  gmp: 'https://fhir.hl7.org.uk/Id/gmp-number',
  ethnic: 'https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland',
  practiceSetting: 'https://fhir.hl7.org.uk/CodeSystem/UKCore-PracticeSettingCode',
  appointmentReason: 'http://terminology.hl7.org/CodeSystem/v2-0276',
  cancellationReason: 'http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason',
  participationType: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType',
} as const;

/** Every column, in output order. Readers ignore columns they do not know. */
export const COLUMNS = [
  'schema_version', 'event', 'message_id', 'sent_at', 'recorded_at', 'sender_app', 'sender_org', 'receiver_app', 'receiver_org', 'source_event',
  'nhs_number', 'nhs_number_status', 'mrn', 'mrn_authority', 'other_identifiers',
  'name_use', 'family_name', 'given_names', 'name_prefix', 'name_suffix', 'birth_date', 'gender',
  'address_use', 'address_line_1', 'address_line_2', 'address_line_3', 'address_line_4', 'city', 'district', 'postcode', 'country',
  'phone', 'phone_home', 'phone_mobile', 'phone_work', 'email',
  'gp_practice', 'gp_practice_name', 'gp_code', 'ethnic_category', 'deceased', 'deceased_at', 'restricted', 'merged_from',
  'placer_id', 'filler_id', 'booking_reference', 'appointment_authority', 'status', 'filler_status',
  'start', 'end', 'duration_minutes',
  'service_type', 'service_type_code', 'specialty', 'specialty_code', 'appointment_type', 'appointment_type_code',
  'reason', 'reason_code', 'cancel_reason', 'cancel_reason_code', 'delivery_channel', 'priority', 'comment',
  'location_id', 'location_name', 'practitioner_id', 'practitioner_family_name', 'practitioner_given_names', 'practitioner_prefix', 'practitioner_role_code',
  'organization_ods', 'organization_name', 'slot_id', 'slot_start', 'slot_end', 'based_on',
] as const;

export type Column = (typeof COLUMNS)[number];

/** A cell as read: text, CLEARED for a quoted empty field, undefined for an unquoted empty one. */
export type InCell = string | typeof CLEARED | undefined;

const PATIENT_COLUMNS: readonly Column[] = COLUMNS.slice(COLUMNS.indexOf('nhs_number'), COLUMNS.indexOf('placer_id'));
const STATUS_BY_EVENT: Readonly<Record<AppointmentEventKind, AppointmentStatus>> = {
  book: 'booked', reschedule: 'booked', modify: 'booked', reminder: 'booked', cancel: 'cancelled', discontinue: 'cancelled', delete: 'entered-in-error', noshow: 'noshow',
};

// ================================================================ reading

export class RowReader {
  readonly problems: Array<{ column: string; text: string }> = [];
  readonly notes: Array<{ column: string; text: string }> = [];

  constructor(private readonly cells: ReadonlyMap<string, InCell>) {}

  cell(c: Column): InCell {
    return this.cells.get(c);
  }

  /** Plain text for a field that has no "cleared" meaning. */
  text(c: Column): string | undefined {
    const v = this.cell(c);
    if (isCleared(v)) {
      this.notes.push({ column: c, text: 'a quoted empty value has no "cleared" meaning here; read as not sent' });
      return undefined;
    }
    return v === undefined || v === '' ? undefined : v;
  }

  tri<T>(c: Column, parse: (s: string) => T | undefined): Tri<T> {
    const v = this.cell(c);
    if (isCleared(v)) return CLEARED;
    if (v === undefined || v === '') return undefined;
    return parse(v);
  }

  bad(column: Column, text: string): undefined {
    this.problems.push({ column, text });
    return undefined;
  }

  instant(c: Column): Instant | undefined {
    return triValue(this.instantTri(c));
  }

  instantTri(c: Column): Tri<Instant> {
    return this.tri(c, (s) => {
      const r = parseIsoDateTime(s);
      return r.ok ? r.instant : this.bad(c, `${r.text} (use ISO 8601 with offset, e.g. 2025-10-26T01:30:00+00:00)`);
    });
  }

  /** `value` (system from `plainSystem`) or `system|value`. */
  identifier(c: Column, cell: string, plainSystem: string, extra: Partial<Identifier> = {}): Identifier | undefined {
    const bar = cell.indexOf('|');
    if (bar < 0) return { system: plainSystem, value: cell, ...extra };
    const system = cell.slice(0, bar);
    const value = cell.slice(bar + 1);
    if (!system || !value) return this.bad(c, 'is not "value" or "system|value"');
    return { system, value, ...(extra.type ? { type: extra.type } : {}) };
  }

  /** `code` (with the column's default system), `system|code` or `system|code|display`. */
  code(c: Column, cell: string, defaultSystem: string): Code | undefined {
    const parts = cell.split('|');
    if (parts.length === 1) return { system: defaultSystem, code: cell };
    const [system, code, ...rest] = parts;
    if (!code) return this.bad(c, 'is not "code", "system|code" or "system|code|display"');
    return rest.length ? { system, code, display: rest.join('|') } : { system, code };
  }

  codedText(textCol: Column, codeCol: Column, defaultSystem: string): Tri<CodedText> {
    const t = this.cell(textCol);
    const k = this.cell(codeCol);
    const hasValue = (v: InCell) => typeof v === 'string' && v !== '';
    if (!hasValue(t) && !hasValue(k)) return isCleared(t) || isCleared(k) ? CLEARED : undefined;
    const out: CodedText = {};
    if (hasValue(k)) {
      const code = this.code(codeCol, k as string, defaultSystem);
      if (code) out.coding = [code];
    }
    if (hasValue(t)) out.text = t as string;
    return out;
  }

  list(c: Column): string[] {
    const v = this.text(c);
    return v ? v.split(';').map((s) => s.trim()).filter((s) => s.length > 0) : [];
  }
}

function words(s: string | undefined): string[] | undefined {
  const w = s?.split(' ').filter((x) => x.length > 0);
  return w && w.length ? w : undefined;
}

function readMessage(r: RowReader): MessageInfo {
  const m: MessageInfo = {};
  const id = r.text('message_id');
  if (id) m.messageId = id;
  const sent = r.instant('sent_at');
  if (sent) m.sentAt = sent;
  const recorded = r.instant('recorded_at');
  if (recorded) m.recordedAt = recorded;
  const sender = { application: r.text('sender_app'), organization: r.text('sender_org') };
  const receiver = { application: r.text('receiver_app'), organization: r.text('receiver_org') };
  const clean = (p: { application?: string; organization?: string }) => Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined));
  if (sender.application || sender.organization) m.sender = clean(sender);
  if (receiver.application || receiver.organization) m.receiver = clean(receiver);
  const source = r.text('source_event');
  if (source) m.sourceEvent = source;
  return m;
}

function readPatient(r: RowReader, cells: ReadonlyMap<string, InCell>): Patient | undefined {
  if (!PATIENT_COLUMNS.some((c) => cells.get(c) !== undefined && cells.get(c) !== '')) return undefined;
  const p: Patient = { identifiers: [] };
  const set = <K extends keyof Patient>(k: K, v: Patient[K]) => {
    if (v !== undefined) p[k] = v;
  };
  set('nhsNumber', r.tri('nhs_number', (s) => {
    const n = normaliseNhsNumber(s);
    return isValidNhsNumber(n) ? n : r.bad('nhs_number', 'is not a valid NHS number (10 digits with a Modulus 11 check digit)');
  }));
  set('nhsNumberVerification', r.tri('nhs_number_status', (s) => (/^0[1-8]$/.test(s) ? (s as any) : r.bad('nhs_number_status', 'must be an NHS number status code 01–08'))));
  const authority = r.text('mrn_authority');
  const mrn = r.text('mrn');
  if (mrn) p.identifiers.push({ system: localSystem(authority), value: mrn, type: 'MR', ...(authority ? { assigner: authority } : {}) });
  for (const cell of r.list('other_identifiers')) {
    const id = r.identifier('other_identifiers', cell, localSystem(authority));
    if (id) p.identifiers.push(id);
  }
  const family = r.cell('family_name');
  const given = r.text('given_names');
  if (isCleared(family)) set('names', CLEARED);
  else {
    const n: HumanName = {};
    const use = r.text('name_use');
    if (use) n.use = use;
    if (family) n.family = family;
    const g = words(given);
    if (g) n.given = g;
    const prefix = words(r.text('name_prefix'));
    if (prefix) n.prefix = prefix;
    const suffix = words(r.text('name_suffix'));
    if (suffix) n.suffix = suffix;
    if (Object.keys(n).length) p.names = [n];
  }
  set('birthDate', r.tri('birth_date', (s) => (validDate(s) ? s : r.bad('birth_date', 'must be a date YYYY-MM-DD (or YYYY-MM, YYYY)'))));
  set('gender', r.tri('gender', (s) => (['male', 'female', 'other', 'unknown'].includes(s) ? (s as Gender) : r.bad('gender', 'must be male, female, other or unknown'))));
  const line1 = r.cell('address_line_1');
  if (isCleared(line1)) set('addresses', CLEARED);
  else {
    const a: Address = {};
    const use = r.text('address_use');
    if (use) a.use = use;
    const lines = (['address_line_1', 'address_line_2', 'address_line_3', 'address_line_4'] as const).map((c) => r.text(c)).filter((x): x is string => x !== undefined);
    if (lines.length) a.lines = lines;
    const city = r.text('city');
    if (city) a.city = city;
    const district = r.text('district');
    if (district) a.district = district;
    const postcode = r.text('postcode');
    if (postcode) a.postalCode = postcode;
    const country = r.text('country');
    if (country) a.country = country;
    if (Object.keys(a).length) p.addresses = [a];
  }
  const telecomCols: Array<[Column, ContactPoint['system'], string | undefined]> = [
    ['phone', 'phone', undefined], ['phone_home', 'phone', 'home'], ['phone_mobile', 'phone', 'mobile'], ['phone_work', 'phone', 'work'], ['email', 'email', undefined],
  ];
  const telecom: ContactPoint[] = [];
  let telecomCleared = false;
  for (const [c, system, use] of telecomCols) {
    const v = r.cell(c);
    if (isCleared(v)) telecomCleared = true;
    else if (v) telecom.push({ system, value: v, ...(use ? { use } : {}) });
  }
  if (telecom.length) p.telecom = telecom;
  else if (telecomCleared) p.telecom = CLEARED;
  set('gpPractice', r.tri('gp_practice', (s) => s));
  const gpName = r.text('gp_practice_name');
  if (gpName) p.gpPracticeName = gpName;
  set('generalPractitioner', r.tri('gp_code', (s) => ({ identifiers: [{ system: SYS.gmp, value: s }] })));
  set('ethnicCategory', r.tri('ethnic_category', (s) => r.code('ethnic_category', s, SYS.ethnic)));
  set('deceased', r.tri('deceased', (s) => (s === 'true' ? true : s === 'false' ? false : r.bad('deceased', 'must be true or false'))));
  set('deceasedAt', r.instantTri('deceased_at'));
  set('restricted', r.tri('restricted', (s) => (s === 'R' || s === 'V' ? s : r.bad('restricted', 'must be R (restricted) or V (very restricted)'))));
  const merged = r.list('merged_from').map((cell) => r.identifier('merged_from', cell, localSystem(authority))).filter((x): x is Identifier => x !== undefined);
  if (merged.length) p.mergedFrom = merged;
  return p;
}

function readAppointment(r: RowReader, event: AppointmentEventKind) {
  const authority = r.text('appointment_authority');
  const plain = localSystem(authority);
  const assigner = authority ? { assigner: authority } : {};
  const statusText = r.text('status');
  let status: AppointmentStatus = STATUS_BY_EVENT[event];
  if (statusText !== undefined) {
    if ((APPOINTMENT_STATUSES as readonly string[]).includes(statusText)) status = statusText as AppointmentStatus;
    else r.bad('status', `must be an appointment status (${APPOINTMENT_STATUSES.join(', ')})`);
  }
  const a: import('../model').Appointment = { status };
  const placer = r.text('placer_id');
  if (placer) a.placerId = r.identifier('placer_id', placer, plain, { type: 'PLAC', ...assigner });
  const filler = r.text('filler_id');
  if (filler) a.fillerId = r.identifier('filler_id', filler, plain, { type: 'FILL', ...assigner });
  const booking = r.text('booking_reference');
  if (booking) a.bookingReference = r.identifier('booking_reference', booking, plain, assigner);
  const fillerStatus = r.text('filler_status');
  if (fillerStatus) a.fillerStatus = fillerStatus;
  const put = <K extends keyof typeof a>(k: K, v: (typeof a)[K]) => {
    if (v !== undefined) a[k] = v;
  };
  put('start', r.instantTri('start'));
  put('end', r.instantTri('end'));
  put('minutesDuration', r.tri('duration_minutes', (s) => (/^\d+(\.\d+)?$/.test(s) && Number(s) > 0 ? Number(s) : r.bad('duration_minutes', 'must be a positive number of minutes'))));
  const service = r.codedText('service_type', 'service_type_code', '');
  if (service && !isCleared(service)) a.serviceTypes = [service];
  put('specialty', r.codedText('specialty', 'specialty_code', SYS.practiceSetting));
  put('appointmentType', r.codedText('appointment_type', 'appointment_type_code', SYS.appointmentReason));
  put('reason', r.codedText('reason', 'reason_code', ''));
  put('cancellationReason', r.codedText('cancel_reason', 'cancel_reason_code', SYS.cancellationReason));
  put('deliveryChannel', r.tri('delivery_channel', (s) => s));
  put('priority', r.tri('priority', (s) => (/^\d+$/.test(s) ? Number(s) : r.bad('priority', 'must be a whole number'))));
  put('comment', r.tri('comment', (s) => s));
  const locId = r.text('location_id');
  const locName = r.text('location_name');
  if (locId || locName) {
    const ids = locId ? [r.identifier('location_id', locId, SYS.odsSite)].filter((x): x is Identifier => x !== undefined) : [];
    a.locations = [{ identifiers: ids, ...(locName ? { name: locName } : {}) }];
  }
  const prId = r.text('practitioner_id');
  const prFamily = r.text('practitioner_family_name');
  if (prId || prFamily) {
    const ids = prId ? [r.identifier('practitioner_id', prId, plain)].filter((x): x is Identifier => x !== undefined) : [];
    const name: HumanName = {};
    if (prFamily) name.family = prFamily;
    const g = words(r.text('practitioner_given_names'));
    if (g) name.given = g;
    const pfx = words(r.text('practitioner_prefix'));
    if (pfx) name.prefix = pfx;
    const roleCell = r.text('practitioner_role_code');
    const role = roleCell ? r.code('practitioner_role_code', roleCell, SYS.participationType) : undefined;
    a.practitioners = [{ identifiers: ids, ...(Object.keys(name).length ? { name } : {}), ...(role ? { role: { coding: [role] } } : {}) }];
  }
  const ods = r.text('organization_ods');
  const orgName = r.text('organization_name');
  if (ods || orgName) a.organization = { identifiers: ods ? [{ system: SYS.odsOrganization, value: ods }] : [], ...(orgName ? { name: orgName } : {}) };
  const slotId = r.text('slot_id');
  const slotStart = r.instant('slot_start');
  const slotEnd = r.instant('slot_end');
  if (slotId || slotStart || slotEnd) a.slot = { ...(slotId ? { id: slotId } : {}), ...(slotStart ? { start: slotStart } : {}), ...(slotEnd ? { end: slotEnd } : {}) };
  const basedOn = r.list('based_on').map((cell) => r.identifier('based_on', cell, plain)).filter((x): x is Identifier => x !== undefined);
  if (basedOn.length) a.basedOn = basedOn;
  return a;
}

/** One data row → a record, or undefined with problems recorded on `r`. */
export function rowToRecord(cells: ReadonlyMap<string, InCell>): { record?: CanonicalRecord; reader: RowReader } {
  const r = new RowReader(cells);
  const version = r.text('schema_version');
  if (version !== undefined && version !== SCHEMA_VERSION) r.bad('schema_version', `is not a schema version this meshd reads (${SCHEMA_VERSION})`);
  const event = r.text('event');
  const isReg = (REGISTRATION_EVENTS as readonly string[]).includes(event ?? '');
  const isAppt = (APPOINTMENT_EVENTS as readonly string[]).includes(event ?? '');
  if (!isReg && !isAppt) {
    r.bad('event', `must be one of ${[...REGISTRATION_EVENTS, ...APPOINTMENT_EVENTS].join(', ')}`);
    return { reader: r };
  }
  const message = readMessage(r);
  const patient = readPatient(r, cells);
  let record: CanonicalRecord;
  if (isReg) {
    if (!patient) r.bad('nhs_number', 'a registration row needs patient columns (at least nhs_number or mrn)');
    record = { kind: 'registration', event: event as RegistrationEventKind, message, patient: patient ?? { identifiers: [] } };
  } else {
    const appointment = readAppointment(r, event as AppointmentEventKind);
    if (!hasPatientIdentity(patient)) r.bad('nhs_number', 'an appointment row needs its patient: nhs_number, or mrn with mrn_authority (or a system-qualified other_identifiers entry)');
    record = { kind: 'appointment', event: event as AppointmentEventKind, message, appointment, ...(patient ? { patient } : {}) };
  }
  return r.problems.length ? { reader: r } : { record, reader: r };
}

function validDate(s: string): boolean {
  const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$/.exec(s);
  if (!m) return false;
  if (!m[2]) return true;
  const month = Number(m[2]);
  if (month < 1 || month > 12) return false;
  if (!m[3]) return true;
  const day = Number(m[3]);
  return day >= 1 && day <= new Date(Date.UTC(Number(m[1]), month, 0)).getUTCDate();
}

// ================================================================ writing

export type RowOut = Partial<Record<Column, OutCell>>;

export class RowWriter {
  readonly row: RowOut = { schema_version: SCHEMA_VERSION };
  readonly dropped: string[] = [];

  set(c: Column, v: string | undefined): void {
    if (v !== undefined && v !== '') this.row[c] = v;
  }

  /** Writes a Tri: value via `fmt`, cleared as `""`. */
  tri<T>(c: Column, v: Tri<T>, fmt: (x: T) => string | undefined): void {
    if (isCleared(v)) this.row[c] = null;
    else if (v !== undefined) this.set(c, fmt(v as T));
  }

  drop(what: string): void {
    this.dropped.push(what);
  }
}

/**
 * ISO 8601 with offset at the instant's own precision, so minute-precision times stay minutes
 * ("2025-06-10T10:15+01:00"); an hour-only time is padded to minutes.
 */
function iso(i: Instant): string {
  if (i.local.length <= 10) return i.local;
  const local = i.precision === 'hour' ? `${i.local}:00` : i.local;
  return local + (i.offset ?? 'Z');
}

function identifierCell(id: Identifier, plainSystem: string, plainAssigner: string | undefined, w: RowWriter, field: string): string {
  if (id.system === plainSystem && id.assigner === plainAssigner && !id.value.includes('|')) return id.value;
  if (id.assigner !== undefined && id.assigner !== plainAssigner) w.drop(`${field} assigning authority`);
  return `${id.system}|${id.value}`;
}

function codeCell(c: Code, defaultSystem: string): string {
  if (c.system === defaultSystem && !c.display && !c.code.includes('|')) return c.code;
  return c.display ? `${c.system}|${c.code}|${c.display}` : `${c.system}|${c.code}`;
}

function writeCoded(w: RowWriter, textCol: Column, codeCol: Column, v: Tri<CodedText>, defaultSystem: string, field: string): void {
  if (isCleared(v)) {
    w.row[textCol] = null;
    w.row[codeCol] = null;
    return;
  }
  if (!v) return;
  w.set(textCol, v.text);
  if (v.coding?.length) {
    w.set(codeCol, codeCell(v.coding[0], defaultSystem));
    if (v.coding.length > 1) w.drop(`${field} codings after the first`);
  }
}

/** A use as the row can show it: an ended period makes the value old. */
function currentUse(use: string | undefined, period: Period | undefined, today: string): string | undefined {
  return hasEnded(period, today) ? 'old' : use;
}

function writePatient(w: RowWriter, p: Patient, today: string): void {
  w.tri('nhs_number', p.nhsNumber, (s) => s);
  w.tri('nhs_number_status', p.nhsNumberVerification, (s) => s);
  const authority = p.identifiers.find((i) => i.type === 'MR' && i.system === localSystem(i.assigner))?.assigner;
  let mrnDone = false;
  const others: string[] = [];
  for (const id of p.identifiers) {
    if (!mrnDone && id.type === 'MR' && id.system === localSystem(id.assigner) && id.assigner === authority) {
      w.set('mrn', id.value);
      w.set('mrn_authority', authority);
      mrnDone = true;
    } else {
      if (id.type) w.drop('patient identifier type (other_identifiers)');
      others.push(identifierCell({ ...id, type: undefined }, localSystem(authority), undefined, w, 'other_identifiers'));
    }
  }
  if (others.length) w.set('other_identifiers', others.join(';'));
  if (isCleared(p.names)) w.row.family_name = null;
  else if (p.names?.length) {
    // The row has room for one name: the first current one (an ended name is written as old).
    const n = p.names.find((x) => currentUse(x.use, x.period, today) !== 'old') ?? p.names[0];
    w.set('name_use', currentUse(n.use, n.period, today));
    w.set('family_name', n.family ?? (n.given?.length ? undefined : n.text));
    if (n.text && (n.family || n.given?.length)) w.drop('patient name text');
    if (n.period) w.drop('patient name period');
    w.set('given_names', n.given?.join(' '));
    w.set('name_prefix', n.prefix?.join(' '));
    w.set('name_suffix', n.suffix?.join(' '));
    if (p.names.length > 1) w.drop('patient names after the first');
  }
  w.tri('birth_date', p.birthDate, (s) => s);
  if (p.birthTime) w.drop('patient.birthTime');
  w.tri('gender', p.gender, (s) => s);
  if (isCleared(p.addresses)) w.row.address_line_1 = null;
  else if (p.addresses?.length) {
    const a = p.addresses.find((x) => currentUse(x.use, x.period, today) !== 'old') ?? p.addresses[0];
    w.set('address_use', currentUse(a.use, a.period, today));
    const lines = a.lines?.length ? a.lines : a.text ? [a.text] : [];
    (['address_line_1', 'address_line_2', 'address_line_3', 'address_line_4'] as const).forEach((c, i) => w.set(c, lines[i]));
    if (a.text && a.lines?.length) w.drop('patient address text');
    if (a.period) w.drop('patient address period');
    if ((a.lines?.length ?? 0) > 4) w.drop('address lines after the fourth');
    w.set('city', a.city);
    w.set('district', a.district);
    w.set('postcode', a.postalCode);
    w.set('country', a.country);
    if (p.addresses.length > 1) w.drop('patient addresses after the first');
  }
  if (isCleared(p.telecom)) {
    for (const c of ['phone', 'phone_home', 'phone_mobile', 'phone_work', 'email'] as const) w.row[c] = null;
  } else {
    for (const t of p.telecom ?? []) {
      // The phone columns are all current numbers: an old or ended one is left out.
      if (currentUse(t.use, t.period, today) === 'old') {
        w.drop('old or ended telecom entries');
        continue;
      }
      if (t.period) w.drop('telecom period');
      const col: Column | undefined =
        t.system === 'email' ? 'email' : t.system === 'phone' || t.system === 'sms' ? (t.use === 'home' ? 'phone_home' : t.use === 'mobile' ? 'phone_mobile' : t.use === 'work' ? 'phone_work' : 'phone') : undefined;
      if (col && w.row[col] === undefined) {
        w.set(col, t.value);
        if ((t.system === 'email' && t.use) || t.system === 'sms') w.drop('telecom use/system detail');
      } else w.drop('telecom entries that have no free column');
    }
  }
  w.tri('gp_practice', p.gpPractice, (s) => s);
  w.set('gp_practice_name', p.gpPracticeName);
  w.tri('gp_code', p.generalPractitioner, (g) => {
    const id = g.identifiers.find((i) => i.system === SYS.gmp) ?? g.identifiers[0];
    if (g.name || g.identifiers.length > 1 || (id && id.system !== SYS.gmp)) w.drop('registered GP details other than the GMP code');
    return id?.value;
  });
  w.tri('ethnic_category', p.ethnicCategory, (c) => codeCell(c, SYS.ethnic));
  w.tri('deceased', p.deceased, (b) => String(b));
  w.tri('deceased_at', p.deceasedAt, iso);
  w.tri('restricted', p.restricted, (s) => s);
  if (p.mergedFrom?.length) w.set('merged_from', p.mergedFrom.map((id) => identifierCell(id, localSystem(authority), undefined, w, 'merged_from')).join(';'));
}

function writeAppointment(w: RowWriter, a: import('../model').Appointment): void {
  const authority = (a.placerId ?? a.fillerId)?.assigner;
  const plain = localSystem(authority);
  w.set('appointment_authority', authority);
  if (a.placerId) w.set('placer_id', identifierCell(a.placerId, plain, authority, w, 'placer_id'));
  if (a.fillerId) w.set('filler_id', identifierCell(a.fillerId, plain, authority, w, 'filler_id'));
  if (a.bookingReference) w.set('booking_reference', identifierCell(a.bookingReference, plain, authority, w, 'booking_reference'));
  w.set('status', a.status);
  w.set('filler_status', a.fillerStatus);
  w.tri('start', a.start, iso);
  w.tri('end', a.end, iso);
  w.tri('duration_minutes', a.minutesDuration, (n) => String(n));
  if (a.serviceTypes?.length) {
    writeCoded(w, 'service_type', 'service_type_code', a.serviceTypes[0], '', 'service type');
    if (a.serviceTypes.length > 1) w.drop('service types after the first');
  }
  writeCoded(w, 'specialty', 'specialty_code', a.specialty, SYS.practiceSetting, 'specialty');
  writeCoded(w, 'appointment_type', 'appointment_type_code', a.appointmentType, SYS.appointmentReason, 'appointment type');
  writeCoded(w, 'reason', 'reason_code', a.reason, '', 'reason');
  writeCoded(w, 'cancel_reason', 'cancel_reason_code', a.cancellationReason, SYS.cancellationReason, 'cancellation reason');
  w.tri('delivery_channel', a.deliveryChannel, (s) => s);
  w.tri('priority', a.priority, (n) => String(n));
  w.tri('comment', a.comment, (s) => s);
  const loc = a.locations?.[0];
  if (loc) {
    if (loc.identifiers[0]) w.set('location_id', identifierCell(loc.identifiers[0], SYS.odsSite, undefined, w, 'location_id'));
    w.set('location_name', loc.name);
    if (loc.identifiers.length > 1 || loc.type || loc.status) w.drop('location details other than first id and name');
    if ((a.locations?.length ?? 0) > 1) w.drop('locations after the first');
  }
  const pr = a.practitioners?.[0];
  if (pr) {
    if (pr.identifiers[0]) w.set('practitioner_id', identifierCell(pr.identifiers[0], plain, undefined, w, 'practitioner_id'));
    w.set('practitioner_family_name', pr.name?.family);
    w.set('practitioner_given_names', pr.name?.given?.join(' '));
    w.set('practitioner_prefix', pr.name?.prefix?.join(' '));
    const role = pr.role?.coding?.[0];
    if (role) w.set('practitioner_role_code', codeCell(role, SYS.participationType));
    if (pr.identifiers.length > 1 || pr.status || pr.role?.text || pr.name?.suffix || pr.name?.use) w.drop('practitioner details beyond first id, name and role code');
    if ((a.practitioners?.length ?? 0) > 1) w.drop('practitioners after the first');
  }
  if (a.organization) {
    const ods = a.organization.identifiers.find((i) => i.system === SYS.odsOrganization);
    w.set('organization_ods', ods?.value);
    w.set('organization_name', a.organization.name);
    if (a.organization.identifiers.some((i) => i !== ods)) w.drop('booking organisation identifiers other than ODS');
  }
  if (a.slot) {
    w.set('slot_id', a.slot.id);
    if (a.slot.start) w.set('slot_start', iso(a.slot.start));
    if (a.slot.end) w.set('slot_end', iso(a.slot.end));
  }
  if (a.basedOn?.length) w.set('based_on', a.basedOn.map((b) => identifierCell(b, plain, undefined, w, 'based_on')).join(';'));
}

/** One record → one row (cells by column), plus what the schema could not carry. */
export function recordToRow(rec: CanonicalRecord, today = new Date().toISOString().slice(0, 10)): { row: RowOut; dropped: string[] } {
  const w = new RowWriter();
  w.set('event', rec.event);
  const m = rec.message;
  w.set('message_id', m.messageId);
  if (m.sentAt) w.set('sent_at', iso(m.sentAt));
  if (m.recordedAt) w.set('recorded_at', iso(m.recordedAt));
  w.set('sender_app', m.sender?.application);
  w.set('sender_org', m.sender?.organization);
  w.set('receiver_app', m.receiver?.application);
  w.set('receiver_org', m.receiver?.organization);
  w.set('source_event', m.sourceEvent);
  if (rec.kind === 'registration') writePatient(w, rec.patient, today);
  else {
    if (rec.patient) writePatient(w, rec.patient, today);
    writeAppointment(w, rec.appointment);
  }
  return { row: w.row, dropped: [...new Set(w.dropped)] };
}
