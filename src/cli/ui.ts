import type { Command } from 'commander';
import { MeshdError } from '../errors';

/**
 * `meshd ui [--port N] [--host H]`: the web console for the config's ledger (docs/ui.md), with or
 * without the daemon running. Prints one line with the login URL and serves until stopped.
 */

function usage(message: string): MeshdError {
  return new MeshdError('USAGE', message, undefined, 'usage');
}

export function register(program: Command): void {
  program
    .command('ui')
    .description('serve the web console for the ledger; prints a login URL (see docs/ui.md)')
    .option('--port <n>', 'port to listen on (default: ui.port, else 9465; 0 picks a free one)')
    .option('--host <address>', 'address to listen on (default: ui.host, else 127.0.0.1; others need ui.tls)')
    .action(async (opts: { port?: string; host?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals() as { config?: string; json?: boolean; logLevel?: string };
      if (opts.port !== undefined && (!/^\d{1,5}$/.test(opts.port) || Number(opts.port) > 65_535)) throw usage('--port must be a number from 0 to 65535');
      const { findConfigPath, loadConfig } = await import('../config');
      const { DEFAULTS } = await import('../config/presets');
      const { isLoopbackHost } = await import('../config/validate');
      const { openStore } = await import('../ledger');
      const { createLogger } = await import('../log');
      const { startUiServer } = await import('../ui/server');
      // The console reads the ledger and never contacts MESH: MESH secrets need not be reachable.
      const config = await loadConfig(findConfigPath(g.config), process.env, { skipSecrets: true });
      const ui = { ...DEFAULTS.ui, ...config.ui };
      if (opts.port !== undefined) ui.port = Number(opts.port);
      if (opts.host !== undefined) ui.host = opts.host;
      if (!isLoopbackHost(ui.host) && !ui.tls) {
        throw new MeshdError('UI_TLS_REQUIRED', `--host ${ui.host} is not a loopback address and the config has no ui.tls`, 'add ui.tls (cert and key) to the config, or use an SSH tunnel to 127.0.0.1', 'config');
      }
      if (ui.tls && !ui.tls.key) throw new MeshdError('UI_TLS_REQUIRED', 'ui.tls.key is a systemd credential, which `meshd ui` cannot read outside the service', 'give ui.tls.key as a file path, or use the console `meshd run` serves', 'config');
      const log = createLogger({ level: (g.logLevel as 'info' | undefined) ?? config.log.level, format: config.log.format === 'auto' ? undefined : config.log.format });
      const ledger = openStore(config, { create: false });
      try {
        const server = await startUiServer({ config, ui, ledger, log });
        process.stdout.write((g.json ? JSON.stringify({ url: server.url }) : `meshd console: ${server.url}`) + '\n');
        await new Promise<void>((done) => {
          process.once('SIGINT', done);
          process.once('SIGTERM', done);
        });
        await server.close();
      } finally {
        ledger.close();
      }
    });
}
