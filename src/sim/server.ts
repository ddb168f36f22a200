import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../log';
import { API_PREFIX } from '../mesh/protocol';
import type { RequestContext } from './context';
import type { FaultAction } from './faults';
import { acceptsGzip, apiVersion, sendError } from './http';
import { matchRoute } from './router';
import { handleAdmin, type AdminControl } from './routes/admin';
import type { SimState } from './state';

/**
 * The HTTPS front door. The TLS handshake always completes (requestCert without
 * rejectUnauthorized) so that a request without a certificate signed by the simulator's CA
 * gets a clear 403 body instead of an opaque reset. Then: route, API version, token,
 * expiry sweep, fault injection, handler.
 */
export interface TlsMaterial {
  ca: string;
  cert: string;
  key: string;
}

export function createSimServer(tls: TlsMaterial, getState: () => SimState, control: AdminControl, logger?: Logger): Server {
  const server = createServer(
    { ca: tls.ca, cert: tls.cert, key: tls.key, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' },
    (req, res) => {
      if (logger) logAccess(logger, req, res);
      handle(req, res, getState(), control).catch((err: unknown) => {
        if (!res.headersSent) {
          sendError(res, 500, { event: 'SERVER', code: 'SimulatorError', msg: `simulator failure: ${err instanceof Error ? err.message : String(err)}` });
        } else {
          res.destroy();
        }
      });
    },
  );
  // Large chunk uploads over slow links must not hit Node's default 5-minute request timeout.
  server.requestTimeout = 0;
  return server;
}

async function handle(req: IncomingMessage, res: ServerResponse, state: SimState, control: AdminControl): Promise<void> {
  const socket = req.socket as TLSSocket;
  if (!socket.authorized) {
    const presented = Object.keys(socket.getPeerCertificate?.() ?? {}).length > 0;
    req.resume();
    sendError(res, 403, {
      event: 'AUTH',
      code: presented ? 'ClientCertificateUntrusted' : 'ClientCertificateRequired',
      msg: presented
        ? `client certificate is not signed by this simulator's CA (${socket.authorizationError ?? 'untrusted'}): use the certificate from the simulator's pki/clients folder`
        : 'no client certificate presented: MESH needs mutual TLS (configure tls.cert and tls.key)',
    });
    return;
  }

  const url = new URL(req.url ?? '/', 'https://sim.invalid');
  let segments: string[];
  try {
    segments = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    req.resume();
    return sendError(res, 400, { event: 'SERVER', code: 'BadPath', msg: 'path is not valid percent-encoding' });
  }

  if (segments[0] === 'admin') return handleAdmin(req, res, segments.slice(1), control);
  if (`/${segments[0]}` !== API_PREFIX) {
    req.resume();
    return sendError(res, 404, { event: 'SERVER', code: 'NotFound', msg: `no such path: MESH paths start with ${API_PREFIX}` });
  }

  const method = req.method ?? 'GET';
  const match = matchRoute(method, segments.slice(1));
  if ('status' in match) {
    req.resume();
    return sendError(res, match.status, {
      event: 'SERVER',
      code: match.status === 404 ? 'NotFound' : 'MethodNotAllowed',
      msg: match.status === 404 ? 'no such MESH endpoint' : `method ${method} not allowed here`,
    });
  }
  const { route, params } = match;

  const version = apiVersion(req.headers.accept);
  if (!version.ok) {
    req.resume();
    return sendError(res, 400, { event: 'SERVER', code: 'InvalidAccept', msg: 'Accept header api format incorrect: use application/vnd.mesh.v2+json' });
  }
  if (version.version !== 2 && route.endpoint !== 'ping') {
    // Real MESH would answer with v1 shapes; failing loudly catches a client that forgot Accept.
    req.resume();
    return sendError(res, 406, { event: 'SERVER', code: 'UnsupportedApiVersion', msg: 'this simulator speaks MESH API v2 only: send Accept: application/vnd.mesh.v2+json' });
  }

  let mailbox = '';
  if (route.auth) {
    const result = state.tokens.check(headerValue(req.headers.authorization), params.mailbox, state.clock.nowMs());
    if (!result.ok) {
      req.resume();
      return sendError(res, 403, { event: 'AUTH', code: result.reason, msg: result.msg });
    }
    mailbox = result.mailbox;
  }

  state.sweepExpired();

  let fault: FaultAction = { kind: 'none' };
  if (route.endpoint !== 'ping') {
    const decision = state.faults.decide(route.endpoint);
    if (decision.latencyMs > 0) await new Promise((r) => setTimeout(r, decision.latencyMs));
    fault = decision.action;
    if (applyImmediateFault(req, res, fault, route.endpoint)) return;
  }

  const ctx: RequestContext = {
    req,
    res,
    url,
    state,
    params,
    mailbox,
    fault,
    acceptsGzip: acceptsGzip(headerValue(req.headers['accept-encoding'])),
  };
  await route.handler(ctx);
}

/** One line per request: method, path (no query: it may carry tokens of our own), status, time. */
function logAccess(logger: Logger, req: IncomingMessage, res: ServerResponse): void {
  const started = process.hrtime.bigint();
  res.on('close', () => {
    const ms = Number((process.hrtime.bigint() - started) / 1_000_000n);
    const path = (req.url ?? '/').split('?')[0];
    const status = res.headersSent ? res.statusCode : 0;
    const fields = { method: req.method, path, status, ms, completed: res.writableFinished };
    logger.info('SIM_REQUEST', `${req.method} ${path} ${status || 'connection dropped'}`, fields);
  });
}

/** Faults that replace the whole answer. Returns true when the request is finished. */
function applyImmediateFault(req: IncomingMessage, res: ServerResponse, fault: FaultAction, endpoint: string): boolean {
  switch (fault.kind) {
    case '500':
      req.resume();
      if (fault.xmlBody) {
        // As real MESH sometimes does: an XML/SOAP page instead of JSON.
        const body = '<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode>soap:Server</faultcode><faultstring>Internal Server Error (simulated)</faultstring></soap:Fault></soap:Body></soap:Envelope>';
        res.writeHead(500, { 'content-type': 'text/xml', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      } else {
        sendError(res, 500, { event: 'SERVER', code: 'InternalError', msg: 'simulated internal server error' });
      }
      return true;
    case '503':
      req.resume();
      sendError(res, 503, { event: 'SERVER', code: 'ServiceUnavailable', msg: 'simulated: service unavailable' });
      return true;
    case '429':
      req.resume();
      sendError(res, 429, { event: 'SERVER', code: 'TooManyRequests', msg: 'simulated rate limit' }, { 'retry-after': String(fault.retryAfterSeconds) });
      return true;
    case 'reset':
      // Uploads read part of the body and downloads send part of theirs before dropping.
      if (endpoint === 'send' || endpoint === 'chunk' || endpoint === 'download') return false;
      req.socket.destroy();
      return true;
    default:
      return false;
  }
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}
