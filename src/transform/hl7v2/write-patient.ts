import {
  SYSTEMS,
  hasEnded,
  isCleared,
  localAuthority,
  triValue,
  type Address,
  type ContactPoint,
  type HumanName,
  type Identifier,
  type Patient,
  type Period,
  type Practitioner,
  type Tri,
} from '../model';
import { formatDate, formatDtm } from './datetime';
import { escapeHl7 } from './escape';

/** Canonical Patient → PID/PD1 text (docs/mapping-basis.md, HL7 UK conventions). */

const NULL = '""';
// `old` is BAD (table 0200) and BA (table 0190), as in HL7's v2-to-FHIR concept maps.
const NAME_USE: Record<string, string> = { official: 'L', usual: 'D', maiden: 'M', nickname: 'N', anonymous: 'S', temp: 'T', old: 'BAD' };
const ADDRESS_USE: Record<string, string> = { home: 'H', work: 'B', temp: 'C', old: 'BA', billing: 'BI' };
const GENDER: Record<string, string> = { male: 'M', female: 'F', unknown: 'U', other: 'O' };

export const e = (s: string | undefined): string => (s === undefined ? '' : escapeHl7(s));

/** Joins components, dropping trailing empties. */
export function comps(...parts: string[]): string {
  let end = parts.length;
  while (end > 0 && parts[end - 1] === '') end--;
  return parts.slice(0, end).join('^');
}

/** A segment line from fields 1..n, trailing empty fields dropped. */
export function segment(name: string, fields: string[]): string {
  let end = fields.length;
  while (end > 0 && fields[end - 1] === '') end--;
  return [name, ...fields.slice(0, end)].join('|');
}

/** Value → text, CLEARED → `""`, not sent → empty. */
export function tri<T>(v: Tri<T>, render: (v: T) => string): string {
  if (v === undefined) return '';
  if (isCleared(v)) return NULL;
  return render(v as T);
}

/** The short register code HL7 UK puts in XCN.9 for a national professional register. */
function registerCode(system: string): string | undefined {
  switch (system) {
    case SYSTEMS.gmc:
      return 'GMC';
    case SYSTEMS.sdsUser:
      return 'SDS';
    case SYSTEMS.gmp:
      return 'GMP';
    case SYSTEMS.nmc:
      return 'NMC';
    case SYSTEMS.gphc:
      return 'GPHC';
    case SYSTEMS.hcpc:
      return 'HCPC';
  }
  return undefined;
}

/**
 * CX.4 / XCN.9 assigning authority as an HD: the namespace alone when the system is meshd's
 * local one for that namespace (or, in an XCN, a national register code such as GMC that
 * the reader maps back), else namespace & system & URI, so FHIR → HL7 → FHIR gives back the
 * same system (two trusts' identically-spelt MRNs stay apart).
 */
function assigningAuthority(id: Identifier, registerCodes: boolean): string {
  const local = localAuthority(id.system);
  const namespace = id.assigner ?? local ?? '';
  if (id.system.startsWith('urn:meshd:local:') && (local === undefined || namespace === local)) return e(namespace);
  const register = registerCode(id.system);
  if (registerCodes && register && !id.assigner) return e(register);
  return [e(namespace), e(id.system), 'URI'].join('&');
}

export function cx(id: Identifier): string {
  if (id.system === SYSTEMS.nhsNumber) return comps(e(id.value), '', '', 'NHS', 'NH');
  return comps(e(id.value), '', '', assigningAuthority(id, false), e(id.type ?? ''));
}

/** XCN: id^family^given^middle^^prefix^^^authority. */
export function xcn(p: Practitioner, defaultAuthoritySystem?: string): string {
  const id = p.identifiers[0];
  const n = p.name ?? {};
  const authority = id ? (id.system === defaultAuthoritySystem ? '' : assigningAuthority(id, true)) : '';
  return comps(e(id?.value), e(n.family), e(n.given?.[0]), e(n.given?.slice(1).join(' ')), '', e(n.prefix?.[0]), '', '', authority);
}

/** HL7 date of a period bound ("2020-01-31" or a FHIR dateTime) → YYYYMMDD. */
function periodDate(d: string | undefined): string {
  return d ? d.slice(0, 10).replace(/-/g, '') : '';
}

/** Name, address and phone uses to write: an ended period means the value is old, whatever its use. */
function useOf(use: string | undefined, period: Period | undefined, today: string): string | undefined {
  return hasEnded(period, today) ? 'old' : use;
}

function xpn(n: HumanName, today: string): string {
  const family = n.family ?? (n.given?.length ? undefined : n.text);
  return comps(e(family), e(n.given?.[0]), e(n.given?.slice(1).join(' ')), e(n.suffix?.[0]), e(n.prefix?.[0]), '', e(NAME_USE[useOf(n.use, n.period, today) ?? ''] ?? ''), '', '', '', '', periodDate(n.period?.start), periodDate(n.period?.end));
}

