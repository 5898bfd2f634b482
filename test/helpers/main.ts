import { main } from '../../src/cli/main.js';
import { setOutputIo, type OutputIo } from '../../src/output/io.js';

/**
 * main() in this process with stderr captured: for tests that run the CLI many times (fault
 * injection: `io` swaps the output layer's file operations) or only check how it handles its
 * arguments. `env` is set for the call (undefined deletes a variable) and restored after.
 */
export async function runMain(args: string[], opts: { io?: OutputIo; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; stderr: string }> {
  const restore = opts.io ? setOutputIo(opts.io) : () => undefined;
  const savedEnv = Object.fromEntries(Object.keys(opts.env ?? {}).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  const write = process.stderr.write.bind(process.stderr);
  let stderr = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    const code = await main(['node', 'spp-extract', ...args]);
    return { code, stderr };
  } finally {
    process.stderr.write = write;
    for (const [k, v] of Object.entries(savedEnv)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    restore();
  }
}
