import { promises as fs, type Stats } from 'node:fs';
import { basename, join } from 'node:path';
import type { RouteConfig } from '../../config/types';
import { MeshdError } from '../../errors';
import { companionFiles, type MessageRow, type NewMessage } from '../../ledger';
import { describeKind, exists, freeName, fsyncDir, moveFile, NotRegularFileError, PRIVATE_FILE_MODE, readRegular, removeName, writeFileAtomic } from '../../safe-fs';
import { checkOutboundControl, parseControlFile, type ControlFile } from '../ctl';
import type { MailboxContext } from '../context';
import { globToRegExp, isInProgressName } from '../folders';
import { FS_CONCURRENCY, mapLimit } from '../pool';
import { lstatBatched } from '../../safe-fs-batch';
import { failedNames } from './file';
import { fileFacts, spoolPaths, type ClaimedBytes, type FileFacts } from '../spool';

/**
 * Taking files from out/: scan, inspect, claim. Anyone in the mailbox group may write out/, so
 * nothing there is trusted: names are looked at with lstat, only regular files with one link are
 * taken, and the spool copy is checked through a descriptor opened without following links.
 * Claim = intent (ledger row) → move into the spool under the row's claim id → facts (size, mtime,
 * sha256) from the descriptor → confirm. A crash between the steps is finished by finishClaim.
 */

/** .ctl files alone in out/ longer than this are quarantined (their .dat never came). */
const ORPHAN_CTL_GRACE_MS = 5 * 60_000;

export interface Candidate {
  /** The data file's name in out/. */
  name: string;
  dataPath: string;
  ctlPath?: string;
  route?: RouteConfig;
}

/** Problems are reported once per file name while the file stays (the set is pruned every scan). */
function reportOnce(ctx: MailboxContext, key: string, event: string, message: string, fields: Record<string, unknown>): void {
  if (ctx.reported.has(key)) return;
  ctx.reported.add(key);
  ctx.log.warn(event, message, fields);
}

function forgetReportsExcept(ctx: MailboxContext, names: Set<string>): void {
  for (const key of ctx.reported) if (!names.has(key)) ctx.reported.delete(key);
}

/** A regular file with one link: the only thing meshd takes from out/. */
function isPlainFile(st: Stats): boolean {
  return st.isFile() && st.nlink === 1;
}

/** Lists what out/ holds that is complete and ready; quarantines what can never be sent. */
export async function scanOutbox(ctx: MailboxContext, opts: { dryRun?: boolean } = {}): Promise<Candidate[]> {
  const { folders, mailbox } = ctx;
  const settleMs = ctx.config.schedule.settleSeconds * 1000;
  const now = ctx.now().getTime();
  let names: string[];
  try {
    names = (await fs.readdir(folders.out)).sort();
  } catch (err) {
    throw new MeshdError('OUT_UNREADABLE', `cannot read ${folders.out}: ${(err as Error).message}`, 'check the folder exists and meshd may read it');
  }
  forgetReportsExcept(ctx, new Set(names));
  const byLowerName = new Map(names.map((n) => [n.toLowerCase(), n]));
  const ready: Candidate[] = [];
  const outRoutes = mailbox.routes.filter((r) => r.direction === 'out' && r.match);
  const stats = new Map<string, Stats | undefined>();
  const lstat = async (name: string): Promise<Stats | undefined> => {
    if (!stats.has(name)) stats.set(name, await lstatBatched(join(folders.out, name)).catch(() => undefined));
    return stats.get(name);
  };
  const settled = (st: Stats | undefined): boolean => !!st && now - st.mtimeMs >= settleMs;
  const refuse = async (item: { name: string; dataPath?: string; ctlPath?: string }, st: Stats): Promise<void> => {
    if (!opts.dryRun) await quarantineUnsendable(ctx, item, 'NOT_REGULAR_FILE', `${basename(item.ctlPath && !item.dataPath ? item.ctlPath : item.dataPath ?? item.name)} is ${describeKind(st)}, not a regular file; meshd never reads through it`);
  };

  // Every name's lstat first, side by side (gathered into batches for safe-fs's worker).
  await mapLimit(names, FS_CONCURRENCY, (name) => lstat(name));
  for (const name of names) {
    if (isInProgressName(name)) continue;
    const lower = name.toLowerCase();
    const path = join(folders.out, name);
    const st = await lstat(name);
    if (!st) continue; // vanished
    if (mailbox.controlFiles && lower.endsWith('.ctl')) {
      const dat = byLowerName.get(`${name.slice(0, -4).toLowerCase()}.dat`);
      if (dat) continue; // handled with its .dat
      if (!isPlainFile(st)) await refuse({ name, ctlPath: path }, st);
      else if (now - st.mtimeMs >= Math.max(settleMs, ORPHAN_CTL_GRACE_MS) && !opts.dryRun) {
        await quarantineUnsendable(ctx, { name, ctlPath: path }, 'CTL_WITHOUT_DAT', `control file ${name} has no matching .dat file`);
      }
      continue;
    }
    const ctlName = mailbox.controlFiles && lower.endsWith('.dat') ? byLowerName.get(`${name.slice(0, -4).toLowerCase()}.ctl`) : undefined;
    const route = ctlName ? undefined : outRoutes.find((r) => globToRegExp(r.match!).test(name));
    if (!ctlName && !route) {
      if (!(mailbox.controlFiles && lower.endsWith('.dat'))) reportOnce(ctx, name, 'OUT_UNMATCHED', 'file in out/ matches no route and is left alone', { file: name });
      continue;
    }
    const ctlPath = ctlName ? join(folders.out, ctlName) : undefined;
    const ctlStat = ctlName ? await lstat(ctlName) : undefined;
    if (!isPlainFile(st)) {
      await refuse({ name, dataPath: path, ctlPath }, st);
      continue;
    }
    if (ctlName && ctlStat && !isPlainFile(ctlStat)) {
      await refuse({ name, dataPath: path, ctlPath }, ctlStat);
      continue;
    }
    if (settled(st) && (!ctlName || settled(ctlStat))) ready.push({ name, dataPath: path, ctlPath, route });
  }
  return ready;
}

