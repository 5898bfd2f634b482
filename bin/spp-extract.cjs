#!/usr/bin/env node
'use strict';
// The command's entry. libuv sizes its thread pool, where sharp decodes, on first use, and an ES
// module entry has used it by the time its code runs: the size is set here, before anything loads.
// One thread per core (libuv's default is 4): on 2 cores, 4 decoder threads cost ~4 % more CPU per
// image for nothing (npm run bench); on a larger machine, 4 would cap decoding. A user's value is kept.
process.env.UV_THREADPOOL_SIZE ??= String(require('node:os').availableParallelism());
// A signal while the code loads: nothing is held or written yet. Once interrupt.js has its own
// handler (bin/spp-extract.js installs it first thing), this one leaves the signal to it.
const early = (sig) => {
  if (process.listenerCount(sig) > 1) return;
  process.stderr.write(`spp-extract: ${sig}: stopped; nothing written\n`);
  process.exit(130);
};
// Too few file descriptors: Node's module loader can wait forever on a load that hit EMFILE (seen
// at ulimit -n 36 on 16 cores, where one libuv thread per core reads modules at once). Refused
// before anything loads; the floor leaves room for the modules, ONNX Runtime's workers and decoding
// (a run peaks at ~50 on 2 cores). Linux only (/proc); macOS's default soft limit is 256.
const MIN_OPEN_FILES = 256;
const openFileLimit = (() => {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(require('node:fs').readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
})();
if (openFileLimit !== undefined && openFileLimit < MIN_OPEN_FILES) {
  process.stderr.write(`spp-extract: error: the open-file limit is ${openFileLimit}; spp-extract needs at least ${MIN_OPEN_FILES}: raise it (ulimit -n ${MIN_OPEN_FILES * 4}) and run again\n`);
  process.exit(1);
}
process.on('SIGINT', early);
process.on('SIGTERM', early);
import('./spp-extract.js').catch(async (err) => {
  // Too few file descriptors (ulimit -n) fail the loading of the code itself: one line, not a stack.
  if (err?.code !== 'EMFILE' && err?.code !== 'ENFILE') throw err;
  process.stderr.write(`spp-extract: error: too many open files (${err.code}) while starting; raise the open-file limit (ulimit -n) and run again\n`);
  // Nothing is held or written yet. The worker started early is closed (never torn down inside ONNX
  // Runtime), then the process exits: a worker that failed half-made can hold the event loop forever.
  await import('../dist/src/backbone/onnx/worker-client.js').then((m) => m.discardPrestartedWorker()).catch(() => undefined);
  process.exit(1);
});
