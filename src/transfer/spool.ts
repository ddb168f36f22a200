import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { MessageRow } from '../ledger';
import { describeKind, fsyncDir, moveFile, NotRegularFileError, openRefusal, PRIVATE_FILE_MODE } from '../safe-fs';
import { factsBatched, lstatBatched } from '../safe-fs-batch';
import type { MailboxContext } from './context';

/**
 * The spool (dataDir/spool/<MAILBOX>) holds the payloads meshd has taken responsibility for.
 * Files are named by the row's random claim id, never by a row id, so a file left from another
 * ledger (a restored backup, a lost meshd.db) can never be taken for a new row's payload; and
 * before any byte goes to MESH the file must still be exactly what was claimed.
 */

export interface SpoolPaths {
  data: string;
  ctl: string;
  /** The converted payload, when the route transforms. */
  send: string;
}

export function spoolPaths(ctx: MailboxContext, row: Pick<MessageRow, 'claimId' | 'id'>): SpoolPaths {
  // Rows from before claim ids were given one by migration 2; this only guards the type.
  const stem = row.claimId ?? `row-${row.id}`;
  return { data: join(ctx.spool, `${stem}.dat`), ctl: join(ctx.spool, `${stem}.ctl`), send: join(ctx.spool, `${stem}.send`) };
}

export interface FileFacts {
  size: number;
  mtimeMs: number;
  sha256: string;
  /** The bytes hashed, when the file is no larger than `keepBytesUpTo` (read in one call). */
  bytes?: Buffer;
}

/** Files up to this size are hashed from one read; larger ones in reads of this size. */
const HASH_READ = 1024 * 1024;

/**
 * Size, mtime and sha256 of a regular file, all read through one descriptor opened without
 * following links. `mode`, when given, is set on that descriptor (a claim makes its spool copy
 * private here rather than opening it once more for that). `keepBytesUpTo` hands back the bytes
 * of a file no larger than that (at most 1 MiB, one read), so a caller need not open it again.
 * Read in safe-fs's worker thread with the other calls of the same turn (src/safe-fs-batch.ts).
 */
export async function fileFacts(path: string, opts: { mode?: number; keepBytesUpTo?: number } = {}): Promise<FileFacts> {
  try {
    return await factsBatched(path, { ...opts, readSize: HASH_READ }, (st) => new NotRegularFileError(path, describeKind(st)));
  } catch (err) {
    throw openRefusal(path, err);
  }
}

/**
 * The bytes of small payloads as their claim read and hashed them, held in this process until
 * their upload takes them: what is sent is then exactly what was claimed, without opening and
 * hashing the spool copy a second time. Only a claim confirmed in this process is held, so a
 * restart, a retried row or a payload that did not fit falls back to checkSpool. Bounded: a
 * long queue holds what fits, the rest are read again when their turn comes.
 */
export class ClaimedBytes {
  private readonly held = new Map<string, { sha256: string; bytes: Buffer }>();
  private total = 0;

  /** 2 MiB: a cycle of 2 KB messages holds its first ~1,000; 16 mailboxes at once, 32 MiB at most. */
  constructor(
    private readonly maxTotal = 2 * 1024 * 1024,
    readonly maxEach = 64 * 1024,
  ) {}

  hold(claimId: string | null, facts: FileFacts): void {
    const { bytes, sha256 } = facts;
    if (!claimId || !bytes || bytes.length > this.maxEach || this.total + bytes.length > this.maxTotal || this.held.has(claimId)) return;
    this.held.set(claimId, { sha256, bytes });
    this.total += bytes.length;
  }

  /** The held bytes of this claim, once, and only if they are the bytes the row's sha256 names. */
  take(row: Pick<MessageRow, 'claimId' | 'sha256'>): Buffer | undefined {
    const entry = row.claimId ? this.held.get(row.claimId) : undefined;
    if (!entry) return undefined;
    this.held.delete(row.claimId!);
    this.total -= entry.bytes.length;
    return entry.sha256 === row.sha256 ? entry.bytes : undefined;
  }
}

export async function sha256File(path: string): Promise<string> {
  return (await fileFacts(path)).sha256;
}

export type SpoolProblem = { code: 'FILE_CHANGED' | 'SPOOL_MISMATCH' | 'SPOOL_MISSING'; text: string };