/** XAD: lines 1–2 in XAD.1/2, further lines in XAD.8 (as subcomponents); a text-only address in XAD.1. */
function xad(a: Address, today: string): string {
  const lines = a.lines?.length ? a.lines : a.text ? [a.text] : [];
  const more = lines.slice(2).map(e).join('&');
  return comps(e(lines[0]), e(lines[1]), e(a.city), e(a.district), e(a.postalCode), e(a.country), e(ADDRESS_USE[useOf(a.use, a.period, today) ?? ''] ?? ''), more, '', '', '', '', periodDate(a.period?.start), periodDate(a.period?.end));
}

function xtn(c: ContactPoint): string {
  if (c.system === 'email') return comps('', 'NET', 'Internet', e(c.value));
  if (c.system === 'url') return comps('', 'NET', '', e(c.value));
  const equipment = c.system === 'fax' ? 'FX' : c.system === 'pager' ? 'BP' : c.system === 'sms' ? 'SMS' : c.system === 'other' ? 'OTHER' : c.use === 'mobile' ? 'CP' : 'PH';
  const use = c.use === 'work' ? 'WPN' : c.use === 'temp' ? 'VHN' : c.use === 'home' || c.use === 'mobile' ? 'PRN' : 'ORN';
  return comps(e(c.value), use, equipment, '', '', '', '', '', '', '', '', '', periodDate(c.period?.start), periodDate(c.period?.end));
}

const VERIFICATION_PREFIX = 'NSTS';

/**
 * PID (and PD1 when the patient has GP/practice/restriction data). `today` ("YYYY-MM-DD")
 * tells ended names/addresses/phones from current ones.
 */
export function patientSegments(p: Patient, notes: (field: string, text: string, position?: string) => void, today: string): string[] {
  const ids: string[] = [];
  const nhs = triValue(p.nhsNumber);
  if (nhs) ids.push(cx({ system: SYSTEMS.nhsNumber, value: nhs }));
  for (const id of p.identifiers) ids.push(cx(id));
  const pid3 = ids.length ? ids.join('~') : isCleared(p.nhsNumber) ? NULL : '';
  // Table 0201 has no "old" use: a phone no longer in use is left out rather than sent as current.
  const allPhones = Array.isArray(p.telecom) ? p.telecom : [];
  const phones = allPhones.filter((t) => useOf(t.use, t.period, today) !== 'old');
  if (phones.length < allPhones.length) notes('patient.telecom', `${allPhones.length - phones.length} old or ended contact point(s) not written: HL7 v2 has no use code that marks a number as no longer in use`, 'PID-13');
  const names = Array.isArray(p.names) ? p.names : [];
  if (names.some((n) => n.text && !n.family && !n.given?.length)) notes('patient.names', 'a name given only as text is written whole in XPN.1 (family name): HL7 v2 has no free-text name', 'PID-5');
  const addresses = Array.isArray(p.addresses) ? p.addresses : [];
  if (addresses.some((a) => a.text && !a.lines?.length)) notes('patient.addresses', 'an address given only as text is written whole in XAD.1: HL7 v2 has no free-text address', 'PID-11');
  const phonesHome = phones.filter((t) => t.use !== 'work');
  const phonesWork = phones.filter((t) => t.use === 'work');
  const f: string[] = [];
  f[1] = '1';
  f[3] = pid3;
  f[5] = tri(p.names, (ns) => ns.map((n) => xpn(n, today)).join('~'));
  f[7] = tri(p.birthDate, formatDate);
  if (p.birthTime && typeof p.birthDate === 'string') f[7] = formatDtm(p.birthTime);
  f[8] = tri(p.gender, (g) => GENDER[g] ?? 'U');
  f[11] = tri(p.addresses, (as) => as.map((a) => xad(a, today)).join('~'));
  f[13] = isCleared(p.telecom) ? NULL : phonesHome.map(xtn).join('~');
  f[14] = phonesWork.map(xtn).join('~');
  f[22] = tri(p.ethnicCategory, (c) => comps(e(c.code), e(c.display)));
  f[29] = tri(p.deceasedAt, (d) => formatDtm(d));
  f[30] = tri(p.deceased, (d) => (d ? 'Y' : 'N'));
  f[32] = tri(p.nhsNumberVerification, (v) => VERIFICATION_PREFIX + v);
  const pid = segment('PID', fill(f, 32));

  const pd: string[] = [];
  pd[3] = tri(p.gpPractice, (code) => comps(e(p.gpPracticeName), '', e(code)));
  pd[4] = tri(p.generalPractitioner, (gp) => xcn(gp, SYSTEMS.gmp));
  pd[12] = tri(p.restricted, (r) => {
    if (r === 'V') notes('patient.restricted', 'very restricted (V) is written as PD1-12 protection indicator Y: HL7 v2.4 has one protection flag', 'PD1-12');
    return 'Y';
  });
  const pd1 = fill(pd, 12);
  return pd1.some((x) => x !== '') ? [pid, segment('PD1', pd1)] : [pid];
}

/** fields[1..n] as an array with '' for gaps. */
export function fill(f: string[], n: number): string[] {
  const out: string[] = [];
  for (let i = 1; i <= n; i++) out.push(f[i] ?? '');
  return out;
}
