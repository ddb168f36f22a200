import type { MailboxContext } from '../transfer/context';
import type { CliContext } from './context';

/**
 * A one-shot mailbox context for a CLI command: the daemon's own folders, ledger, MESH port and
 * transforms for the chosen mailbox, so `meshd send` and `meshd receive` run the daemon's steps.
 * No recovery runs here: that belongs to the daemon's start.
 */
export async function oneShotMailbox<T>(ctx: CliContext, fn: (mailbox: MailboxContext) => Promise<T>): Promise<T> {
  const { Daemon } = await import('../daemon/daemon');
  const { meshPortFor } = await import('../transfer/mesh-port');
  let port: ReturnType<typeof meshPortFor> | undefined;
  const daemon = await Daemon.open({ ...ctx.config, mailboxes: [ctx.mailbox] }, { log: ctx.log, meshFor: (m) => (port = meshPortFor(ctx.config, m.id, ctx.log)) });
  try {
    return await fn(daemon.mailboxes[0]);
  } finally {
    await daemon.stop(0);
    await port?.close();
  }
}
