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
process.on('SIGINT', early);
process.on('SIGTERM', early);
import('./spp-extract.js');
