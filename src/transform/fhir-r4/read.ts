/**
 * FHIR R4 (UK Core) JSON → canonical records. Reads bare Patient/Appointment resources,
 * message Bundles (MessageHeader first, as BaRS sends them), collection/batch/transaction
 * Bundles, and Bundles of message Bundles (one message each). STU3 is refused.
 */
import { readAll, type ReadContext, type ReadResult, type TransformIssue } from '../format';
import {
  APPOINTMENT_EVENTS,
  type Address,
  REGISTRATION_EVENTS,
  localSystem,
  type Appointment,
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
  type NhsNumberVerification,
  type Patient,
  type Period,
  type Practitioner,
  type RegistrationEventKind,
  hasPatientIdentity,
} from '../model';
import { normaliseNhsNumber } from '../nhs-number';
import { parseIsoDateTime } from '../time';
import { ResourceIndex, referenceType, type Located } from './resolve';
import { EXTENSION, MESHD, RETIRED_VERIFICATION_CODES, SYSTEM, VERIFICATION_CODES } from './uk-core';
import { codeIssues, findStu3, normaliseSystem, segmentPath, structuralIssues } from './validate';
import { FhirXmlError, fhirXmlToJson } from './xml';

type Json = Record<string, any>;

const TELECOM_SYSTEMS: unknown[] = ['phone', 'fax', 'email', 'pager', 'url', 'sms', 'other'];

/** Local identifier system for literal FHIR references kept as identifiers (basedOn, slot). */
export const REFERENCE_SYSTEM = localSystem('fhir-reference');

class MessageReader {
  readonly errors: TransformIssue[] = [];
  readonly notes: TransformIssue[] = [];
  private readonly noted = new Set<string>();

  constructor(
    readonly index: number,
    readonly resources: ResourceIndex,
  ) {}

  error(position: string, text: string, field?: string, code = 'FHIR_INVALID'): void {
    this.errors.push({ code, message: this.index, position, field: field ?? lastSegment(position), text });
  }

  note(position: string, text: string, code = 'FIELD_DROPPED'): void {
    const key = `${code}|${position}|${text}`;
    if (this.noted.has(key)) return;
    this.noted.add(key);
    this.notes.push({ code, message: this.index, position, field: lastSegment(position), text });
  }

  // ------------------------------------------------------------ primitives

