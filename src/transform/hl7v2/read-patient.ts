import {
  CLEARED,
  SYSTEMS,
  localSystem,
  type Address,
  type ContactPoint,
  type Gender,
  type HumanName,
  type Identifier,
  type NhsNumberVerification,
  type Patient,
  type Period,
  type Practitioner,
  type Tri,
} from '../model';
import { isValidNhsNumber, normaliseNhsNumber } from '../nhs-number';
import { dateOfDtm, parseDtm } from './datetime';
import { type Hl7Message, type Segment, position } from './message';
import type { Issues } from './issues';

/** PID/PD1 → canonical Patient (docs/mapping-basis.md, HL7 UK conventions, local variants included). */

const NAME_USE: Record<string, string> = { L: 'official', D: 'usual', M: 'maiden', N: 'nickname', S: 'anonymous', T: 'temp', TEMP: 'temp', BAD: 'old', NOUSE: 'old' };
const ADDRESS_USE: Record<string, string> = { H: 'home', B: 'work', O: 'work', C: 'temp', BA: 'old', BI: 'billing', BDL: 'billing' };
const GENDER: Record<string, Gender> = { M: 'male', F: 'female', U: 'unknown', O: 'other', A: 'other', N: 'other' };
const ETHNIC = /^(?:[A-HJ-NPRSZ]|99)$/;

function isNhsAuthority(cx4: string, cx5: string): boolean {
  const a = cx4.toUpperCase();
  const t = cx5.toUpperCase();
  return a === 'NHS' || (a === '' && (t === 'NH' || t === 'HN'));
}

/** Identifier from an XCN/CX id + authority, mapped to the UK system when the authority is known. */
export function personIdentifier(value: string, authority: string, fallback?: string): Identifier {
  const a = authority.toUpperCase();
  const system =
    a === 'GMC' ? SYSTEMS.gmc
    : a === 'SDS' ? SYSTEMS.sdsUser
    : a === 'GMP' || a === 'GPC' ? SYSTEMS.gmp
    : a === 'NMC' ? SYSTEMS.nmc
    : a === 'GPHC' ? SYSTEMS.gphc
    : a === 'HCPC' ? SYSTEMS.hcpc
    : authority === '' && fallback ? fallback
    : localSystem(authority);
  // National systems need no assigner; local ones keep the authority they came with.
  return system.startsWith('urn:meshd:local:') && authority !== '' ? { system, value, assigner: authority } : { system, value };
}

/** XCN → Practitioner (id, family, given, prefix; authority XCN.9). */
export function readXcn(msg: Hl7Message, rep: string, fallbackSystem?: string): Practitioner | undefined {
  const id = msg.leaf(rep, 1);
  const family = msg.leaf(rep, 2, 1);
  const given = msg.leaf(rep, 3);
  const middle = msg.leaf(rep, 4);
  const prefix = msg.leaf(rep, 6);
  const authority = msg.leaf(rep, 9, 1);
  const universal = msg.leaf(rep, 9, 2);
  if (!id && !family && !given) return undefined;
  // XCN.9 is an HD like CX.4: a URI universal id is the identifier's system.
  const uri = universal !== '' && /^(URI|URL)$/i.test(msg.leaf(rep, 9, 3));
  const ident = uri ? { system: universal, value: id, ...(authority && { assigner: authority }) } : personIdentifier(id, authority, fallbackSystem);
  const p: Practitioner = { identifiers: id ? [ident] : [] };
  const name: HumanName = {};
  if (family) name.family = family;
  const givens = [given, middle].filter((g) => g !== '');
  if (givens.length) name.given = givens;
  if (prefix) name.prefix = [prefix];
  if (Object.keys(name).length) p.name = name;
  return p;
}

function readName(msg: Hl7Message, rep: string): HumanName | undefined {
  const name: HumanName = {};
  const family = msg.leaf(rep, 1, 1);
  const given = [msg.leaf(rep, 2), msg.leaf(rep, 3)].filter((g) => g !== '');
  const suffix = msg.leaf(rep, 4);
  const prefix = msg.leaf(rep, 5);
  const use = NAME_USE[msg.leaf(rep, 7).toUpperCase()];
  if (use) name.use = use;
  if (family) name.family = family;
  if (given.length) name.given = given;
  if (prefix) name.prefix = [prefix];
  if (suffix) name.suffix = [suffix];
  const period = readPeriod(msg, rep, 12);
  if (period) name.period = period;
  return name.family || name.given ? name : undefined;
}

