import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { SqliteLedger } from '../src/ledger/sqlite-ledger';

/**
 * The ledger's share of a small message: the ledger calls the send and receive pipelines make
 * for one message, in the groups they commit together, on a fresh SQLite file (fsync'd commits),
 * timed in CPU (user + system) per message. No network, no files but the ledger's: the figure
 * moves little with the machine's load, so a change to the ledger shows here when the daemon
 * benchmark's noise hides it. MESHD_BENCH_BASELINE=<another build's dist> times that build's
 * ledger beside this one, pass by pass in turn.
 */
const GROUP = 16;
const PASSES = 7;
const GROUPS_PER_PASS = 40;

type OpenLedger = (file: string) => SqliteLedger;

function loadBuild(dist: string): OpenLedger {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- another build, chosen at run time
  return (require(join(resolve(dist), 'src', 'ledger', 'sqlite-ledger.js')) as { openLedger: OpenLedger }).openLedger;
}

let serial = 0;

/** One upload group's ledger writes: claim, queue, first-POST marks, sent with the message id, filing. */
function sendGroup(ledger: SqliteLedger): void {
  const ids = ledger.transaction(() =>
    Array.from({ length: GROUP }, () => ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'claiming', peer: 'X26ABC2', workflowId: 'WF', fileName: `m${serial++}.txt`, payloadPath: '/data/out/m.txt' }, { type: 'claiming' }).id),
  );
  ledger.transaction(() => ids.forEach((id) => ledger.transition(id, 'queued', { from: ['claiming'], patch: { payloadPath: `/data/spool/${id}.dat`, sizeBytes: 2048, sha256: 'ab'.repeat(32) }, event: { type: 'claimed' } })));
  ledger.transaction(() => ids.forEach((id) => ledger.setMark(id, 'post_in_flight', { from: ['queued'], patch: { attempts: 1 }, event: { type: 'upload_started' } })));
  // A one-chunk message is recorded as sent, with its message id, the moment MESH answers (answers
  // arriving together share a commit; here each has its own, the dearest case).
  for (const id of ids) ledger.transaction(() => ledger.transition(id, 'sent', { from: ['queued'], patch: { messageId: `M${id}`, chunksTotal: 1, chunksDone: 1 }, event: { type: 'sent' }, mark: 'filing' }));
  ledger.transaction(() => ids.forEach((id) => ledger.setMark(id, 'filing', { patch: { payloadPath: `/data/sent/${id}.dat` }, event: { type: 'filing' } })));
  ledger.transaction(() => ids.forEach((id) => ledger.setMark(id, null, { patch: { ctlPath: null }, event: { type: 'filed' } })));
}

/** One listed page's ledger writes: listed rows, the duplicate check, delivery, acknowledgement. */
function receiveGroup(ledger: SqliteLedger): void {
  const ids = ledger.transaction(() =>
    Array.from({ length: GROUP }, () => {
      const messageId = `IN${serial++}`;
      ledger.findByMessageId('X26ABC2', 'in', messageId);
      return ledger.insertMessage({ direction: 'in', mailbox: 'X26ABC2', messageId, state: 'receiving' }, { type: 'listed' }).id;
    }),
  );
  ledger.transaction(() =>
    ids.forEach((id) => {
      ledger.findEarlierCopy({ mailbox: 'X26ABC2', peer: 'X26ABC1', businessId: null, receivedSha256: 'cd'.repeat(32), workflowId: 'WF', since: new Date(0), excludeId: id, states: ['delivered', 'acknowledged'] });
      ledger.transition(id, 'delivered', { from: ['receiving'], patch: { peer: 'X26ABC1', workflowId: 'WF', payloadPath: `/data/in/${id}.dat`, sizeBytes: 2048, receivedSha256: 'cd'.repeat(32) }, event: { type: 'delivered' } });
    }),
  );
  ledger.transaction(() => ids.forEach((id) => ledger.transition(id, 'acknowledged', { from: ['delivered'], patch: { acknowledgedAt: new Date().toISOString() }, event: { type: 'acknowledged' } })));
}

/** CPU µs per message of `groups` groups of one shape. */
function cpuPerMessage(ledger: SqliteLedger, group: (l: SqliteLedger) => void): number {
  const c0 = process.cpuUsage();
  for (let i = 0; i < GROUPS_PER_PASS; i++) group(ledger);
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / (GROUPS_PER_PASS * GROUP);
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];

export async function runLedgerWritesBench(): Promise<Record<string, unknown>> {
  const builds: Array<[string, OpenLedger]> = [['this build', loadBuild(resolve(__dirname, '..'))]];
  if (process.env.MESHD_BENCH_BASELINE) builds.push(['baseline', loadBuild(process.env.MESHD_BENCH_BASELINE)]);
  const dir = mkdtempSync(join(tmpdir(), 'meshd-bench-ledger-writes-'));
  try {
    // A data dir each: meshd refuses to start a second ledger beside another's.
    const ledgers = builds.map(([name, open], i) => {
      mkdirSync(join(dir, String(i)));
      return [name, open(join(dir, String(i), 'meshd.db'))] as const;
    });
    const times = new Map(ledgers.map(([name]) => [name, { send: [] as number[], receive: [] as number[] }]));
    // A warm-up pass each (JIT), then passes in turn, so both builds meet the same moments of load.
    for (let pass = 0; pass <= PASSES; pass++) {
      for (const [name, ledger] of ledgers) {
        const send = cpuPerMessage(ledger, sendGroup);
        const receive = cpuPerMessage(ledger, receiveGroup);
        if (pass === 0) continue;
        times.get(name)!.send.push(send);
        times.get(name)!.receive.push(receive);
      }
    }
    for (const [, ledger] of ledgers) ledger.close();
    const result: Record<string, unknown> = { messagesPerPass: GROUPS_PER_PASS * GROUP, passes: PASSES };
    for (const [name, t] of times) result[name] = { sendCpuMicrosPerMessage: Math.round(median(t.send)), receiveCpuMicrosPerMessage: Math.round(median(t.receive)) };
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
