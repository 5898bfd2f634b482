import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const interrupt = pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'interrupt.js')).href;

/** In a child: a signal during `uninterrupted(commit)` waits for the commit, then stops with the line `after` gives. */
function runChild(commitFails: boolean) {
  const script = `
    const { installInterruptHandler, uninterrupted } = await import(${JSON.stringify(interrupt)});
    installInterruptHandler();
    await uninterrupted(async () => {
      process.kill(process.pid, 'SIGTERM');
      await new Promise((r) => setTimeout(r, 300));
      process.stdout.write('commit ran to its end\\n');
      if (${commitFails}) throw new Error('rename failed');
    }, (ok) => ok ? 'stopped after the commit' : 'stopped; the commit failed').catch(() => undefined);
    await new Promise((r) => setTimeout(r, 5000));
    process.stdout.write('not stopped\\n');`;
  return spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
}

test('a signal during a commit (the final renames) is held until the commit ends, then stops with one line, exit 130', () => {
  const ok = runChild(false);
  assert.equal(ok.status, 130, ok.stderr);
  assert.equal(ok.stdout, 'commit ran to its end\n');
  assert.equal(ok.stderr, 'spp-extract: SIGTERM: stopped after the commit\n');
  const failed = runChild(true);
  assert.equal(failed.status, 130, failed.stderr);
  assert.equal(failed.stdout, 'commit ran to its end\n');
  assert.equal(failed.stderr, 'spp-extract: SIGTERM: stopped; the commit failed\n');
});