/** Effective and expiry dates at components `from` and `from + 1` (XPN.12/13, XAD.13/14, XTN.13/14). */
function readPeriod(msg: Hl7Message, rep: string, from: number): Period | undefined {
  const start = dateOfDtm(msg.leaf(rep, from));
  const end = dateOfDtm(msg.leaf(rep, from + 1));
  return start || end ? { ...(start && { start }), ...(end && { end }) } : undefined;
}

function readAddress(msg: Hl7Message, rep: string): Address | undefined {
  const a: Address = {};
  const street = msg.subs(rep, 1).filter((s) => s !== '').join(' ');
  // XAD.8 "other geographic designation" holds the lines beyond two (meshd's writer puts them there).
  const lines = [street, msg.leaf(rep, 2), ...msg.subs(rep, 8)].filter((l) => l !== '');
  if (lines.length) a.lines = lines;
  const city = msg.leaf(rep, 3);
  const district = msg.leaf(rep, 4);
  const postalCode = msg.leaf(rep, 5);
  const country = msg.leaf(rep, 6);
  const use = ADDRESS_USE[msg.leaf(rep, 7).toUpperCase()];
  if (use) a.use = use;
  if (city) a.city = city;
  if (district) a.district = district;
  if (postalCode) a.postalCode = postalCode;
  if (country) a.country = country;
  const period = readPeriod(msg, rep, 13);
  if (period) a.period = period;
  return a.lines || a.city || a.postalCode ? a : undefined;
}

function readTelecom(msg: Hl7Message, rep: string, work: boolean): ContactPoint | undefined {
  const useCode = msg.leaf(rep, 2).toUpperCase();
  const equipment = msg.leaf(rep, 3).toUpperCase();
  const period = readPeriod(msg, rep, 13);
  const withPeriod = (cp: ContactPoint): ContactPoint => (period ? { ...cp, period } : cp);
  if (equipment === 'INTERNET' || equipment === 'X.400' || useCode === 'NET') {
    const value = msg.leaf(rep, 4) || msg.leaf(rep, 1);
    if (!value) return undefined;
    const system = useCode === 'NET' && equipment !== 'INTERNET' && equipment !== 'X.400' ? 'url' : 'email';
    return withPeriod(work ? { system, value, use: 'work' } : { system, value });
  }
  const value = msg.leaf(rep, 1) || [msg.leaf(rep, 6), msg.leaf(rep, 7)].filter((s) => s).join(' ') || msg.leaf(rep, 12);
  if (!value) return undefined;
  const system: ContactPoint['system'] = equipment === 'FX' ? 'fax' : equipment === 'BP' ? 'pager' : equipment === 'SMS' ? 'sms' : equipment === 'OTHER' ? 'other' : 'phone';
  const cp: ContactPoint = withPeriod({ system, value });
  if (equipment === 'CP') cp.use = 'mobile';
  else if (useCode === 'WPN' || (work && useCode === '')) cp.use = 'work';
  else if (useCode === 'PRN' || (!work && useCode === '')) cp.use = 'home';
  else if (useCode === 'VHN') cp.use = 'temp';
  return cp;
}

/** Repeating field → list, `""` → CLEARED, empty → not sent. */
function list<T>(msg: Hl7Message, seg: Segment, field: number, read: (rep: string) => T | undefined): Tri<T[]> {
  if (msg.fieldCleared(seg, field)) return CLEARED;
  const out = msg
    .reps(seg, field)
    .map(read)
    .filter((v): v is T => v !== undefined);
  return out.length ? out : undefined;
}

