import type { Command } from 'commander';
import { InputError, MeshdError } from '../errors';
import type { CliContext } from './context';
import { exitCodeFor } from './exit';
import { writeLines } from './output';
import type { MeshClient } from '../mesh/client';

/**
 * MESH transfer commands: handshake, send, inbox, receive, track, lookup, workflows.
 * Heavy modules load inside the actions so `meshd --help` stays fast.
 */

async function withClient<T>(cmd: Command, fn: (client: MeshClient, ctx: CliContext) => Promise<T>): Promise<T> {
  const { cliContext } = await import('./context');
  const ctx = await cliContext(cmd);
  const { meshClientFor } = await import('../mesh');
  const client = meshClientFor(ctx.config, ctx.mailbox.id, { logger: ctx.log });
  try {
    return await fn(client, ctx);
  } finally {
    await client.close();
  }
}

/**
 * Notes a handshake made by hand in the ledger, as the daemon notes its own: `meshd status`
 * shows it, and the daemon's daily handshake counts from it. Before the first run there is no
 * ledger and nothing to note (none is created); a ledger that cannot be written (another
 * user's) is said, but the handshake still succeeded.
 */
async function noteHandshake(ctx: CliContext): Promise<void> {
  const { openStore } = await import('../ledger/open-store');
  try {
    const ledger = openStore(ctx.config, { create: false, integrity: 'none' });
    try {
      ledger.setMailboxStatus(ctx.mailbox.id, { lastHandshakeAt: new Date() });
    } finally {
      ledger.close();
    }
  } catch (err) {
    if (err instanceof MeshdError && err.code === 'LEDGER_MISSING') return;
    ctx.log.warn('STATUS_WRITE_FAILED', `handshake OK, but it could not be noted in the ledger: ${(err as Error).message}`);
  }
}

function parseChunkSizeOption(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { parseSize, MAX_CHUNK_SIZE } = require('../config') as typeof import('../config');
  const n = parseSize(value);
  if (n === undefined || n < 1 || n > MAX_CHUNK_SIZE) {
    throw new MeshdError('USAGE', `--chunk-size must be 1..${MAX_CHUNK_SIZE} bytes (e.g. 20MiB)`, undefined, 'usage');
  }
  return n;
}

