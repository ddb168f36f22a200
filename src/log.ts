import type winston from 'winston';
import { escapeControl, escapeJsonText } from './safe-text';

/**
 * One logger for the whole process. Every entry carries a stable `event` code
 * (catalogue in docs/operations.md). Secrets are redacted here, at the logger, so
 * no caller can leak one by accident: by key name, by registered value, and by shape
 * (PEM private keys, NHSMESH and Bearer tokens, URL credentials, NHS numbers). Control
 * characters are escaped (src/safe-text.ts), so no value can forge a line or drive a terminal.
 */

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export const LOG_LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug'];

export interface Logger {
  error(event: string, message: string, fields?: Record<string, unknown>): void;
  warn(event: string, message: string, fields?: Record<string, unknown>): void;
  info(event: string, message: string, fields?: Record<string, unknown>): void;
  debug(event: string, message: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

/** Field names whose values are always secret, whatever they contain. */
const SECRET_KEY = /passw(or)?d|passphrase|^pass$|secret|shared_?key|token|authori[sz]ation|private_?key|^key$|^keyPem$|credential|cookie/i;
const PEM_PRIVATE = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g;
const MESH_TOKEN = /NHSMESH\s+\S+/gi;
const BEARER = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/g;
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@:]+:[^\s/@]+@/gi;
/** Ten digits, optionally grouped 3-3-4, standing alone (not part of an ID, file name or longer number). */
const NHS_NUMBER_LIKE = /\b(\d{3})[ -]?(\d{3})[ -]?(\d{4})\b/g;
export const REDACTED = '[REDACTED]';
const MAX_DEPTH = 8;

const secretValues = new Set<string>();
/** Where winston keeps the finished line (triple-beam's MESSAGE). */
const MESSAGE = Symbol.for('message');

/** Register a secret value (password, shared key) so it is masked wherever it appears. */
export function registerSecret(value: string | undefined): void {
  if (value && value.length >= 4) secretValues.add(value);
}

/** Modulus 11 check: only real-looking NHS numbers are masked, not every 10-digit number. */
function isNhsNumber(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < 9; i++) sum += Number(digits[i]) * (10 - i);
  const check = 11 - (sum % 11);
  if (check === 10) return false;
  return (check === 11 ? 0 : check) === Number(digits[9]);
}

export function redactString(text: string): string {
  let out = text
    .replace(PEM_PRIVATE, REDACTED)
    .replace(MESH_TOKEN, `NHSMESH ${REDACTED}`)
    .replace(BEARER, `$1 ${REDACTED}`)
    .replace(URL_CREDENTIALS, `$1${REDACTED}@`)
    .replace(NHS_NUMBER_LIKE, (m, a: string, b: string, c: string) => (isNhsNumber(a + b + c) ? '[NHS-NUMBER]' : m));
  for (const secret of secretValues) {
    if (out.includes(secret)) out = out.split(secret).join(REDACTED);
  }
  return out;
}

function isSecretKey(key: string, value: unknown): boolean {
  return SECRET_KEY.test(key) && value !== undefined && value !== null && typeof value !== 'boolean' && typeof value !== 'number';
}

/** A deep copy with secrets masked; Errors become plain objects (name, message, code, hint, cause). */
export function redact(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactString(value);
  if (value === null || typeof value !== 'object') return value;
  // Deeper than anyone logs on purpose (or a cycle): drop it rather than risk a leak.
  if (depth > MAX_DEPTH) return '[TRUNCATED]';
  if (value instanceof Error) {
    const e = value as Error & { code?: unknown; hint?: unknown; cause?: unknown };
    const out: Record<string, unknown> = { name: e.name, message: redactString(e.message) };
    if (e.code !== undefined) out.code = redact(e.code, depth + 1);
    if (e.hint !== undefined) out.hint = redact(e.hint, depth + 1);
    if (e.cause !== undefined) out.cause = redact(e.cause, depth + 1);
    return out;
  }
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `<${value.length} bytes>`;
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = isSecretKey(k, v) ? REDACTED : redact(v, depth + 1);
  }
  return out;
}

