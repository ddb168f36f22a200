#!/usr/bin/env node
'use strict';
// fsyncs and file moves run on libuv's thread pool; more threads let the kernel batch
// concurrent fsyncs into fewer journal commits. Must be set before the pool first starts.
process.env.UV_THREADPOOL_SIZE = process.env.UV_THREADPOOL_SIZE || '16';
// undici parses HTTP in WebAssembly, which V8 recompiles optimised in the background once a
// function has run a while. At V8's default budget even an idle `run --once` starts that
// compile, and exit then waits ~100 ms for it (docs/performance.md). Ten times the budget:
// a short command never starts it; a busy one still does, within its first messages.
require('v8').setFlagsFromString('--wasm-tiering-budget=18000000');

require('../dist/src/cli/main.js').main(process.argv).then(
  (code) => { process.exitCode = code; },
  (err) => { process.stderr.write(`meshd: ${err && err.message ? err.message : err}\n`); process.exitCode = 1; },
);
