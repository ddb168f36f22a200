import { existsSync } from 'node:fs';
import { basename, isAbsolute, resolve } from 'node:path';
import { minIntervalMinutes } from './cron';
import { formatProblem } from './formats';
import { DEFAULTS, ENVIRONMENT_URL, MAX_CHUNK_SIZE } from './presets';
import { isObject, keyOf, Problems } from './problems';
import { ledgerPostgres } from './ledger-postgres';
import { resolveSecret } from './secrets';
import { parseSize } from './size';
import type { Environment, MailboxConfig, MeshdConfig, RouteConfig, UiConfig } from './types';

/**
 * Validates the parsed YAML against the config contract (prompts/config-schema.md),
 * applying defaults and presets. Every problem is recorded; nothing throws here.
 */

interface Ctx {
  problems: Problems;
  configDir: string;
  environment: Environment;
  env: NodeJS.ProcessEnv;
  /** Leave secrets (and the private key) unresolved: for commands that never contact MESH. */
  skipSecrets?: boolean;
}

const TOP_KEYS = ['environment', 'url', 'sharedKey', 'tls', 'proxy', 'dataDir', 'transfer', 'transform', 'retry', 'schedule', 'ledger', 'health', 'ui', 'log', 'mailboxes'];
const ENVIRONMENTS: Environment[] = ['local', 'int', 'dep', 'live'];
const MAILBOX_ID = /^[A-Za-z0-9_-]{1,100}$/;

function section(ctx: Ctx, key: string, value: unknown, allowed: string[]): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (!isObject(value)) {
    ctx.problems.add(key, 'must be a mapping');
    return {};
  }
  for (const k of Object.keys(value)) {
    if (!allowed.includes(k)) ctx.problems.add(keyOf(key, k), `unknown key (expected one of ${allowed.join(', ')})`);
  }
  return value;
}

function int(ctx: Ctx, key: string, value: unknown, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    ctx.problems.add(key, `must be an integer from ${min} to ${max}`);
    return fallback;
  }
  return value;
}

function bool(ctx: Ctx, key: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'boolean') {
    ctx.problems.add(key, 'must be true or false');
    return fallback;
  }
  return value;
}

function str(ctx: Ctx, key: string, value: unknown, required: boolean): string | undefined {
  if (value === undefined || value === null) {
    if (required) ctx.problems.add(key, 'is required');
    return undefined;
  }
  if (typeof value !== 'string' || !value.trim()) return ctx.problems.add(key, 'must be a non-empty string');
  return value;
}

function oneOf<T extends string>(ctx: Ctx, key: string, value: unknown, options: readonly T[], fallback: T): T {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'string' || !options.includes(value as T)) {
    ctx.problems.add(key, `must be one of ${options.join(', ')}`);
    return fallback;
  }
  return value as T;
}

function size(ctx: Ctx, key: string, value: unknown, fallback: number, min: number, max: number, why = ''): number {
  if (value === undefined || value === null) return fallback;
  const bytes = parseSize(value);
  if (bytes === undefined) {
    ctx.problems.add(key, 'must be a byte count: an integer, or a number with KiB, MiB or GiB (e.g. 20MiB)');
    return fallback;
  }
  if (bytes < min || bytes > max) {
    ctx.problems.add(key, `must be from ${min} to ${max} bytes${why}`);
    return fallback;
  }
  return bytes;
}

function path(ctx: Ctx, key: string, value: unknown, opts: { required: boolean; mustExist: boolean; fallback?: string }): string | undefined {
  const raw = str(ctx, key, value, opts.required && opts.fallback === undefined) ?? opts.fallback;
  if (raw === undefined) return undefined;
  const abs = isAbsolute(raw) ? raw : resolve(ctx.configDir, raw);
  if (opts.mustExist && !existsSync(abs)) return ctx.problems.add(key, `file ${abs} does not exist`);
  return abs;
}

/**
 * The private key may be a systemd credential (`tls.key: { credential: client-key }` with
 * LoadCredential=client-key:…): it then names the file systemd placed in $CREDENTIALS_DIRECTORY.
 */
