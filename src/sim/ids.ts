import { randomBytes } from 'node:crypto';

/**
 * Message ids shaped like real MESH ones: `yyyyMMddHHmmssSSSSSS_XXXXXX` (20 digits from the
 * clock, underscore, 6 upper-case hex). The last three clock digits are a per-millisecond
 * sequence so ids made in the same millisecond stay distinct and in order.
 */
export class MessageIdFactory {
  private lastMs = -1;
  private seq = 0;

  next(now: Date): string {
    const ms = now.getTime();
    if (ms === this.lastMs) this.seq = (this.seq + 1) % 1000;
    else {
      this.lastMs = ms;
      this.seq = 0;
    }
    const p = (n: number, w = 2): string => String(n).padStart(w, '0');
    const stamp =
      `${now.getUTCFullYear()}${p(now.getUTCMonth() + 1)}${p(now.getUTCDate())}` +
      `${p(now.getUTCHours())}${p(now.getUTCMinutes())}${p(now.getUTCSeconds())}` +
      `${p(now.getUTCMilliseconds(), 3)}${p(this.seq, 3)}`;
    return `${stamp}_${randomBytes(3).toString('hex').toUpperCase()}`;
  }
}

export const MESSAGE_ID_PATTERN = /^\d{20}_[0-9A-F]{6}$/;