export function register(program: Command): void {
  program
    .command('handshake')
    .description('validate the mailbox with MESH (do this once a day)')
    .action(async (_opts, cmd: Command) => {
      await withClient(cmd, async (client, ctx) => {
        await client.handshake();
        ctx.log.info('MESH_HANDSHAKE_OK', 'handshake accepted');
        await noteHandshake(ctx);
        ctx.print({ mailbox: ctx.mailbox.id, ok: true }, `handshake OK for ${ctx.mailbox.id}`);
      });
    });

  program
    .command('send <file>')
    .description('send a file to a MESH mailbox; prints the message id')
    .requiredOption('--to <mailbox>', 'recipient mailbox id')
    .requiredOption('--workflow <id>', 'workflow id')
    .option('--subject <text>', 'subject (mex-Subject)')
    .option('--local-id <id>', 'your reference (mex-LocalID); no patient identifiers')
    .option('--filename <name>', 'file name passed to the recipient (mex-FileName)')
    .option('--content-type <type>', 'MIME type of the message (mex-Content-Type)')
    .option('--chunk-size <bytes>', 'chunk size, e.g. 20MiB (default from config)')
    .option('--no-compress', 'do not gzip chunks in transit')
    .option('--raw', "send the bytes as they are: skip an outbound route's transform for this file name")
    .action(async (file: string, opts: Record<string, string | boolean | undefined>, cmd: Command) => {
      const chunkSize = parseChunkSizeOption(opts.chunkSize as string | undefined);
      const { stat } = await import('node:fs/promises');
      const info = await stat(file).catch(() => undefined);
      if (!info?.isFile()) throw new InputError('FILE_NOT_FOUND', `${file} is not a readable file`, 'check the path');
      const { cliContext } = await import('./context');
      const ctx = await cliContext(cmd);
      const compress = cmd.getOptionValueSource('compress') === 'cli' ? (opts.compress as boolean) : ctx.config.transfer.compress;
      const { oneShotMailbox } = await import('./one-shot');
      const { sendByHand } = await import('../transfer/outbound/by-hand');
      const { progressBar } = await import('./progress');
      await oneShotMailbox(ctx, async (mailbox) => {
        const bar = progressBar(`sending ${file}`);
        // The daemon's send steps: claimed by copy, checked, converted if a route says (not with --raw), filed into sent/.
        const { result } = await sendByHand(mailbox, file, {
          to: String(opts.to),
          workflowId: String(opts.workflow),
          subject: opts.subject as string | undefined,
          localId: opts.localId as string | undefined,
          fileName: opts.filename as string | undefined,
          contentType: opts.contentType as string | undefined,
          chunkSize: chunkSize ?? ctx.config.transfer.chunkSize,
          compress,
          raw: opts.raw === true,
          onChunk: (n, total) => bar.update(n, total, 'chunks'),
        });
        bar.finish();
        ctx.log.info('MESH_SEND_DONE', 'message sent', { messageId: result.messageId, chunks: result.chunks, bytes: result.bytes });
        ctx.print(result, result.messageId);
      });
    });

  program
    .command('inbox')
    .description('list waiting message ids (all pages)')
    .option('--workflow-filter <filter>', 'WF, !WF, WF*, !WF*, *X*, !*X*')
    .action(async (opts: { workflowFilter?: string }, cmd: Command) => {
      await withClient(cmd, async (client, ctx) => {
        const messages = await client.listInbox({ workflowFilter: opts.workflowFilter });
        ctx.print({ messages }, messages);
      });
    });

  program
    .command('receive')
    .description("download waiting messages (or one) into the mailbox's in/ as the daemon does, then acknowledge them")
    .option('--out <dir>', "target folder (default: the mailbox's in/)")
    .option('--id <messageId>', 'receive only this message')
    .option('--no-ack', 'do not acknowledge (the message stays in the inbox)')
    .option('--raw', "deliver as received: skip the inbound routes' transforms")
    .action(async (opts: { out?: string; id?: string; ack: boolean; raw?: boolean }, cmd: Command) => {
      const { cliContext } = await import('./context');
      const ctx = await cliContext(cmd);
      const { oneShotMailbox } = await import('./one-shot');
      const { receiveMessages } = await import('../transfer/inbound');
      await oneShotMailbox(ctx, async (mailbox) => {
        if (opts.out) {
          const { mkdir } = await import('node:fs/promises');
          const { resolve } = await import('node:path');
          mailbox.folders.in = resolve(opts.out);
          await mkdir(mailbox.folders.in, { recursive: true, mode: 0o750 });
        }
        if (opts.raw) mailbox.mailbox = { ...mailbox.mailbox, routes: mailbox.mailbox.routes.filter((r) => r.direction !== 'in' || !r.transform) };
        // The daemon's steps, on this one mailbox: same folders, .ctl files, REPORT handling, routes and ledger rows.
        const received = await receiveMessages(mailbox, { acknowledge: opts.ack !== false, ids: opts.id ? [opts.id] : undefined });
        // Received whole but, by the daemon's rules, not put in in/: said, not silently left out.
        const isNotDelivered = (m: (typeof received)[number]) => m.outcome === 'duplicate' || m.outcome === 'set-aside' || m.outcome === 'consumed' || (m.outcome === 'ack-only' && m.reason !== undefined);
        const messages = received
          .filter((m) => (m.outcome === 'deliver' || m.outcome === 'report' || m.outcome === 'ack-only') && !isNotDelivered(m))
          .map((m) => ({
            messageId: m.messageId,
            type: m.meta?.messageType ?? 'DATA',
            path: m.path,
            bytes: m.bytes,
            acknowledged: m.acknowledged,
            workflowId: m.meta?.workflowId,
            from: m.meta?.from,
            ...(m.meta?.messageType === 'REPORT' ? { linkedMessageId: m.meta.linkedMessageId, statusCode: m.meta.statusCode, statusDescription: m.meta.statusDescription } : {}),
          }));
        const failed = received.filter((m) => m.outcome === 'quarantine' || m.outcome === 'retry').map((m) => ({ messageId: m.messageId, code: m.code, message: m.reason, kind: m.kind }));
        const notDelivered = received
          .filter(isNotDelivered)
          .map((m) => ({ messageId: m.messageId, code: m.code, message: m.reason, acknowledged: m.acknowledged, ...(m.path ? { path: m.path } : {}) }));
        ctx.print(
          { messages, ...(notDelivered.length ? { notDelivered } : {}), ...(failed.length ? { failed: failed.map(({ kind: _kind, ...f }) => f) } : {}) },
          [
            ...messages.map((m) => (m.type === 'REPORT' ? `${m.messageId} REPORT ${m.statusCode ?? ''} for ${m.linkedMessageId ?? '?'}` : `${m.messageId} ${m.path ?? '(received before; acknowledged now)'}`)),
            ...notDelivered.map((m) => `${m.messageId} not delivered: ${m.message}${m.acknowledged ? ' (acknowledged)' : ''}`),
          ],
        );
        // The others were received; still fail the command so a script notices the ones left behind.
        const { redactString } = await import('../log');
        for (const f of failed) writeLines(redactString(`meshd: ${f.messageId} not received: ${f.message}`), process.stderr);
        if (failed.length) process.exitCode = exitCodeFor(failed[0].kind);
      });
    });

  program
    .command('track <messageId>')
    .description('show the status of a message this mailbox sent')
    .action(async (messageId: string, _opts, cmd: Command) => {
      await withClient(cmd, async (client, ctx) => {
        const t = await client.track(messageId);
        const lines = Object.entries(t)
          .filter(([, v]) => v !== null && v !== undefined && v !== '')
          .map(([k, v]) => `${k}: ${String(v)}`);
        ctx.print(t, lines);
      });
    });

  program
    .command('lookup <ods> <workflow>')
    .description('find the mailboxes of an organisation (ODS code) for a workflow')
    .action(async (ods: string, workflow: string, _opts, cmd: Command) => {
      await withClient(cmd, async (client, ctx) => {
        const results = await client.lookupEndpoint(ods, workflow);
        ctx.print({ results }, results.map((r) => `${r.mailboxId}${r.mailboxName ? `  ${r.mailboxName}` : ''}`));
      });
    });

  program
    .command('workflows <workflow>')
    .description('find every mailbox that receives a workflow')
    .action(async (workflow: string, _opts, cmd: Command) => {
      await withClient(cmd, async (client, ctx) => {
        const results = await client.workflowSearch(workflow);
        ctx.print({ results }, results.map((r) => `${r.mailboxId}${r.mailboxName ? `  ${r.mailboxName}` : ''}`));
      });
    });
}
