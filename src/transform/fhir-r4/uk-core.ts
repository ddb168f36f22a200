/**
 * FHIR R4 / UK Core identifiers, extension URLs, profile URLs and the code lists we read and
 * write, exactly as docs/mapping-basis.md lists them (they are case-sensitive).
 */

import { SYSTEMS } from '../model';

/** The model's exact systems (one list: model.ts SYSTEMS), plus the FHIR-only ones below. */
export const SYSTEM = {
  ...SYSTEMS,
  identifierType: SYSTEMS.v2IdentifierType,
  verificationEngland: SYSTEMS.nhsNumberVerification,
  /** Retired, still sent by PDS sandbox (code 01) and BaRS (code number-present-and-verified). */
  verificationRetired: 'https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatus',
  ethnicEngland: SYSTEMS.ethnicCategory,
  ethnicOld: 'https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategory',
  appointmentReason0276: SYSTEMS.appointmentReason,
  v2Event: 'http://terminology.hl7.org/CodeSystem/v2-0003',
  barsEvent: 'https://fhir.nhs.uk/CodeSystem/message-events-bars',
  barsReason: 'https://fhir.nhs.uk/CodeSystem/message-reason-bars',
  /** meshd's own event vocabulary: one code per canonical event kind (docs/formats/fhir-r4.md). */
  meshdEvent: 'https://fhir.meshd.dev/CodeSystem/event-kind',
  participationType: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType',
} as const;

export const EXTENSION = {
  nhsNumberVerification: 'https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus',
  ethnicCategory: 'https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory',
  bookingOrganization: 'https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-BookingOrganization',
  deliveryChannel: 'https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-DeliveryChannel',
  birthTime: 'http://hl7.org/fhir/StructureDefinition/patient-birthTime',
  nhsCommunication: 'https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSCommunication',
  deathNotificationStatus: 'https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-DeathNotificationStatus',
} as const;

export const PROFILE = {
  patient: 'https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient',
  appointment: 'https://fhir.hl7.org.uk/StructureDefinition/UKCore-Appointment',
  practitioner: 'https://fhir.hl7.org.uk/StructureDefinition/UKCore-Practitioner',
  organization: 'https://fhir.hl7.org.uk/StructureDefinition/UKCore-Organization',
  location: 'https://fhir.hl7.org.uk/StructureDefinition/UKCore-Location',
} as const;

/** Known NHS URLs that arrive misspelt (docs/mapping-basis.md, Identifier and code systems): normalised on input with a note. */
export const SYSTEM_ALIASES: Readonly<Record<string, string>> = {
  'https://fhir.nhs.uk/id/ods-organization-code': SYSTEM.odsOrganization,
  'https://fhir.nhs.uk/id/nhs-number': SYSTEM.nhsNumber,
  'https://fhir.nhs.uk/id/ods-site-code': SYSTEM.odsSite,
  'https://fhir.nhs.uk/id/sds-user-id': SYSTEM.sdsUser,
  'http://fhir.nhs.uk/Id/nhs-number': SYSTEM.nhsNumber,
  'http://fhir.nhs.uk/Id/ods-organization-code': SYSTEM.odsOrganization,
};

/** R4 Appointment.status (required binding). */
export const APPOINTMENT_STATUS = [
  'proposed', 'pending', 'booked', 'arrived', 'fulfilled', 'cancelled', 'noshow', 'entered-in-error', 'checked-in', 'waitlist',
] as const;

export const PARTICIPANT_STATUS = ['accepted', 'declined', 'tentative', 'needs-action'] as const;

export const GENDER = ['male', 'female', 'other', 'unknown'] as const;

/** NHS Data Dictionary NHS number status indicator codes 01–08. */
export const VERIFICATION_CODES = ['01', '02', '03', '04', '05', '06', '07', '08'] as const;

/** BaRS example's retired textual codes → England codes. */
export const RETIRED_VERIFICATION_CODES: Readonly<Record<string, string>> = {
  'number-present-and-verified': '01',
  'number-present-but-not-traced': '02',
  'trace-required': '03',
  'trace-attempted-no-match-or-multiple-match-found': '04',
  'trace-needs-to-be-resolved': '05',
  'trace-in-progress': '06',
  'number-not-present-and-trace-not-required': '07',
  'trace-postponed': '08',
};

/** Confidentiality codes that mark a restricted patient (PDS: R restricted, V very restricted). */
export const RESTRICTED_CODES = ['R', 'V'] as const;

/** Profile URL patterns that identify STU3 payloads (GP Connect, Care Connect). */
export const STU3_PROFILE_PATTERNS: readonly RegExp[] = [
  /\/STU3\//i,
  /\/StructureDefinition\/CareConnect-/,
  /\/StructureDefinition\/GPConnect-/,
];

/**
 * meshd's own extensions, used only where R4 has no element for what the canonical model
 * keeps (documented in docs/formats/fhir-r4.md); receivers may ignore them safely.
 */
export const MESHD = {
  /** On a primitive's `_element`: precision and assumed zone of an instant as first received. */
  instantProvenance: 'https://fhir.meshd.dev/StructureDefinition/instant-provenance',
  /** On MessageHeader: the source's own event label ("SIU^S12"). */
  sourceEvent: 'https://fhir.meshd.dev/StructureDefinition/source-event',
  /** On MessageHeader: when the event was recorded (EVN-2), if distinct from Bundle.timestamp. */
  recordedAt: 'https://fhir.meshd.dev/StructureDefinition/recorded-at',
  /** On Appointment: v2 filler status as received (SCH-25). */
  fillerStatus: 'https://fhir.meshd.dev/StructureDefinition/filler-status',
  /** On a primitive's `_element`: the value was filled in because R4 requires one (not in the source). */
  defaulted: 'https://fhir.meshd.dev/StructureDefinition/defaulted',
  /** Identifier type for a booking reference (no v2-0203 code exists). */
  identifierType: 'https://fhir.meshd.dev/CodeSystem/identifier-type',
  /** meta.tag carrying the event kind on bare resources (options.output = 'resources'). */
  eventTag: SYSTEM.meshdEvent,
} as const;
