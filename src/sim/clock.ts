/**
 * The simulator's clock: a base clock plus an offset that only moves forward, so tests
 * can jump days ahead (token age, inbox expiry) without waiting.
 */
export class SimClock {
  private offsetMs = 0;

  constructor(private readonly base: () => Date = () => new Date()) {}

  now(): Date {
    return new Date(this.base().getTime() + this.offsetMs);
  }

  nowMs(): number {
    return this.now().getTime();
  }

  /** Moves the clock forward; negative values are refused (expiry is not reversible). */
  advance(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError('clock can only move forward by a finite number of ms');
    this.offsetMs += ms;
  }

  get offset(): number {
    return this.offsetMs;
  }

  setOffset(ms: number): void {
    this.offsetMs = Math.max(0, ms);
  }
}

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** `yyyyMMddHHmmss` in UTC, as MESH writes mex-StatusTimestamp. */
export function meshTimestamp(d: Date): string {
  return (
    `${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}` +
    `${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}`
  );
}
