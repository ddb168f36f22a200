import { randomUUID, createHmac } from 'node:crypto';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { request as httpsRequest, Agent } from 'node:https';
import type { ClientRequest, IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { startSimulator, type Simulator, type SimulatorOptions } from '../../src/sim';

/**
 * Raw HTTPS helpers for the simulator's own tests. They deliberately do not use the meshd
 * client (src/mesh): the simulator is what that client is tested against.
 */

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  json(): any;
}

export interface RawRequest {
  method?: string;
  /** Path including query, e.g. /messageexchange/X26ABC1/inbox. */
  path: string;
  /** Mailbox whose certificate and token to use (default: none → no token). */
  as?: string;
  /** Override the Authorization header (string) or send none (null). */
  authorization?: string | null;
  headers?: Record<string, string>;
  body?: Buffer | string | Readable;
  /** Which client certificate to present: the mailbox's (default), none, or explicit PEMs. */
  cert?: 'none' | { cert: string; key: string };
  /** Default: the v2 media type. */
  accept?: string | null;
  /** Gives the test the outgoing request (e.g. to destroy it mid-upload). */
  onRequest?: (req: ClientRequest) => void;
  /** Called once the whole response has arrived, with the outgoing request. */
  onResponse?: (req: ClientRequest) => void;
}

export function meshToken(mailbox: string, password: string, sharedKey: string, now: Date, nonce = randomUUID(), count = 0): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  const ts = `${now.getUTCFullYear()}${p(now.getUTCMonth() + 1)}${p(now.getUTCDate())}${p(now.getUTCHours())}${p(now.getUTCMinutes())}`;
  const mac = createHmac('sha256', sharedKey).update(`${mailbox}:${nonce}:${count}:${password}:${ts}`).digest('hex');
  return `NHSMESH ${mailbox}:${nonce}:${count}:${ts}:${mac}`;
}

export class SimHarness {
  private readonly ca: string;
  private readonly agents = new Map<string, Agent>();

  constructor(
    readonly sim: Simulator,
    readonly tmp: string,
    readonly mailboxes: string[],
  ) {
    this.ca = readFileSync(sim.pki.ca, 'utf8');
  }

  token(mailbox: string, at = this.sim.now()): string {
    return meshToken(mailbox, this.sim.client(mailbox).password, this.sim.sharedKey, at);
  }

  private agent(key: string, cert?: { cert: string; key: string }): Agent {
    let agent = this.agents.get(key);
    if (!agent) {
      agent = new Agent({ ca: this.ca, ...(cert ?? {}), keepAlive: true });
      this.agents.set(key, agent);
    }
    return agent;
  }

  request(r: RawRequest): Promise<RawResponse> {
    let certPem: { cert: string; key: string } | undefined;
    let agentKey = 'none';
    if (r.cert === undefined && r.as) {
      const c = this.sim.client(r.as);
      certPem = { cert: readFileSync(c.cert, 'utf8'), key: readFileSync(c.key, 'utf8') };
      agentKey = `mb:${r.as}`;
    } else if (r.cert === undefined) {
      const c = this.sim.client(this.mailboxes[0]);
      certPem = { cert: readFileSync(c.cert, 'utf8'), key: readFileSync(c.key, 'utf8') };
      agentKey = 'default';
    } else if (r.cert !== 'none') {
      certPem = r.cert;
      agentKey = `explicit:${r.cert.cert.slice(-80)}`;
    }
    const headers: Record<string, string> = { ...(r.headers ?? {}) };
    if (r.accept !== null) headers.accept = r.accept ?? 'application/vnd.mesh.v2+json';
    if (r.authorization !== null) {
      const auth = r.authorization ?? (r.as ? this.token(r.as) : undefined);
      if (auth) headers.authorization = auth;
    }
    if (Buffer.isBuffer(r.body) || typeof r.body === 'string') headers['content-length'] = String(Buffer.byteLength(r.body));
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        `${this.sim.url}${r.path}`,
        { method: r.method ?? 'GET', headers, agent: this.agent(agentKey, certPem) },
        (res) => {
          const parts: Buffer[] = [];
          res.on('data', (c: Buffer) => parts.push(c));
          res.on('error', reject);
          res.on('end', () => {
            r.onResponse?.(req);
            const body = Buffer.concat(parts);
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body.toString('utf8')) });
          });
        },
      );
      req.on('error', reject);
      r.onRequest?.(req);
      if (r.body === undefined) req.end();
      else if (Buffer.isBuffer(r.body) || typeof r.body === 'string') req.end(r.body);
      else r.body.pipe(req);
    });
  }

  /** Sends a single-chunk DATA message and returns its id. */
  async send(from: string, to: string, body: Buffer | string, headers: Record<string, string> = {}): Promise<string> {
    const res = await this.request({
      method: 'POST',
      path: `/messageexchange/${from}/outbox`,
      as: from,
      headers: { 'mex-to': to, 'mex-workflowid': 'TEST_WORKFLOW', 'content-type': 'text/plain', ...headers },
      body,
    });
    if (res.status !== 202) throw new Error(`send failed: ${res.status} ${res.body.toString()}`);
    return res.json().message_id as string;
  }

  async close(): Promise<void> {
    for (const a of this.agents.values()) a.destroy();
    await this.sim.close();
    rmSync(this.tmp, { recursive: true, force: true });
  }
}

export async function startHarness(options: Partial<SimulatorOptions> = {}): Promise<SimHarness> {
  const tmp = mkdtempSync(join(tmpdir(), 'meshd-sim-test-'));
  const sim = await startSimulator({ dir: join(tmp, 'sim'), ...options });
  return new SimHarness(sim, tmp, options.mailboxes ?? ['X26ABC1', 'X26ABC2']);
}
