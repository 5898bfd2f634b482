// Tests never touch the user's $HOME or model cache, also when a file is run on its own.
import './private-home.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const made: string[] = [];
let hooked = false;

/**
 * A fresh folder under the OS temp dir, removed when the test process exits (each test file runs
 * in its own process). Set SPP_KEEP_TMP=1 to keep them for a post-mortem.
 */
export function tempDir(prefix = 'spp-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  if (!hooked && !process.env.SPP_KEEP_TMP) {
    hooked = true;
    process.once('exit', () => {
      for (const d of made) {
        try {
          rmSync(d, { recursive: true, force: true });
        } catch {
          // a mount point still busy, a file made unreadable on purpose: leave it
        }
      }
    });
  }
  return dir;
}
