import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { minIntervalMinutes } from './cron';
import { formatProblem } from './formats';
import { DEFAULTS, ENVIRONMENT_URL, MAX_CHUNK_SIZE } from './presets';
import { isObject, keyOf, Problems } from './problems';
import { ledgerPostgres } from './ledger-postgres';
import { schemaProblems } from './schema';
import { credentialFile, resolveSecret } from './secrets';
import { DURATION_FORMAT, parseDuration } from './duration';
import { parseSize, SIZE_FORMAT } from './size';
import type { Environment, MailboxConfig, MeshdConfig, NodeConfig, RouteConfig, UiConfig } from './types';

/**
 * Validates the parsed YAML against the config contract: first its shape, with
 * config/meshd.schema.json (types, ranges, enums, required and unknown keys); then, here, what a
 * schema cannot say well (rules across keys, files that must exist, secrets, cron, formats),
 * applying defaults and presets. Every problem is recorded; nothing throws here.
 */

interface Ctx {
  problems: Problems;
  configDir: string;
  /** For secrets: `int` when the environment is missing or wrong, so secrets are treated strictly. */
  environment: Environment;
  env: NodeJS.ProcessEnv;
  /** Leave secrets (and the private key) unresolved: for commands that never contact MESH. */
  skipSecrets?: boolean;
  /** Keys the schema found wrong, or holding something wrong. */
  invalid: string[];
}

/** The value at `key`, or `fallback` when it is absent or the schema already reported it. */
function valid<T>(ctx: Ctx, key: string, value: unknown, fallback: T): T {
  if (value === undefined || ctx.invalid.some((k) => k === key || k.startsWith(`${key}.`) || k.startsWith(`${key}[`))) return fallback;
  return value as T;
}

/** A section of plain values (numbers, booleans, names): each valid value, or its default. */
function plain<T extends object>(ctx: Ctx, name: string, value: unknown, defaults: T): T {
  const given = isObject(value) ? value : {};
  return Object.fromEntries(Object.entries(defaults).map(([k, d]) => [k, valid(ctx, keyOf(name, k), given[k], d)])) as T;
}

function size(ctx: Ctx, key: string, value: unknown, fallback: number, min: number, max: number, why = ''): number {
  const given = valid<unknown>(ctx, key, value, undefined);
  if (given === undefined) return fallback;
  const bytes = parseSize(given);
  if (bytes === undefined) return ctx.problems.add(key, SIZE_FORMAT) ?? fallback;
  if (bytes < min || bytes > max) return ctx.problems.add(key, `must be from ${min} to ${max} bytes${why}`) ?? fallback;
  return bytes;
}

function path(ctx: Ctx, key: string, value: unknown, opts: { required?: boolean; mustExist?: boolean; fallback?: string } = {}): string | undefined {
  const raw = valid<string | undefined>(ctx, key, value, undefined) ?? opts.fallback;
  if (raw === undefined) {
    if (opts.required && value === undefined) ctx.problems.add(key, 'is required');
    return undefined;
  }
  const abs = isAbsolute(raw) ? raw : resolve(ctx.configDir, raw);
  if (opts.mustExist && !existsSync(abs)) return ctx.problems.add(key, `file ${abs} does not exist`);
  return abs;
}

/**
 * A private key: a file path, or a systemd credential (`{ credential: client-key }` with
 * LoadCredential=client-key:…) naming the file systemd placed in $CREDENTIALS_DIRECTORY.
 */
function keyFile(ctx: Ctx, key: string, value: unknown, required: boolean): string | undefined {
  const given = valid<unknown>(ctx, key, value, undefined);
  if (isObject(given)) {
    if (ctx.skipSecrets) return undefined;
    const file = credentialFile(ctx.problems, keyOf(key, 'credential'), String(given.credential), ctx.env);
    return file === undefined ? undefined : path(ctx, key, file, { mustExist: true });
  }
  return path(ctx, key, value, { required, mustExist: true });
}

