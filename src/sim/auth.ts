import { createHmac, timingSafeEqual } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { TOKEN_MAX_SKEW_MS } from '../mesh/protocol';

/**
 * Checks `Authorization: NHSMESH MAILBOX:nonce:count:timestamp:hmac` the way real MESH is
 * documented to (docs/mesh-protocol.md, Authorization token), including the rules the NHS sandbox skips: timestamp within
 * ±2 h of the simulator's clock, and each token usable once — also across a restart: each
 * accepted token is appended to a journal file before the request is served.
 */

export type AuthFailure =
  | 'TokenMissing'
  | 'TokenMalformed'
  | 'MailboxMismatch'
  | 'UnknownMailbox'
  | 'TokenExpired'
  | 'TokenInvalid'
  | 'TokenReused';

export type AuthResult = { ok: true; mailbox: string } | { ok: false; reason: AuthFailure; msg: string };

export interface AuthDirectory {
  sharedKey: string;
  passwordOf(mailbox: string): string | undefined;
}

const TIMESTAMP = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})$/;
/** Below this many remembered tokens, pruning is not worth a pass. */
const PRUNE_FLOOR = 10_000;

export class TokenChecker {
  /** `mailbox:nonce:count:timestamp` → its timestamp (ms); entries older than the skew window are pruned. */
  private readonly used = new Map<string, number>();
  private pruneAt = PRUNE_FLOOR;
  /** The journal, open for appending: one write(2) a request instead of open, write and close. */
  private fd: number | undefined;

  /** journal: where used tokens are kept for a restart (one per line); none = memory only. */
  constructor(
    private readonly directory: AuthDirectory,
    private readonly journal?: string,
  ) {}

  /** Takes back the tokens a previous run accepted that are still inside the ±2 h window. */
  load(nowMs: number): void {
    if (!this.journal) return;
    let text = '';
    try {
      text = readFileSync(this.journal, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    // A line cut short by a crash has no valid timestamp and is skipped.
    for (const key of text.split('\n')) {
      const parts = key.split(':');
      const ms = parts.length === 4 ? parseTimestamp(parts[3]) : undefined;
      if (ms !== undefined && Math.abs(nowMs - ms) <= TOKEN_MAX_SKEW_MS) this.used.set(key, ms);
    }
    this.rewriteJournal();
  }

  check(header: string | undefined, pathMailbox: string, nowMs: number): AuthResult {
    if (!header) return fail('TokenMissing', 'Authorization header missing: send "NHSMESH <mailbox>:<nonce>:<count>:<timestamp>:<hmac>"');
    const m = /^NHSMESH (.*)$/.exec(header);
    if (!m) return fail('TokenMalformed', 'Authorization scheme must be "NHSMESH " followed by the token');
    const parts = m[1].split(':');
    if (parts.length !== 5) return fail('TokenMalformed', 'token must have 5 colon-separated parts');
    const [mailbox, nonce, count, timestamp, mac] = parts;
    if (!mailbox || !nonce || !/^\d+$/.test(count) || !/^[0-9a-fA-F]{64}$/.test(mac)) {
      return fail('TokenMalformed', 'token parts malformed: mailbox, nonce, numeric nonce_count, timestamp, 64 hex digit HMAC');
    }
    if (mailbox !== mailbox.toUpperCase()) return fail('TokenMalformed', 'token mailbox must be upper case');
    if (mailbox !== pathMailbox) return fail('MailboxMismatch', 'Mailbox id does not match token');
    const password = this.directory.passwordOf(mailbox);
    if (password === undefined) return fail('UnknownMailbox', `mailbox ${mailbox} is not known to this simulator`);
    const tokenMs = parseTimestamp(timestamp);
    if (tokenMs === undefined) return fail('TokenMalformed', 'token timestamp must be UTC yyyyMMddHHmm');
    if (Math.abs(nowMs - tokenMs) > TOKEN_MAX_SKEW_MS) {
      return fail('TokenExpired', 'token timestamp is more than 2 hours from server time: check the clock and use UTC');
    }
    const expected = createHmac('sha256', this.directory.sharedKey).update(`${mailbox}:${nonce}:${count}:${password}:${timestamp}`).digest();
    if (!timingSafeEqual(expected, Buffer.from(mac, 'hex'))) {
      return fail('TokenInvalid', 'token HMAC does not match: check the mailbox password and the shared key');
    }
    const key = `${mailbox}:${nonce}:${count}:${timestamp}`;
    if (this.used.has(key)) return fail('TokenReused', 'token already used: build a new token for every request, including retries');
    this.used.set(key, tokenMs);
    // One write(2) in append mode: a killed simulator keeps every token it answered.
    if (this.journal) writeSync(this.journalFd(this.journal), `${key}\n`);
    this.prune(nowMs);
    return { ok: true, mailbox };
  }

  reset(): void {
    this.used.clear();
    this.rewriteJournal();
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private journalFd(journal: string): number {
    return (this.fd ??= openSync(journal, 'a', 0o600));
  }

  /** A token older than the skew window would be refused for age anyway; forget it. */
  private prune(nowMs: number): void {
    if (this.used.size < this.pruneAt) return;
    for (const [key, ms] of this.used) if (Math.abs(nowMs - ms) > TOKEN_MAX_SKEW_MS) this.used.delete(key);
    // Next pass when the live set has doubled, so a busy window does not prune on every request.
    this.pruneAt = Math.max(PRUNE_FLOOR, 2 * this.used.size);
    this.rewriteJournal();
  }

  /** Replaces the journal with the tokens still remembered: temp file, fsync, rename. */
  private rewriteJournal(): void {
    if (!this.journal) return;
    const tmp = `${this.journal}.${process.pid}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, [...this.used.keys()].map((k) => `${k}\n`).join(''));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.journal);
    // Appends go to the new file from now on.
    this.close();
  }
}

function fail(reason: AuthFailure, msg: string): AuthResult {
  return { ok: false, reason, msg };
}

function parseTimestamp(ts: string): number | undefined {
  const m = TIMESTAMP.exec(ts);
  if (!m) return undefined;
  const [y, mo, d, h, mi] = m.slice(1).map(Number);
  const ms = Date.UTC(y, mo - 1, d, h, mi);
  const back = new Date(ms);
  // Reject impossible dates (month 13, hour 25) that Date.UTC would silently roll over.
  if (back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || back.getUTCHours() !== h) return undefined;
  return ms;
}

/** Builds a token (for the simulator's own tests and docs; the real client has its own). */
export function buildToken(mailbox: string, password: string, sharedKey: string, nonce: string, count: number, now: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  const ts = `${now.getUTCFullYear()}${p(now.getUTCMonth() + 1)}${p(now.getUTCDate())}${p(now.getUTCHours())}${p(now.getUTCMinutes())}`;
  const mb = mailbox.toUpperCase();
  const mac = createHmac('sha256', sharedKey).update(`${mb}:${nonce}:${count}:${password}:${ts}`).digest('hex');
  return `NHSMESH ${mb}:${nonce}:${count}:${ts}:${mac}`;
}
