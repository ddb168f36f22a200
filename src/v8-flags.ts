import { setFlagsFromString } from 'node:v8';

/**
 * V8 settings meshd runs with. bin/meshd.js applies them before anything else loads, and the
 * benchmarks do too, so they measure what runs (docs/performance.md, 2. Start-up and 6. Transforms).
 * They are set after Node has started, so only flags that are safe to change in a running
 * isolate belong here: `--no-regexp-tier-up`, set this way, crashed Node (§2, 2026-12-03 evening).
 */
export const V8_FLAGS: readonly string[] = [
  // undici parses HTTP in WebAssembly, which V8 recompiles optimised in the background once a
  // function has run a while. At V8's default budget even an idle `run --once` starts that
  // compile, and exit then waits ~100 ms for it. Ten times the budget: a short command never
  // starts it; a busy one still does, within its first messages.
  '--wasm-tiering-budget=18000000',
  // V8 learns which allocation sites make long-lived objects and from then on allocates theirs
  // straight in the old generation, and never unlearns it. A batch file's conversion keeps its
  // records alive for a while, so afterwards every message converted alone left its garbage in
  // the old generation: ~1.4 × the CPU a message, for the life of the daemon.
  '--no-allocation-site-pretenuring',
];

export function applyV8Flags(): void {
  for (const flag of V8_FLAGS) setFlagsFromString(flag);
}
