import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { isAbsolute, join, relative, resolve } from 'node:path';
import type { MeshdConfig, UiConfig } from '../config/types';
import { MeshdError } from '../errors';
import { resolveReview, retryMessage, type LedgerStore, type MessageRow } from '../ledger';
import { redactString, type Logger } from '../log';
import { openRegular } from '../safe-fs';
import { SESSION_COOKIE, Sessions, cookieValue, loadOrCreateToken, sameSecret, type Session } from './auth';
import type { Html } from './html';
import { plainPage, type PageContext } from './layout';
import { gatherOverview } from './overview-data';
import { ATTENTION_STATES, PAGE_SIZE, attentionPage, messagePage, messagesPage, overviewPage, parseBrowseQuery, type MessageView } from './pages';

/**
 * The web console (docs/ui.md): Node's own http/https server, server-rendered pages, one CSS and
 * one JS file. Every page needs a session; state changes are POSTs with the session's CSRF token.
 */

export interface UiServerOptions {
  config: MeshdConfig;
  ui: UiConfig;
  ledger: LedgerStore;
  log: Logger;
}

export interface UiServer {
  /** The login URL (with the token): printed once, never logged. */
  url: string;
  port: number;
  host: string;
  close(): Promise<void>;
}

/** Relative to dist/src/ui: the assets are served from the source tree (no build step). */
const STATIC_DIR = resolve(__dirname, '..', '..', '..', 'src', 'ui', 'static');
const STATIC_TYPES: Record<string, string> = { 'console.css': 'text/css; charset=utf-8', 'console.js': 'text/javascript; charset=utf-8' };
const HTML_TYPE = 'text/html; charset=utf-8';
const MAX_BODY = 16 * 1024;
const PREVIEW_BYTES = 64 * 1024;
const REASON_BYTES = 16 * 1024;

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  // same-origin, not no-referrer: with no-referrer browsers send `Origin: null` on form POSTs.
  'referrer-policy': 'same-origin',
  'cache-control': 'no-store',
};

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    message: string,
  ) {
    super(message);
  }
}

function loadAssets(): Map<string, Buffer> {
  const assets = new Map<string, Buffer>();
  for (const name of Object.keys(STATIC_TYPES)) assets.set(name, readFileSync(join(STATIC_DIR, name)));
  return assets;
}

function send(res: ServerResponse, status: number, body: Html | string | Buffer, type = HTML_TYPE, headers: Record<string, string> = {}): void {
  const data = Buffer.isBuffer(body) ? body : Buffer.from(String(body));
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, 'content-length': String(data.length), ...headers });
  res.end(data);
}