/** Reads a CX list (PID-3, MRG-1) into NHS number + other identifiers. */
export function readIdentifiers(
  msg: Hl7Message,
  seg: Segment,
  field: number,
  issues: Issues,
): { nhsNumber?: string; identifiers: Identifier[]; bad: boolean } {
  const identifiers: Identifier[] = [];
  let nhsNumber: string | undefined;
  let bad = false;
  msg.reps(seg, field).forEach((rep, i) => {
    const value = msg.leaf(rep, 1);
    if (!value || value === '""') return;
    // The authority is CX.4 (HD: namespace & universal id & type), else CX.6 assigning facility.
    const hd = msg.leaf(rep, 4, 1) || msg.leaf(rep, 4, 2) ? 4 : 6;
    const authority = msg.leaf(rep, hd, 1);
    const universal = msg.leaf(rep, hd, 2);
    const type = msg.leaf(rep, 5);
    if (isNhsAuthority(authority, type) || universal === SYSTEMS.nhsNumber) {
      const n = normaliseNhsNumber(value);
      if (!isValidNhsNumber(n)) {
        issues.error('HL7_BAD_NHS_NUMBER', position(seg.name, field, i, 1), 'patient.nhsNumber', 'NHS number is not 10 digits with a valid Modulus 11 check digit');
        bad = true;
        return;
      }
      if (nhsNumber !== undefined && nhsNumber !== n) {
        issues.error('HL7_CONFLICTING_NHS_NUMBERS', position(seg.name, field, i, 1), 'patient.nhsNumber', `${seg.name}-${field} holds two different NHS numbers: the patient cannot be identified`);
        bad = true;
        return;
      }
      nhsNumber = n;
      return;
    }
    if (type.toUpperCase() === 'NH' || type.toUpperCase() === 'NHS') {
      issues.note('HL7_NHS_TYPE_LOCAL_AUTHORITY', position(seg.name, field, i, 4), 'patient.identifiers', `identifier type is NH (NHS number) but the authority is a local one, not NHS: read as a local identifier of that authority, not as an NHS number`);
    }
    const isUri = universal !== '' && /^(URI|URL)$/i.test(msg.leaf(rep, hd, 3));
    const id: Identifier = { system: isUri ? universal : localSystem(authority), value };
    if (type) id.type = type;
    if (authority) id.assigner = authority;
    identifiers.push(id);
  });
  return { nhsNumber, identifiers, bad };
}

function verification(v: string): NhsNumberVerification | undefined {
  const m = /^(?:NSTS|PDS)?0?([1-8])$/i.exec(v.trim());
  return m ? (`0${m[1]}` as NhsNumberVerification) : undefined;
}

