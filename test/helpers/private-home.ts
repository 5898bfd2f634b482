/**
 * Loaded before every test file (npm test runs `node --import` with it): $HOME and XDG_CACHE_HOME point
 * into a temp folder, so no test reads or writes the user's real model cache (~/.cache/spp-extract)
 * or anything else under $HOME. The runner sets it once; the test files' processes inherit it, and
 * share one converted-model cache. Removed when the runner exits.
 */
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

if (process.env.SPP_TEST_HOME === undefined) {
  const home = mkdtempSync(join(tmpdir(), 'spp-test-home-'));
  mkdirSync(join(home, '.cache'));
  Object.assign(process.env, { SPP_TEST_HOME: home, HOME: home, XDG_CACHE_HOME: join(home, '.cache') });
  if (!process.env.SPP_KEEP_TMP) process.once('exit', () => rmSync(home, { recursive: true, force: true }));
}
