/**
 * The canonical model every format reads into and writes from (docs/mapping-basis.md, Canonical model).
 * It follows FHIR R4 UK Core closely and adds what FHIR lacks: three-state fields
 * (value / not sent / cleared), instants that remember how they were received, and an
 * explicit event kind. No format converts straight to another; all go through here.
 */

// ---------------------------------------------------------------- three-state values

/** Marks a field the sender explicitly cleared (HL7 v2 `""`, CSV quoted empty). */
export interface Cleared {
  readonly cleared: true;
}
/** The one shared sentinel; compare with `isCleared`, never by identity. */
export const CLEARED: Cleared = Object.freeze({ cleared: true as const });

/**
 * A field that may be sent with a value, not sent (`undefined`: leave the stored value
 * alone) or cleared (`CLEARED`: delete the stored value).
 */
export type Tri<T> = T | Cleared | undefined;

export function isCleared(v: unknown): v is Cleared {
  return typeof v === 'object' && v !== null && (v as { cleared?: unknown }).cleared === true && Object.keys(v).length === 1;
}

/** The value if one was sent, else undefined (for both "not sent" and "cleared"). */
export function triValue<T>(v: Tri<T>): T | undefined {
  return v === undefined || isCleared(v) ? undefined : (v as T);
}

/** True when the field carries a value or a clear (i.e. the sender said something). */
export function isSent<T>(v: Tri<T>): boolean {
  return v !== undefined;
}

// ---------------------------------------------------------------- time

export type Precision = 'year' | 'month' | 'day' | 'hour' | 'minute' | 'second' | 'millisecond';

/**
 * A point in time with provenance. `utc` is what to compare; `local` + `offset` is what
 * the sender meant and what writers should emit, at `precision` (never invent seconds).
 */
export interface Instant {
  /** ISO 8601 in UTC with `Z`, full milliseconds, e.g. "2025-06-01T08:30:00.000Z". */
  utc: string;
  /**
   * Offset in effect for `local` ("+01:00", "-05:00", "+00:00"): as received, or resolved
   * from Europe/London when `assumedZone`. null only when no time of day was received.
   */
  offset: string | null;
  precision: Precision;
  /** True when the sender gave no offset and UK local time (Europe/London) was assumed. */
  assumedZone: boolean;
  /**
   * Wall-clock time as received, ISO 8601 without offset, cut to `precision`:
   * "2025", "2025-06", "2025-06-01", "2025-06-01T08", "2025-06-01T08:30",
   * "2025-06-01T08:30:00", "2025-06-01T08:30:00.123".
   */
  local: string;
}

/** A calendar date "YYYY-MM-DD" (or "YYYY" / "YYYY-MM" when that is all that was sent). Never through UTC. */
export type DateOnly = string;

// ---------------------------------------------------------------- identifiers and codes

export interface Identifier {
  system: string;
  value: string;
  /** Identifier type (v2-0203 code: NH, MR, PI, PLAC, FILL, VN, AN, …), when known. */
  type?: string;
  /** Assigning authority / issuing organisation (ODS or local code), when known. */
  assigner?: string;
}

export interface Code {
  system: string;
  code: string;
  display?: string;
}

/** A coded value that may arrive as text only (free-text reasons, local codes). */
export interface CodedText {
  coding?: Code[];
  text?: string;
}

/** Exact identifier and code systems (docs/mapping-basis.md, Identifier and code systems). Case-sensitive; emit these. */
export const SYSTEMS = {
  nhsNumber: 'https://fhir.nhs.uk/Id/nhs-number',
  odsOrganization: 'https://fhir.nhs.uk/Id/ods-organization-code',
  odsSite: 'https://fhir.nhs.uk/Id/ods-site-code',
  sdsUser: 'https://fhir.nhs.uk/Id/sds-user-id',
  sdsRoleProfile: 'https://fhir.nhs.uk/Id/sds-role-profile-id',
  gmc: 'https://fhir.hl7.org.uk/Id/gmc-number',
  gmp: 'https://fhir.hl7.org.uk/Id/gmp-number',
  nmc: 'https://fhir.hl7.org.uk/Id/nmc-number',
  gphc: 'https://fhir.hl7.org.uk/Id/gphc-number',
  hcpc: 'https://fhir.hl7.org.uk/Id/hcpc-number',
  v2IdentifierType: 'http://terminology.hl7.org/CodeSystem/v2-0203',
  nhsNumberVerification: 'https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland',
  ethnicCategory: 'https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland',
  deliveryChannel: 'https://fhir.hl7.org.uk/CodeSystem/UKCore-DeliveryChannel',
  practiceSetting: 'https://fhir.hl7.org.uk/CodeSystem/UKCore-PracticeSettingCode',
  appointmentReason: 'http://terminology.hl7.org/CodeSystem/v2-0276',
  fillerStatus: 'http://terminology.hl7.org/CodeSystem/v2-0278',
  cancellationReason: 'http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason',
  confidentiality: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality',
} as const;

