import { schedule, type ScheduledTask } from 'node-cron';
import type { Logger } from '../log';
import type { Daemon, Stage } from './daemon';

/**
 * `meshd run`: a full cycle at start, then each stage on its own node-cron schedule
 * (config `schedule`), mailboxes side by side (MAILBOX_CONCURRENCY at a time). Stages never
 * overlap themselves; SIGTERM/SIGINT stop new work, let the
 * chunk in flight finish or checkpoint, close the ledger and resolve.
 */
export interface RunningService {
  /** Resolves when the service has stopped (after a signal or stop()). */
  done: Promise<void>;
  stop(): Promise<void>;
}

export function startService(daemon: Daemon, log: Logger): RunningService {
  const { schedule: plan } = daemon.config;
  const tasks: ScheduledTask[] = [];
  const every = (expression: string, stage: Stage) => {
    tasks.push(
      schedule(expression, () => daemon.runStageForAll(stage)),
    );
  };
  every(plan.poll, 'receive');
  every(plan.outboundScan, 'send');
  every(plan.tracking, 'tracking');
  every(plan.handshake, 'handshake');
  // Housekeeping once a day, at a quiet hour, and once at start.
  tasks.push(schedule('17 3 * * *', () => void daemon.runRetention()));
  void daemon.runRetention();

  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      log.info('DAEMON_STOPPING', 'stopping: finishing work in flight');
      for (const t of tasks) await t.stop();
      await daemon.stop();
      log.info('DAEMON_STOPPED', 'stopped cleanly');
      resolveDone();
    })();
    return stopping;
  };
  const onSignal = (signal: NodeJS.Signals) => {
    log.info('DAEMON_SIGNAL', `received ${signal}`);
    void stop();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  void done.then(() => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  });

  // A first full cycle straight away, so a restart catches up without waiting for the schedule.
  void daemon.runOnce().catch((err) => log.error('CYCLE_FAILED', `start-up cycle failed: ${(err as Error).message}`));
  log.info('DAEMON_STARTED', `meshd running for ${daemon.mailboxes.map((m) => m.mailbox.id).join(', ')}`, {
    poll: plan.poll,
    outboundScan: plan.outboundScan,
  });
  return { done, stop };
}
