import type { Instant, DateOnly } from '../model';
import { type LocalParts, type TimeResult, calendarText, makeInstant, parseOffset, partsOf } from '../time';

/**
 * HL7 v2 DTM/TS: `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]` (TS may add `^precision`).
 * No offset means UK local time for that date (never UTC, never the host zone);
 * birth dates keep their day and never pass through UTC (docs/mapping-basis.md, Times).
 */

const DTM = /^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,4}))?([+-]\d{4})?$/;

function partsFrom(m: RegExpExecArray): LocalParts {
  const n = (s: string | undefined) => (s === undefined ? undefined : Number(s));
  return {
    year: Number(m[1]),
    month: n(m[2]),
    day: n(m[3]),
    hour: n(m[4]),
    minute: n(m[5]),
    second: n(m[6]),
    millisecond: m[7] === undefined ? undefined : Number(m[7].padEnd(4, '0').slice(0, 3)),
  };
}

/** Parses a DTM into an Instant. */
export function parseDtm(text: string): TimeResult {
  const m = DTM.exec(text.trim());
  if (!m) return { ok: false, problem: 'invalid', text: 'is not an HL7 date/time (YYYYMMDD[HHMM[SS]][+ZZZZ])' };
  const parts = partsFrom(m);
  if (m[8] === undefined) return makeInstant(parts);
  const off = parseOffset(m[8]);
  if (off === undefined) return { ok: false, problem: 'invalid', text: 'has a malformed time-zone offset' };
  return makeInstant(parts, off);
}

/** The calendar date of a DTM as sent ("19250704000000" → "1925-07-04"), or undefined when malformed. */
export function dateOfDtm(text: string): DateOnly | undefined {
  const m = DTM.exec(text.trim());
  if (!m) return undefined;
  const p = partsFrom(m);
  // A date alone needs no zone: only whether it is a real day, and its text.
  return calendarText({ year: p.year, month: p.month, day: p.day });
}

/** Formats a canonical date "YYYY-MM-DD" as DTM "YYYYMMDD". */
export function formatDate(date: DateOnly): string {
  return date.replace(/-/g, '');
}

/**
 * Formats an Instant as DTM at its own precision. Zones that were assumed on input are
 * written without an offset (as received) unless `withOffset` forces one.
 */
export function formatDtm(inst: Instant, withOffset = false): string {
  const p = partsOf(inst);
  let s = String(p.year).padStart(4, '0');
  for (const v of [p.month, p.day, p.hour, p.minute, p.second]) {
    if (v === undefined) break;
    s += String(v).padStart(2, '0');
  }
  if (p.millisecond !== undefined) s += '.' + String(p.millisecond).padStart(3, '0');
  if (inst.offset && (withOffset || !inst.assumedZone || !readsBackTheSame(inst))) s += inst.offset.replace(':', '');
  return s;
}

/** An offset-less UK time must resolve to the same instant (not in the autumn overlap). */
function readsBackTheSame(inst: Instant): boolean {
  const r = makeInstant(partsOf(inst));
  return r.ok && r.instant.utc === inst.utc;
}
