import type { Command } from 'commander';


/** `meshd run`: the daemon, or one cycle with --once. */
export function register(program: Command): void {
  program
    .command('run')
    .description('run the daemon: poll, send, receive and follow up on every mailbox in the config')
    .option('--once', 'run one full cycle (handshake if due, send, receive, follow-up) and exit; do not run this against real MESH more often than every 5 minutes')
    .option('--dry-run', 'show what would be sent and check transforms, without moving files or calling MESH')
    .action(async (opts: { once?: boolean; dryRun?: boolean }, cmd: Command) => {
      const { runCommand } = await import('./run-command');
      process.exitCode = await runCommand(cmd.optsWithGlobals(), opts);
    });
}


