import { execFileSync } from 'node:child_process';

const PYTHON = process.env.PYTHON ?? 'python3';
let numpyAvailable: boolean | undefined;

/** True when `python3 -c "import numpy"` works (checked once per process). */
export function hasNumpy(): boolean {
  if (numpyAvailable === undefined) {
    try {
      execFileSync(PYTHON, ['-c', 'import numpy'], { stdio: 'ignore', timeout: 30_000 });
      numpyAvailable = true;
    } catch {
      numpyAvailable = false;
    }
  }
  return numpyAvailable;
}

export const NO_NUMPY = `needs ${PYTHON} with numpy (not found); skipping the cross-check against numpy`;

/** Runs `python3 -c code ...args` and returns its stdout; throws with stderr on failure. */
export function runPython(code: string, args: string[] = []): string {
  return execFileSync(PYTHON, ['-c', code, ...args], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    timeout: 60_000,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}