function cron(ctx: Ctx, key: string, value: string, fallback: string, minMinutes: number): string {
  if (value === fallback) return value; // the defaults are valid: node-cron need not load
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { validate } = require('node-cron') as { validate(e: string): boolean };
  if (!validate(value)) return ctx.problems.add(key, `"${value}" is not a valid cron expression (e.g. "*/5 * * * *")`) ?? fallback;
  if (minMinutes > 0) {
    const every = minIntervalMinutes(value);
    if (every === undefined || every < minMinutes) {
      ctx.problems.add(key, `MESH must not be polled more often than every ${minMinutes} minutes outside environment: local`);
    }
  }
  return value;
}

function url(ctx: Ctx, value: unknown, allowHttp: boolean, fallback?: string): string | undefined {
  const raw = valid<string | undefined>(ctx, 'url', value, undefined) ?? (value === undefined ? fallback : undefined);
  if (raw === undefined) return value === undefined ? ctx.problems.add('url', 'is required with environment: local') : undefined;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return ctx.problems.add('url', `"${raw}" is not a URL`);
  }
  if (u.protocol === 'http:' && !allowHttp) return ctx.problems.add('url', 'plain http:// is allowed only with environment: local; use https://');
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return ctx.problems.add('url', 'must start with https://');
  if (u.username || u.password) return ctx.problems.add('url', 'must not contain credentials');
  return raw.replace(/\/+$/, '');
}

/**
 * `proxy: URL`, or `proxy: { url: http://USER@host:port, password: <secret> }` so the password
 * need not sit in the file. Resolves to one URL (with the password) for the HTTP client.
 */
function proxyUrl(ctx: Ctx, value: unknown): string | undefined {
  const given = valid<unknown>(ctx, 'proxy', value, undefined);
  if (given === undefined) return undefined;
  const withPassword = isObject(given);
  const key = withPassword ? 'proxy.url' : 'proxy';
  const p = String(withPassword ? given.url : given);
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
  const password = resolveSecret(ctx.problems, 'proxy.password', given.password, ctx);
  if (password === undefined) return undefined;
  u.password = password;
  return u.toString();
}

function route(ctx: Ctx, key: string, r: Record<string, unknown>): RouteConfig {
  const field = <T>(name: string, fallback: T): T => valid(ctx, keyOf(key, name), r[name], fallback);
  const out: RouteConfig = { direction: field<'in' | 'out'>('direction', 'out'), workflow: field('workflow', '') };
  if (out.direction === 'out') {
    out.match = field<string | undefined>('match', undefined);
    out.to = field<string | undefined>('to', undefined)?.toUpperCase();
    out.subject = field<string | undefined>('subject', undefined);
    const ackTimeout = field<unknown>('ackTimeout', undefined);
    if (ackTimeout !== undefined) {
      out.ackTimeout = parseDuration(ackTimeout);
      if (out.ackTimeout === undefined) ctx.problems.add(keyOf(key, 'ackTimeout'), DURATION_FORMAT);
    }
  } else {
    out.from = field<string | undefined>('from', undefined)?.toUpperCase();
    out.duplicates = field<'drop' | 'deliver'>('duplicates', 'drop');
    // Ordering needs the payload read; a route that converts reads it anyway.
    out.ordering = field<'enforce' | 'off'>('ordering', isObject(r.transform) ? 'enforce' : 'off');
    out.ack = field('ack', false);
    out.deliverAcks = field('deliverAcks', false);
  }
  if (isObject(r.transform)) {
    const tk = keyOf(key, 'transform');
    const from = valid<string | undefined>(ctx, keyOf(tk, 'from'), r.transform.from, undefined);
    const to = valid<string | undefined>(ctx, keyOf(tk, 'to'), r.transform.to, undefined);
    for (const [k, v] of [['from', from], ['to', to]] as const) {
      const problem = v === undefined ? undefined : formatProblem(v, k === 'from' ? 'read' : 'write');
      if (problem) ctx.problems.add(keyOf(tk, k), problem);
    }
    if (from && to) out.transform = { from, to };
  }
  return out;
}