  instant(value: unknown, meta: Json | undefined, path: string): Instant | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== 'string') {
      this.error(path, 'is not a date/time string');
      return undefined;
    }
    const r = parseIsoDateTime(value);
    if (!r.ok) {
      this.error(path, r.text);
      return undefined;
    }
    const prov = findExt(meta?.extension, MESHD.instantProvenance);
    if (!prov) return r.instant;
    return applyProvenance(r.instant, prov);
  }

  coding(c: Json | undefined): Code | undefined {
    if (!c || typeof c.code !== 'string') return undefined;
    const out: Code = { system: typeof c.system === 'string' ? c.system : '', code: c.code };
    if (typeof c.display === 'string') out.display = c.display;
    return out;
  }

  codedText(cc: Json | undefined): CodedText | undefined {
    if (!cc || typeof cc !== 'object') return undefined;
    const coding = arr(cc.coding)
      .map((c) => this.coding(c))
      .filter((c): c is Code => c !== undefined);
    const out: CodedText = {};
    if (coding.length > 0) out.coding = coding;
    if (typeof cc.text === 'string') out.text = cc.text;
    return out.coding || out.text ? out : undefined;
  }

  identifier(id: Json | undefined, path: string): Identifier | undefined {
    if (!id || typeof id.value !== 'string') return undefined;
    const system = normaliseSystem(typeof id.system === 'string' ? id.system : undefined);
    if (typeof id.system === 'string' && system !== id.system) this.note(`${path}.system`, 'misspelt NHS identifier system normalised to the exact UK Core URL', 'FHIR_SYSTEM_NORMALISED');
    const out: Identifier = { system: system ?? localSystem(undefined), value: id.value };
    const type = arr(id.type?.coding).find((c) => typeof c?.code === 'string');
    if (type) out.type = type.code;
    const assigner = typeof id.assigner?.display === 'string' ? id.assigner.display : id.assigner?.identifier?.value;
    if (typeof assigner === 'string') out.assigner = assigner;
    return out;
  }

  name(n: Json | undefined): HumanName | undefined {
    if (!n || typeof n !== 'object') return undefined;
    const out: HumanName = {};
    if (typeof n.use === 'string') out.use = n.use;
    if (typeof n.family === 'string') out.family = n.family;
    const given = strings(n.given);
    if (given.length) out.given = given;
    const prefix = strings(n.prefix);
    if (prefix.length) out.prefix = prefix;
    const suffix = strings(n.suffix);
    if (suffix.length) out.suffix = suffix;
    if (typeof n.text === 'string' && n.text.trim()) out.text = n.text;
    const period = readPeriod(n.period);
    if (period) out.period = period;
    return Object.keys(out).length > 0 ? out : undefined;
  }

  // ------------------------------------------------------------ resources

  practitioner(loc: Located): Practitioner {
    const r = loc.resource;
    const identifiers = arr(r.identifier)
      .map((id, i) => this.identifier(id, `${loc.path}.identifier[${i}]`))
      .filter((x): x is Identifier => x !== undefined);
    const out: Practitioner = { identifiers };
    const name = this.name(arr(r.name)[0]);
    if (name) out.name = name;
    if (arr(r.name).length > 1) this.note(`${loc.path}.name`, 'only the first practitioner name is kept');
    return out;
  }

  organization(loc: Located): { identifiers: Identifier[]; name?: string } {
    const r = loc.resource;
    const identifiers = arr(r.identifier)
      .map((id, i) => this.identifier(id, `${loc.path}.identifier[${i}]`))
      .filter((x): x is Identifier => x !== undefined);
    return typeof r.name === 'string' ? { identifiers, name: r.name } : { identifiers };
  }

  patient(loc: Located): Patient {
    const r = loc.resource;
    const p: Patient = { identifiers: [] };
    arr(r.identifier).forEach((id: Json, i) => {
      const path = `${loc.path}.identifier[${i}]`;
      const ident = this.identifier(id, path);
      if (!ident) return;
      if (ident.system === SYSTEM.nhsNumber) {
        if (p.nhsNumber !== undefined) return;
        p.nhsNumber = normaliseNhsNumber(ident.value);
        const status = this.verification(id, path);
        if (status) p.nhsNumberVerification = status;
        return;
      }
      p.identifiers.push(ident);
    });
    const names = arr(r.name)
      .map((n) => this.name(n))
      .filter((n): n is HumanName => n !== undefined);
    if (names.length) p.names = names;
    if (typeof r.birthDate === 'string') p.birthDate = r.birthDate;
    const birthTime = findExt(r._birthDate?.extension, EXTENSION.birthTime);
    if (birthTime) {
      const t = this.instant(birthTime.valueDateTime, birthTime._valueDateTime, `${loc.path}.birthDate.extension`);
      if (t) p.birthTime = t;
    }
    if (typeof r.gender === 'string') p.gender = r.gender as Gender;
    const addresses = arr(r.address).map((a: Json) => {
      const out: Address = {};
      if (typeof a.use === 'string') out.use = a.use;
      const lines = strings(a.line);
      if (lines.length) out.lines = lines;
      if (typeof a.city === 'string') out.city = a.city;
      if (typeof a.district === 'string') out.district = a.district;
      if (typeof a.postalCode === 'string') out.postalCode = a.postalCode;
      if (typeof a.country === 'string') out.country = a.country;
      if (typeof a.text === 'string' && a.text.trim()) out.text = a.text;
      const period = readPeriod(a.period);
      if (period) out.period = period;
      return out;
    });
    if (addresses.length) p.addresses = addresses;
    const telecom = arr(r.telecom)
      .filter((t: Json) => typeof t?.value === 'string' && TELECOM_SYSTEMS.includes(t?.system))
      .map((t: Json) => {
        const out: ContactPoint = { system: t.system, value: t.value };
        if (typeof t.use === 'string') out.use = t.use;
        const period = readPeriod(t.period);
        if (period) out.period = period;
        return out;
      });
    if (telecom.length) p.telecom = telecom;
    arr(r.generalPractitioner).forEach((ref: Json, i) => this.generalPractitioner(p, ref, loc, `${loc.path}.generalPractitioner[${i}]`));
    if (r.active === false) this.note(`${loc.path}.active`, 'the record is marked inactive (active: false); the canonical model has no such flag, so the target cannot show it', 'FHIR_PATIENT_INACTIVE');
    for (const ext of arr(r.extension)) {
      if (ext?.url === EXTENSION.nhsCommunication && findExt(ext.extension, 'interpreterRequired')?.valueBoolean === true) {
        this.note(`${loc.path}.extension`, 'the patient needs an interpreter (NHSCommunication interpreterRequired); the canonical model cannot carry it: tell the receiver another way', 'FHIR_INTERPRETER_REQUIRED');
      } else if (ext?.url === EXTENSION.deathNotificationStatus) {
        this.note(`${loc.path}.extension`, 'death notification status (informal / formal / removed) is not carried: only deceased and the date of death are', 'FHIR_DEATH_NOTIFICATION_NOT_CARRIED');
      } else if (ext?.url !== EXTENSION.ethnicCategory) {
        this.note(`${loc.path}.extension`, `extension not carried by the canonical model: ${String(ext?.url).slice(0, 120)}`);
      }
      if (ext?.url === EXTENSION.ethnicCategory) {
        const c = this.coding(arr(ext.valueCodeableConcept?.coding)[0]);
        if (c) {
          if (c.system === SYSTEM.ethnicOld) {
            c.system = SYSTEM.ethnicEngland;
            this.note(`${loc.path}.extension`, 'ethnic category system UKCore-EthnicCategory read as UKCore-EthnicCategoryEngland', 'FHIR_SYSTEM_NORMALISED');
          }
          p.ethnicCategory = c;
        }
      }
    }
    if (typeof r.deceasedBoolean === 'boolean') p.deceased = r.deceasedBoolean;
    if (r.deceasedDateTime !== undefined) {
      const at = this.instant(r.deceasedDateTime, r._deceasedDateTime, `${loc.path}.deceasedDateTime`);
      if (at) {
        p.deceased = true;
        p.deceasedAt = at;
      }
    }
    const security = arr(r.meta?.security).find((s: Json) => s?.system === SYSTEM.confidentiality && (s.code === 'R' || s.code === 'V'));
    if (security) p.restricted = security.code;
    const merged: Identifier[] = [];
    arr(r.link).forEach((l: Json, i) => {
      if (l?.type === 'seealso' || l?.type === 'refer') this.note(`${loc.path}.link[${i}]`, `a ${String(l.type)} link to another patient record is not carried`, 'FHIR_LINK_NOT_CARRIED');
      if (l?.type !== 'replaces') return;
      const path = `${loc.path}.link[${i}].other`;
      const target = this.resources.resolve(l.other, loc);
      if (target) {
        for (const [j, id] of arr(target.resource.identifier).entries()) {
          const ident = this.identifier(id, `${target.path}.identifier[${j}]`);
          if (ident) merged.push(ident);
        }
      } else {
        const ident = this.identifier(l.other?.identifier, `${path}.identifier`);
        if (ident) merged.push(ident);
        else this.note(path, 'merged record reference has no identifier and is not in this message');
      }
    });
    if (merged.length) p.mergedFrom = merged;
    for (const k of ['contact', 'communication', 'maritalStatus', 'multipleBirthInteger', 'multipleBirthBoolean', 'photo', 'managingOrganization']) {
      if (r[k] !== undefined) this.note(`${loc.path}.${k}`, 'not carried by the canonical model');
    }
    return p;
  }

  private verification(id: Json, path: string): NhsNumberVerification | undefined {
    const ext = findExt(id.extension, EXTENSION.nhsNumberVerification);
    if (!ext) return undefined;
    for (const c of arr(ext.valueCodeableConcept?.coding)) {
      if (c?.system !== SYSTEM.verificationEngland && c?.system !== SYSTEM.verificationRetired) continue;
      const code = RETIRED_VERIFICATION_CODES[c.code] ?? c.code;
      if ((VERIFICATION_CODES as readonly string[]).includes(code)) {
        if (c.system !== SYSTEM.verificationEngland) this.note(`${path}.extension`, 'retired NHS number verification system read as UKCore-NHSNumberVerificationStatusEngland', 'FHIR_SYSTEM_NORMALISED');
        return code as NhsNumberVerification;
      }
    }
    this.error(`${path}.extension`, 'NHS number verification status is not a known code (01–08)', 'patient.nhsNumberVerification');
    return undefined;
  }

  private generalPractitioner(p: Patient, ref: Json, owner: Located, path: string): void {
    const target = this.resources.resolve(ref, owner);
    const type = target?.resource.resourceType ?? referenceType(ref);
    if (type === 'Organization') {
      const ids = target ? this.organization(target).identifiers : [];
      const logical = this.identifier(ref.identifier, `${path}.identifier`);
      const ods = [...ids, ...(logical ? [logical] : [])].find((i) => i.system === SYSTEM.odsOrganization);
      if (!ods) {
        this.note(path, 'registered practice has no ODS organisation code');
        return;
      }
      p.gpPractice = ods.value;
      const name = typeof target?.resource.name === 'string' ? target.resource.name : typeof ref.display === 'string' ? ref.display : undefined;
      if (name) p.gpPracticeName = name;
    } else if (type === 'Practitioner') {
      if (target) p.generalPractitioner = this.practitioner(target);
      else {
        const ident = this.identifier(ref.identifier, `${path}.identifier`);
        if (ident) p.generalPractitioner = { identifiers: [ident] };
        else this.note(path, 'registered GP reference is not in this message');
      }
    } else {
      this.note(path, 'general practitioner reference of an unsupported type');
    }
  }

  appointment(loc: Located): { appointment: Appointment; patient?: Patient } {
    const r = loc.resource;
    const a: Appointment = { status: r.status as AppointmentStatus };
    const untyped: Identifier[] = [];
    arr(r.identifier).forEach((id: Json, i) => {
      const ident = this.identifier(id, `${loc.path}.identifier[${i}]`);
      if (!ident) return;
      const typeSystem = arr(id.type?.coding)[0]?.system;
      if (ident.type === 'PLAC' && !a.placerId) a.placerId = ident;
      else if (ident.type === 'FILL' && !a.fillerId) a.fillerId = ident;
      else if (ident.type === 'booking-reference' && typeSystem === MESHD.identifierType && !a.bookingReference) {
        delete ident.type;
        a.bookingReference = ident;
      } else untyped.push(ident);
    });
    // An identifier without PLAC/FILL type is the sender's own id: the best ledger key we have.
    for (const ident of untyped) {
      if (!a.fillerId) a.fillerId = { ...ident, type: 'FILL' };
      else if (!a.bookingReference) a.bookingReference = ident;
      else this.note(`${loc.path}.identifier`, 'more identifiers than placer, filler and booking reference; extras dropped');
    }
    if (!a.fillerId && !a.placerId && typeof r.id === 'string') {
      a.fillerId = { system: localSystem('fhir-id'), value: r.id, type: 'FILL' };
      this.note(`${loc.path}.id`, 'Appointment has no identifier; its resource id is used as the filler id', 'FHIR_ID_AS_IDENTIFIER');
    } else if (!a.fillerId && !a.placerId && loc.fullUrl) {
      // BaRS sends Appointments with neither identifier nor id: the entry's fullUrl is all that names it.
      a.fillerId = { system: 'urn:ietf:rfc:3986', value: loc.fullUrl, type: 'FILL' };
      this.note(`${loc.path}`, 'Appointment has no identifier or id; its Bundle entry fullUrl is used as the filler id', 'FHIR_ID_AS_IDENTIFIER');
    }
    const filler = findExt(r.extension, MESHD.fillerStatus);
    if (typeof filler?.valueString === 'string') a.fillerStatus = filler.valueString;
    const start = this.instant(r.start, r._start, `${loc.path}.start`);
    if (start) a.start = start;
    const end = this.instant(r.end, r._end, `${loc.path}.end`);
    if (end) a.end = end;
    if (typeof r.minutesDuration === 'number') a.minutesDuration = r.minutesDuration;
    const serviceTypes = arr(r.serviceType)
      .map((s) => this.codedText(s))
      .filter((s): s is CodedText => s !== undefined);
    if (serviceTypes.length) a.serviceTypes = serviceTypes;
    const specialty = this.codedText(arr(r.specialty)[0]);
    if (specialty) a.specialty = specialty;
    if (arr(r.specialty).length > 1) this.note(`${loc.path}.specialty`, 'only the first specialty is kept');
    const type = this.codedText(r.appointmentType);
    if (type) a.appointmentType = type;
    const reason = this.codedText(arr(r.reasonCode)[0]);
    if (reason) a.reason = reason;
    else if (typeof arr(r.reasonReference)[0]?.display === 'string') a.reason = { text: r.reasonReference[0].display };
    if (arr(r.reasonCode).length > 1) this.note(`${loc.path}.reasonCode`, 'only the first reason is kept');
    const cancel = this.codedText(r.cancelationReason);
    if (cancel) a.cancellationReason = cancel;
    if (typeof r.comment === 'string') a.comment = r.comment;
    if (typeof r.priority === 'number') a.priority = r.priority;
    for (const ext of arr(r.extension)) {
      if (ext?.url === EXTENSION.deliveryChannel) {
        const c = arr(ext.valueCodeableConcept?.coding).find((x: Json) => typeof x?.code === 'string');
        if (c) a.deliveryChannel = c.code;
      } else if (ext?.url === EXTENSION.bookingOrganization) {
        const target = this.resources.resolve(ext.valueReference, loc);
        if (target) a.organization = this.organization(target);
        else {
          const ident = this.identifier(ext.valueReference?.identifier, `${loc.path}.extension.valueReference.identifier`);
          if (ident) a.organization = { identifiers: [ident] };
          else this.note(`${loc.path}.extension`, 'booking organisation is not in this message');
        }
      }
    }
    const slotRef = arr(r.slot)[0];
    if (slotRef) {
      const target = this.resources.resolve(slotRef, loc);
      const slot: NonNullable<Appointment['slot']> = {};
      const sid = target ? arr(target.resource.identifier)[0]?.value ?? target.resource.id : slotRef.identifier?.value;
      if (typeof sid === 'string') slot.id = sid;
      else if (typeof slotRef.reference === 'string' && !slotRef.reference.startsWith('urn:')) slot.id = slotRef.reference.replace(/^.*\//, '');
      if (target) {
        const s = this.instant(target.resource.start, target.resource._start, `${target.path}.start`);
        const e = this.instant(target.resource.end, target.resource._end, `${target.path}.end`);
        if (s) slot.start = s;
        if (e) slot.end = e;
      }
      if (Object.keys(slot).length) a.slot = slot;
    }
    const basedOn: Identifier[] = [];
    arr(r.basedOn).forEach((ref: Json, i) => {
      const target = this.resources.resolve(ref, loc);
      const ident = this.identifier(target ? arr(target.resource.identifier)[0] : ref.identifier, `${loc.path}.basedOn[${i}]`);
      if (ident) basedOn.push(ident);
      else if (typeof ref.reference === 'string' && !ref.reference.startsWith('urn:') && !ref.reference.startsWith('#')) basedOn.push({ system: REFERENCE_SYSTEM, value: ref.reference });
      else this.note(`${loc.path}.basedOn[${i}]`, 'referral reference has no identifier');
    });
    if (basedOn.length) a.basedOn = basedOn;
    let patient: Patient | undefined;
    arr(r.participant).forEach((part: Json, i) => {
      const path = `${loc.path}.participant[${i}]`;
      const target = this.resources.resolve(part.actor, loc);
      let type = target?.resource.resourceType ?? referenceType(part.actor);
      const defaulted = findExt(part._status?.extension, MESHD.defaulted)?.valueBoolean === true;
      const status = typeof part.status === 'string' && !defaulted ? part.status : undefined;
      if (type === undefined && !patient && part.type === undefined && literalReference(part.actor)) {
        // BaRS points at the patient by a bare urn:uuid; a participant without a role is the patient.
        type = 'Patient';
        this.note(`${path}.actor`, 'participant reference of unknown type and no role read as the patient', 'FHIR_ASSUMED_PATIENT');
      }
      if (type === 'Patient') {
        if (patient) {
          this.note(`${path}.actor`, 'the appointment names a second patient; only the first is carried (the canonical appointment has one patient)', 'FHIR_PATIENT_DROPPED');
          return;
        }
        if (target) patient = this.patient(target);
        else {
          const ident = this.identifier(part.actor?.identifier, `${path}.actor.identifier`);
          const literal = literalReference(part.actor);
          if (ident && !patient) patient = ident.system === SYSTEM.nhsNumber ? { identifiers: [], nhsNumber: normaliseNhsNumber(ident.value) } : { identifiers: [ident] };
          else if (literal && !patient) {
            patient = { identifiers: [literal] };
            this.note(`${path}.actor`, 'patient resource is not in this message: only its reference is kept', 'FHIR_UNRESOLVED_REFERENCE');
          }
        }
      } else if (type === 'Practitioner' || type === 'PractitionerRole') {
        let who = target;
        if (target?.resource.resourceType === 'PractitionerRole') who = this.resources.resolve(target.resource.practitioner, target);
        const pr = who ? this.practitioner(who) : this.logicalPractitioner(part.actor, path);
        if (!pr) return;
        const role = this.codedText(arr(part.type)[0]);
        const entry = { ...pr, ...(role ? { role } : {}), ...(status ? { status: status as any } : {}) };
        (a.practitioners ??= []).push(entry);
      } else if (type === 'Location') {
        const base = target ? this.location(target) : this.logicalLocation(part.actor, path);
        if (!base) return;
        (a.locations ??= []).push({ ...base, ...(status ? { status: status as any } : {}) });
      } else if (part.actor !== undefined) {
        this.note(`${path}.actor`, `participant of type ${type ?? 'unknown'} is not carried by the canonical model`);
      }
    });
    for (const k of ['description', 'patientInstruction', 'serviceCategory', 'created', 'supportingInformation', 'requestedPeriod']) {
      if (r[k] !== undefined) this.note(`${loc.path}.${k}`, 'not carried by the canonical model');
    }
    if (!hasPatientIdentity(patient)) {
      this.error(`${loc.path}.participant`, 'names no patient identified by an NHS number, a local identifier with its system, or a reference: the appointment could match the wrong patient', 'patient', 'FHIR_NO_PATIENT_IDENTITY');
    }
    if (start && end && Date.parse(end.utc) < Date.parse(start.utc)) this.error(`${loc.path}.end`, 'is before the start', 'end', 'FHIR_END_BEFORE_START');
    else if (start && end && typeof r.minutesDuration === 'number' && r.minutesDuration !== (Date.parse(end.utc) - Date.parse(start.utc)) / 60_000) {
      this.note(`${loc.path}.minutesDuration`, 'does not match start and end; all three kept as sent', 'FHIR_DURATION_MISMATCH');
    }
    return patient ? { appointment: a, patient } : { appointment: a };
  }

  /**
   * A Patient whose `link` says `replaced-by` is the superseded record of a merge: read as
   * the merge (survivor = the link target, merged from = this record). Undefined when there is
   * no such link; an error when the survivor cannot be identified.
   */
  supersededBy(loc: Located, old: Patient): Patient | undefined {
    const links = arr(loc.resource.link).filter((l: Json) => l?.type === 'replaced-by');
    if (links.length === 0) return undefined;
    const path = `${loc.path}.link[${arr(loc.resource.link).indexOf(links[0])}].other`;
    if (links.length > 1) this.error(path, 'the record is replaced by more than one other record: which one survives is unclear', 'link', 'FHIR_AMBIGUOUS_MERGE');
    const target = this.resources.resolve(links[0].other, loc);
    const survivor: Patient = { identifiers: [] };
    const ids = target
      ? arr(target.resource.identifier).map((id, j) => this.identifier(id, `${target.path}.identifier[${j}]`))
      : [this.identifier(links[0].other?.identifier, `${path}.identifier`)];
    for (const id of ids) {
      if (!id) continue;
      if (id.system === SYSTEM.nhsNumber) survivor.nhsNumber ??= normaliseNhsNumber(id.value);
      else survivor.identifiers.push(id);
    }
    if (!hasPatientIdentity(survivor)) {
      this.error(path, 'the record is replaced by another that this message does not identify (no NHS number or identifier): the merge cannot be written', 'link', 'FHIR_MERGE_TARGET_UNKNOWN');
      return undefined;
    }
    const oldNhs = typeof old.nhsNumber === 'string' ? [{ system: SYSTEM.nhsNumber, value: old.nhsNumber }] : [];
    survivor.mergedFrom = [...oldNhs, ...old.identifiers];
    if (survivor.mergedFrom.length === 0) {
      this.error(loc.path, 'the superseded record has no identifier to merge from', 'identifier', 'FHIR_MERGE_TARGET_UNKNOWN');
      return undefined;
    }
    this.note(path, "read as a merge: the survivor is the link target, this record's identifiers are the merged-from ones; this record's other details are not sent (they are superseded)", 'FHIR_SUPERSEDED_AS_MERGE');
    return survivor;
  }

  private logicalPractitioner(ref: Json | undefined, path: string): Practitioner | undefined {
    return this.logical(ref, path, 'practitioner');
  }

  private logicalLocation(ref: Json | undefined, path: string): { identifiers: Identifier[]; name?: string } | undefined {
    return this.logical(ref, path, 'location');
  }

  /** A participant whose resource is not in the message: its logical identifier, else its literal reference. */
  private logical(ref: Json | undefined, path: string, what: string): { identifiers: Identifier[] } | undefined {
    const ident = this.identifier(ref?.identifier, `${path}.actor.identifier`);
    if (ident) return { identifiers: [ident] };
    const literal = literalReference(ref);
    this.note(`${path}.actor`, literal ? `${what} resource is not in this message: only its reference is kept` : `${what} reference is not in this message`, 'FHIR_UNRESOLVED_REFERENCE');
    return literal ? { identifiers: [literal] } : undefined;
  }

  private location(loc: Located): { identifiers: Identifier[]; name?: string; type?: Code } {
    const base = this.organization(loc);
    const type = this.coding(arr(arr(loc.resource.type)[0]?.coding)[0]);
    return type ? { ...base, type } : base;
  }

  messageInfo(header: Located | undefined, bundle: Json | undefined, bundlePath: string): MessageInfo {
    const info: MessageInfo = {};
    if (bundle) {
      const id = typeof bundle.identifier?.value === 'string' ? bundle.identifier.value : typeof bundle.id === 'string' ? bundle.id : undefined;
      if (id) info.messageId = id;
      const sent = this.instant(bundle.timestamp, bundle._timestamp, `${bundlePath}.timestamp`);
      if (sent) info.sentAt = sent;
    }
    if (!header) return info;
    const h = header.resource;
    const sender: NonNullable<MessageInfo['sender']> = {};
    if (typeof h.source?.name === 'string') sender.application = h.source.name;
    const senderOrg = this.partyOrganization(h.sender, header);
    if (senderOrg) sender.organization = senderOrg;
    if (Object.keys(sender).length) info.sender = sender;
    const dest = arr(h.destination)[0];
    if (dest) {
      const receiver: NonNullable<MessageInfo['receiver']> = {};
      if (typeof dest.name === 'string') receiver.application = dest.name;
      const org = this.partyOrganization(dest.receiver, header);
      if (org) receiver.organization = org;
      if (Object.keys(receiver).length) info.receiver = receiver;
    }
    const source = findExt(h.extension, MESHD.sourceEvent);
    if (typeof source?.valueString === 'string') info.sourceEvent = source.valueString;
    else if (typeof h.eventCoding?.code === 'string' && h.eventCoding.system !== SYSTEM.meshdEvent) info.sourceEvent = h.eventCoding.code;
    const recorded = findExt(h.extension, MESHD.recordedAt);
    if (recorded) {
      const at = this.instant(recorded.valueDateTime, recorded._valueDateTime, `${header.path}.extension`);
      if (at) info.recordedAt = at;
    }
    return info;
  }

  private partyOrganization(ref: Json | undefined, owner: Located): string | undefined {
    if (!ref) return undefined;
    const target = this.resources.resolve(ref, owner);
    const ids = target ? this.organization(target).identifiers : [];
    const logical = this.identifier(ref.identifier, `${owner.path}.sender.identifier`);
    if (logical) ids.push(logical);
    return (ids.find((i) => i.system === SYSTEM.odsOrganization) ?? ids[0])?.value;
  }
}

