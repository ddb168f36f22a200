import { pgCluster, pgBinDir } from '../test/integration/support/postgres';
import { smallMessageSetup } from './daemon';

/**
 * Small-message throughput with the PostgreSQL ledger beside the SQLite one (issue 15): the
 * same N 2 KB messages sent and received by `meshd run --once`, once per backend, in one run.
 * PostgreSQL is a throwaway local cluster (as in the tests); without its binaries the
 * comparison is skipped and says why.
 */
export async function runLedgersBench(count = Number(process.env.MESHD_BENCH_PG_MESSAGES ?? 2_000)): Promise<Record<string, unknown>> {
  try {
    pgBinDir();
  } catch (err) {
    return { skipped: (err as Error).message };
  }
  const cluster = await pgCluster();
  const rates: Record<string, { sendPerSecond: number; receivePerSecond: number; delivered: number }> = {};
  for (const backend of ['sqlite', 'postgres'] as const) {
    const ledger = backend === 'postgres' ? async () => ({ postgres: await cluster.freshDatabase() }) : undefined;
    const setup = await smallMessageSetup(count, ledger);
    try {
      const { send, receive, delivered } = await setup.sendAndReceive();
      rates[backend] = { sendPerSecond: Math.round(count / (send.ms / 1000)), receivePerSecond: Math.round(count / (receive.ms / 1000)), delivered };
    } finally {
      await setup.close();
    }
  }
  return {
    messages: count,
    ...rates,
    note: 'the PostgreSQL cluster is a local throwaway with fsync off; a production server (fsync on, a network hop) is slower',
    // PostgreSQL's rate as a share of SQLite's, measured side by side.
    postgresShareOfSqlite: { send: +(rates.postgres.sendPerSecond / rates.sqlite.sendPerSecond).toFixed(2), receive: +(rates.postgres.receivePerSecond / rates.sqlite.receivePerSecond).toFixed(2) },
  };
}