function mailbox(ctx: Ctx, key: string, m: Record<string, unknown>): MailboxConfig {
  const id = valid(ctx, keyOf(key, 'id'), m.id, 'MAILBOX').toUpperCase();
  const password = resolveSecret(ctx.problems, keyOf(key, 'password'), valid(ctx, keyOf(key, 'password'), m.password, undefined), ctx);
  const folder = path(ctx, keyOf(key, 'folder'), m.folder, { fallback: `./mailboxes/${id}` });
  const controlFiles = valid(ctx, keyOf(key, 'controlFiles'), m.controlFiles, true);
  const routes = Array.isArray(m.routes) ? m.routes.flatMap((r, i) => (isObject(r) ? [route(ctx, keyOf(keyOf(key, 'routes'), i), r)] : [])) : [];
  // A mailbox with its own client certificate (the CN names the mailbox): cert and key together.
  let tls: MailboxConfig['tls'];
  if (isObject(m.tls)) {
    const tkey = keyOf(key, 'tls');
    const cert = path(ctx, keyOf(tkey, 'cert'), m.tls.cert, { mustExist: true });
    const k = ctx.skipSecrets ? undefined : keyFile(ctx, keyOf(tkey, 'key'), m.tls.key, false);
    if (cert) tls = { cert, key: k ?? '' };
  }
  return { id, password: password ?? '', folder: folder ?? '', controlFiles, routes, ...(tls ? { tls } : {}) };
}

/** True for names and addresses that only this host can reach. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** The web console's section: anything but loopback needs TLS (the session cookie must not cross a network in clear). */
function uiSection(ctx: Ctx, value: unknown): UiConfig {
  const ui: UiConfig = plain(ctx, 'ui', value, DEFAULTS.ui);
  const t = isObject(value) && isObject(value.tls) ? value.tls : undefined;
  if (t) {
    const cert = path(ctx, 'ui.tls.cert', t.cert, { mustExist: true });
    // A plain key path is resolved even for commands that skip secrets: `meshd ui` needs it and no MESH secret.
    const key = keyFile(ctx, 'ui.tls.key', t.key, false);
    if (cert) ui.tls = { cert, key: key ?? '' };
  }
  if (!isLoopbackHost(ui.host) && !ui.tls) ctx.problems.add('ui.host', `${ui.host} is not a loopback address: ui.tls (cert and key) is required to serve the console beyond this host`);
  return ui;
}

/** YAML's empty value (`key:`) means the key is absent, as if it were not written. */
function withoutNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutNulls);
  if (!isObject(value)) return value;
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null).map(([k, v]) => [k, withoutNulls(v)]));
}

/** Validates `raw` (parsed YAML); returns the config and the problems found. */
const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** `node`: the host id (the MESHD_NODE_ID environment variable wins over `node.id`) and the lease length. */
function nodeSection(ctx: Ctx, value: unknown): NodeConfig {
  const given = isObject(value) ? value : {};
  const fromEnv = ctx.env.MESHD_NODE_ID;
  if (fromEnv !== undefined && !NODE_ID.test(fromEnv)) ctx.problems.add('MESHD_NODE_ID', 'must be a node id: letters, digits, ".", "_" and "-", at most 100');
  const id = fromEnv !== undefined && NODE_ID.test(fromEnv) ? fromEnv : valid<string | undefined>(ctx, 'node.id', given.id, undefined);
  return { ...(id ? { id } : {}), leaseSeconds: valid(ctx, 'node.leaseSeconds', given.leaseSeconds, DEFAULTS.node.leaseSeconds) };
}