function credentialPath(ctx: Ctx, key: string, value: unknown): unknown {
  if (ctx.skipSecrets) return undefined;
  if (!value || typeof value !== 'object') return value;
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length !== 1 || entries[0][0] !== 'credential' || typeof entries[0][1] !== 'string') {
    ctx.problems.add(key, 'must be a file path or { credential: NAME }');
    return undefined;
  }
  const name = entries[0][1];
  const dir = ctx.env.CREDENTIALS_DIRECTORY;
  if (!dir) {
    ctx.problems.add(`${key}.credential`, 'CREDENTIALS_DIRECTORY is not set (use LoadCredential= in the systemd unit)');
    return undefined;
  }
  if (basename(name) !== name) {
    ctx.problems.add(`${key}.credential`, 'must be a plain credential name, not a path');
    return undefined;
  }
  return resolve(dir, name);
}

function cron(ctx: Ctx, key: string, value: unknown, fallback: string, minMinutes: number): string {
  const expr = str(ctx, key, value, false);
  if (expr === undefined) return fallback;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { validate } = require('node-cron') as { validate(e: string): boolean };
  if (!validate(expr)) {
    ctx.problems.add(key, `"${expr}" is not a valid cron expression (e.g. "*/5 * * * *")`);
    return fallback;
  }
  if (minMinutes > 0) {
    const every = minIntervalMinutes(expr);
    if (every === undefined || every < minMinutes) {
      ctx.problems.add(key, `MESH must not be polled more often than every ${minMinutes} minutes outside environment: local`);
    }
  }
  return expr;
}

function url(ctx: Ctx, key: string, value: unknown, allowHttp: boolean, fallback?: string): string | undefined {
  const raw = value === undefined || value === null ? fallback : str(ctx, key, value, true);
  if (raw === undefined) return ctx.problems.add(key, 'is required with environment: local');
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return ctx.problems.add(key, `"${raw}" is not a URL`);
  }
  if (u.protocol === 'http:' && !allowHttp) return ctx.problems.add(key, 'plain http:// is allowed only with environment: local; use https://');
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return ctx.problems.add(key, 'must start with https://');
  if (u.username || u.password) return ctx.problems.add(key, 'must not contain credentials');
  return raw.replace(/\/+$/, '');
}

/**
 * `proxy: URL`, or `proxy: { url: http://USER@host:port, password: <secret> }` so the password
 * need not sit in the file. Resolves to one URL (with the password) for the HTTP client.
 */