/**
 * Local identifiers (MRNs, appointment ids) with no agreed URL get a system derived from
 * their assigning authority, so the authority survives a round trip through any format.
 * Routes may map these to per-trust URLs.
 */
export const LOCAL_SYSTEM_PREFIX = 'urn:meshd:local:';

export function localSystem(authority: string | undefined): string {
  return LOCAL_SYSTEM_PREFIX + encodeURIComponent(authority && authority.length > 0 ? authority : 'unknown');
}

/** The authority behind a `localSystem(...)` URL, else undefined. */
export function localAuthority(system: string): string | undefined {
  if (!system.startsWith(LOCAL_SYSTEM_PREFIX)) return undefined;
  const a = decodeURIComponent(system.slice(LOCAL_SYSTEM_PREFIX.length));
  return a === 'unknown' ? undefined : a;
}

// ---------------------------------------------------------------- people and places

/**
 * When a name, address or phone number was or is in use: dates "YYYY-MM-DD" (or FHIR
 * dateTimes as sent). HL7 v2: XPN.12/13, XAD.13/14, XTN.13/14; FHIR: `period`.
 */
export interface Period {
  start?: string;
  end?: string;
}

export interface HumanName {
  /** FHIR name use: official, usual, maiden, nickname, old, anonymous, temp. */
  use?: string;
  /** The whole name as text, when that is how it was given (FHIR HumanName.text). */
  text?: string;
  period?: Period;
  family?: string;
  given?: string[];
  prefix?: string[];
  suffix?: string[];
}

export interface Address {
  /** FHIR address use: home, work, temp, old, billing. */
  use?: string;
  /** The whole address as text, when that is how it was given (FHIR Address.text). */
  text?: string;
  lines?: string[];
  period?: Period;
  city?: string;
  district?: string;
  postalCode?: string;
  country?: string;
}

export interface ContactPoint {
  system: 'phone' | 'fax' | 'email' | 'pager' | 'url' | 'sms' | 'other';
  value: string;
  /** home, work, temp, old, mobile. */
  use?: string;
  period?: Period;
}

export type Gender = 'male' | 'female' | 'other' | 'unknown';

/** NHS number verification status, NHS Data Dictionary code "01"…"08". */
export type NhsNumberVerification = '01' | '02' | '03' | '04' | '05' | '06' | '07' | '08';

/** v3-Confidentiality codes that mark a restricted patient: R restricted, V very restricted. */
export type Confidentiality = 'R' | 'V';

export interface Practitioner {
  identifiers: Identifier[];
  name?: HumanName;
}

export interface Organization {
  identifiers: Identifier[];
  name?: string;
}

export interface Location {
  identifiers: Identifier[];
  name?: string;
  /** Location type (e.g. v2 0305 C clinic), when known. */
  type?: Code;
}

export interface Patient {
  nhsNumber?: Tri<string>;
  nhsNumberVerification?: Tri<NhsNumberVerification>;
  /** Other identifiers (local MRNs, CHI, …): the NHS number is never repeated here. */
  identifiers: Identifier[];
  names?: Tri<HumanName[]>;
  birthDate?: Tri<DateOnly>;
  /** Time of birth, only when the sender gave one. */
  birthTime?: Instant;
  gender?: Tri<Gender>;
  addresses?: Tri<Address[]>;
  telecom?: Tri<ContactPoint[]>;
  /** Registered GP practice ODS code (PD1-3 XON.3 / Patient.generalPractitioner Organization). */
  gpPractice?: Tri<string>;
  gpPracticeName?: string;
  /** Registered GP (national GMP "G" code in identifiers). */
  generalPractitioner?: Tri<Practitioner>;
  ethnicCategory?: Tri<Code>;
  deceased?: Tri<boolean>;
  deceasedAt?: Tri<Instant>;
  /** Restricted (R) or very restricted (V) record: keep it wherever the target can carry it. */
  restricted?: Tri<Confidentiality>;
  /** On a merge: the identifiers of the record(s) merged INTO this one (non-surviving). */
  mergedFrom?: Identifier[];
}

/** True when `end` (a date or dateTime) is before `today` ("YYYY-MM-DD"): the value is no longer in use. */
export function hasEnded(period: Period | undefined, today: string): boolean {
  return period?.end !== undefined && period.end.slice(0, 10) < today;
}

/**
 * An appointment's patient is identified by an NHS number or by a local identifier whose
 * authority is known (never `urn:meshd:local:unknown`): anything less can match the wrong person.
 */
export function hasPatientIdentity(p: Patient | undefined): boolean {
  if (!p) return false;
  if (triValue(p.nhsNumber)) return true;
  return p.identifiers.some((i) => i.value !== '' && i.system !== localSystem(undefined));
}

// ---------------------------------------------------------------- appointments

