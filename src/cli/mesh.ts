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
    .action(async (file: string, opts: Record<string, string | boolean | undefined>, cmd: Command) => {
      const chunkSize = parseChunkSizeOption(opts.chunkSize as string | undefined);
      const { stat } = await import('node:fs/promises');
      const info = await stat(file).catch(() => undefined);
      if (!info?.isFile()) throw new InputError('FILE_NOT_FOUND', `${file} is not a readable file`, 'check the path');
      await withClient(cmd, async (client, ctx) => {
        const compress = cmd.getOptionValueSource('compress') === 'cli' ? (opts.compress as boolean) : ctx.config.transfer.compress;
        const { recordManualSend } = await import('../transfer/manual');
        const { progressBar } = await import('./progress');
        const bar = progressBar(`sending ${file}`);
        const record = await recordManualSend(ctx.config, ctx.mailbox.id, file, {
          to: String(opts.to),
          workflowId: String(opts.workflow),
          subject: opts.subject as string | undefined,
          localId: opts.localId as string | undefined,
          compress,
          chunkSize: chunkSize ?? ctx.config.transfer.chunkSize,
        });
        const result = await record.around(() => client.sendFile(record.path, {
          to: String(opts.to),
          workflowId: String(opts.workflow),
          subject: opts.subject as string | undefined,
          localId: opts.localId as string | undefined,
          fileName: opts.filename as string | undefined,
          contentType: opts.contentType as string | undefined,
          chunkSize,
          compress,
          onMessageId: (id, total) => {
            record.messageId(id, total);
            ctx.log.info('MESH_SEND_ACCEPTED', 'MESH accepted chunk 1 and gave the message id', { messageId: id, chunks: total });
          },
          onChunkSent: (n, total) => {
            record.chunk(n, total);
            bar.update(n, total, 'chunks');
            ctx.log.debug('MESH_CHUNK_SENT', 'chunk accepted', { chunk: n, chunks: total });
          },
        }));
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
    .description('download waiting messages (or one) into a folder, then acknowledge them')
    .option('--out <dir>', "target folder (default: the mailbox's in/)")
    .option('--id <messageId>', 'receive only this message')
    .option('--no-ack', 'do not acknowledge (the message stays in the inbox)')
    .action(async (opts: { out?: string; id?: string; ack: boolean }, cmd: Command) => {
      await withClient(cmd, async (client, ctx) => {
        const { join, resolve } = await import('node:path');
        const { receiveAll, receiveMessage } = await import('../mesh/receive');
        const dir = opts.out ? resolve(opts.out) : join(ctx.mailbox.folder, 'in');
        const { manualReceiveRecorder } = await import('../transfer/manual');
        const recorder = manualReceiveRecorder(ctx.config, ctx.mailbox.id);
        const { progressBar } = await import('./progress');
        const bar = progressBar('receiving');
        let stored = 0;
        const common = {
          dir,
          acknowledge: opts.ack !== false,
          maxBytes: ctx.config.transfer.maxMessageBytes,
          logger: ctx.log,
          onStored: (m: Parameters<typeof recorder.stored>[0]) => {
            recorder.stored(m);
            bar.update(++stored, stored, m.messageId);
          },
        };
        const failures: Array<{ messageId: string; error: unknown }> = [];
        const received = opts.id
          ? [await receiveMessage(client, opts.id, common)]
          : await receiveAll(client, { ...common, onFailed: (messageId, error) => void failures.push({ messageId, error }) });
        bar.finish();
        recorder.acknowledged(received.filter((m) => m.acknowledged).map((m) => m.messageId));
        recorder.close();
        const messages = received.map((m) => ({
          messageId: m.messageId,
          type: m.meta.messageType,
          path: m.path,
          bytes: m.bytes,
          acknowledged: m.acknowledged,
          workflowId: m.meta.workflowId,
          from: m.meta.from,
          ...(m.meta.messageType === 'REPORT'
            ? { linkedMessageId: m.meta.linkedMessageId, statusCode: m.meta.statusCode, statusDescription: m.meta.statusDescription }
            : {}),
        }));
        const failed = failures.map((f) => ({ messageId: f.messageId, code: (f.error as MeshdError).code, message: (f.error as Error).message }));
        ctx.print(
          failed.length ? { messages, failed } : { messages },
          messages.map((m) => (m.type === 'REPORT' ? `${m.messageId} REPORT ${m.statusCode ?? ''} for ${m.linkedMessageId ?? '?'}` : `${m.messageId} ${m.path}`)),
        );
        // The others were received; still fail the command so a script notices the ones left behind.
        const { redactString } = await import('../log');
        for (const f of failed) writeLines(redactString(`meshd: ${f.messageId} not received (left in the inbox): ${f.message}`), process.stderr);
        if (failures.length) process.exitCode = exitCodeFor((failures[0].error as MeshdError).kind);
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
