import type { Instant, Precision } from './model';

/**
 * Instants with provenance and UK local time resolution (docs/mapping-basis.md, Times).
 * Times sent without an offset mean Europe/London wall-clock time *for that date*
 * (GMT/BST, 1925 BST, wartime double summer time all come from ICU). A wall time in the
 * spring gap does not exist and one in the autumn overlap happens twice: both are
 * reported, never guessed. Nothing here depends on the host time zone.
 */

export interface LocalParts {
  year: number;
  month?: number;
  day?: number;
  hour?: number;
  minute?: number;
  second?: number;
  millisecond?: number;
}

export type TimeProblem = 'invalid' | 'gap' | 'overlap';

export type TimeResult = { ok: true; instant: Instant } | { ok: false; problem: TimeProblem; text: string };

const LONDON = 'Europe/London';
let londonFormat: Intl.DateTimeFormat | undefined;
const offsetCache = new Map<number, number>();

/** Europe/London offset from UTC, in minutes, at a UTC instant (ms since epoch). */
export function londonOffsetMinutes(utcMs: number): number {
  const rule = euRuleOffset(utcMs);
  if (rule !== undefined) return rule;
  // Offsets only change on the hour; cache per UTC hour (a big win for batch conversion).
  const hourKey = Math.floor(utcMs / 3_600_000);
  const cached = offsetCache.get(hourKey);
  if (cached !== undefined) return cached;
  londonFormat ??= new Intl.DateTimeFormat('en-GB', { timeZone: LONDON, timeZoneName: 'longOffset' });
  const name = londonFormat.formatToParts(new Date(utcMs)).find((p) => p.type === 'timeZoneName')?.value ?? 'GMT';
  const m = /^GMT(?:([+-])(\d{1,2})(?::?(\d{2}))?(?::?(\d{2}))?)?$/.exec(name);
  let minutes = 0;
  if (m && m[1]) {
    const abs = Number(m[2]) * 60 + Number(m[3] ?? 0) + Number(m[4] ?? 0) / 60;
    minutes = m[1] === '-' ? -abs : abs;
  }
  if (offsetCache.size > 100_000) offsetCache.clear();
  offsetCache.set(hourKey, minutes);
  return minutes;
}

/**
 * Since 1996 UK summer time runs from 01:00 UTC on the last Sunday of March to 01:00 UTC
 * on the last Sunday of October (EU rule). Computing it directly avoids ICU on the hot
 * path; earlier years (and anything after 2037, in case the rule changes) go through ICU.
 */
function euRuleOffset(utcMs: number): number | undefined {
  if (Number.isNaN(utcMs)) return 0; // as the rule's own comparisons would give
  if (utcMs < EU_RULE_FROM || utcMs >= EU_RULE_UNTIL) return undefined;
  const year = new Date(utcMs).getUTCFullYear();
  const summer = (summerTime[year - 1996] ??= [lastSundayOneAmUtc(year, 2), lastSundayOneAmUtc(year, 9)]);
  return utcMs >= summer[0] && utcMs < summer[1] ? 60 : 0;
}

const EU_RULE_FROM = Date.UTC(1996, 0, 1);
const EU_RULE_UNTIL = Date.UTC(2038, 0, 1);
/** Start and end of summer time for each year of the EU rule, worked out once per year. */
const summerTime: Array<[number, number]> = [];

function lastSundayOneAmUtc(year: number, monthIndex: number): number {
  const last = new Date(Date.UTC(year, monthIndex + 1, 0, 1));
  return last.getTime() - last.getUTCDay() * 86_400_000;
}

/** "+01:00" for 60; "-05:30" for -330; "+00:00" for 0. */
export function formatOffset(minutes: number): string {
  const sign = minutes < 0 ? '-' : '+';
  const abs = Math.round(Math.abs(minutes));
  return `${sign}${pad(Math.floor(abs / 60), 2)}:${pad(abs % 60, 2)}`;
}

