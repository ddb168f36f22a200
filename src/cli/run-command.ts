import { readFileSync } from 'node:fs';
import { certificateStatus } from '../certs/status';
import { findConfigPath, loadConfig } from '../config';
import type { MeshdConfig } from '../config/types';
import { MeshdError } from '../errors';
import { createLogger, type Logger, type LogLevel } from '../log';
import { planOutbound } from '../transfer/outbound';
import { meshPortFor } from '../transfer/mesh-port';
import { EXIT, exitCodeFor } from './exit';
import { printer } from './output';
import { Daemon } from '../daemon/daemon';
import type { HostLeases } from '../daemon/hosts';
import { acquireInstanceLock } from '../daemon/lock';
import type { Observer } from '../daemon/observe';

interface GlobalOptions {
  config?: string;
  json?: boolean;
  logLevel?: string;
}

/** Refuses to start with an expired client certificate; warns from 30 days out. */
export function checkClientCertificate(config: MeshdConfig, log: Logger, now = new Date()): void {
  const paths = new Set(config.mailboxes.map((m) => m.tls?.cert ?? config.tls.cert).filter((p): p is string => !!p));
  for (const path of paths) {
    const status = certificateStatus(readFileSync(path), now);
    if (status.expired) {
      throw new MeshdError(
        'CERT_EXPIRED',
        `the client certificate ${path} expired on ${status.notAfter.toISOString()}`,
        'request a new certificate (meshd certs csr) and install it before starting meshd',
        'auth',
      );
    }
    if (status.expiresSoon) log.warn('CERT_EXPIRES_SOON', `the client certificate ${path} expires in ${status.daysLeft} days`, { notAfter: status.notAfter.toISOString() });
  }
}

export async function runCommand(g: GlobalOptions, opts: { once?: boolean; dryRun?: boolean }): Promise<number> {
  const config = await loadConfig(findConfigPath(g.config));
  // With PostgreSQL this process is one host among several, named in every log line. Its
  // leases (and their migrations) are loaded only then: a SQLite run, an idle one above all,
  // does not compile them (docs/performance.md §2).
  const hosts = config.ledger.postgres ? await import('../daemon/hosts') : undefined;
  const hostId = hosts?.hostIdOf(config);
  const rootLog = createLogger({
    level: (g.logLevel as LogLevel | undefined) ?? config.log.level,
    format: config.log.format === 'auto' ? undefined : config.log.format,
  });
  const log = hostId ? rootLog.child({ host: hostId }) : rootLog;
  const print = printer(g.json === true);

  if (opts.dryRun) {
    const daemon = await Daemon.open(config, { log, meshFor: () => noMesh() });
    try {
      const plans = [];
      for (const ctx of daemon.mailboxes) plans.push({ mailbox: ctx.mailbox.id, outbound: await planOutbound(ctx) });
      print(
        { dryRun: true, mailboxes: plans },
        plans.flatMap((p) => [`${p.mailbox}: ${p.outbound.length} file(s) would be sent`, ...p.outbound.map((o) => `  ${o.file} → ${o.to ?? '?'} ${o.workflow ?? ''}${o.transform ? ` (${o.transform})` : ''}${o.problem ? `  PROBLEM: ${o.problem}` : ''}`)]),
      );
    } finally {
      await daemon.stop(0);
    }
    return EXIT.OK;
  }

  checkClientCertificate(config, log);
  const lock = acquireInstanceLock(config.dataDir, hostId);
  const ports = new Map<string, ReturnType<typeof meshPortFor>>();
  let leases: HostLeases | undefined;
  try {
    if (opts.once) {
      leases = hosts?.HostLeases.open(config, log);
      return await runOnce(config, log, ports, print, leases);
    }
    // Metrics, health server and console only for the long-running daemon: loaded here, not at start-up.
    const { createMetrics, meteredPort, recordSuccessfulPoll, countingLogger, startObserver, version } = await import('../daemon/observe');
    const metrics = createMetrics({ version });
    const observed: { observer?: Observer } = {};
    leases = hosts?.HostLeases.open(config, log, (change, mailbox, held) => {
      metrics.leaseChanges.inc({ mailbox, change });
      metrics.leasesHeld.set(held);
    });
    const daemon = await Daemon.open(config, {
      leases: leases?.forDaemon,
      log: countingLogger(log, metrics),
      onTransformFailure: (mailbox, direction) => metrics.transformFailures.inc({ mailbox, direction }),
      meshFor: (mailbox) => {
        const port = meshPortFor(config, mailbox.id, countingLogger(log.child({ mailbox: mailbox.id }), metrics));
        ports.set(mailbox.id, port);
        return meteredPort(port, metrics, mailbox.id);
      },
      afterStage: (mailbox, stage, ok, ms) => {
        if (stage === 'receive' && ok) {
          recordSuccessfulPoll(metrics, mailbox, new Date(), ms);
          observed.observer?.pollSucceeded(mailbox, new Date());
        }
        observed.observer?.refresh();
      },
    });
    await leases?.start(daemon);
    const observer = (observed.observer = await startObserver(daemon, metrics, log));
    // The web console beside the health server, on the daemon's own ledger connection (docs/ui.md).
    const consoleServer = config.ui ? await (await import('../ui/server')).startUiServer({ config, ui: config.ui, ledger: daemon.ledger, log }) : undefined;
    const { tokenPath } = await import('../ui/auth');
    if (consoleServer) log.info('UI_LISTENING', `web console on ${consoleServer.url.replace(/\?token=.*$/, '')} (login token in ${tokenPath(config.dataDir)})`, { port: consoleServer.port });
    const { startService } = await import('../daemon/service');
    const service = startService(daemon, log);
    await service.done;
    await consoleServer?.close();
    await observer.close();
    return EXIT.OK;
  } finally {
    // After the daemon has stopped: hand the leases back at once, not let them expire.
    await leases?.leave();
    for (const p of ports.values()) await p.close().catch(() => undefined);
    lock.release();
  }
}