function proxyUrl(ctx: Ctx, value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  const withPassword = isObject(value);
  const px = withPassword ? section(ctx, 'proxy', value, ['url', 'password']) : { url: value };
  const key = withPassword ? 'proxy.url' : 'proxy';
  const p = str(ctx, key, px.url, withPassword);
  if (!p) return undefined;
  let u: URL;
  try {
    u = new URL(p);
  } catch {
    return ctx.problems.add(key, `"${p}" is not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return ctx.problems.add(key, 'must be an http:// or https:// proxy URL');
  if (!withPassword) return p;
  if (u.password) return ctx.problems.add(key, 'must not carry a password: proxy.password holds it');
  if (!u.username) return ctx.problems.add(key, 'needs the user name that goes with proxy.password (http://USER@host:port)');
  const password = resolveSecret(ctx.problems, 'proxy.password', px.password, ctx);
  if (password === undefined) return undefined;
  u.password = password;
  return u.toString();
}

function route(ctx: Ctx, key: string, value: unknown): RouteConfig | undefined {
  const r = section(ctx, key, value, ['direction', 'match', 'to', 'from', 'workflow', 'subject', 'transform']);
  if (!isObject(value)) {
    if (value === undefined || value === null) ctx.problems.add(key, 'must be a mapping');
    return undefined;
  }
  const direction = oneOf(ctx, keyOf(key, 'direction'), r.direction ?? '', ['in', 'out'] as const, 'out');
  const workflow = str(ctx, keyOf(key, 'workflow'), r.workflow, true);
  const out: RouteConfig = { direction, workflow: workflow ?? '' };
  if (direction === 'out') {
    out.match = str(ctx, keyOf(key, 'match'), r.match, true);
    const to = str(ctx, keyOf(key, 'to'), r.to, true);
    if (to && !MAILBOX_ID.test(to)) ctx.problems.add(keyOf(key, 'to'), 'must be a mailbox id (letters, digits, - and _)');
    out.to = to?.toUpperCase();
    out.subject = str(ctx, keyOf(key, 'subject'), r.subject, false);
    if (r.from !== undefined) ctx.problems.add(keyOf(key, 'from'), 'applies only to direction: in');
  } else {
    const from = str(ctx, keyOf(key, 'from'), r.from, false);
    if (from && !MAILBOX_ID.test(from)) ctx.problems.add(keyOf(key, 'from'), 'must be a mailbox id (letters, digits, - and _)');
    out.from = from?.toUpperCase();
    for (const k of ['match', 'to', 'subject']) if (r[k] !== undefined) ctx.problems.add(keyOf(key, k), 'applies only to direction: out');
  }
  if (r.transform !== undefined) {
    const tk = keyOf(key, 'transform');
    const t = section(ctx, tk, r.transform, ['from', 'to']);
    const from = str(ctx, keyOf(tk, 'from'), t.from, true);
    const to = str(ctx, keyOf(tk, 'to'), t.to, true);
    for (const [k, v] of [['from', from], ['to', to]] as const) {
      const problem = v === undefined ? undefined : formatProblem(v, k === 'from' ? 'read' : 'write');
      if (problem) ctx.problems.add(keyOf(tk, k), problem);
    }
    if (from && to) out.transform = { from, to };
  }
  return out;
}

function mailbox(ctx: Ctx, key: string, value: unknown): MailboxConfig | undefined {
  if (!isObject(value)) return ctx.problems.add(key, 'must be a mapping with id, password, folder');
  const m = section(ctx, key, value, ['id', 'password', 'folder', 'controlFiles', 'routes', 'tls']);
  const id = str(ctx, keyOf(key, 'id'), m.id, true);
  if (id !== undefined && !MAILBOX_ID.test(id)) ctx.problems.add(keyOf(key, 'id'), 'must be a mailbox id (letters, digits, - and _; no spaces)');
  const upper = (id ?? 'MAILBOX').toUpperCase();
  const password = resolveSecret(ctx.problems, keyOf(key, 'password'), m.password, ctx);
  const folder = path(ctx, keyOf(key, 'folder'), m.folder, { required: false, mustExist: false, fallback: `./mailboxes/${upper}` });
  const controlFiles = bool(ctx, keyOf(key, 'controlFiles'), m.controlFiles, true);
  const routes: RouteConfig[] = [];
  if (m.routes !== undefined && m.routes !== null) {
    if (!Array.isArray(m.routes)) ctx.problems.add(keyOf(key, 'routes'), 'must be a list');
    else m.routes.forEach((r, i) => {
      const parsed = route(ctx, keyOf(keyOf(key, 'routes'), i), r);
      if (parsed) routes.push(parsed);
    });
  }
  // A mailbox with its own client certificate (the CN names the mailbox): cert and key together.
  let tls: MailboxConfig['tls'];
  if (m.tls !== undefined && m.tls !== null) {
    const tkey = keyOf(key, 'tls');
    const t = section(ctx, tkey, m.tls, ['cert', 'key']);
    const cert = path(ctx, keyOf(tkey, 'cert'), t.cert, { required: true, mustExist: true });
    const k = path(ctx, keyOf(tkey, 'key'), credentialPath(ctx, keyOf(tkey, 'key'), t.key), { required: !ctx.skipSecrets, mustExist: true });
    if (cert) tls = { cert, key: k ?? '' };
  }
  return { id: upper, password: password ?? '', folder: folder ?? '', controlFiles, routes, ...(tls ? { tls } : {}) };
}

/** True for names and addresses that only this host can reach. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** The web console's section: anything but loopback needs TLS (the session cookie must not cross a network in clear). */
function uiSection(ctx: Ctx, value: unknown): UiConfig {
  const u = section(ctx, 'ui', value, ['port', 'host', 'readOnly', 'showPayloads', 'tls']);
  const D = DEFAULTS.ui;
  const ui: UiConfig = {
    port: int(ctx, 'ui.port', u.port, D.port, 0, 65_535),
    host: str(ctx, 'ui.host', u.host, false) ?? D.host,
    readOnly: bool(ctx, 'ui.readOnly', u.readOnly, D.readOnly),
    showPayloads: bool(ctx, 'ui.showPayloads', u.showPayloads, D.showPayloads),
  };
  if (u.tls !== undefined && u.tls !== null) {
    const t = section(ctx, 'ui.tls', u.tls, ['cert', 'key']);
    const cert = path(ctx, 'ui.tls.cert', t.cert, { required: true, mustExist: true });
    // A plain key path is resolved even for commands that skip secrets: `meshd ui` needs it and no MESH secret.
    const asCredential = isObject(t.key);
    const key = path(ctx, 'ui.tls.key', asCredential ? credentialPath(ctx, 'ui.tls.key', t.key) : t.key, { required: !(ctx.skipSecrets && asCredential), mustExist: true });
    if (cert) ui.tls = { cert, key: key ?? '' };
  }
  if (!isLoopbackHost(ui.host) && !ui.tls) ctx.problems.add('ui.host', `${ui.host} is not a loopback address: ui.tls (cert and key) is required to serve the console beyond this host`);
  return ui;
}

/** Validates `raw` (parsed YAML); returns the config and the problems found. */
export function validateConfig(
  raw: unknown,
  where: { configPath: string; configDir: string; env?: NodeJS.ProcessEnv; skipSecrets?: boolean },
): { config: MeshdConfig; problems: Problems } {
  const problems = new Problems();
  const ctx: Ctx = { problems, configDir: where.configDir, environment: 'local', env: where.env ?? process.env, skipSecrets: where.skipSecrets };
  if (!isObject(raw)) problems.add('', 'the file must contain a YAML mapping (environment:, sharedKey:, mailboxes: ...)');
  const top = isObject(raw) ? section(ctx, '', raw, TOP_KEYS) : {};

  if (top.environment === undefined) problems.add('environment', `is required (one of ${ENVIRONMENTS.join(', ')})`);
  const environment = oneOf(ctx, 'environment', top.environment, ENVIRONMENTS, 'local');
  ctx.environment = top.environment === undefined ? 'int' : environment; // unknown env: treat secrets strictly
  const isLocal = environment === 'local' && top.environment !== undefined;

  const baseUrl = url(ctx, 'url', top.url, isLocal, environment === 'local' ? undefined : ENVIRONMENT_URL[environment]);
  const sharedKey = resolveSecret(problems, 'sharedKey', top.sharedKey, ctx);

  const t = section(ctx, 'tls', top.tls, ['ca', 'cert', 'key']);
  const needTls = !baseUrl || baseUrl.startsWith('https:');
  if (needTls && (top.tls === undefined || top.tls === null)) problems.add('tls', 'is required for https:// (ca, cert, key)');
  const tls = {
    ca: path(ctx, 'tls.ca', t.ca, { required: needTls && top.tls != null, mustExist: true }),
    cert: path(ctx, 'tls.cert', t.cert, { required: needTls && top.tls != null, mustExist: true }),
    key: path(ctx, 'tls.key', credentialPath(ctx, 'tls.key', t.key), { required: needTls && top.tls != null && !ctx.skipSecrets, mustExist: true }),
  };

  const proxy = proxyUrl(ctx, top.proxy);

  const dataDir = path(ctx, 'dataDir', top.dataDir, { required: false, mustExist: false, fallback: './var' }) ?? '';

  const tr = section(ctx, 'transfer', top.transfer, ['chunkSize', 'compress', 'maxMessageBytes', 'timeoutSeconds', 'minFreeBytes', 'maxCompressionRatio']);
  const D = DEFAULTS;
  const transfer = {
    chunkSize: size(ctx, 'transfer.chunkSize', tr.chunkSize, D.transfer.chunkSize, 1, MAX_CHUNK_SIZE, ' (every request body must stay under 100 MB, and gzip can grow a chunk)'),
    compress: bool(ctx, 'transfer.compress', tr.compress, D.transfer.compress),
    maxMessageBytes: size(ctx, 'transfer.maxMessageBytes', tr.maxMessageBytes, D.transfer.maxMessageBytes, 1, Number.MAX_SAFE_INTEGER),
    timeoutSeconds: int(ctx, 'transfer.timeoutSeconds', tr.timeoutSeconds, D.transfer.timeoutSeconds, 1, 86_400),
    minFreeBytes: size(ctx, 'transfer.minFreeBytes', tr.minFreeBytes, D.transfer.minFreeBytes, 0, Number.MAX_SAFE_INTEGER),
    maxCompressionRatio: int(ctx, 'transfer.maxCompressionRatio', tr.maxCompressionRatio, D.transfer.maxCompressionRatio, 2, 1_000_000),
  };

  const tf = section(ctx, 'transform', top.transform, ['maxInputBytes']);
  const transform = {
    maxInputBytes: size(ctx, 'transform.maxInputBytes', tf.maxInputBytes, D.transform.maxInputBytes, 1, Number.MAX_SAFE_INTEGER),
  };

  const re = section(ctx, 'retry', top.retry, ['attempts', 'initialDelayMs', 'maxDelayMs', 'maxTotalMs']);
  const retry = {
    attempts: int(ctx, 'retry.attempts', re.attempts, D.retry.attempts, 1, 100),
    initialDelayMs: int(ctx, 'retry.initialDelayMs', re.initialDelayMs, D.retry.initialDelayMs, 0, 3_600_000),
    maxDelayMs: int(ctx, 'retry.maxDelayMs', re.maxDelayMs, D.retry.maxDelayMs, 0, 3_600_000),
    maxTotalMs: int(ctx, 'retry.maxTotalMs', re.maxTotalMs, D.retry.maxTotalMs, 0, 86_400_000),
  };
  if (retry.maxDelayMs < retry.initialDelayMs) problems.add('retry.maxDelayMs', 'must not be less than retry.initialDelayMs');

  const sc = section(ctx, 'schedule', top.schedule, ['poll', 'outboundScan', 'tracking', 'handshake', 'settleSeconds']);
  const schedule = {
    poll: cron(ctx, 'schedule.poll', sc.poll, D.schedule.poll, isLocal ? 0 : 5),
    outboundScan: cron(ctx, 'schedule.outboundScan', sc.outboundScan, D.schedule.outboundScan, 0),
    tracking: cron(ctx, 'schedule.tracking', sc.tracking, D.schedule.tracking, 0),
    handshake: cron(ctx, 'schedule.handshake', sc.handshake, D.schedule.handshake, 0),
    settleSeconds: int(ctx, 'schedule.settleSeconds', sc.settleSeconds, D.schedule.settleSeconds, 0, 3600),
  };

  const le = section(ctx, 'ledger', top.ledger, ['payloadRetentionDays', 'rowRetentionDays', 'ambiguousSend', 'postgres']);
  const ledger = {
    payloadRetentionDays: int(ctx, 'ledger.payloadRetentionDays', le.payloadRetentionDays, D.ledger.payloadRetentionDays, 0, 36_500),
    rowRetentionDays: int(ctx, 'ledger.rowRetentionDays', le.rowRetentionDays, D.ledger.rowRetentionDays, 0, 36_500),
    ambiguousSend: oneOf(ctx, 'ledger.ambiguousSend', le.ambiguousSend, ['review', 'resend'] as const, D.ledger.ambiguousSend),
    ...ledgerPostgres(ctx.problems, le.postgres, ctx),
  };

  const he = section(ctx, 'health', top.health, ['port', 'host']);
  const health = {
    port: int(ctx, 'health.port', he.port, D.health.port, 0, 65_535),
    host: str(ctx, 'health.host', he.host, false) ?? D.health.host,
  };

  const ui = top.ui === undefined || top.ui === null ? undefined : uiSection(ctx, top.ui);

  const lo = section(ctx, 'log', top.log, ['level', 'format']);
  const log = {
    level: oneOf(ctx, 'log.level', lo.level, ['error', 'warn', 'info', 'debug'] as const, D.log.level),
    format: oneOf(ctx, 'log.format', lo.format, ['auto', 'json', 'text'] as const, D.log.format),
  };

  const mailboxes: MailboxConfig[] = [];
  if (!Array.isArray(top.mailboxes) || top.mailboxes.length === 0) {
    if (isObject(raw)) problems.add('mailboxes', 'must be a list with at least one mailbox');
  } else {
    const seen = new Set<string>();
    top.mailboxes.forEach((m, i) => {
      const mb = mailbox(ctx, keyOf('mailboxes', i), m);
      if (!mb) return;
      if (seen.has(mb.id)) problems.add(keyOf(keyOf('mailboxes', i), 'id'), `duplicate mailbox ${mb.id}`);
      seen.add(mb.id);
      mailboxes.push(mb);
    });
  }

  const config: MeshdConfig = {
    configPath: where.configPath,
    configDir: where.configDir,
    environment,
    url: baseUrl ?? '',
    sharedKey: sharedKey ?? '',
    tls,
    proxy,
    dataDir,
    transfer,
    transform,
    retry,
    schedule,
    ledger,
    health,
    ...(ui ? { ui } : {}),
    log,
    mailboxes,
  };
  return { config, problems };
}
