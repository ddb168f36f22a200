import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { Finding, checkPrivateMode as CheckPrivateMode } from '../certs';
import type { MeshdConfig } from '../config';
import { EXIT } from './exit';
import { writeJson, writeLines } from './output';

/**
 * `meshd config check [--connect]`: everything that can be wrong before the daemon starts,
 * one line per problem naming the key. Offline by default; --connect adds TLS, the server's
 * clock and an authenticated handshake per mailbox.
 */

interface CheckOptions {
  connect?: boolean;
}

interface GlobalOpts {
  config?: string;
  mailbox?: string;
  json?: boolean;
}

export interface ConnectResult {
  mailbox: string;
  tls: boolean;
  handshake: boolean;
  /** Server Date minus local time, in seconds; absent when the server sent no Date. */
  clockSkewSeconds?: number;
}

/** Several hosts (--connect with ledger.postgres): the shared database and folders as this host sees them. */
export interface SharedResult {
  database: { reachable: boolean; serverVersion?: string; /** Database server's clock minus this machine's. */ clockSkewSeconds?: number };
  /** Folders where a file was written, fsynced, renamed and removed. */
  writable: string[];
}

export interface CheckReport {
  configPath?: string;
  environment?: string;
  mailboxes: string[];
  findings: Finding[];
  connect: ConnectResult[];
  shared?: SharedResult;
}

/** MESH refuses tokens more than 2 hours from its clock; warn well before that. */
const SKEW_ERROR_MS = 2 * 60 * 60 * 1000;
const SKEW_WARN_MS = 5 * 60 * 1000;
const MAILBOX_SUBFOLDERS = ['in', 'out', 'sent', 'failed', 'temp'];
/** Lease expiry runs on the database's clock, ledger times on each host's: warn when they drift apart. */
const DB_SKEW_WARN_MS = 2000;

export function register(program: Command): void {
  const config = program.command('config').description('configuration: validate the config file and its surroundings');
  config
    .command('check')
    .description('validate the config, secrets, file permissions, paths and certificates; --connect also tests MESH')
    .option('--connect', 'also connect: TLS, server clock skew and a handshake for each mailbox; with ledger.postgres, the database (and clock skew against it) and writes to the shared folders')
    .action(async (opts: CheckOptions, cmd: Command) => {
      const g = cmd.optsWithGlobals() as GlobalOpts;
      const report = await checkConfig(g.config, { connect: opts.connect === true, mailbox: g.mailbox });
      const { redactString } = await import('../log');
      for (const f of report.findings) {
        f.message = redactString(f.message);
        if (f.hint) f.hint = redactString(f.hint);
      }
      const errors = report.findings.filter((f) => f.severity === 'error').length;
      if (g.json) {
        writeJson({ ok: errors === 0, ...report }, { space: 2 });
      } else {
        printReport(report, errors);
      }
      process.exitCode = errors > 0 ? EXIT.CONFIG : EXIT.OK;
    });
}

function printReport(report: CheckReport, errors: number): void {
  const out = (s: string) => writeLines(s);
  if (report.configPath) out(`config: ${report.configPath}${report.environment ? ` (environment: ${report.environment})` : ''}`);
  for (const f of report.findings) {
    out(`${f.severity === 'error' ? 'ERROR  ' : 'WARNING'} ${f.key}: ${f.message}`);
    if (f.hint) out(`        what to do: ${f.hint}`);
  }
  for (const c of report.connect) {
    const skew = c.clockSkewSeconds === undefined ? '' : `, clock skew ${c.clockSkewSeconds}s`;
    out(`connect ${c.mailbox}: TLS ${c.tls ? 'ok' : 'FAILED'}, handshake ${c.handshake ? 'ok' : 'FAILED'}${skew}`);
  }
  if (report.shared) {
    const { database: d, writable } = report.shared;
    const skew = d.clockSkewSeconds === undefined ? '' : `, clock skew ${d.clockSkewSeconds}s`;
    out(`connect ledger: PostgreSQL ${d.reachable ? `${d.serverVersion} ok` : 'FAILED'}${skew}; shared folders written: ${writable.length}`);
  }
  const warnings = report.findings.length - errors;
  out(errors === 0 ? `OK${warnings ? ` (${warnings} warning${warnings === 1 ? '' : 's'})` : ''}` : `${errors} problem${errors === 1 ? '' : 's'}${warnings ? `, ${warnings} warning${warnings === 1 ? '' : 's'}` : ''}`);
}