/** Parses "+0100", "+01:00", "-05", "Z" into minutes; undefined when malformed. */
export function parseOffset(text: string): number | undefined {
  if (text === 'Z') return 0;
  const m = /^([+-])(\d{2})(?::?(\d{2}))?$/.exec(text);
  if (!m) return undefined;
  const h = Number(m[2]);
  const mi = Number(m[3] ?? 0);
  if (h > 14 || mi > 59) return undefined;
  const v = h * 60 + mi;
  return m[1] === '-' ? -v : v;
}

const TWO_DIGITS = Array.from({ length: 100 }, (_, i) => String(i).padStart(2, '0'));
const DAY_MS = 86_400_000;
/** 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z: the years `Date.toISOString` writes with four digits. */
const ISO_FROM = -62_167_219_200_000;
const ISO_UNTIL = 253_402_300_800_000;

/**
 * What `new Date(ms).toISOString()` gives, without a Date: a conversion writes several instants
 * a message, and the Date costs most of it. The civil date from the day count is the proleptic
 * Gregorian algorithm of H. Hinnant's "chrono-compatible low-level date algorithms".
 */
export function isoUtc(ms: number): string {
  if (!(ms >= ISO_FROM && ms < ISO_UNTIL) || !Number.isInteger(ms)) return new Date(ms).toISOString();
  const days = Math.floor(ms / DAY_MS);
  let rest = ms - days * DAY_MS;
  const z = days + 719_468; // days since 0000-03-01
  const era = Math.floor(z / 146_097);
  const dayOfEra = z - era * 146_097;
  const yearOfEra = Math.floor((dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36_524) - Math.floor(dayOfEra / 146_096)) / 365);
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const m5 = Math.floor((5 * dayOfYear + 2) / 153); // months since March
  const day = dayOfYear - Math.floor((153 * m5 + 2) / 5) + 1;
  const month = m5 < 10 ? m5 + 3 : m5 - 9;
  const year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0);
  const hour = Math.floor(rest / 3_600_000);
  rest -= hour * 3_600_000;
  const minute = Math.floor(rest / 60_000);
  rest -= minute * 60_000;
  const second = Math.floor(rest / 1000);
  const milli = rest - second * 1000;
  const T = TWO_DIGITS;
  return `${pad(year, 4)}-${T[month]}-${T[day]}T${T[hour]}:${T[minute]}:${T[second]}.${pad(milli, 3)}Z`;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

function precisionOf(p: LocalParts): Precision {
  if (p.millisecond !== undefined) return 'millisecond';
  if (p.second !== undefined) return 'second';
  if (p.minute !== undefined) return 'minute';
  if (p.hour !== undefined) return 'hour';
  if (p.day !== undefined) return 'day';
  if (p.month !== undefined) return 'month';
  return 'year';
}

/** The wall-clock text of `parts` at their own precision, ISO style without offset. */
export function localText(p: LocalParts): string {
  let s = pad(p.year, 4);
  if (p.month === undefined) return s;
  s += '-' + pad(p.month, 2);
  if (p.day === undefined) return s;
  s += '-' + pad(p.day, 2);
  if (p.hour === undefined) return s;
  s += 'T' + pad(p.hour, 2);
  if (p.minute === undefined) return s;
  s += ':' + pad(p.minute, 2);
  if (p.second === undefined) return s;
  s += ':' + pad(p.second, 2);
  if (p.millisecond === undefined) return s;
  return s + '.' + pad(p.millisecond, 3);
}

/**
 * The text of a year, month or day (parts without a time of day), undefined when it is no real
 * day: what makeInstant gives as `local` for them, without resolving a zone.
 */
export function calendarText(p: LocalParts): string | undefined {
  return p.hour === undefined && validParts(p) ? localText(p) : undefined;
}

function validParts(p: LocalParts): boolean {
  const { year, month = 1, day = 1, hour = 0, minute = 0, second = 0, millisecond = 0 } = p;
  const isInt = Number.isInteger;
  if (!(isInt(year) && isInt(month) && isInt(day) && isInt(hour) && isInt(minute) && isInt(second) && isInt(millisecond))) return false;
  if (year < 1 || year > 9999 || month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59 || millisecond > 999) return false;
  if (day < 1 || day > daysInMonth(year, month)) return false;
  return hour >= 0 && minute >= 0 && second >= 0 && millisecond >= 0;
}