/**
 * Moves an unsendable file (and its .ctl) to failed/ with a reason file, recording it in the
 * ledger. Files move by rename only, so a link or a FIFO moves as itself, never followed; what
 * cannot be moved that way (another filesystem) is left in place and reported once.
 */
function quarantineUnsendable(ctx: MailboxContext, item: Unsendable, code: string, reason: string): Promise<void> {
  return failedNames(() => quarantineNow(ctx, item, code, reason));
}

type Unsendable = { name: string; dataPath?: string; ctlPath?: string; ctl?: ControlFile };

async function quarantineNow(ctx: MailboxContext, item: Unsendable, code: string, reason: string): Promise<void> {
  const { ledger, mailbox, folders } = ctx;
  // Files first, then the row: a crash in between leaves the file safe in failed/, never re-sent.
  // The payload's .ctl and .reason go under its companion names (free with it), which are the
  // ones `ledger purge` removes with it; a .ctl alone takes a free name of its own.
  const moved: { data?: string; ctl?: string } = {};
  try {
    if (item.dataPath && (await exists(item.dataPath))) {
      moved.data = join(folders.failed, await freeName(folders.failed, basename(item.dataPath), companionFiles));
      await renameOnly(item.dataPath, moved.data);
    }
    if (item.ctlPath && (await exists(item.ctlPath))) {
      moved.ctl = moved.data ? companionFiles(moved.data)[0] : join(folders.failed, await freeName(folders.failed, basename(item.ctlPath)));
      await renameOnly(item.ctlPath, moved.ctl);
    }
  } catch (err) {
    reportOnce(ctx, item.name, 'OUT_REFUSED_IN_PLACE', `${reason}; it could not be moved to failed/ (${(err as Error).message}) and is left in place`, { code, file: item.name });
    return;
  }
  const reasonPath = moved.data ? companionFiles(moved.data)[1] : join(folders.failed, await freeName(folders.failed, `${item.name}.reason`));
  await writeFileAtomic(reasonPath, `${code}: ${reason}\n`);
  const row = ledger.insertMessage(
    {
      direction: 'out',
      mailbox: mailbox.id,
      state: 'failed',
      fileName: item.name,
      peer: item.ctl?.toDts ?? null,
      workflowId: item.ctl?.workflowId ?? null,
      localId: item.ctl?.localId ?? null,
      payloadPath: moved.data ?? null,
      ctlPath: moved.ctl ?? null,
      errorCode: code,
      errorText: reason,
    },
    { type: 'quarantined', detail: { code, reason, failed: reasonPath } },
  );
  ctx.log.warn('OUT_QUARANTINED', `${reason}; moved to failed/`, { code, file: item.name, row: row.id });
}

/** A rename: moves a link, FIFO or device as itself. Never copies (a copy would read through it). */
async function renameOnly(source: string, target: string): Promise<void> {
  await fs.rename(source, target);
}