/** Runs every check; never throws for a problem in the config (problems are findings). */
export async function checkConfig(explicitPath: string | undefined, opts: { connect?: boolean; mailbox?: string; now?: Date } = {}): Promise<CheckReport> {
  const { findConfigPath, loadConfig } = await import('../config');
  const { checkTlsFiles, checkPrivateMode } = await import('../certs');
  const report: CheckReport = { mailboxes: [], findings: [], connect: [] };
  const now = opts.now ?? new Date();
  let path: string;
  try {
    path = findConfigPath(explicitPath);
  } catch (err) {
    report.findings.push(findingOf(err, 'config'));
    return report;
  }
  report.configPath = path;
  let config: MeshdConfig;
  try {
    config = await loadConfig(path);
  } catch (err) {
    const problems = (err as { problems?: Array<{ key: string; message: string }> }).problems;
    if (problems) for (const p of problems) report.findings.push({ severity: 'error', key: p.key, message: p.message });
    else report.findings.push(findingOf(err, 'config'));
    // The key file is the most sensitive thing here: check it even when the rest is broken.
    report.findings.push(...(await rawTlsFindings(path, now)));
    return report;
  }
  report.environment = config.environment;
  report.mailboxes = config.mailboxes.map((m) => m.id);
  report.findings.push(...checkTlsFiles(config.tls, now));
  // A mailbox with its own certificate: the same checks, reported under its own keys.
  config.mailboxes.forEach((m, i) => {
    if (!m.tls) return;
    for (const f of checkTlsFiles({ ca: config.tls.ca, ...m.tls }, now)) {
      if (f.key === 'tls.ca') continue; // already reported above
      report.findings.push({ ...f, key: f.key.replace(/^tls\./, `mailboxes[${i}].tls.`) });
    }
  });
  const cnFinding = await certificateMailboxFinding(config);
  if (cnFinding) report.findings.push(cnFinding);
  report.findings.push(...(await secretFileFindings(path)));
  report.findings.push(...(await exposureFindings(path, config)));
  report.findings.push(...checkDataDir(config.dataDir, checkPrivateMode));
  config.mailboxes.forEach((m, i) => report.findings.push(...checkMailboxFolder(`mailboxes[${i}].folder`, m.folder)));
  report.findings.push(...(await import('../ui/check')).uiFindings(config));
  if (opts.connect) {
    const targets = opts.mailbox ? config.mailboxes.filter((m) => m.id === opts.mailbox?.toUpperCase()) : config.mailboxes;
    if (targets.length === 0) report.findings.push({ severity: 'error', key: 'mailboxes', message: `mailbox ${opts.mailbox} is not in the config` });
    for (const m of targets) report.connect.push(await connectCheck(config, m.id, report.findings));
    if (config.ledger.postgres) report.shared = await sharedCheck(config, config.ledger.postgres, report.findings);
  }
  return report;
}

function findingOf(err: unknown, fallbackKey: string): Finding {
  const e = err as { key?: string; message?: string; hint?: string };
  const key = e.key ?? fallbackKey;
  // ConfigError prefixes the key to its message; don't say it twice.
  const message = String(e.message ?? err).replace(new RegExp(`^${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `), '');
  return { severity: 'error', key, message, hint: e.hint };
}

/** A certificate issued for another mailbox is a classic copy-paste error between mailboxes or environments. */
async function certificateMailboxFinding(config: MeshdConfig): Promise<Finding | undefined> {
  if (!config.tls.cert) return undefined;
  const { describeCertificate } = await import('../certs');
  let meshName: { mailbox: string; ods: string } | undefined;
  try {
    meshName = describeCertificate(readFileSync(config.tls.cert)).meshName;
  } catch {
    return undefined; // unreadable certificates are reported by checkTlsFiles
  }
  if (!meshName || config.mailboxes.some((m) => m.id === meshName.mailbox.toUpperCase())) return undefined;
  return {
    severity: 'warning',
    key: 'tls.cert',
    message: `certificate is for mailbox ${meshName.mailbox} (ODS ${meshName.ods}), which is not a mailbox in this config (${config.mailboxes.map((m) => m.id).join(', ')})`,
    hint: 'check tls.cert is the certificate issued for this mailbox and environment',
  };
}