/** `meshd run --once`: one cycle and a report; no metrics (nothing would serve them). */
async function runOnce(config: MeshdConfig, log: Logger, ports: Map<string, ReturnType<typeof meshPortFor>>, print: ReturnType<typeof printer>, leases?: HostLeases): Promise<number> {
  const daemon = await Daemon.open(config, {
    log,
    leases: leases?.forDaemon,
    // Run from a timer every few minutes: the full check (every page) once a day, not every time.
    integrity: 'daily',
    meshFor: (mailbox) => {
      const port = meshPortFor(config, mailbox.id, log.child({ mailbox: mailbox.id }));
      ports.set(mailbox.id, port);
      return port;
    },
  });
  let reports;
  try {
    // With several hosts: one lease round, then the cycle for the mailboxes no other host works.
    await leases?.start(daemon, false);
    reports = await daemon.runOnce();
  } finally {
    await daemon.stop();
  }
  const errors = reports.flatMap((r) => r.errors);
  print(
    { mailboxes: reports },
    // `listed` beside `received`: a message MESH listed but meshd did not deliver (a duplicate,
    // a quarantined one) shows as the gap between them, which tells the operator to look.
    reports.map((r) => `${r.mailbox}: claimed ${r.claimed}, sent ${r.sent}, listed ${r.listed}, received ${r.delivered}, acknowledged ${r.acknowledged}, tracked ${r.tracked}${r.errors.length ? `, ${r.errors.length} error(s)` : ''}`),
  );
  return errors.length === 0 ? EXIT.OK : exitCodeFor(errors[0].kind);
}

function noMesh(): never & ReturnType<typeof meshPortFor> {
  const refuse = async () => {
    throw new MeshdError('DRY_RUN', 'dry run: no MESH calls are made');
  };
  return { handshake: refuse, listInbox: refuse, download: refuse, acknowledge: refuse, send: refuse, track: refuse, close: async () => undefined } as never;
}