export function validateConfig(
  raw: unknown,
  where: { configPath: string; configDir: string; env?: NodeJS.ProcessEnv; skipSecrets?: boolean },
): { config: MeshdConfig; problems: Problems } {
  const problems = new Problems();
  const doc = withoutNulls(raw);
  const shape = schemaProblems(doc, { skipSecrets: where.skipSecrets });
  for (const p of shape.problems) problems.add(p.key, p.message);
  const ctx: Ctx = { problems, configDir: where.configDir, environment: 'int', env: where.env ?? process.env, skipSecrets: where.skipSecrets, invalid: shape.invalid };
  const top = isObject(doc) ? doc : {};

  const given = valid<Environment | undefined>(ctx, 'environment', top.environment, undefined);
  const environment = given ?? 'local';
  ctx.environment = given ?? 'int';
  const isLocal = given === 'local';

  // Without a valid environment there is no preset to fall back on, and that is reported already.
  const baseUrl = given === undefined && top.url === undefined ? undefined : url(ctx, top.url, isLocal, given && given !== 'local' ? ENVIRONMENT_URL[given] : undefined);
  const sharedKey = resolveSecret(problems, 'sharedKey', valid(ctx, 'sharedKey', top.sharedKey, undefined), ctx);

  const t = isObject(top.tls) ? top.tls : {};
  const needTls = !baseUrl || baseUrl.startsWith('https:');
  if (needTls && top.tls === undefined && isObject(doc)) problems.add('tls', 'is required for https:// (ca, cert, key)');
  const tlsRequired = needTls && top.tls !== undefined;
  const tls = {
    ca: path(ctx, 'tls.ca', t.ca, { required: tlsRequired, mustExist: true }),
    cert: path(ctx, 'tls.cert', t.cert, { required: tlsRequired, mustExist: true }),
    key: ctx.skipSecrets ? undefined : keyFile(ctx, 'tls.key', t.key, tlsRequired),
  };

  const proxy = proxyUrl(ctx, top.proxy);
  const dataDir = path(ctx, 'dataDir', top.dataDir, { fallback: './var' }) ?? '';

  const D = DEFAULTS;
  const tr = isObject(top.transfer) ? top.transfer : {};
  const transfer = {
    ...plain(ctx, 'transfer', tr, D.transfer),
    chunkSize: size(ctx, 'transfer.chunkSize', tr.chunkSize, D.transfer.chunkSize, 1, MAX_CHUNK_SIZE, ' (every request body must stay under 100 MB, and gzip can grow a chunk)'),
    maxMessageBytes: size(ctx, 'transfer.maxMessageBytes', tr.maxMessageBytes, D.transfer.maxMessageBytes, 1, Number.MAX_SAFE_INTEGER),
    minFreeBytes: size(ctx, 'transfer.minFreeBytes', tr.minFreeBytes, D.transfer.minFreeBytes, 0, Number.MAX_SAFE_INTEGER),
  };
  const tf = isObject(top.transform) ? top.transform : {};
  const transform = { maxInputBytes: size(ctx, 'transform.maxInputBytes', tf.maxInputBytes, D.transform.maxInputBytes, 1, Number.MAX_SAFE_INTEGER) };

  const retry = plain(ctx, 'retry', top.retry, D.retry);
  if (retry.maxDelayMs < retry.initialDelayMs) problems.add('retry.maxDelayMs', 'must not be less than retry.initialDelayMs');

  const schedule = plain(ctx, 'schedule', top.schedule, D.schedule);
  for (const k of ['poll', 'outboundScan', 'tracking', 'handshake'] as const) {
    schedule[k] = cron(ctx, `schedule.${k}`, schedule[k], D.schedule[k], k === 'poll' && !isLocal ? 5 : 0);
  }

  const ledger = { ...plain(ctx, 'ledger', top.ledger, D.ledger), ...ledgerPostgres(ctx.problems, isObject(top.ledger) ? top.ledger.postgres : undefined, ctx) };
  const node = nodeSection(ctx, top.node);
  const health = plain(ctx, 'health', top.health, D.health);
  const ui = top.ui === undefined ? undefined : uiSection(ctx, top.ui);
  const log = plain(ctx, 'log', top.log, D.log);

  const mailboxes: MailboxConfig[] = [];
  const seen = new Set<string>();
  (Array.isArray(top.mailboxes) ? top.mailboxes : []).forEach((m, i) => {
    if (!isObject(m)) return;
    const mb = mailbox(ctx, keyOf('mailboxes', i), m);
    if (seen.has(mb.id)) problems.add(keyOf(keyOf('mailboxes', i), 'id'), `duplicate mailbox ${mb.id}`);
    seen.add(mb.id);
    mailboxes.push(mb);
  });

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
    node,
    health,
    ...(ui ? { ui } : {}),
    log,
    mailboxes,
  };
  return { config, problems };
}