/** PID (+ PD1) → Patient. Returns undefined when the patient cannot be read (errors added). */
export function readPatient(msg: Hl7Message, pid: Segment, pd1: Segment | undefined, issues: Issues): Patient | undefined {
  const ids = readIdentifiers(msg, pid, 3, issues);
  if (ids.bad) return undefined;
  const patient: Patient = { identifiers: ids.identifiers };
  if (ids.nhsNumber) patient.nhsNumber = ids.nhsNumber;

  // Legacy feeds put the NHS number in PID-2 (HL7 UK says unsupported): accept when valid.
  const pid2 = normaliseNhsNumber(msg.get(pid, { field: 2 }));
  if (!patient.nhsNumber && /^\d{10}$/.test(pid2) && isValidNhsNumber(pid2)) {
    patient.nhsNumber = pid2;
    issues.note('HL7_LEGACY_FIELD', 'PID-2', 'patient.nhsNumber', 'NHS number read from PID-2 (legacy position; HL7 UK puts it in PID-3)');
  }
  if (msg.fieldCleared(pid, 3)) patient.nhsNumber = CLEARED;

  // HL7 UK: PID-32; some feeds use ZU1-27 instead.
  const status = msg.tri(pid, { field: 32 }) ?? msg.tri(msg.first('ZU1'), { field: 27 });
  if (status === CLEARED) patient.nhsNumberVerification = CLEARED;
  else if (typeof status === 'string') {
    const v = verification(status);
    if (v) patient.nhsNumberVerification = v;
    else issues.note('HL7_UNKNOWN_CODE', 'PID-32', 'patient.nhsNumberVerification', 'NHS number verification status is not NSTS01–NSTS08/PDS01–PDS08; ignored');
  }

  const names = list(msg, pid, 5, (r) => readName(msg, r));
  if (names !== undefined) patient.names = names;

  const dob = msg.tri(pid, { field: 7 });
  if (dob === CLEARED) patient.birthDate = CLEARED;
  else if (typeof dob === 'string') {
    const date = dateOfDtm(dob);
    if (!date) {
      issues.error('HL7_BAD_DATE', 'PID-7', 'patient.birthDate', 'date of birth is not an HL7 date (YYYYMMDD)');
      return undefined;
    }
    patient.birthDate = date;
    if (dob.trim().length > 8) {
      const t = parseDtm(dob);
      if (t.ok && t.instant.precision !== 'day') patient.birthTime = t.instant;
      else if (!t.ok) issues.note('HL7_TIME_AMBIGUOUS', 'PID-7', 'patient.birthTime', `time of birth ${t.text}; kept the date only`);
    }
  }

  const sex = msg.tri(pid, { field: 8 });
  if (sex === CLEARED) patient.gender = CLEARED;
  else if (typeof sex === 'string') {
    const g = GENDER[sex.toUpperCase()];
    if (g) patient.gender = g;
    else issues.note('HL7_UNKNOWN_CODE', 'PID-8', 'patient.gender', 'administrative sex code not in table 0001; ignored');
  }

  const addresses = list(msg, pid, 11, (r) => readAddress(msg, r));
  if (addresses !== undefined) patient.addresses = addresses;

  const home = list(msg, pid, 13, (r) => readTelecom(msg, r, false));
  const work = list(msg, pid, 14, (r) => readTelecom(msg, r, true));
  if (home === CLEARED && (work === CLEARED || work === undefined)) patient.telecom = CLEARED;
  else {
    const all = [...(Array.isArray(home) ? home : []), ...(Array.isArray(work) ? work : [])];
    if (all.length) patient.telecom = all;
  }

  const ethnic = msg.tri(pid, { field: 22 });
  if (ethnic === CLEARED) patient.ethnicCategory = CLEARED;
  else if (typeof ethnic === 'string') {
    // US feeds send table 0189 (Hispanic or not) here: not an NHS ethnic category.
    const table = msg.get(pid, { field: 22, comp: 3 }).toUpperCase();
    if (ETHNIC.test(ethnic) && table !== 'HL70189' && table !== 'HL70005') {
      const display = msg.get(pid, { field: 22, comp: 2 });
      patient.ethnicCategory = display ? { system: SYSTEMS.ethnicCategory, code: ethnic, display } : { system: SYSTEMS.ethnicCategory, code: ethnic };
    } else issues.note('HL7_UNKNOWN_CODE', 'PID-22', 'patient.ethnicCategory', 'ethnic group is not an NHS England ethnic category code; ignored');
  }

  const deathAt = msg.tri(pid, { field: 29 });
  if (deathAt === CLEARED) patient.deceasedAt = CLEARED;
  else if (typeof deathAt === 'string') {
    const t = parseDtm(deathAt);
    if (t.ok) patient.deceasedAt = t.instant;
    else issues.note('HL7_BAD_DATE', 'PID-29', 'patient.deceasedAt', `date of death ${t.text}; ignored`);
  }
  const deathFlag = msg.tri(pid, { field: 30 });
  if (deathFlag === CLEARED) patient.deceased = CLEARED;
  else if (deathFlag === 'Y' || deathFlag === 'N') patient.deceased = deathFlag === 'Y';

  if (pd1) readPd1(msg, pd1, patient);
  return patient;
}

function readPd1(msg: Hl7Message, pd1: Segment, patient: Patient): void {
  if (msg.fieldCleared(pd1, 3)) patient.gpPractice = CLEARED;
  else {
    const rep = msg.reps(pd1, 3)[0];
    if (rep) {
      // XON.10 (2.5+) else XON.3 (2.4, and the "NAME^^CODE" local variant).
      const code = msg.leaf(rep, 10) || msg.leaf(rep, 3);
      const name = msg.leaf(rep, 1);
      if (code) patient.gpPractice = code;
      if (name) patient.gpPracticeName = name;
    }
  }
  if (msg.fieldCleared(pd1, 4)) patient.generalPractitioner = CLEARED;
  else {
    const rep = msg.reps(pd1, 4)[0];
    const gp = rep ? readXcn(msg, rep, SYSTEMS.gmp) : undefined;
    if (gp) patient.generalPractitioner = gp;
  }
  const protection = msg.tri(pd1, { field: 12 });
  if (protection === 'Y') patient.restricted = 'R';
  else if (protection === 'N' || protection === CLEARED) patient.restricted = CLEARED;
}
