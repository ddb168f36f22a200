import winston from 'winston';

/**
 * One logger for the whole process. Every entry carries a stable `event` code
 * (catalogue in docs/operations.md). Secrets are redacted here, at the logger, so
 * no caller can leak one by accident: by key name, by registered value, and by shape
 * (PEM private keys, NHSMESH tokens).
 */

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface Logger {
  error(event: string, message: string, fields?: Record<string, unknown>): void;
  warn(event: string, message: string, fields?: Record<string, unknown>): void;
  info(event: string, message: string, fields?: Record<string, unknown>): void;
  debug(event: string, message: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

const SECRET_KEY = /pass(word|phrase)?|secret|shared_?key|token|authori[sz]ation|private_?key|^key$|credential/i;
const PEM_PRIVATE = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g;
const MESH_TOKEN = /NHSMESH\s+\S+/gi;
const REDACTED = '[REDACTED]';

const secretValues = new Set<string>();

/** Register a secret value (password, shared key) so it is masked wherever it appears. */
export function registerSecret(value: string | undefined): void {
  if (value && value.length >= 4) secretValues.add(value);
}

export function redactString(text: string): string {
  let out = text.replace(PEM_PRIVATE, REDACTED).replace(MESH_TOKEN, `NHSMESH ${REDACTED}`);
  for (const secret of secretValues) {
    if (out.includes(secret)) out = out.split(secret).join(REDACTED);
  }
  return out;
}

export function redact(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactString(value);
  if (value === null || typeof value !== 'object' || depth > 8) return value;
  if (value instanceof Error) {
    return { name: value.name, message: redactString(value.message), code: (value as { code?: unknown }).code };
  }
  if (Buffer.isBuffer(value)) return `<${value.length} bytes>`;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = SECRET_KEY.test(k) && v !== undefined && v !== null && typeof v !== 'boolean' ? REDACTED : redact(v, depth + 1);
  }
  return out;
}

const redactFormat = winston.format((info) => {
  for (const key of Object.keys(info)) {
    const v = (info as Record<string, unknown>)[key];
    (info as Record<string, unknown>)[key] = SECRET_KEY.test(key) && v != null ? REDACTED : redact(v);
  }
  return info;
});

export interface LoggerOptions {
  level?: LogLevel;
  /** json: one JSON object per line (systemd, files); text: for a person at a terminal. */
  format?: 'json' | 'text';
  /** Where lines go; defaults to stderr so stdout stays for command results. */
  stream?: NodeJS.WritableStream;
}

function defaultFormat(): 'json' | 'text' {
  if (process.env.MESHD_LOG_FORMAT === 'json' || process.env.MESHD_LOG_FORMAT === 'text') return process.env.MESHD_LOG_FORMAT;
  // Under systemd (journal) or any non-terminal, machine-readable lines.
  return process.stderr.isTTY && !process.env.INVOCATION_ID ? 'text' : 'json';
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const format = options.format ?? defaultFormat();
  const textFormat = winston.format.printf((info) => {
    const { level, message, event, timestamp, ...rest } = info as Record<string, unknown>;
    const extra = Object.entries(rest)
      .filter(([k]) => typeof k === 'string')
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    return `${timestamp} ${String(level).toUpperCase()} [${event}] ${message}${extra ? ' ' + extra : ''}`;
  });
  const w = winston.createLogger({
    level: options.level ?? (process.env.MESHD_LOG_LEVEL as LogLevel | undefined) ?? 'info',
    format: winston.format.combine(
      redactFormat(),
      winston.format.timestamp(),
      format === 'json' ? winston.format.json() : textFormat,
    ),
    transports: [new winston.transports.Stream({ stream: options.stream ?? process.stderr })],
  });
  return wrap(w, {});
}

function wrap(w: winston.Logger, base: Record<string, unknown>): Logger {
  const log = (level: LogLevel) => (event: string, message: string, fields?: Record<string, unknown>) => {
    w.log({ level, message, event, ...base, ...(fields ?? {}) });
  };
  return {
    error: log('error'),
    warn: log('warn'),
    info: log('info'),
    debug: log('debug'),
    child: (fields) => wrap(w, { ...base, ...fields }),
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
