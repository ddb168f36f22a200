import { rmSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { MessageType, TrackingStatus } from '../mesh/protocol';
import { MessageIdFactory } from './ids';
import { writeAtomic } from './pki';

/**
 * Message metadata in memory (persisted as JSON so a restarted simulator keeps its messages);
 * bodies on disk, one file per chunk exactly as received, under `<dir>/store/<id>/<n>`.
 */

export interface SimMessage {
  id: string;
  type: MessageType;
  /** '' for REPORTs: they come from the central system mailbox. */
  sender: string;
  recipient: string;
  workflowId: string;
  status: TrackingStatus;
  /** Total chunks N (0 for a REPORT). */
  chunks: number;
  chunksReceived: number;
  /** Bytes stored, as received (compressed if sent with Content-Encoding: gzip). */
  bytes: number;
  contentEncoding?: 'gzip';
  localId?: string;
  subject?: string;
  fileName?: string;
  partnerId?: string;
  checksum?: string;
  compressed?: string;
  encrypted?: string;
  /** mex-Content-Type as sent (survives chunking). */
  contentType?: string;
  /** The first request's HTTP Content-Type. */
  httpContentType?: string;
  createdAt: string;
  acceptedAt?: string;
  acknowledgedAt?: string;
  acknowledgedBy?: string;
  statusCode?: string;
  statusEvent?: string;
  statusDescription?: string;
  statusTimestamp?: string;
  linkedMessageId?: string;
  /** REPORTs only: the intended recipient of the original message (sent as mex-To). */
  reportTo?: string;
  /** Test-only replay of a hostile server (see Simulator.injectHostile): answered as given. */
  hostile?: HostileAnswer;
}

/** What a hostile MESH answers for one message's download: its body and header lies. */
export interface HostileAnswer {
  /** The body as sent on the wire, base64 (kept inline: a hostile id never names a path). */
  bodyBase64: string;
  /** Content-Encoding sent whatever the body is, e.g. "gzip" on plain text. */
  contentEncoding?: string;
  /** Extra header lines written verbatim (control characters, oversized values). */
  rawHeaders?: string[];
}

interface StoredMessage extends SimMessage {
  seq: number;
  received: number[];
  chunkEncoding: Record<number, 'gzip' | 'identity'>;
  /** Stored size of each chunk, so a chunk sent again replaces its bytes in the count. */
  chunkBytes?: Record<number, number>;
}

interface StateFile {
  version: 1;
  seq: number;
  clockOffsetMs: number;
  messages: StoredMessage[];
}

export type NewMessage = Omit<SimMessage, 'id' | 'chunksReceived' | 'bytes' | 'createdAt'>;

export class MessageStore {
  private readonly byId = new Map<string, StoredMessage>();
  private readonly ids = new MessageIdFactory();
  private seq = 0;
  private dirty = false;
  private flushing: Promise<void> | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  /** How long the last flush took (ms); see changed(). */
  private lastFlushMs = 0;
  clockOffsetMs = 0;

  constructor(private readonly dir: string) {}

  get bodiesDir(): string {
    return join(this.dir, 'store');
  }

  private get stateFile(): string {
    return join(this.dir, 'state.json');
  }

  async load(): Promise<void> {
    await mkdir(this.bodiesDir, { recursive: true });
    const state = await this.readState();
    if (state) {
      this.seq = state.seq;
      this.clockOffsetMs = state.clockOffsetMs ?? 0;
      for (const m of state.messages) this.byId.set(m.id, m);
    }
    await this.removeInterruptedUploads();
  }

  private async readState(): Promise<StateFile | undefined> {
    try {
      const state = JSON.parse(await readFile(this.stateFile, 'utf8')) as StateFile;
      return state?.version === 1 && Array.isArray(state.messages) ? state : undefined;
    } catch {
      return undefined; // no state yet, or unreadable: start empty
    }
  }

  /** A `.part` file is an upload the last run never finished: the client saw no 202 for it. */
  private async removeInterruptedUploads(): Promise<void> {
    for (const entry of await readdir(this.bodiesDir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const dir = join(this.bodiesDir, entry.name);
      if (!this.byId.has(entry.name)) {
        await rm(dir, { recursive: true, force: true });
        continue;
      }
      for (const file of await readdir(dir)) if (file.endsWith('.part')) await this.discard(join(dir, file));
    }
  }

  newId(now: Date): string {
    let id = this.ids.next(now);
    while (this.byId.has(id)) id = this.ids.next(now);
    return id;
  }

  create(fields: NewMessage, now: Date, id = this.newId(now)): SimMessage {
    const message: StoredMessage = {
      ...fields,
      id,
      chunksReceived: 0,
      bytes: 0,
      createdAt: now.toISOString(),
      seq: ++this.seq,
      received: [],
      chunkEncoding: {},
    };
    this.byId.set(id, message);
    this.changed();
    return message;
  }

  get(id: string): SimMessage | undefined {
    return this.byId.get(id);
  }

  /** Messages a mailbox can list: accepted, oldest first. */
  inbox(mailbox: string): SimMessage[] {
    return [...this.byId.values()].filter((m) => m.recipient === mailbox && m.status === 'accepted').sort((a, b) => a.seq - b.seq);
  }

  /** Position of a message in inbox order (inside continue_from tokens). */
  seqOf(message: SimMessage): number {
    return (message as StoredMessage).seq;
  }

  /** Live messages in a given status (internal objects: do not hand out). */
  inStatus(status: TrackingStatus): SimMessage[] {
    return [...this.byId.values()].filter((m) => m.status === status);
  }

  all(): SimMessage[] {
    return [...this.byId.values()].sort((a, b) => a.seq - b.seq).map(publicView);
  }

  chunkEncoding(id: string, n: number): 'gzip' | 'identity' | undefined {
    return this.byId.get(id)?.chunkEncoding[n];
  }

  chunkPath(id: string, n: number): string {
    return join(this.bodiesDir, id, String(n));
  }

  async chunkDir(id: string): Promise<string> {
    const d = join(this.bodiesDir, id);
    await mkdir(d, { recursive: true });
    return d;
  }

  /** Size of chunk n as stored, when this run or the saved state recorded it. */
  chunkSize(id: string, n: number): number | undefined {
    return (this.byId.get(id) as StoredMessage | undefined)?.chunkBytes?.[n];
  }

  /**
   * Records a stored chunk; when the last one lands the message is accepted (listed). A chunk
   * sent again before then (a client retrying one whose answer it never saw) replaces the first.
   */
  addChunk(id: string, n: number, bytes: number, encoding: 'gzip' | 'identity', now: Date): SimMessage {
    const m = this.mustGet(id);
    const sizes = (m.chunkBytes ??= {});
    if (!m.received.includes(n)) m.received.push(n);
    m.chunkEncoding[n] = encoding;
    m.chunksReceived = m.received.length;
    m.bytes += bytes - (sizes[n] ?? 0);
    sizes[n] = bytes;
    if (m.chunksReceived >= m.chunks && m.status === 'uploading') {
      m.status = 'accepted';
      m.acceptedAt = now.toISOString();
      setDelivered(m, now);
    }
    this.changed();
    return m;
  }

  update(id: string, patch: Partial<SimMessage>): SimMessage {
    const m = this.mustGet(id);
    Object.assign(m, patch);
    this.changed();
    return m;
  }

  async reset(): Promise<void> {
    this.byId.clear();
    this.seq = 0;
    this.clockOffsetMs = 0;
    await rm(this.bodiesDir, { recursive: true, force: true });
    await mkdir(this.bodiesDir, { recursive: true });
    this.changed();
    await this.flush();
  }

  /**
   * Synchronous, as a small download is read (routes/download.ts): a few system calls on a local
   * disk, where handing each to libuv's pool cost several times its work, on the cores the
   * benchmarks share with meshd (docs/performance.md §1).
   */
  removeBodies(id: string): void {
    rmSync(join(this.bodiesDir, id), { recursive: true, force: true });
  }

  async discard(path: string): Promise<void> {
    await unlink(path).catch(() => undefined);
  }

  changed(): void {
    this.dirty = true;
    if (!this.flushTimer) {
      // Coalesce bursts (paging tests store hundreds of messages) into one write. The whole state
      // is written each time, so the wait grows with what the last write cost: with thousands of
      // messages stored, writing every 200 ms took a third of the simulator's CPU.
      this.flushTimer = setTimeout(
        () => {
          this.flushTimer = undefined;
          void this.flush();
        },
        Math.max(200, 20 * this.lastFlushMs),
      );
      this.flushTimer.unref();
    }
  }

  async flush(): Promise<void> {
    if (this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    while (this.flushing) await this.flushing;
    if (!this.dirty) return;
    this.dirty = false;
    const started = performance.now();
    const state: StateFile = { version: 1, seq: this.seq, clockOffsetMs: this.clockOffsetMs, messages: [...this.byId.values()] };
    this.flushing = writeAtomic(this.stateFile, JSON.stringify(state), 0o600).finally(() => {
      this.flushing = undefined;
    });
    await this.flushing;
    this.lastFlushMs = performance.now() - started;
  }

  private mustGet(id: string): StoredMessage {
    const m = this.byId.get(id);
    if (!m) throw new Error(`no message ${id}`);
    return m;
  }
}

export function setDelivered(m: SimMessage, now: Date): void {
  m.statusCode = '00';
  m.statusEvent = 'TRANSFER';
  m.statusDescription = 'Transferred to recipient mailbox';
  m.statusTimestamp = now.toISOString();
}

function publicView(m: SimMessage): SimMessage {
  const { seq: _seq, received: _received, chunkEncoding: _enc, chunkBytes: _sizes, ...rest } = m as StoredMessage;
  return { ...rest };
}