/** Reads the YAML without validation, for the checks that still make sense in a broken config. */
async function rawYaml(path: string): Promise<Record<string, unknown> | undefined> {
  const { parseYaml } = await import('../config');
  try {
    const raw = parseYaml(path, readFileSync(path, 'utf8'));
    return raw && typeof raw === 'object' && !Array.isArray(raw) ? (raw as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

async function rawTlsFindings(configPath: string, now: Date): Promise<Finding[]> {
  const { checkTlsFiles } = await import('../certs');
  const raw = await rawYaml(configPath);
  const tls = raw?.tls as Record<string, unknown> | undefined;
  if (!tls || typeof tls !== 'object') return [];
  const abs = (v: unknown) => (typeof v === 'string' && v ? resolve(dirname(configPath), v) : undefined);
  const files = { ca: abs(tls.ca), cert: abs(tls.cert), key: abs(tls.key) };
  // Missing files were already reported by the loader.
  for (const k of ['ca', 'cert', 'key'] as const) if (files[k] && !existsSync(files[k] as string)) files[k] = undefined;
  return checkTlsFiles(files, now);
}

/** `{ file: PATH }` secrets (shared key, passwords) must be private like the key. */
async function secretFileFindings(configPath: string): Promise<Finding[]> {
  const { checkPrivateMode } = await import('../certs');
  const raw = await rawYaml(configPath);
  if (!raw) return [];
  const proxy = raw.proxy && typeof raw.proxy === 'object' ? (raw.proxy as Record<string, unknown>) : undefined;
  const refs: Array<[string, unknown]> = [['sharedKey', raw.sharedKey], ['proxy.password', proxy?.password]];
  if (Array.isArray(raw.mailboxes)) raw.mailboxes.forEach((m, i) => refs.push([`mailboxes[${i}].password`, (m as Record<string, unknown> | null)?.password]));
  const findings: Finding[] = [];
  for (const [key, ref] of refs) {
    const file = ref && typeof ref === 'object' ? (ref as Record<string, unknown>).file : undefined;
    if (typeof file !== 'string' || !file) continue;
    const f = checkPrivateMode(`${key}.file`, isAbsolute(file) ? file : resolve(dirname(configPath), file), 'secret file');
    if (f) findings.push(f);
  }
  return findings;
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|::1|\[::1\])$/i;

/** Settings that expose meshd or a secret beyond this host's own user. */
async function exposureFindings(configPath: string, config: MeshdConfig): Promise<Finding[]> {
  const findings: Finding[] = [];
  if (config.health.port !== 0 && !LOOPBACK.test(config.health.host)) {
    findings.push({
      severity: 'warning',
      key: 'health.host',
      message: `/healthz, /readyz and /metrics (no authentication) are served on ${config.health.host}, not only to this host`,
      hint: 'keep health.host: 127.0.0.1 (the default) and scrape through a local agent, or firewall the port',
    });
  }
  // The raw file, not the resolved config: there the password from proxy.password is in the URL too.
  const raw = (await rawYaml(configPath))?.proxy;
  const proxyKey = raw && typeof raw === 'object' ? 'proxy.url' : 'proxy';
  const written = raw && typeof raw === 'object' ? (raw as Record<string, unknown>).url : raw;
  let password = '';
  try {
    password = typeof written === 'string' ? new URL(written).password : '';
  } catch {
    // not a URL: the loader reports it
  }
  if (password) {
    findings.push({
      severity: 'warning',
      key: proxyKey,
      message: 'the proxy URL carries a password in the config file',
      hint: 'write proxy: { url: http://USER@host:port, password: { credential: NAME } } (or { env } / { file }) instead',
    });
  }
  return findings;
}

/** Mailbox folders are shared with a group by design, but never with every local user. */
function worldAccessFinding(key: string, path: string): Finding | undefined {
  const mode = statSync(path).mode & 0o777;
  const access = [mode & 0o004 ? 'readable' : '', mode & 0o002 ? 'writable' : ''].filter(Boolean).join(' and ');
  if (!access) return undefined;
  return {
    severity: 'warning',
    key,
    message: `${path} is ${access} by every local user (mode ${mode.toString(8).padStart(4, '0')})`,
    hint: `chmod o-rwx ${path}`,
  };
}

/** Nearest existing ancestor may create the missing folder. */
function creatable(path: string): boolean {
  let dir = path;
  while (!existsSync(dir)) {
    const up = dirname(dir);
    if (up === dir) return false;
    dir = up;
  }
  return isWritableDir(dir);
}

function isWritableDir(p: string): boolean {
  try {
    accessSync(p, constants.W_OK | constants.X_OK);
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function checkDataDir(dataDir: string, checkPrivateMode: typeof CheckPrivateMode): Finding[] {
  const findings: Finding[] = [];
  if (!existsSync(dataDir)) {
    if (!creatable(dataDir)) findings.push({ severity: 'error', key: 'dataDir', message: `${dataDir} does not exist and cannot be created`, hint: `mkdir -m 700 -p ${dataDir} as meshd's user` });
    return findings;
  }
  if (!statSync(dataDir).isDirectory()) return [{ severity: 'error', key: 'dataDir', message: `${dataDir} is not a directory` }];
  try {
    accessSync(dataDir, constants.W_OK | constants.X_OK);
  } catch {
    findings.push({ severity: 'error', key: 'dataDir', message: `${dataDir} is not writable`, hint: `chown it to meshd's user, mode 700` });
  }
  const dirMode = checkPrivateMode('dataDir', dataDir, 'ledger directory', true);
  if (dirMode) findings.push(dirMode);
  for (const name of ['meshd.db', 'meshd.db-wal', 'meshd.db-shm']) {
    const f = checkPrivateMode('dataDir', join(dataDir, name), 'ledger file');
    if (f) findings.push(f);
  }
  return findings;
}

function checkMailboxFolder(key: string, folder: string): Finding[] {
  if (!existsSync(folder)) {
    return creatable(folder)
      ? [{ severity: 'warning', key, message: `${folder} does not exist yet`, hint: `create it with its in/ out/ sent/ failed/ temp/ folders, group-writable for the applications that use it` }]
      : [{ severity: 'error', key, message: `${folder} does not exist and cannot be created`, hint: `create it and make it writable by meshd's user (systemd: ReadWritePaths=)` }];
  }
  if (!isWritableDir(folder)) return [{ severity: 'error', key, message: `${folder} is not a writable folder`, hint: `make it writable by meshd's user (systemd: ReadWritePaths=${folder})` }];
  const findings: Finding[] = [];
  for (const p of [folder, ...MAILBOX_SUBFOLDERS.map((sub) => join(folder, sub))]) {
    if (!existsSync(p)) continue;
    if (!isWritableDir(p)) findings.push({ severity: 'error', key, message: `${p} is not a writable folder`, hint: `make it writable by meshd's user` });
    const open = worldAccessFinding(key, p);
    if (open) findings.push(open);
  }
  return findings;
}

/**
 * Several hosts: the shared PostgreSQL ledger (reachable, version 13+, this machine's clock
 * against the server's) and the shared storage (in dataDir, where the spool lives, and in each
 * mailbox's temp/, a file written, fsynced, renamed within the folder and removed).
 */
async function sharedCheck(config: MeshdConfig, url: string, findings: Finding[]): Promise<SharedResult> {
  const { SyncPg } = await import('../ledger/pg/bridge');
  const { describeUrl } = await import('../ledger/pg/pg-ledger');
  const result: SharedResult = { database: { reachable: false }, writable: [] };
  let db: InstanceType<typeof SyncPg> | undefined;
  try {
    db = new SyncPg(url, { statementTimeoutMs: 10_000 });
    const before = Date.now();
    const [row] = db.rows("SELECT now() AS now, current_setting('server_version_num')::int AS num, current_setting('server_version') AS version");
    const skewMs = Date.parse(row.now as string) - (before + Date.now()) / 2;
    result.database = { reachable: true, serverVersion: row.version as string, clockSkewSeconds: Math.round(skewMs / 100) / 10 };
    if ((row.num as number) < 130000) findings.push({ severity: 'error', key: 'ledger.postgres', message: `PostgreSQL ${row.version} is too old: meshd needs 13 or later` });
    if (Math.abs(skewMs) > DB_SKEW_WARN_MS) {
      findings.push({
        severity: 'warning',
        key: 'ledger.postgres',
        message: `this machine's clock is ${Math.abs(Math.round(skewMs / 1000))}s ${skewMs > 0 ? 'behind' : 'ahead of'} the database server's`,
        hint: 'enable NTP on every host and on the database server: leases expire on the database clock, ledger times come from each host',
      });
    }
  } catch (err) {
    findings.push({ severity: 'error', key: 'ledger.postgres', message: `cannot use the PostgreSQL ledger at ${describeUrl(url)}: ${(err as Error).message}`, hint: 'check that the server is up, the URL (host, port, database) and the role and its password' });
  } finally {
    db?.close();
  }
  const { PRIVATE_FILE_MODE, removeName, writeFileAtomic } = await import('../safe-fs');
  const { hostname } = await import('node:os');
  const folders: Array<[string, string]> = [['dataDir', config.dataDir], ...config.mailboxes.map((m, i): [string, string] => [`mailboxes[${i}].folder`, join(m.folder, 'temp')])];
  for (const [key, dir] of folders) {
    if (!existsSync(dir)) continue; // reported above (created at first start)
    const probe = join(dir, `.meshd-check-${hostname()}-${process.pid}`);
    try {
      await writeFileAtomic(probe, 'meshd config check\n', PRIVATE_FILE_MODE);
      await removeName(probe);
      result.writable.push(dir);
    } catch (err) {
      findings.push({ severity: 'error', key, message: `cannot write, fsync and rename a file in ${dir}: ${(err as Error).message}`, hint: 'every host must mount the shared storage read-write at the same path (docs/operations.md, Shared storage)' });
    }
  }
  return result;
}

/** TLS to the MESH host with the configured certificate, the server's clock, then a handshake. */
async function connectCheck(config: MeshdConfig, mailboxId: string, findings: Finding[]): Promise<ConnectResult> {
  const result: ConnectResult = { mailbox: mailboxId, tls: false, handshake: false };
  const key = `mailboxes[${config.mailboxes.findIndex((m) => m.id === mailboxId)}]`;
  const probe = await probeServer(config);
  if (probe.error) {
    findings.push({ severity: 'error', key: 'url', message: `cannot reach ${config.url} over TLS for ${mailboxId}: ${probe.error}`, hint: 'check url/environment, tls.ca, tls.cert, tls.key, proxy, and that this host may reach MESH (firewall, UK IP)' });
    return result;
  }
  result.tls = true;
  if (probe.skewMs !== undefined) {
    result.clockSkewSeconds = Math.round(probe.skewMs / 1000);
    const abs = Math.abs(probe.skewMs);
    // Positive skew: the server is ahead, so this machine's clock is behind.
    const how = `this machine's clock is ${Math.abs(result.clockSkewSeconds)}s ${probe.skewMs > 0 ? 'behind' : 'ahead of'} MESH's`;
    if (abs > SKEW_ERROR_MS) findings.push({ severity: 'error', key, message: `${how}; tokens beyond ±2 h are refused`, hint: 'fix the system clock (NTP: timedatectl set-ntp true)' });
    else if (abs > SKEW_WARN_MS) findings.push({ severity: 'warning', key, message: how, hint: 'enable NTP (timedatectl set-ntp true)' });
  }
  const { meshClientFor } = await import('../mesh');
  const client = meshClientFor(config, mailboxId, { retry: { attempts: 1 } });
  try {
    await client.handshake();
    result.handshake = true;
  } catch (err) {
    const e = err as { code?: string; message?: string; hint?: string };
    findings.push({ severity: 'error', key, message: `handshake for ${mailboxId} failed: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}`, hint: e.hint });
  } finally {
    await client.close();
  }
  return result;
}

/** One unauthenticated GET (MESH's _ping) to prove TLS works and read the server's Date. */
async function probeServer(config: MeshdConfig): Promise<{ skewMs?: number; error?: string }> {
  const undici = await import('undici');
  const read = (p?: string) => (p ? readFileSync(p) : undefined);
  const tls = { ca: read(config.tls.ca), cert: read(config.tls.cert), key: read(config.tls.key), minVersion: 'TLSv1.2' as const };
  const dispatcher = config.proxy ? new undici.ProxyAgent({ uri: config.proxy, requestTls: tls }) : new undici.Agent({ connect: tls });
  const sent = Date.now();
  try {
    const res = await undici.request(`${config.url}/messageexchange/_ping`, { method: 'GET', dispatcher, headersTimeout: 15_000, bodyTimeout: 15_000 });
    const received = Date.now();
    await res.body.dump();
    const date = res.headers.date;
    const serverMs = typeof date === 'string' ? Date.parse(date) : NaN;
    // Date has one-second resolution; compare with the middle of the round trip.
    return Number.isNaN(serverMs) ? {} : { skewMs: serverMs - (sent + received) / 2 };
  } catch (err) {
    const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
    return { error: [e.code, e.message, e.cause?.code, e.cause?.message].filter(Boolean).join(': ') };
  } finally {
    await dispatcher.close();
  }
}