/** Reads what a candidate needs before it is taken; quarantines it if it can never be sent. */
async function inspectCandidate(ctx: MailboxContext, c: Candidate): Promise<NewMessage | undefined> {
  let ctl: ControlFile | undefined;
  if (c.ctlPath) {
    try {
      ctl = parseControlFile(await readRegular(c.ctlPath));
      checkOutboundControl(ctl);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // vanished: nothing to take
      const code = err instanceof MeshdError ? err.code : 'CTL_UNREADABLE';
      await quarantineUnsendable(ctx, { name: c.name, dataPath: c.dataPath, ctlPath: c.ctlPath }, code, (err as Error).message);
      return undefined;
    }
  }
  const st = await lstatBatched(c.dataPath).catch(() => undefined);
  if (!st) return undefined; // vanished before we took it: it was never ours
  if (!isPlainFile(st)) {
    await quarantineUnsendable(ctx, { name: c.name, dataPath: c.dataPath, ctlPath: c.ctlPath, ctl }, 'NOT_REGULAR_FILE', `${c.name} is ${describeKind(st)}, not a regular file; meshd never reads through it`);
    return undefined;
  }
  if (st.size === 0) {
    await quarantineUnsendable(ctx, { name: c.name, dataPath: c.dataPath, ctlPath: c.ctlPath, ctl }, 'EMPTY_FILE', `${c.name} is empty; MESH refuses empty messages`);
    return undefined;
  }
  const route = c.route;
  return {
    direction: 'out',
    mailbox: ctx.mailbox.id,
    state: 'claiming',
    peer: (ctl?.toDts ?? route?.to ?? '').toUpperCase() || null,
    workflowId: ctl?.workflowId ?? route?.workflow ?? null,
    subject: ctl?.subject ?? route?.subject ?? null,
    localId: ctl?.localId ?? null,
    messageType: 'DATA',
    fileName: c.name,
    payloadPath: c.dataPath,
    ctlPath: c.ctlPath ?? null,
    sizeBytes: st.size,
    compress: ctl?.compress === false ? false : ctx.config.transfer.compress,
    transform: route?.transform ? `${route.transform.from}>${route.transform.to}` : null,
    chunkSize: ctx.config.transfer.chunkSize,
  };
}

/**
 * Takes candidates: records the intent (one commit for the batch), moves the files into the
 * spool, syncs the spool once, reads each spool file's facts through a descriptor, confirms (one
 * commit). A crash between the steps is finished by finishClaim, so a file is never sent twice
 * from out/ nor lost between the two places.
 */
export async function claimBatch(ctx: MailboxContext, candidates: Candidate[], held?: ClaimedBytes): Promise<number> {
  const { ledger } = ctx;
  // Candidates are independent: their file work runs side by side (quarantines one at a time).
  const intents = (await mapLimit(candidates, FS_CONCURRENCY, (c) => inspectCandidate(ctx, c))).filter((i): i is NewMessage => !!i);
  if (intents.length === 0) return 0;
  const rows = ledger.transaction(() => intents.map((i) => ledger.insertMessage(i, { type: 'claiming', detail: { file: i.fileName, mode: i.ctlPath ? 'control-file' : 'route' } })));
  const moved = await mapLimit(rows, FS_CONCURRENCY, async (row) => {
    const spool = spoolPaths(ctx, row);
    try {
      await moveFile(row.payloadPath!, spool.data); // made private by readClaim, through the descriptor it reads
      if (row.ctlPath) await moveFile(row.ctlPath, spool.ctl, PRIVATE_FILE_MODE);
      return true;
    } catch {
      return false; // finishClaim below settles it (finishes the move, or records why not)
    }
  });
  await Promise.all([fsyncDir(ctx.spool), fsyncDir(ctx.folders.out)]);
  // The spool copies' facts first, then every confirmation in one commit (one fsync, not one per file).
  const read = await mapLimit(rows, FS_CONCURRENCY, (row, i) => (moved[i] ? readClaim(ctx, row, held?.maxEach) : Promise.resolve(undefined)));
  const confirmed = ctx.ledger.transaction(() => rows.map((row, i) => (read[i] ? recordClaim(ctx, row, read[i]!) : false)));
  // Held only once queued is committed: the upload then sends exactly the bytes just hashed.
  rows.forEach((row, i) => {
    const r = read[i];
    if (confirmed[i] && r && 'facts' in r) held?.hold(row.claimId, r.facts);
  });
  for (const [i, row] of rows.entries()) if (!moved[i]) await finishClaim(ctx, row);
  return confirmed.filter(Boolean).length;
}

