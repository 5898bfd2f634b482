#!/usr/bin/env node
import { main, systemReason } from '../dist/src/cli/main.js';

// A consumer that stops reading (`| head`) is not an error of ours: end quietly, as SIGPIPE would.
// Any other stdout failure (a full disk behind `> file`) is one line and exit 1, never a stack trace.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(141);
  process.stderr.write(`spp-extract: error: -o -: cannot write to stdout: ${systemReason(err)}\n`);
  process.exit(1);
});

process.exitCode = await main(process.argv);
