#!/usr/bin/env node
// Ctrl-C / SIGTERM from the first moment: release the lock, one line, exit 130 (see interrupt.ts).
(await import('../dist/src/cli/interrupt.js')).installInterruptHandler();
// The inference worker starts booting before the CLI's code loads (see early.ts).
await (await import('../dist/src/cli/early.js')).prestartForArgv(process.argv);
const { main, systemReason } = await import('../dist/src/cli/main.js');

// stdout failing (a reader that went away, `> /dev/full`) reaches the run as a failed write, and
// the run ends cleanly: its engine closed, never torn down by process.exit mid-call (ONNX Runtime
// aborts the whole process then). Here it is only noted, for output written outside a run (info).
let stdoutError;
process.stdout.on('error', (err) => {
  stdoutError ??= err;
});

const code = await main(process.argv);
if (stdoutError && code !== 1 && code !== 141) {
  // A reader that stops reading (`| head`) is not an error of ours: a quiet 141, as SIGPIPE would give.
  if (stdoutError.code === 'EPIPE') {
    process.exitCode = 141;
  } else {
    process.stderr.write(`spp-extract: error: -o -: cannot write to stdout: ${systemReason(stdoutError)}\n`);
    process.exitCode = 1;
  }
} else {
  process.exitCode = code;
}