/** FHIR R4 Appointment.status vocabulary. */
export type AppointmentStatus =
  | 'proposed'
  | 'pending'
  | 'booked'
  | 'arrived'
  | 'fulfilled'
  | 'cancelled'
  | 'noshow'
  | 'entered-in-error'
  | 'checked-in'
  | 'waitlist';

export const APPOINTMENT_STATUSES: readonly AppointmentStatus[] = [
  'proposed', 'pending', 'booked', 'arrived', 'fulfilled', 'cancelled', 'noshow', 'entered-in-error', 'checked-in', 'waitlist',
];

/** FHIR participant status. */
export type ParticipationStatus = 'accepted' | 'declined' | 'tentative' | 'needs-action';

export interface PractitionerParticipant extends Practitioner {
  /** Role in the appointment (v2 AIP-4 / FHIR participant.type), when known. */
  role?: CodedText;
  status?: ParticipationStatus;
}

export interface LocationParticipant extends Location {
  status?: ParticipationStatus;
}

export interface Appointment {
  /**
   * The booker's id. Readers: when the source gives no identifier (e.g. a BaRS booking
   * request), use the resource's own id/fullUrl, e.g. { system: 'urn:ietf:rfc:3986',
   * value: 'urn:uuid:…' }, so the appointment stays identifiable (appointmentKey).
   */
  placerId?: Identifier;
  fillerId?: Identifier;
  /** Booking reference the patient sees (e-RS UBRN, BaRS booking id), when separate. */
  bookingReference?: Identifier;
  status: AppointmentStatus;
  /** v2 filler status as received (SCH-25), kept for the record. */
  fillerStatus?: string;
  start?: Tri<Instant>;
  end?: Tri<Instant>;
  minutesDuration?: Tri<number>;
  serviceTypes?: CodedText[];
  specialty?: Tri<CodedText>;
  /** FHIR appointmentType (v2-0276, v2 SCH-7). */
  appointmentType?: Tri<CodedText>;
  reason?: Tri<CodedText>;
  deliveryChannel?: Tri<string>;
  locations?: LocationParticipant[];
  practitioners?: PractitionerParticipant[];
  /** Booking organisation. */
  organization?: Organization;
  slot?: { id?: string; start?: Instant; end?: Instant };
  cancellationReason?: Tri<CodedText>;
  comment?: Tri<string>;
  priority?: Tri<number>;
  /** Referral / order the booking is based on (SCH-26/27, basedOn), e.g. an e-RS UBRN. */
  basedOn?: Identifier[];
}

// ---------------------------------------------------------------- records and events

export type RegistrationEventKind = 'register' | 'update' | 'merge' | 'delete-person';
export const REGISTRATION_EVENTS: readonly RegistrationEventKind[] = ['register', 'update', 'merge', 'delete-person'];

export type AppointmentEventKind =
  | 'book'
  | 'reschedule'
  | 'modify'
  | 'cancel'
  | 'discontinue'
  /** Entered in error. */
  | 'delete'
  | 'noshow'
  | 'reminder';
export const APPOINTMENT_EVENTS: readonly AppointmentEventKind[] = [
  'book', 'reschedule', 'modify', 'cancel', 'discontinue', 'delete', 'noshow', 'reminder',
];

export type EventKind = RegistrationEventKind | AppointmentEventKind;

/** One end of a message: application name and organisation (ODS code when known). */
export interface Party {
  application?: string;
  organization?: string;
}

export interface MessageInfo {
  sender?: Party;
  receiver?: Party;
  /** MSH-10, MessageHeader.id / Bundle.id, CSV message reference. */
  messageId?: string;
  sentAt?: Instant;
  /** When the event happened (EVN-2 / MessageHeader timestamp), if distinct from sentAt. */
  recordedAt?: Instant;
  /** The source's own event label, e.g. "ADT^A28", "SIU^S15", "booking-request". */
  sourceEvent?: string;
}

export interface PatientRegistration {
  kind: 'registration';
  event: RegistrationEventKind;
  message: MessageInfo;
  patient: Patient;
}

export interface AppointmentEvent {
  kind: 'appointment';
  event: AppointmentEventKind;
  message: MessageInfo;
  appointment: Appointment;
  patient?: Patient;
}

export type CanonicalRecord = PatientRegistration | AppointmentEvent;

/**
 * Ledger key for an appointment: sender + filler id, else sender + placer id
 * (docs/mapping-basis.md, Identity). `sender` overrides the message's own sender (e.g. the MESH mailbox).
 */
export function appointmentKey(ev: AppointmentEvent, sender?: string): string | undefined {
  const who = sender ?? ev.message.sender?.organization ?? ev.message.sender?.application ?? '';
  const { fillerId, placerId } = ev.appointment;
  if (fillerId?.value) return `${who}|filler|${fillerId.value}`;
  if (placerId?.value) return `${who}|placer|${placerId.value}`;
  return undefined;
}