/** What checkSpool found: a problem, or none and (with `keepBytes`) the verified bytes of a small file. */
export interface SpoolCheck {
  problem?: SpoolProblem;
  bytes?: Buffer;
}

/**
 * Checks the spool file against what the row recorded at claim. A changed size or mtime means
 * someone was still writing it (FILE_CHANGED); the same size and mtime with other bytes means
 * it is not the file that was claimed (SPOOL_MISMATCH). `hash: false` checks size and mtime only
 * (after the last chunk: the bytes were hashed before the first). `keepBytes` returns the bytes
 * that passed the hash check when the file is small enough to have been read in one call.
 */
export async function checkSpool(ctx: MailboxContext, row: MessageRow, opts: { hash: boolean; keepBytes?: boolean } = { hash: true }): Promise<SpoolCheck> {
  const path = spoolPaths(ctx, row).data;
  let facts: Omit<FileFacts, 'sha256'> & { sha256?: string };
  try {
    if (opts.hash) facts = await fileFacts(path, opts.keepBytes ? { keepBytesUpTo: HASH_READ } : {});
    else {
      const st = await lstatBatched(path);
      facts = { size: st.isFile() ? st.size : -1, mtimeMs: st.mtimeMs };
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { problem: { code: 'SPOOL_MISSING', text: 'the spool copy of this message is missing; nothing was sent from it' } };
    return { problem: { code: 'SPOOL_MISMATCH', text: `the spool copy cannot be read as a regular file: ${(err as Error).message}` } };
  }
  if ((row.sizeBytes !== null && facts.size !== row.sizeBytes) || (row.sourceMtimeMs !== null && facts.mtimeMs !== row.sourceMtimeMs)) {
    return { problem: { code: 'FILE_CHANGED', text: `the file changed after it was claimed (size ${row.sizeBytes} → ${facts.size} bytes); was its writer still writing? Nothing more is sent from it` } };
  }
  if (facts.sha256 !== undefined && row.sha256 && facts.sha256 !== row.sha256) {
    return { problem: { code: 'SPOOL_MISMATCH', text: 'the spool copy does not hold the bytes that were claimed (sha256 differs); nothing was sent from it' } };
  }
  // Only bytes checked against the claim's hash are handed on.
  return row.sha256 && facts.sha256 !== undefined ? { bytes: facts.bytes } : {};
}

/** A claim-id file name: 32 hex, a dot, then what it is (dat, ctl, send, part, …). */
const CLAIM_NAME = /^([0-9a-f]{32})\./;

/**
 * Moves every file in `dir` that no ledger row owns to dataDir/orphans/<MAILBOX>/ and reports
 * it; nothing unowned is ever sent or delivered. A file is owned when its name starts with the
 * claim id of a row of this mailbox and direction. Returns the names moved.
 */
export async function moveOrphans(ctx: MailboxContext, dir: string, direction: 'in' | 'out'): Promise<string[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const moved: string[] = [];
  const orphans = join(ctx.config.dataDir, 'orphans', ctx.mailbox.id);
  for (const name of names.sort()) {
    const claim = CLAIM_NAME.exec(name)?.[1];
    const owner = claim ? ctx.ledger.findByClaimId(claim) : undefined;
    if (owner && owner.mailbox === ctx.mailbox.id && owner.direction === direction) continue;
    await fs.mkdir(orphans, { recursive: true, mode: 0o700 });
    const target = join(orphans, `${new Date(ctx.now()).toISOString().replace(/[:.]/g, '')}-${name}`);
    try {
      await moveFile(join(dir, name), target, PRIVATE_FILE_MODE);
    } catch (err) {
      ctx.log.error('ORPHAN_NOT_MOVED', `an unowned file could not be moved out of the spool: ${(err as Error).message}`, { file: name });
      continue;
    }
    moved.push(name);
    ctx.log.warn('SPOOL_ORPHAN', 'a file no ledger row owns was moved to the orphans folder; it will not be sent or delivered', { code: 'SPOOL_ORPHAN', file: name, movedTo: target });
  }
  if (moved.length) await fsyncDir(orphans);
  return moved;
}

/** True if the row's payload is its spool copy (as opposed to failed/ or sent/ before a retry). */
export function payloadInSpool(ctx: MailboxContext, row: MessageRow): boolean {
  return row.payloadPath === spoolPaths(ctx, row).data;
}

