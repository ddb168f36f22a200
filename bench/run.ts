import { runBusyLedgerBench } from './busy-ledger';
import { runFileCallsBench } from './file-calls';
import { runDaemonBench } from './daemon';
import { runFileStepsBench } from './file-steps';
import { runLedgerBench } from './ledger';
import { runLedgersBench } from './ledgers';
import { runLedgerWritesBench } from './ledger-writes';
import { runMailboxesBench } from './mailboxes';
import { runMemoryBench } from './memory';
import { runStartupBench } from './startup';
import { runTransformBench } from './transform';
import { runTransportBench } from './transport';
import { runUiBench } from './ui';
import { applyV8Flags } from '../src/v8-flags';

// The V8 settings bin/meshd.js runs with: what runs in this process is measured as meshd runs it.
applyV8Flags();

/**
 * `npm run bench`: every benchmark, one after another, printed as JSON. Goals are printed
 * beside the figures; nothing here fails a build (timing belongs in benchmarks, not tests).
 * `npm run bench -- transport` (or daemon, transform, memory, ui, ledgers, …) runs one.
 */
const BENCHES: Record<string, () => Promise<object>> = {
  transport: runTransportBench,
  daemon: () => runDaemonBench(),
  transform: runTransformBench,
  memory: runMemoryBench,
  ui: () => runUiBench(),
  startup: () => runStartupBench(),
  ledger: () => runLedgerBench(),
  'ledger-writes': runLedgerWritesBench,
  mailboxes: () => runMailboxesBench(),
  ledgers: () => runLedgersBench(),
  'busy-ledger': () => runBusyLedgerBench(),
  'file-steps': runFileStepsBench,
  'file-calls': runFileCallsBench,
};

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  for (const name of wanted.length ? wanted : Object.keys(BENCHES)) {
    const bench = BENCHES[name];
    if (!bench) throw new Error(`unknown benchmark "${name}"; choose from ${Object.keys(BENCHES).join(', ')}`);
    process.stderr.write(`running ${name} benchmark…\n`);
    const result = await bench();
    process.stdout.write(JSON.stringify({ [name]: result }, null, 2) + '\n');
  }
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