export interface LoggerOptions {
  level?: LogLevel;
  /** json: one JSON object per line (systemd, files); text: for a person at a terminal; auto: pick. */
  format?: 'json' | 'text' | 'auto';
  /** Where lines go; defaults to stderr so stdout stays for command results. */
  stream?: NodeJS.WritableStream;
}

function isLogLevel(v: unknown): v is LogLevel {
  return typeof v === 'string' && (LOG_LEVELS as readonly string[]).includes(v);
}

/** auto: text for a person at a terminal, JSON under systemd (INVOCATION_ID) or when piped. */
export function resolveLogFormat(format: LoggerOptions['format'], env: NodeJS.ProcessEnv = process.env, isTTY = process.stderr.isTTY === true): 'json' | 'text' {
  if (format === 'json' || format === 'text') return format;
  if (env.MESHD_LOG_FORMAT === 'json' || env.MESHD_LOG_FORMAT === 'text') return env.MESHD_LOG_FORMAT;
  return isTTY && !env.INVOCATION_ID ? 'text' : 'json';
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const envLevel = process.env.MESHD_LOG_LEVEL;
  const level = options.level ?? (isLogLevel(envLevel) ? envLevel : 'info');
  const format = resolveLogFormat(options.format);
  let w: winston.Logger | undefined;
  // winston takes 40–65 ms to load: it is loaded at the first line that passes the level, so a
  // `run --once` from a timer with nothing to say never pays for it (docs/performance.md §2).
  const write = (entry: Record<string, unknown> & { level: LogLevel }) => {
    if (LOG_LEVELS.indexOf(entry.level) > LOG_LEVELS.indexOf(level)) return;
    (w ??= winstonLogger(level, format, options.stream ?? process.stderr)).log(entry as winston.LogEntry);
  };
  return wrap(write, {});
}

function winstonLogger(level: LogLevel, format: 'json' | 'text', stream: NodeJS.WritableStream): winston.Logger {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const lib = require('winston') as typeof winston;
  const redactFormat = lib.format((info) => {
    const record = info as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      const v = record[key];
      record[key] = isSecretKey(key, v) ? REDACTED : redact(v);
    }
    return info;
  });
  const textFormat = lib.format.printf((info) => {
    const { level, message, event, timestamp, ...rest } = info as Record<string, unknown>;
    const extra = Object.entries(rest)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    return escapeControl(`${timestamp} ${String(level).toUpperCase()} [${event}] ${message}${extra ? ' ' + extra : ''}`);
  });
  const jsonFormat = lib.format.combine(
    lib.format.json(),
    lib.format((info) => {
      const record = info as unknown as Record<symbol, string>;
      record[MESSAGE] = escapeJsonText(record[MESSAGE]);
      return info;
    })(),
  );
  return lib.createLogger({
    level,
    format: lib.format.combine(redactFormat(), lib.format.timestamp(), format === 'json' ? jsonFormat : textFormat),
    transports: [new lib.transports.Stream({ stream })],
  });
}

function wrap(write: (entry: Record<string, unknown> & { level: LogLevel }) => void, base: Record<string, unknown>): Logger {
  const log = (level: LogLevel) => (event: string, message: string, fields?: Record<string, unknown>) => {
    // level, message and event come last so no field can overwrite them.
    write({ ...base, ...(fields ?? {}), level, message: String(message), event });
  };
  return {
    error: log('error'),
    warn: log('warn'),
    info: log('info'),
    debug: log('debug'),
    child: (fields) => wrap(write, { ...base, ...fields }),
  };
}

/** A logger that drops everything: for library use and tests that do not read logs. */
export const silentLogger: Logger = {
  error() {},
  warn() {},
  info() {},
  debug() {},
  child() {
    return silentLogger;
  },
};
