/**
 * The parts of undici meshd uses, loaded by path: undici's index also loads fetch, WebSocket,
 * the mock agents and the cache stores, about 80 ms of a CLI command's start-up for nothing
 * (docs/performance.md). Types come from the package's own declarations. The paths are
 * undici 7's layout; test/unit/mesh-undici.test.ts fails if an upgrade moves them.
 */
import type * as Undici from 'undici';

/* eslint-disable @typescript-eslint/no-require-imports -- deliberate: loaded by path, see above */
deferHttp2();
const DispatcherBase = require('undici/lib/dispatcher/dispatcher') as typeof Undici.Dispatcher;
// What undici's index does: request() and the other call styles live on every dispatcher. Only
// request() is loaded now; the others (~4 ms) at their first call: ProxyAgent's tunnel uses connect().
Object.assign(DispatcherBase.prototype, { request: require('undici/lib/api/api-request') });
for (const name of ['stream', 'pipeline', 'upgrade', 'connect']) loadOnFirstCall(DispatcherBase.prototype, name, `undici/lib/api/api-${name}`);
export const Agent = require('undici/lib/dispatcher/agent') as typeof Undici.Agent;
export const buildConnector = require('undici/lib/core/connect') as typeof Undici.buildConnector;
/** Only with a proxy configured. */
export const loadProxyAgent = (): typeof Undici.ProxyAgent => require('undici/lib/dispatcher/proxy-agent') as typeof Undici.ProxyAgent;
/* eslint-enable @typescript-eslint/no-require-imports */

/** undici's `request(url, opts)`: origin and path taken from the URL, sent through `opts.dispatcher`. */
export function request(url: URL, opts: Omit<Undici.Dispatcher.RequestOptions, 'origin' | 'path'> & { dispatcher: Undici.Dispatcher }): Promise<Undici.Dispatcher.ResponseData> {
  const { dispatcher, ...rest } = opts;
  return dispatcher.request({ ...rest, origin: url.origin, path: url.search ? `${url.pathname}${url.search}` : url.pathname });
}

/** Puts a method on `target` that replaces itself with the function `path` exports at its first call. */
function loadOnFirstCall(target: object, name: string, path: string): void {
  Object.defineProperty(target, name, {
    configurable: true,
    writable: true,
    value(this: unknown, ...args: unknown[]) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const real = require(path) as (...a: unknown[]) => unknown;
      Object.defineProperty(target, name, { configurable: true, writable: true, value: real });
      return real.apply(this, args);
    },
  });
}

/**
 * undici's client loads its HTTP/2 half, and with it node:http2 (~10 ms of every start), though
 * MESH is HTTP/1.1 and meshd never sets allowH2, so that half never runs. Its one export, the
 * function that takes over a socket that negotiated h2, is put in require's cache as a stand-in
 * that loads the real one at its first call.
 */
function deferHttp2(): void {
  const path = require.resolve('undici/lib/dispatcher/client-h2');
  if (require.cache[path]) return;
  type ConnectH2 = (...args: unknown[]) => unknown;
  let real: ConnectH2 | undefined;
  const connectH2: ConnectH2 = (...args) => {
    if (!real) {
      delete require.cache[path];
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      real = require(path) as ConnectH2;
    }
    return real(...args);
  };
  require.cache[path] = { id: path, filename: path, loaded: true, exports: connectH2, children: [], paths: [] } as unknown as NodeJS.Module;
}
