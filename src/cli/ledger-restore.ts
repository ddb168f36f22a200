import type { Command } from 'commander';
import { MeshdError } from '../errors';
import { printer } from './output';

/**
 * `meshd ledger restore FILE`: the supported way back from a backup. Takes the instance lock
 * (so the daemon is not running), checks and installs the copy, then makes the spool agree with
 * it: rows whose spool copy is gone go to needs_review, files no row owns go to orphans/.
 */
export function registerRestore(group: Command): void {
  group
    .command('restore')
    .description('replace the ledger with a backup copy (daemon stopped), then reconcile the spool with it')
    .argument('<file>', 'a copy written by `meshd ledger backup`')
    .action(async (file: string, _opts: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals() as { config?: string; json?: boolean };
      const path = await import('node:path');
      const { findConfigPath, loadConfig } = await import('../config');
      const { acquireInstanceLock } = await import('../daemon/lock');
      const { ledgerPath, requireSqlite } = await import('../ledger');
      const { installLedgerCopy } = await import('../ledger/restore');
      const { Daemon } = await import('../daemon/daemon');
      const { reconcileSpool } = await import('../transfer/outbound');
      const { createLogger } = await import('../log');
      const config = await loadConfig(findConfigPath(g.config), process.env, { skipSecrets: true });
      requireSqlite(config, 'meshd ledger restore');
      const source = path.resolve(file);
      const lock = acquireInstanceLock(config.dataDir);
      try {
        const installed = installLedgerCopy(source, ledgerPath(config.dataDir));
        const refuse = async () => {
          throw new MeshdError('RESTORE_NO_MESH', 'restore makes no MESH calls');
        };
        const noMesh = { handshake: refuse, listInbox: refuse, download: refuse, acknowledge: refuse, send: refuse, track: refuse };
        const daemon = await Daemon.open(config, { log: createLogger({ level: 'warn' }), meshFor: () => noMesh });
        const mailboxes = [];
        try {
          for (const ctx of daemon.mailboxes) mailboxes.push({ mailbox: ctx.mailbox.id, ...(await reconcileSpool(ctx)) });
        } finally {
          await daemon.stop(0);
        }
        const result = { restored: source, replaced: installed.replacedDir ?? null, mailboxes };
        const text = [
          `ledger restored from ${source}${installed.replacedDir ? `; the ledger it replaced is in ${installed.replacedDir}` : ''}`,
          ...mailboxes.map((m) => `${m.mailbox}: ${m.orphans.length} spool file(s) no row owns moved to orphans/${m.orphans.length ? ` (${m.orphans.join(', ')})` : ''}; ${m.parked.length} row(s) whose spool copy is missing parked in needs_review${m.parked.length ? ` (${m.parked.join(', ')})` : ''}`),
        ];
        printer(g.json === true)(result, text);
      } finally {
        lock.release();
      }
    });
}
