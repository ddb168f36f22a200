import { mkdir, readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import type { Logger } from '../log';
import { INBOX_EXPIRY_DAYS, INBOX_PAGE_DEFAULT, INBOX_PAGE_MAX, INBOX_PAGE_MIN } from '../mesh/protocol';
import { TokenChecker } from './auth';
import { SimClock } from './clock';
import { writeClientConfigs } from './configs';
import { SimError } from './errors';
import { FaultInjector } from './faults';
import { ensureSimPki } from './pki';
import { ensureSimSecrets } from './secrets';
import { createSimServer } from './server';
import { BASE_WORKFLOWS, SimState, type ReportRequest } from './state';
import { MessageStore, type SimMessage } from './store';

/**
 * The MESH simulator: a real HTTPS server on loopback that behaves like MESH API v2, stricter
 * than NHS England's sandbox. See docs/simulator.md.
 */

export type { SimMessage } from './store';
export type { SimPki } from './pki';
export { ensureSimPki } from './pki';
export { parseFaultSpec } from './faults';

export interface SimulatorOptions {
  /** State dir; created if missing. */
  dir: string;
  /** Default 0 = ephemeral; the CLI defaults to 8700. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default ['X26ABC1', 'X26ABC2']. */
  mailboxes?: string[];
  /** Extra workflow ids every sim mailbox may send to every other (TEST_WORKFLOW, TEST_WORKFLOW_ACK always allowed). */
  workflows?: string[];
  /** Fault spec, e.g. "send:503=0.1,*:latency=20" (see faults.ts). */
  faults?: string;
  /** Default 1. */
  seed?: number;
  /** Default page size 500. */
  maxResults?: number;
  /** Default 5. */
  inboxExpiryDays?: number;
  /** Base clock; advanceClock adds an offset on top. */
  now?: () => Date;
  /** chunkSize written into the client configs (bytes); default 20 MiB. */
  chunkSize?: number;
  /** Access log (event SIM_REQUEST), e.g. for `meshd sim`; silent when absent. */
  logger?: Logger;
}

export interface SimClient {
  cert: string;
  key: string;
  password: string;
  configPath: string;
}

export interface Simulator {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  readonly pki: { ca: string; serverCert: string; serverKey: string };
  client(mailbox: string): SimClient;
  readonly sharedKey: string;
  reset(): Promise<void>;
  injectReport(r: ReportRequest): Promise<string>;
  advanceClock(ms: number): Promise<void>;
  setFaults(spec: string | undefined, seed?: number): void;
  messages(): SimMessage[];
  /**
   * Test-only: puts a DATA message into `mailbox`'s inbox as a hostile MESH would serve it —
   * any id (`.x`, `a/b`), a body sent as given, a lying Content-Encoding, raw header lines.
   */
  injectHostile(h: HostileMessage): Promise<string>;
  /** The simulator's current time (base clock plus admin offset): build tokens from this. */
  now(): Date;
  close(): Promise<void>;
}

export interface HostileMessage {
  mailbox: string;
  /** Default: a fresh MESH-shaped id. */
  id?: string;
  body: Buffer;
  contentEncoding?: string;
  rawHeaders?: string[];
}

const DEFAULT_MAILBOXES = ['X26ABC1', 'X26ABC2'];
const MAILBOX_ID = /^[A-Z0-9]{3,20}$/;

export async function startSimulator(options: SimulatorOptions): Promise<Simulator> {
  const dir = resolve(options.dir);
  const mailboxes = [...new Set((options.mailboxes ?? DEFAULT_MAILBOXES).map((m) => m.trim().toUpperCase()))];
  for (const mb of mailboxes) {
    if (!MAILBOX_ID.test(mb)) throw new SimError('SIM_MAILBOX_INVALID', `mailbox id "${mb}" is not 3-20 letters and digits`, 'use ids like X26ABC1');
  }
  if (mailboxes.length === 0) throw new SimError('SIM_MAILBOX_INVALID', 'at least one mailbox is needed', 'pass --mailboxes X26ABC1,X26ABC2');
  const maxResults = options.maxResults ?? INBOX_PAGE_DEFAULT;
  if (!(Number.isInteger(maxResults) && maxResults >= INBOX_PAGE_MIN && maxResults <= INBOX_PAGE_MAX)) {
    throw new SimError('SIM_OPTION_INVALID', `maxResults must be an integer from ${INBOX_PAGE_MIN} to ${INBOX_PAGE_MAX}`);
  }
  const seed = options.seed ?? 1;
  let faultSpec = options.faults;
  const initialFaults = new FaultInjector(faultSpec, seed); // validates the spec before anything starts

  await mkdir(dir, { recursive: true });
  const pki = await ensureSimPki(dir, mailboxes);
  const secrets = await ensureSimSecrets(dir, mailboxes);
  const clock = new SimClock(options.now);
  const store = new MessageStore(dir);
  await store.load();
  clock.setOffset(store.clockOffsetMs);
  const tokens = new TokenChecker({ sharedKey: secrets.sharedKey, passwordOf: (mb) => secrets.passwords[mb]?.value }, join(dir, 'used-tokens'));
  tokens.load(clock.nowMs());
  const state = new SimState(
    store,
    clock,
    tokens,
    initialFaults,
    new Set(mailboxes),
    new Set([...BASE_WORKFLOWS, ...(options.workflows ?? []).map((w) => w.trim()).filter(Boolean)]),
    maxResults,
    (options.inboxExpiryDays ?? INBOX_EXPIRY_DAYS) * 86_400_000,
  );

  const control = {
    async reset(): Promise<void> {
      await store.reset();
      tokens.reset();
      clock.setOffset(0);
      state.faults = new FaultInjector(faultSpec, seed);
    },
    async injectReport(r: ReportRequest): Promise<string> {
      const mailbox = String(r.mailbox).toUpperCase();
      if (!state.knowsMailbox(mailbox)) throw new SimError('SIM_MAILBOX_UNKNOWN', `mailbox ${mailbox} is not simulated`);
      const id = state.createReport({ ...r, mailbox });
      await store.flush();
      return id;
    },
    async advanceClock(ms: number): Promise<void> {
      clock.advance(ms);
      store.clockOffsetMs = clock.offset;
      state.sweepExpired(true);
      store.changed();
      await store.flush();
    },
    setFaults(spec: string | undefined, newSeed?: number): void {
      state.faults = new FaultInjector(spec, newSeed ?? seed);
      faultSpec = spec;
    },
    messages: (): SimMessage[] => store.all(),
    async injectHostile(h: HostileMessage): Promise<string> {
      const now = clock.now();
      const m = store.create(
        {
          type: 'DATA',
          sender: mailboxes[0],
          recipient: h.mailbox.toUpperCase(),
          workflowId: 'TEST_WORKFLOW',
          status: 'accepted',
          chunks: 1,
          acceptedAt: now.toISOString(),
          hostile: { bodyBase64: h.body.toString('base64'), contentEncoding: h.contentEncoding, rawHeaders: h.rawHeaders },
        },
        now,
        h.id ?? store.newId(now),
      );
      store.update(m.id, { chunksReceived: 1, bytes: h.body.length });
      await store.flush();
      return m.id;
    },
    now: (): Date => clock.now(),
    clockOffsetMs: (): number => clock.offset,
  };

  const [ca, serverCert, serverKey] = await Promise.all([readFile(pki.ca, 'utf8'), readFile(pki.serverCert, 'utf8'), readFile(pki.serverKey, 'utf8')]);
  const server = createSimServer({ ca, cert: serverCert, key: serverKey }, () => state, control, options.logger);
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') {
        reject(new SimError('SIM_PORT_IN_USE', `port ${options.port} on ${options.host ?? '127.0.0.1'} is already in use`, 'stop the other process or pick another --port (0 = any free port)'));
      } else reject(err);
    });
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolveListen());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `https://localhost:${port}`;
  const configs = await writeClientConfigs({ dir, url, pki, secrets, chunkSize: options.chunkSize }, mailboxes);

  let closed: Promise<void> | undefined;
  return {
    url,
    port,
    dir,
    pki: { ca: pki.ca, serverCert: pki.serverCert, serverKey: pki.serverKey },
    sharedKey: secrets.sharedKey,
    client(mailbox: string): SimClient {
      const mb = mailbox.toUpperCase();
      if (!pki.clients[mb]) throw new SimError('SIM_MAILBOX_UNKNOWN', `mailbox ${mb} is not simulated`, `simulated mailboxes: ${mailboxes.join(', ')}`);
      return { cert: pki.clients[mb].cert, key: pki.clients[mb].key, password: secrets.passwords[mb].value, configPath: configs[mb] };
    },
    reset: control.reset,
    injectReport: control.injectReport,
    advanceClock: control.advanceClock,
    setFaults: control.setFaults,
    messages: control.messages,
    injectHostile: control.injectHostile,
    now: control.now,
    close(): Promise<void> {
      closed ??= (async () => {
        await new Promise<void>((r) => {
          server.close(() => r());
          server.closeAllConnections();
        });
        await store.flush();
        tokens.close();
      })();
      return closed;
    },
  };
}
