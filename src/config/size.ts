/** Byte sizes written as integers or `512KiB` / `20MiB` / `1GiB` strings. */

export const SIZE_FORMAT = 'must be a byte count: an integer, or a number with KiB, MiB or GiB (e.g. 20MiB)';

const UNITS: Record<string, number> = {
  b: 1,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
};

/** Returns the byte count, or undefined when the value is not a valid size. */
export function parseSize(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value);
  if (!m) return undefined;
  const unit = m[2].toLowerCase() || 'b';
  const factor = UNITS[unit];
  if (factor === undefined) return undefined;
  const bytes = Number(m[1]) * factor;
  return Number.isSafeInteger(bytes) ? bytes : Number.isFinite(bytes) ? Math.floor(bytes) : undefined;
}
