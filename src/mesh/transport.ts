import { X509Certificate, createHash, createPrivateKey } from 'node:crypto';
import type { Dispatcher, buildConnector as Connector } from 'undici';
import { Agent, buildConnector, loadProxyAgent } from './undici';
import { MeshTlsError } from './errors';

/**
 * The HTTPS dispatcher: mTLS with TLS >= 1.2, keep-alive, host-name verification on, and
 * optionally an HTTP CONNECT proxy that carries the same client certificate.
 */

export interface TlsMaterial {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
}

export interface TransportState {
  /** TLS handshakes completed; with `responses` it tells a refused client cert from other resets. */
  handshakes: number;
  responses: number;
}

export function createDispatcher(tls: TlsMaterial, proxy: string | undefined, state: TransportState): Dispatcher {
  const tlsOptions = { ca: tls.ca, cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' as const, rejectUnauthorized: true };
  if (proxy) {
    const ProxyAgent = loadProxyAgent();
    return new ProxyAgent({ uri: proxy, requestTls: tlsOptions, keepAliveTimeout: 30_000 });
  }
  const base = buildConnector(tlsOptions);
  const connect: Connector.connector = (opts, cb) =>
    base(opts, (err, socket) => {
      if (!err && opts.protocol === 'https:') state.handshakes++;
      // buildConnector's callback signature is a union; forward it unchanged.
      (cb as (e: Error | null, s: unknown) => void)(err, socket);
    });
  return new Agent({ connect, keepAliveTimeout: 30_000, keepAliveMaxTimeout: 300_000 });
}

export interface SharedPool {
  dispatcher: Dispatcher;
  /** Shared by the pool's users: a refused certificate shows on every connection made with it. */
  state: TransportState;
  /** The last user to release it closes its connections. */
  release(): Promise<void>;
}

const pools = new Map<string, { dispatcher: Dispatcher; state: TransportState; users: number }>();

/**
 * One connection pool per client certificate (with its key, CA and proxy): the mailboxes of a
 * daemon that share a certificate share keep-alive connections and TLS sessions, instead of a
 * handshake and an idle socket each.
 */
export function acquirePool(tls: TlsMaterial, proxy: string | undefined): SharedPool {
  const hash = createHash('sha256').update(proxy ?? '');
  for (const part of [tls.ca, tls.cert, tls.key]) hash.update('\0').update(part ?? '');
  const key = hash.digest('hex');
  let pool = pools.get(key);
  if (!pool) {
    const state: TransportState = { handshakes: 0, responses: 0 };
    pool = { dispatcher: createDispatcher(tls, proxy, state), state, users: 0 };
    pools.set(key, pool);
  }
  pool.users++;
  const shared = pool;
  let released = false;
  return {
    dispatcher: shared.dispatcher,
    state: shared.state,
    async release() {
      if (released) return;
      released = true;
      if (--shared.users > 0) return;
      pools.delete(key);
      await shared.dispatcher.close();
    },
  };
}

/**
 * Checks our own certificate before connecting: an expired certificate or a key that does not
 * match fails later as an opaque handshake error, so say so plainly now.
 */
export function checkClientCertificate(cert: string | Buffer | undefined, key: string | Buffer | undefined, now: Date): void {
  if (!cert || !key) return;
  // Many mailboxes often share one certificate: parse it and its key once, check the dates each time.
  const id = createHash('sha256').update(cert).update('\0').update(key).digest('hex');
  const known = checkedPairs.get(id);
  if (known) return checkValidity(known, now);
  checkedPairs.set(id, readPair(cert, key, now));
}

/** Certificate and key pairs already parsed and found to match, by hash of both. */
const checkedPairs = new Map<string, X509Certificate>();

function readPair(cert: string | Buffer, key: string | Buffer, now: Date): X509Certificate {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new MeshTlsError('other', { nodeCode: 'tls.cert is not a PEM certificate', cause: err });
  }
  checkValidity(x509, now);
  let matches = false;
  try {
    matches = x509.checkPrivateKey(createPrivateKey(key));
  } catch (err) {
    throw new MeshTlsError('other', { nodeCode: 'tls.key is not a readable PEM private key', cause: err });
  }
  if (!matches) throw new MeshTlsError('key-mismatch');
  return x509;
}

function checkValidity(x509: X509Certificate, now: Date): void {
  if (now.getTime() > Date.parse(x509.validTo) || now.getTime() < Date.parse(x509.validFrom)) {
    throw new MeshTlsError('client-expired', { nodeCode: `valid ${x509.validFrom} to ${x509.validTo}` });
  }
}