// ------------------------------------------------------------ event kinds

const V2_EVENTS: Readonly<Record<string, AppointmentEventKind | RegistrationEventKind>> = {
  S12: 'book', S13: 'reschedule', S14: 'modify', S15: 'cancel', S16: 'discontinue', S17: 'delete', S26: 'noshow',
  A04: 'register', A28: 'register', A01: 'update', A08: 'update', A31: 'update', A40: 'merge', A29: 'delete-person',
};

const STATUS_EVENTS: Readonly<Record<AppointmentStatus, AppointmentEventKind>> = {
  proposed: 'book', pending: 'book', booked: 'book', waitlist: 'book',
  arrived: 'modify', 'checked-in': 'modify', fulfilled: 'modify',
  cancelled: 'cancel', noshow: 'noshow', 'entered-in-error': 'delete',
};

/** The event the message or resource states: meshd code, v2 trigger, BaRS reason. */
function statedEvent(header: Json | undefined, resource: Json): string | undefined {
  const tag = arr(resource.meta?.tag).find((t: Json) => t?.system === SYSTEM.meshdEvent);
  if (typeof tag?.code === 'string') return tag.code;
  const ev = header?.eventCoding;
  if (ev?.system === SYSTEM.meshdEvent && typeof ev.code === 'string') return ev.code;
  if (ev?.system === SYSTEM.v2Event && typeof ev.code === 'string') return V2_EVENTS[ev.code];
  if (ev?.system === SYSTEM.barsEvent) {
    const reason = arr(header?.reason?.coding).find((c: Json) => c?.system === SYSTEM.barsReason)?.code;
    if (reason === 'update') return 'modify';
    if (reason === 'cancel' || reason === 'cancelled') return 'cancel';
  }
  return undefined;
}

