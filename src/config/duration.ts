/** Durations written as seconds (an integer) or `90s` / `30m` / `4h` / `2d` strings. */

export const DURATION_FORMAT = 'must be a duration: seconds as an integer, or a number with s, m, h or d (e.g. 4h)';

const SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** Returns whole seconds (at least 1), or undefined when the value is not a valid duration. */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 1 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const m = /^\s*(\d+)\s*([smhd]?)\s*$/.exec(value);
  if (!m) return undefined;
  const seconds = Number(m[1]) * SECONDS[m[2] || 's'];
  return Number.isSafeInteger(seconds) && seconds >= 1 ? seconds : undefined;
}