/** Days in a month of the proleptic Gregorian calendar (as Date counts them). */
function daysInMonth(year: number, month: number): number {
  if (month !== 2) return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
}

function wallClockMs(p: LocalParts): number {
  // Date.UTC reads years 0–99 as 1900–1999: only later years can take the short way.
  if (p.year >= 100) return Date.UTC(p.year, (p.month ?? 1) - 1, p.day ?? 1, p.hour ?? 0, p.minute ?? 0, p.second ?? 0, p.millisecond ?? 0);
  const d = new Date(0);
  d.setUTCFullYear(p.year, (p.month ?? 1) - 1, p.day ?? 1);
  d.setUTCHours(p.hour ?? 0, p.minute ?? 0, p.second ?? 0, p.millisecond ?? 0);
  return d.getTime();
}

/**
 * Every UTC instant at which Europe/London showed this wall-clock time: none in the
 * spring gap, two in the autumn overlap, otherwise one.
 */
export function londonCandidates(p: LocalParts): Array<{ utcMs: number; offset: number }> {
  const wall = wallClockMs(p);
  const offsets = [londonOffsetMinutes(wall - 86_400_000), londonOffsetMinutes(wall), londonOffsetMinutes(wall + 86_400_000)];
  const out: Array<{ utcMs: number; offset: number }> = [];
  for (let i = 0; i < offsets.length; i++) {
    const o = offsets[i];
    if (offsets.indexOf(o) !== i) continue; // each distinct offset once
    const utcMs = wall - o * 60_000;
    if (londonOffsetMinutes(utcMs) === o) out.push({ utcMs, offset: o });
  }
  return out.sort((a, b) => a.utcMs - b.utcMs);
}

/**
 * Builds an Instant from wall-clock parts. With `offsetMinutes` the zone is as sent;
 * without it, Europe/London is assumed for that date (gap/overlap reported).
 */
export function makeInstant(p: LocalParts, offsetMinutes?: number): TimeResult {
  if (!validParts(p)) return { ok: false, problem: 'invalid', text: 'is not a valid date/time' };
  const precision = precisionOf(p);
  const local = localText(p);
  const hasTime = p.hour !== undefined;
  const wall = wallClockMs(p);
  if (offsetMinutes !== undefined) {
    return {
      ok: true,
      instant: { utc: isoUtc(wall - offsetMinutes * 60_000), offset: formatOffset(offsetMinutes), precision, assumedZone: false, local },
    };
  }
  const candidates = londonCandidates(p);
  if (hasTime && candidates.length === 0) {
    return { ok: false, problem: 'gap', text: 'has no offset and falls in the UK spring-forward gap (that local time does not exist); send it with an offset' };
  }
  if (hasTime && candidates.length > 1) {
    return { ok: false, problem: 'overlap', text: 'has no offset and falls in the UK autumn overlap (that local time happens twice); send it with an offset' };
  }
  // A date without a time: local midnight (the earliest if ambiguous) anchors `utc`.
  const pick = candidates[0] ?? { utcMs: wall - londonOffsetMinutes(wall) * 60_000, offset: londonOffsetMinutes(wall) };
  return {
    ok: true,
    instant: { utc: isoUtc(pick.utcMs), offset: hasTime ? formatOffset(pick.offset) : null, precision, assumedZone: true, local },
  };
}

/** The Instant for a real moment (e.g. "now"), shown in UK local time with its offset. */
export function instantFromDate(d: Date, precision: Precision = 'second'): Instant {
  const offset = londonOffsetMinutes(d.getTime());
  const wall = new Date(d.getTime() + offset * 60_000);
  const parts: LocalParts = {
    year: wall.getUTCFullYear(),
    month: wall.getUTCMonth() + 1,
    day: wall.getUTCDate(),
    hour: wall.getUTCHours(),
    minute: wall.getUTCMinutes(),
    second: wall.getUTCSeconds(),
    millisecond: wall.getUTCMilliseconds(),
  };
  const cut = cutToPrecision(parts, precision);
  return { utc: isoUtc(wallClockMs(cut) - offset * 60_000), offset: formatOffset(offset), precision, assumedZone: false, local: localText(cut) };
}