type ClaimRead = { facts: FileFacts } | { refused: NotRegularFileError };

/**
 * Reads a claim's spool copy through a descriptor: only a regular file is accepted (a link
 * swapped in after the scan moved as itself and is dropped here, unread: removing it removes
 * only that name), its mode is made private on that descriptor, and its size, mtime and sha256
 * become the row's, checked again before anything is sent. A file of up to `keepBytesUpTo`
 * bytes comes back with its bytes, for ClaimedBytes.
 */
async function readClaim(ctx: MailboxContext, row: MessageRow, keepBytesUpTo?: number): Promise<ClaimRead> {
  const spool = spoolPaths(ctx, row);
  try {
    if (row.ctlPath) await readRegular(spool.ctl);
    return { facts: await fileFacts(spool.data, { mode: PRIVATE_FILE_MODE, keepBytesUpTo }) };
  } catch (err) {
    if (!(err instanceof NotRegularFileError)) throw err;
    for (const p of [spool.data, spool.ctl]) await removeName(p);
    return { refused: err };
  }
}

/** Records what readClaim found: queued, or failed NOT_REGULAR_FILE. True when queued. */
function recordClaim(ctx: MailboxContext, row: MessageRow, read: ClaimRead, recovered = false): boolean {
  const spool = spoolPaths(ctx, row);
  if ('facts' in read) {
    const { facts } = read;
    ctx.ledger.transition(row.id, 'queued', {
      from: ['claiming'],
      patch: { payloadPath: spool.data, ctlPath: row.ctlPath ? spool.ctl : null, sizeBytes: facts.size, sourceMtimeMs: facts.mtimeMs, sha256: facts.sha256 },
      event: { type: 'claimed', detail: recovered ? { recovered: true } : undefined },
    });
    ctx.log.info('OUT_CLAIMED', `took ${row.fileName} from out/`, { row: row.id, file: row.fileName });
    return true;
  }
  ctx.ledger.transition(row.id, 'failed', {
    from: ['claiming'],
    patch: { payloadPath: null, ctlPath: null, errorCode: 'NOT_REGULAR_FILE', errorText: read.refused.message },
    event: { type: 'claim_failed', detail: { code: 'NOT_REGULAR_FILE' } },
  });
  ctx.log.warn('OUT_QUARANTINED', `${read.refused.message}; it was removed from the spool unread`, { code: 'NOT_REGULAR_FILE', file: row.fileName, row: row.id });
  return false;
}

/** A claim that stopped between the ledger row and the move: finish it, or fail it if the file is gone or unusable. */
export async function finishClaim(ctx: MailboxContext, row: MessageRow): Promise<void> {
  const spool = spoolPaths(ctx, row);
  const outData = row.payloadPath ?? '';
  const outCtl = row.ctlPath ?? undefined;
  try {
    if (!(await exists(spool.data)) && outData && (await exists(outData))) await moveFile(outData, spool.data, PRIVATE_FILE_MODE);
    if (outCtl && !(await exists(spool.ctl)) && (await exists(outCtl))) await moveFile(outCtl, spool.ctl, PRIVATE_FILE_MODE);
  } catch (err) {
    const code = err instanceof MeshdError ? err.code : 'CLAIM_FAILED';
    ctx.ledger.transition(row.id, 'failed', {
      from: ['claiming'],
      // The file stays in out/ (payloadPath cleared: retention must never delete it there).
      patch: { payloadPath: null, ctlPath: null, errorCode: code, errorText: `the file could not be taken from out/: ${(err as Error).message}` },
      event: { type: 'claim_failed', detail: { code } },
    });
    ctx.log.warn('OUT_CLAIM_FAILED', `${row.fileName} could not be taken from out/ and is left there: ${(err as Error).message}`, { row: row.id, code });
    return;
  }
  if (await exists(spool.data)) {
    await fsyncDir(ctx.spool);
    recordClaim(ctx, row, await readClaim(ctx, row), true);
    return;
  }
  ctx.ledger.transition(row.id, 'failed', {
    from: ['claiming'],
    patch: { errorCode: 'FILE_VANISHED', errorText: 'the file disappeared from out/ while it was being taken' },
    event: { type: 'claim_failed', detail: { reason: 'file vanished' } },
  });
  ctx.log.warn('OUT_FILE_VANISHED', 'a file disappeared from out/ while it was being taken; nothing was sent', { row: row.id, file: row.fileName });
}