function appointmentEvent(stated: string | undefined, status: AppointmentStatus, method: string | undefined): AppointmentEventKind {
  if (stated && (APPOINTMENT_EVENTS as readonly string[]).includes(stated)) return stated as AppointmentEventKind;
  if (method === 'DELETE') return 'delete';
  return STATUS_EVENTS[status] ?? 'modify';
}

function registrationEvent(stated: string | undefined, patient: Patient, method: string | undefined): RegistrationEventKind {
  if (stated && (REGISTRATION_EVENTS as readonly string[]).includes(stated)) return stated as RegistrationEventKind;
  if (patient.mergedFrom?.length) return 'merge';
  if (method === 'POST') return 'register';
  if (method === 'DELETE') return 'delete-person';
  return 'update';
}

// ------------------------------------------------------------ messages

export interface MessageUnit {
  root: Json;
  path: string;
}

const RECORD_TYPES = new Set(['Patient', 'Appointment']);

/** The messages of a FHIR document: each message Bundle of a Bundle of them, else the document itself. */
export function splitMessages(doc: Json): MessageUnit[] {
  if (doc.resourceType === 'Bundle' && doc.type !== 'message') {
    const inner = arr(doc.entry).map((e: Json) => e?.resource);
    if (inner.length > 0 && inner.every((r: Json) => r?.resourceType === 'Bundle' && r.type === 'message')) {
      return inner.map((r: Json, i) => ({ root: r, path: `Bundle.entry[${i}].resource` }));
    }
  }
  return [{ root: doc, path: typeof doc.resourceType === 'string' ? doc.resourceType : 'resource' }];
}