function redirect(res: ServerResponse, location: string, headers: Record<string, string> = {}): void {
  res.writeHead(303, { ...SECURITY_HEADERS, location, 'content-length': '0', ...headers });
  res.end();
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  if (!(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) throw new HttpError(415, 'Unsupported form', 'forms are sent as application/x-www-form-urlencoded');
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, 'Too large', 'the form is too large');
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** The first `max` bytes of a regular file under one of `roots` (never through a link); undefined if absent. */
async function readHead(file: string, roots: string[], max: number): Promise<{ text: string; truncated: boolean } | undefined> {
  const inside = roots.some((root) => {
    const rel = relative(root, resolve(file));
    return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
  });
  if (!inside) return undefined;
  try {
    const { handle, stat } = await openRegular(file);
    try {
      const buf = Buffer.alloc(Math.min(max, stat.size));
      const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
      return { text: buf.subarray(0, bytesRead).toString('utf8'), truncated: stat.size > max };
    } finally {
      await handle.close();
    }
  } catch {
    return undefined;
  }
}

export async function startUiServer(opts: UiServerOptions): Promise<UiServer> {
  const { config, ui, ledger, log } = opts;
  const assets = loadAssets();
  const token = loadOrCreateToken(config.dataDir);
  const sessions = new Sessions(token);
  const secure = !!ui.tls;
  const roots = [config.dataDir, ...config.mailboxes.map((m) => m.folder)];
  const mailboxes = config.mailboxes.map((m) => m.id);

  const context = (s: Session): PageContext => ({ csrf: s.csrf, readOnly: ui.readOnly, showPayloads: ui.showPayloads, mailboxes });

  const messageView = async (row: MessageRow): Promise<MessageView> => {
    const events = ledger.events(row.id);
    const reports = row.messageId ? ledger.linkedReports(row.messageId) : [];
    const about = row.messageType === 'REPORT' && row.linkedMessageId ? ledger.findByRef(row.linkedMessageId) : undefined;
    const reasonFiles = [row.payloadPath && `${row.payloadPath}.reason`, ...events.map((e) => e.detail?.failed)].filter(
      (p): p is string => typeof p === 'string' && p.endsWith('.reason'),
    );
    let reason: string | undefined;
    for (const f of reasonFiles) {
      reason = (await readHead(f, roots, REASON_BYTES))?.text;
      if (reason !== undefined) break;
    }
    let payload: MessageView['payload'];
    if (ui.showPayloads) {
      const head = row.payloadPath ? await readHead(row.payloadPath, roots, PREVIEW_BYTES) : undefined;
      if (!head) payload = { missing: 'The payload is no longer on disk (or is not in a mailbox folder).' };
      else if (head.text.includes('\u0000')) payload = { missing: 'The payload is binary; it is not shown.' };
      else payload = head;
    }
    return { row, events, reports, about, reason, payload };
  };

  const findRow = (id: string): MessageRow => {
    const row = /^\d{1,15}$/.test(id) ? ledger.get(Number(id)) : undefined;
    if (!row) throw new HttpError(404, 'Not found', `There is no message ${id} in the ledger.`);
    return row;
  };

  const act = async (req: IncomingMessage, res: ServerResponse, s: Session, id: string, action: string): Promise<void> => {
    if (ui.readOnly) throw new HttpError(403, 'Read-only', 'This console is read-only (ui.readOnly): use `meshd ledger retry|resolve`.');
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `${secure ? 'https' : 'http'}://${req.headers.host}`) throw new HttpError(403, 'Forbidden', 'The request came from another site.');
    const form = await readForm(req);
    if (!sameSecret(form.get('csrf') ?? '', s.csrf)) {
      log.warn('UI_CSRF_REFUSED', 'a console action without a valid CSRF token was refused', { address: req.socket.remoteAddress });
      throw new HttpError(403, 'Forbidden', 'The form was missing its security token. Reload the page and try again.');
    }
    const row = findRow(id);
    const note = (form.get('note') ?? '').trim();
    try {
      if (action === 'retry') retryMessage(ledger, row.id, { note: note || undefined, via: 'console' });
      else {
        const as = form.get('as');
        if (as !== 'sent' && as !== 'failed') throw new HttpError(400, 'Choose an outcome', 'Choose whether the message arrived (sent) or not (failed).');
        resolveReview(ledger, row.id, as, note, (form.get('messageId') ?? '').trim() || undefined, 'console');
      }
    } catch (err) {
      if (!(err instanceof MeshdError)) throw err;
      const updated = ledger.get(row.id) ?? row;
      send(res, err.kind === 'usage' ? 400 : 409, messagePage(await messageView(updated), context(s), `Not done: ${err.message}${err.hint ? ` (${err.hint})` : ''}`));
      return;
    }
    log.info('UI_ACTION', `console ${action} of message ${row.id}`, { row: row.id, action });
    redirect(res, `/messages/${row.id}?done=${action}`);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://console.invalid');
    const path = url.pathname;
    const address = req.socket.remoteAddress ?? 'unknown';

    if (req.method === 'GET' && path.startsWith('/static/')) {
      const name = path.slice('/static/'.length);
      const asset = assets.get(name);
      if (!asset) throw new HttpError(404, 'Not found', 'No such file.');
      send(res, 200, asset, STATIC_TYPES[name], { 'cache-control': 'no-cache' });
      return;
    }

    const offered = url.searchParams.get('token');
    if (offered !== null && req.method === 'GET') {
      if (sessions.blocked(address)) {
        log.warn('UI_LOGIN_BLOCKED', 'console login refused: too many failed attempts from this address', { address });
        throw new HttpError(429, 'Too many attempts', 'Too many failed logins from this address. Wait a minute and open the login URL again.');
      }
      const s = sessions.login(offered);
      if (!s) {
        const attempts = sessions.failed(address);
        log.warn('UI_LOGIN_FAILED', 'console login with a wrong token', { address, attempts });
        throw new HttpError(401, 'Login needed', 'That login link is not valid. Open the URL printed by `meshd ui`.');
      }
      log.info('UI_LOGIN', 'console session started', { address });
      url.searchParams.delete('token');
      const cookie = `${SESSION_COOKIE}=${s.id}; Path=/; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
      redirect(res, path + (url.searchParams.size ? `?${url.searchParams.toString()}` : ''), { 'set-cookie': cookie });
      return;
    }

    const session = sessions.find(cookieValue(req.headers.cookie, SESSION_COOKIE));
    if (!session) throw new HttpError(401, 'Login needed', 'Open the login URL printed by `meshd ui` (or the token in the data directory’s ui.token).');

    const action = /^\/messages\/([^/]+)\/(retry|resolve)$/.exec(path);
    if (req.method === 'POST' && action) return act(req, res, session, action[1], action[2]);
    if (req.method !== 'GET') throw new HttpError(405, 'Not allowed', 'This address only answers GET.');

    const ctx = context(session);
    if (path === '/') return send(res, 200, overviewPage(gatherOverview(config, ledger)));
    if (path === '/messages') {
      const q = parseBrowseQuery(url.searchParams, mailboxes);
      const rows = ledger.browse({ ...q.filter, limit: PAGE_SIZE + 1 });
      return send(res, 200, messagesPage(rows.slice(0, PAGE_SIZE), q, ctx, rows.length > PAGE_SIZE));
    }
    const one = /^\/messages\/([^/]+)$/.exec(path);
    if (one) {
      const done = url.searchParams.get('done');
      const notice = done === 'retry' || done === 'resolve' ? `Done: ${done === 'retry' ? 'queued again' : 'resolved'}; recorded in the history as done through the console.` : undefined;
      return send(res, 200, messagePage(await messageView(findRow(one[1])), ctx, notice));
    }
    if (path === '/attention') {
      return send(res, 200, attentionPage(ledger.browse({ state: ATTENTION_STATES, limit: 200 }), ctx));
    }
    throw new HttpError(404, 'Not found', 'There is no such page.');
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((err) => {
      if (res.headersSent) return void res.destroy();
      if (err instanceof HttpError) return send(res, err.status, plainPage(err.title, err.message, err.status === 401 ? undefined : ['/', 'Back to the overview']));
      log.error('UI_ERROR', `console request failed: ${redactString(err instanceof Error ? err.message : String(err))}`, { path: (req.url ?? '').split('?')[0] });
      send(res, 500, plainPage('Something went wrong', 'The console could not answer this request; the meshd log has the details.'));
    });
  };

  const server: Server = ui.tls ? createHttpsServer({ cert: readFileSync(ui.tls.cert), key: readFileSync(ui.tls.key) }, onRequest) : createHttpServer(onRequest);
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  await new Promise<void>((done, fail) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      fail(new MeshdError('UI_LISTEN_FAILED', `the console cannot listen on ${ui.host}:${ui.port}: ${err.code ?? err.message}`, 'choose another ui.port (or --port), or stop what uses it', 'config', { cause: err })),
    );
    server.listen(ui.port, ui.host, () => done());
  });
  const port = (server.address() as AddressInfo).port;
  const hostInUrl = ui.host.includes(':') ? `[${ui.host}]` : ui.host;
  return {
    url: `${secure ? 'https' : 'http'}://${hostInUrl}:${port}/?token=${token}`,
    port,
    host: ui.host,
    close: () =>
      new Promise<void>((done) => {
        server.close(() => done());
        server.closeAllConnections();
      }),
  };
}
