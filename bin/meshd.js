#!/usr/bin/env node
'use strict';
// fsyncs and file moves run on libuv's thread pool; more threads let the kernel batch
// concurrent fsyncs into fewer journal commits. Must be set before the pool first starts.
process.env.UV_THREADPOOL_SIZE = process.env.UV_THREADPOOL_SIZE || '16';

/** Handles that never keep meshd alive on their own: its own stdin/stdout/stderr. */
const STDIO = new Set(['TTYWrap', 'PipeWrap']);

require('../dist/src/cli/main.js').main(process.argv).then(
  (code) => {
    process.exitCode = code;
    // With nothing left but stdio, Node would still wait ~100 ms for V8's background tasks
    // before exiting (docs/performance.md): leave now. Writes to files, pipes and terminals
    // are synchronous on Linux, so nothing printed is lost; a command that left a server or a
    // child running is left to end by itself.
    setImmediate(() => {
      if (process.getActiveResourcesInfo().every((r) => STDIO.has(r))) process.exit();
    });
  },
  (err) => { process.stderr.write(`meshd: ${err && err.message ? err.message : err}\n`); process.exitCode = 1; },
);
