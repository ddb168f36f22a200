import { MeshdError } from '../errors';

/** Parses operator time arguments: ages like `30d`, and `--since` as an age or a date. */

const UNIT_MS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

function usage(what: string, text: string, hint: string): MeshdError {
  return new MeshdError('INVALID_PERIOD', `${what} "${text}" is not understood`, hint, 'usage');
}

/** `30d`, `12h`, `90m`, `2w` → milliseconds. */
export function parseAge(text: string, what = 'age'): number {
  const m = /^\s*(\d{1,6})\s*([mhdw])\s*$/i.exec(text);
  if (!m) throw usage(what, text, 'give a number with a unit: m (minutes), h, d or w, e.g. 30d');
  return Number(m[1]) * UNIT_MS[m[2].toLowerCase()];
}

/** `7d` (relative to now), `2026-11-01` (midnight UTC) or a full ISO timestamp → an instant. */
export function parseSince(text: string, now: Date): Date {
  if (/^\s*\d+\s*[mhdw]\s*$/i.test(text)) return new Date(now.getTime() - parseAge(text, '--since'));
  const date = /^\d{4}-\d{2}-\d{2}$/.test(text.trim()) ? new Date(`${text.trim()}T00:00:00Z`) : new Date(text.trim());
  if (!/^\d{4}-\d{2}-\d{2}/.test(text.trim()) || Number.isNaN(date.getTime())) {
    throw usage('--since', text, 'give an age like 7d or a date like 2026-11-01');
  }
  return date;
}