function cutToPrecision(p: LocalParts, precision: Precision): LocalParts {
  const order: Precision[] = ['year', 'month', 'day', 'hour', 'minute', 'second', 'millisecond'];
  const keep = order.indexOf(precision);
  const out: LocalParts = { year: p.year };
  if (keep >= 1) out.month = p.month;
  if (keep >= 2) out.day = p.day;
  if (keep >= 3) out.hour = p.hour;
  if (keep >= 4) out.minute = p.minute;
  if (keep >= 5) out.second = p.second;
  if (keep >= 6) out.millisecond = p.millisecond;
  return out;
}

/** Wall-clock parts of an Instant's `local` text. */
export function partsOf(inst: Instant): LocalParts {
  const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?)?)?)?)?$/.exec(inst.local);
  if (!m) throw new Error('Instant.local is not ISO wall-clock text');
  const num = (s: string | undefined) => (s === undefined ? undefined : Number(s));
  return {
    year: Number(m[1]),
    month: num(m[2]),
    day: num(m[3]),
    hour: num(m[4]),
    minute: num(m[5]),
    second: num(m[6]),
    millisecond: m[7] === undefined ? undefined : Number(m[7].padEnd(3, '0')),
  };
}

/**
 * Parses ISO 8601 / FHIR date, dateTime and instant text ("2025-06-01", "2025-06-01T08:30:00+01:00",
 * "2025-06-01T07:30:00.000Z", "2025-06-01T08:30"). A time without an offset is UK local time.
 */
export function parseIsoDateTime(text: string): TimeResult {
  const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:?\d{2})?)?)?)?$/.exec(text.trim());
  if (!m) return { ok: false, problem: 'invalid', text: 'is not an ISO 8601 date/time' };
  const num = (s: string | undefined) => (s === undefined ? undefined : Number(s));
  const parts: LocalParts = {
    year: Number(m[1]),
    month: num(m[2]),
    day: num(m[3]),
    hour: num(m[4]),
    minute: num(m[5]),
    second: num(m[6]),
    millisecond: m[7] === undefined ? undefined : Number(m[7].slice(0, 3).padEnd(3, '0')),
  };
  if (m[8] === undefined) return makeInstant(parts);
  const off = parseOffset(m[8]);
  if (off === undefined) return { ok: false, problem: 'invalid', text: 'has a malformed time-zone offset' };
  return makeInstant(parts, off);
}

/**
 * ISO text with offset for an Instant at its own precision ("2025-06-01T08:30+01:00" is
 * not valid ISO for FHIR, so `minPrecision: 'second'` pads to seconds as FHIR instant needs).
 */
export function formatIsoDateTime(inst: Instant, minPrecision?: 'second'): string {
  const p = partsOf(inst);
  if (p.hour === undefined) return inst.local;
  if (minPrecision === 'second' || p.minute !== undefined) {
    p.minute ??= 0;
    p.second ??= 0;
  }
  return localText(p) + (inst.offset ?? 'Z');
}

/** The Instant shifted by whole minutes (used to compute end = start + duration), same offset rules. */
export function addMinutes(inst: Instant, minutes: number): Instant {
  const utcMs = Date.parse(inst.utc) + minutes * 60_000;
  // A start sent in UK time (its offset is London's at that moment) ends in UK time too,
  // so an end across a clock change gets the new offset, not the start's.
  const ukTime = inst.offset !== null && inst.offset === formatOffset(londonOffsetMinutes(Date.parse(inst.utc)));
  if (!inst.assumedZone && inst.offset && !ukTime) {
    const off = parseOffset(inst.offset) ?? 0;
    const wall = new Date(utcMs + off * 60_000);
    const q = cutToPrecision(
      { year: wall.getUTCFullYear(), month: wall.getUTCMonth() + 1, day: wall.getUTCDate(), hour: wall.getUTCHours(), minute: wall.getUTCMinutes(), second: wall.getUTCSeconds(), millisecond: wall.getUTCMilliseconds() },
      inst.precision,
    );
    return { ...inst, utc: isoUtc(utcMs), local: localText(q) };
  }
  const shifted = instantFromDate(new Date(utcMs), inst.precision);
  return { ...shifted, assumedZone: inst.assumedZone };
}