function readMessage(unit: MessageUnit, index: number, light: boolean): { records: CanonicalRecord[]; errors: TransformIssue[]; notes: TransformIssue[] } {
  const resources = new ResourceIndex();
  const reader = new MessageReader(index, resources);
  const { root, path } = unit;
  if (typeof root.resourceType !== 'string') {
    reader.error(path, 'is not a FHIR resource (no resourceType)', 'resourceType');
    return { records: [], errors: reader.errors, notes: reader.notes };
  }
  const stu3 = findStu3(root, path);
  if (stu3) {
    reader.error(stu3, 'is FHIR STU3 (e.g. GP Connect / Care Connect), not R4: STU3 payloads are refused, convert them to R4 first', 'fhirVersion', 'STU3_REFUSED');
    return { records: [], errors: reader.errors, notes: reader.notes };
  }
  if (!light) for (const i of structuralIssues(root, path)) reader.error(i.path, i.text);

  let header: Located | undefined;
  const bundle = root.resourceType === 'Bundle' ? root : undefined;
  if (bundle) {
    arr(bundle.entry).forEach((e: Json, i) => {
      if (!e?.resource || typeof e.resource !== 'object') return;
      const loc: Located = { resource: e.resource, path: `${path}.entry[${i}].resource`, ...(typeof e.request?.method === 'string' ? { method: e.request.method } : {}) };
      resources.add(loc, typeof e.fullUrl === 'string' ? e.fullUrl : undefined);
    });
    header = resources.all.find((l) => l.resource.resourceType === 'MessageHeader');
  } else {
    resources.add({ resource: root, path });
  }
  // Our code checks repeat some of the schema's required bindings: one error per position.
  const reported = new Set(reader.errors.map((e) => e.position));
  for (const loc of resources.all) for (const i of codeIssues(loc.resource, loc.path)) if (!reported.has(i.path)) reader.error(i.path, i.text);
  // R4: a system that does not understand a modifier extension must not process the resource.
  for (const loc of resources.all) {
    for (const at of modifierExtensions(loc.resource, loc.path)) reader.error(at, 'is a modifier extension meshd does not understand: it may change the meaning of the resource, so the message is refused', 'modifierExtension', 'FHIR_MODIFIER_EXTENSION');
  }
  if (reader.errors.length > 0) return { records: [], errors: reader.errors, notes: reader.notes };

  // Focus of a message, else every Appointment, plus Patients no Appointment points at.
  let focus: Located[] = [];
  if (header && bundle?.type === 'message') {
    focus = arr(header.resource.focus)
      .map((f: Json) => resources.resolve(f, header))
      .filter((l): l is Located => l !== undefined && RECORD_TYPES.has(l.resource.resourceType));
  }
  if (focus.length === 0) {
    const appointments = resources.all.filter((l) => l.resource.resourceType === 'Appointment');
    const used = new Set<Json>();
    for (const a of appointments) for (const p of arr(a.resource.participant)) {
      const t = resources.resolve(p?.actor, a);
      if (t) used.add(t.resource);
    }
    focus = resources.all.filter((l) => l.resource.resourceType === 'Appointment' || (l.resource.resourceType === 'Patient' && !used.has(l.resource)));
  }
  const message = reader.messageInfo(header, bundle, path);
  const records: CanonicalRecord[] = [];
  for (const loc of focus) {
    const stated = statedEvent(header?.resource, loc.resource);
    if (loc.resource.resourceType === 'Appointment') {
      const { appointment, patient } = reader.appointment(loc);
      const event = appointmentEvent(stated, appointment.status, loc.method);
      records.push({ kind: 'appointment', event, message: copyPlain(message), appointment, ...(patient ? { patient } : {}) });
    } else {
      const patient = reader.patient(loc);
      const survivor = reader.supersededBy(loc, patient);
      if (survivor) records.push({ kind: 'registration', event: 'merge', message: copyPlain(message), patient: survivor });
      else records.push({ kind: 'registration', event: registrationEvent(stated, patient, loc.method), message: copyPlain(message), patient });
    }
  }
  if (records.length === 0) {
    reader.note(path, `a ${String(root.resourceType)} carries no Patient or Appointment: nothing to convert`, 'FHIR_NO_RECORDS');
  } else {
    const ignored = [...new Set(resources.all.map((l) => l.resource.resourceType).filter((t) => !['MessageHeader', 'Patient', 'Appointment', 'Practitioner', 'PractitionerRole', 'Location', 'Organization', 'Slot'].includes(t)))];
    if (ignored.length) reader.note(path, `entries not carried by the canonical model were ignored: ${ignored.sort().join(', ')}`);
  }
  if (reader.errors.length > 0) return { records: [], errors: reader.errors, notes: reader.notes };
  return { records, errors: [], notes: reader.notes };
}

