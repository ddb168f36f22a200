#!/usr/bin/env node
'use strict';
// fsyncs and file moves run on libuv's thread pool; more threads let the kernel batch
// concurrent fsyncs into fewer journal commits. Must be set before the pool first starts.
process.env.UV_THREADPOOL_SIZE = process.env.UV_THREADPOOL_SIZE || '16';
// Node.js 22.1+ keeps compiled modules on disk (why and where: src/compile-cache.ts); first, so
// that everything after is cached.
require('../dist/src/compile-cache.js').enableCompileCache();
// V8 settings (why: src/v8-flags.ts), before anything that depends on them runs.
require('../dist/src/v8-flags.js').applyV8Flags();

require('../dist/src/cli/main.js').main(process.argv).then(
  (code) => { process.exitCode = code; },
  (err) => { process.stderr.write(`meshd: ${err && err.message ? err.message : err}\n`); process.exitCode = 1; },
);
