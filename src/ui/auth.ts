import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MeshdError } from '../errors';
import { PRIVATE_FILE_MODE, writeNewSync } from '../safe-fs';

/**
 * Login for the console: a random token (kept in dataDir/ui.token, 0600) is exchanged once per
 * browser for a session cookie; each session has its own CSRF token. Sessions live in memory,
 * so a restart logs everyone out.
 */

const TOKEN = /^[A-Za-z0-9_-]{43}$/;
/** A session ends after this long without a request. */
const SESSION_IDLE_MS = 12 * 60 * 60 * 1000;
/** Failed logins allowed per client address per window, then 429 until the window ends. */
const MAX_FAILURES = 5;
const FAILURE_WINDOW_MS = 60_000;

export const SESSION_COOKIE = 'meshd_session';

function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function tokenPath(dataDir: string): string {
  return join(dataDir, 'ui.token');
}

/**
 * The login token: the one in dataDir/ui.token, or a new one written there (0600). `meshd run`
 * and `meshd ui` on one data dir therefore share it; delete the file to change it.
 */
export function loadOrCreateToken(dataDir: string): string {
  const file = tokenPath(dataDir);
  try {
    const existing = readFileSync(file, 'utf8').trim();
    if (TOKEN.test(existing)) return existing;
    throw new MeshdError('UI_TOKEN_INVALID', `${file} does not hold a console token`, `delete ${file}; a new one is written on the next start`, 'config');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const token = newSecret();
  writeNewSync(file, token + '\n', PRIVATE_FILE_MODE);
  return token;
}

export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export interface Session {
  id: string;
  csrf: string;
  lastSeen: number;
}

export class Sessions {
  private readonly sessions = new Map<string, Session>();
  private readonly failures = new Map<string, { count: number; since: number }>();

  constructor(
    private readonly token: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** A new session when `candidate` is the login token; undefined otherwise. */
  login(candidate: string): Session | undefined {
    if (!sameSecret(candidate, this.token)) return undefined;
    const session = { id: newSecret(), csrf: newSecret(), lastSeen: this.now() };
    this.sessions.set(session.id, session);
    return session;
  }

  find(id: string | undefined): Session | undefined {
    if (!id) return undefined;
    const s = this.sessions.get(id);
    if (!s) return undefined;
    if (this.now() - s.lastSeen > SESSION_IDLE_MS) {
      this.sessions.delete(id);
      return undefined;
    }
    s.lastSeen = this.now();
    return s;
  }

  /** True while this address has used up its failed logins for the current window. */
  blocked(address: string): boolean {
    const f = this.failures.get(address);
    if (!f) return false;
    if (this.now() - f.since > FAILURE_WINDOW_MS) {
      this.failures.delete(address);
      return false;
    }
    return f.count >= MAX_FAILURES;
  }

  /** Records a failed login; returns how many this address has had in the window. */
  failed(address: string): number {
    const t = this.now();
    // Many addresses (a scan) must not grow the map for ever: forget windows that are over.
    if (this.failures.size > 10_000) for (const [a, old] of this.failures) if (t - old.since > FAILURE_WINDOW_MS) this.failures.delete(a);
    const f = this.failures.get(address);
    if (!f || t - f.since > FAILURE_WINDOW_MS) {
      this.failures.set(address, { count: 1, since: t });
      return 1;
    }
    f.count++;
    return f.count;
  }
}

/** The value of one cookie from a Cookie header. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