/** Reads FHIR R4 JSON (or XML, converted to JSON first). Options: `validate: 'light'` skips the structural validator (faster). */
export function readFhirR4(input: Buffer, ctx?: ReadContext): ReadResult {
  return readAll(readFhirR4Parts(input, ctx));
}

/**
 * The same a message at a time. The document is parsed whole (JSON.parse), but each message is
 * let go once read, so a large collection's records and Bundles can be collected as the
 * conversion goes rather than all held to its end.
 */
export function* readFhirR4Parts(input: Buffer, ctx?: ReadContext): Generator<ReadResult> {
  let text = input.toString('utf8').replace(/^\uFEFF/, '');
  let doc: unknown;
  if (text.trimStart().startsWith('<')) {
    try {
      doc = fhirXmlToJson(text);
    } catch (err) {
      if (err instanceof FhirXmlError) return yield fail('FHIR_INVALID_XML', `the XML ${err.message}`);
      return yield fail('FHIR_INVALID_XML', 'the XML could not be read as FHIR R4');
    }
  } else {
    try {
      doc = JSON.parse(text);
    } catch (err) {
      const at = /position (\d+)/.exec(String((err as Error).message))?.[1];
      const position = at === undefined ? 'document' : `line ${text.slice(0, Number(at)).split('\n').length}`;
      return yield fail('FHIR_INVALID_JSON', 'is not valid JSON', position);
    }
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return yield fail('FHIR_INVALID', 'the document is not a FHIR resource (expected a JSON object)');
  const light = ctx?.options?.validate === 'light';
  const units: Array<MessageUnit | undefined> = splitMessages(doc as Json);
  // From here only the messages are needed, each until it is read.
  text = '';
  doc = undefined;
  for (let i = 0; i < units.length; i++) {
    const unit = units[i]!;
    units[i] = undefined;
    const r = safely(() => readMessage(unit, i, light), i);
    yield { records: r.records.map((record) => ({ record, message: i })), errors: r.errors, notes: r.notes, messageCount: 1 };
  }
}

/** Last line of defence: a message that trips an unforeseen shape is refused, never crashes the reader. */
function safely(read: () => ReturnType<typeof readMessage>, index: number): ReturnType<typeof readMessage> {
  try {
    return read();
  } catch {
    return { records: [], errors: [{ code: 'FHIR_UNREADABLE', message: index, position: 'message', text: 'has a shape meshd cannot read (not valid FHIR R4); run with validate=full to see where' }], notes: [] };
  }
}

function fail(code: string, text: string, position = 'document'): ReadResult {
  return { records: [], errors: [{ code, message: 0, position, text }], notes: [], messageCount: 1 };
}

// ------------------------------------------------------------ helpers

/** A copy of plain JSON-like data (what structuredClone gives for it, at a fraction of the cost). */
function copyPlain<T>(v: T): T {
  if (Array.isArray(v)) return v.map(copyPlain) as T;
  if (v === null || typeof v !== 'object') return v;
  const out: Json = {};
  for (const k of Object.keys(v)) out[k] = copyPlain((v as Json)[k]);
  return out as T;
}

/** Array elements, without null entries (property access on them would throw). */
function arr(v: unknown): any[] {
  return Array.isArray(v) ? v.filter((x) => x !== null && x !== undefined) : [];
}

function strings(v: unknown): string[] {
  return arr(v).filter((s): s is string => typeof s === 'string');
}

/** A literal reference kept as an identifier (system REFERENCE_SYSTEM) so writers can point at it again. */
function literalReference(ref: Json | undefined): Identifier | undefined {
  const text: unknown = ref?.reference;
  if (typeof text !== 'string' || text.length === 0 || text.startsWith('#')) return undefined;
  return { system: REFERENCE_SYSTEM, value: text };
}

function readPeriod(p: Json | undefined): Period | undefined {
  if (!p || typeof p !== 'object') return undefined;
  const out: Period = {};
  if (typeof p.start === 'string') out.start = p.start;
  if (typeof p.end === 'string') out.end = p.end;
  return out.start || out.end ? out : undefined;
}

/** Paths of every non-empty modifierExtension in a resource (contained and nested elements included). */
function modifierExtensions(node: unknown, path: string): string[] {
  const out: string[] = [];
  // The path below `path` as segments, made into text only for a hit: every node is visited.
  const at: Array<string | number> = [];
  const visit = (n: unknown): void => {
    if (Array.isArray(n)) {
      for (let i = 0; i < n.length; i++) {
        at.push(i);
        visit(n[i]);
        at.pop();
      }
    } else if (n && typeof n === 'object') {
      for (const k of Object.keys(n)) {
        const v: unknown = (n as Json)[k];
        if (k === 'modifierExtension' && Array.isArray(v) && v.length > 0) {
          out.push(segmentPath(path, at) + '.modifierExtension');
        } else {
          at.push(k);
          visit(v);
          at.pop();
        }
      }
    }
  };
  visit(node);
  return out;
}

function findExt(list: unknown, url: string): Json | undefined {
  return arr(list).find((e: Json) => e?.url === url);
}

function lastSegment(path: string): string {
  const m = /([A-Za-z_]+)(?:\[\d+\])?$/.exec(path);
  return m?.[1] ?? path;
}

/** Restores precision and assumed zone recorded by meshd's instant-provenance extension. */
function applyProvenance(inst: Instant, ext: Json): Instant {
  const precision = findExt(ext.extension, 'precision')?.valueCode;
  const assumed = findExt(ext.extension, 'assumedZone')?.valueBoolean;
  const out = { ...inst };
  if (precision === 'hour' && out.local.length >= 13) {
    out.local = out.local.slice(0, 13);
    out.precision = 'hour';
  } else if (precision === 'minute' && out.local.length >= 16) {
    out.local = out.local.slice(0, 16);
    out.precision = 'minute';
  }
  if (assumed === true) out.assumedZone = true;
  return out;
}
