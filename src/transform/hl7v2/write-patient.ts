import {
  SYSTEMS,
  isCleared,
  localAuthority,
  triValue,
  type Address,
  type ContactPoint,
  type HumanName,
  type Identifier,
  type Patient,
  type Practitioner,
  type Tri,
} from '../model';
import { formatDate, formatDtm } from './datetime';
import { escapeHl7 } from './escape';

/** Canonical Patient → PID/PD1 text (HL7 UK conventions, mapping.md §4, §6). */

const NULL = '""';
const NAME_USE: Record<string, string> = { official: 'L', usual: 'D', maiden: 'M', nickname: 'N', anonymous: 'S', temp: 'T' };
const ADDRESS_USE: Record<string, string> = { home: 'H', work: 'B', temp: 'C', old: 'BA' };
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

/** Assigning authority for an identifier: its assigner, else derived from its system. */
export function authorityOf(id: Identifier): string {
  if (id.assigner) return id.assigner;
  const local = localAuthority(id.system);
  if (local !== undefined) return local;
  switch (id.system) {
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
    case SYSTEMS.odsOrganization:
    case SYSTEMS.odsSite:
      return 'ODS';
  }
  return '';
}

export function cx(id: Identifier): string {
  if (id.system === SYSTEMS.nhsNumber) return comps(e(id.value), '', '', 'NHS', 'NH');
  return comps(e(id.value), '', '', e(authorityOf(id)), e(id.type ?? ''));
}

/** XCN: id^family^given^middle^^prefix^^^authority. */
export function xcn(p: Practitioner, defaultAuthoritySystem?: string): string {
  const id = p.identifiers[0];
  const n = p.name ?? {};
  const authority = id ? (id.system === defaultAuthoritySystem ? '' : authorityOf(id)) : '';
  return comps(e(id?.value), e(n.family), e(n.given?.[0]), e(n.given?.slice(1).join(' ')), '', e(n.prefix?.[0]), '', '', e(authority));
}

function xpn(n: HumanName): string {
  return comps(e(n.family), e(n.given?.[0]), e(n.given?.slice(1).join(' ')), e(n.suffix?.[0]), e(n.prefix?.[0]), '', e(n.use ? NAME_USE[n.use] : ''));
}

function xad(a: Address): string {
  return comps(e(a.lines?.[0]), e(a.lines?.slice(1).join(', ')), e(a.city), e(a.district), e(a.postalCode), e(a.country), e(a.use ? ADDRESS_USE[a.use] : ''));
}

function xtn(c: ContactPoint): string {
  if (c.system === 'email') return comps('', 'NET', 'Internet', e(c.value));
  const equipment = c.system === 'fax' ? 'FX' : c.system === 'pager' ? 'BP' : c.use === 'mobile' ? 'CP' : 'PH';
  const use = c.use === 'work' ? 'WPN' : c.use === 'temp' ? 'VHN' : c.use === 'home' || c.use === 'mobile' ? 'PRN' : 'ORN';
  return comps(e(c.value), use, equipment);
}

const VERIFICATION_PREFIX = 'NSTS';

/** PID (and PD1 when the patient has GP/practice/restriction data). */
export function patientSegments(p: Patient, notes: (field: string, text: string) => void): string[] {
  const ids: string[] = [];
  const nhs = triValue(p.nhsNumber);
  if (nhs) ids.push(cx({ system: SYSTEMS.nhsNumber, value: nhs }));
  for (const id of p.identifiers) ids.push(cx(id));
  const pid3 = ids.length ? ids.join('~') : isCleared(p.nhsNumber) ? NULL : '';
  const phonesHome = (Array.isArray(p.telecom) ? p.telecom : []).filter((t) => t.use !== 'work');
  const phonesWork = (Array.isArray(p.telecom) ? p.telecom : []).filter((t) => t.use === 'work');
  const f: string[] = [];
  f[1] = '1';
  f[3] = pid3;
  f[5] = tri(p.names, (ns) => ns.map(xpn).join('~'));
  f[7] = tri(p.birthDate, formatDate);
  if (p.birthTime && typeof p.birthDate === 'string') f[7] = formatDtm(p.birthTime);
  f[8] = tri(p.gender, (g) => GENDER[g] ?? 'U');
  f[11] = tri(p.addresses, (as) => as.map(xad).join('~'));
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
    if (r === 'V') notes('patient.restricted', 'very restricted (V) is written as PD1-12 protection indicator Y: HL7 v2.4 has one protection flag');
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
