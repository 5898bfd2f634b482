#!/usr/bin/env node
import { main } from '../dist/src/cli.js';

// A consumer that stops reading (`| head`) is not an error of ours: end quietly, as SIGPIPE would.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(141);
  throw err;
});

process.exitCode = await main(process.argv);
