/**
 * Too few file descriptors (issue 17): `ulimit -n 20` printed a raw stack trace (the loading of our
 * own modules failed with EMFILE), a little higher Node's bare "EMFILE … open '…/run.js'", and a
 * load that hit EMFILE could hang. Now a limit under the floor is refused before anything loads.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { openFilesAdvice } from '../../src/cli/open-files.js';
import { BIN } from '../helpers/cli.js';
import { fixture } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

function runLimited(limit: number, args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    // exec: the limit applies to node itself; SIGKILL guards against a hang (not a timing).
    const child = spawn('/bin/sh', ['-c', `ulimit -n ${limit} && exec "$0" "$@"`, process.execPath, BIN, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000, killSignal: 'SIGKILL',
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

test('too few file descriptors: refused before anything loads, one line naming the limit; at the floor the run goes through', { timeout: 300_000 }, async (t) => {
  if (!existsSync('/proc/self/limits')) return t.skip('no /proc/self/limits here (the check is Linux only)');
  const dir = tempDir('spp-nofile-');
  const args = (limit: number) => [fixture('images'), '-o', join(dir, `x${limit}.npy`), '--model', fixture('tiny-layers'), '--engine', 'onnx'];
  // 36 hung on a 16-core machine before the check (a module load that hit EMFILE never settled).
  for (const limit of [22, 36, 52, 255]) {
    const r = await runLimited(limit, args(limit));
    assert.notEqual(r.code, null, `ulimit -n ${limit}: killed, it hung`);
    assert.equal(r.code, 1, `ulimit -n ${limit}: ${r.stderr}`);
    assert.equal(r.stderr, `spp-extract: error: the open-file limit is ${limit}; spp-extract needs at least 256: raise it (ulimit -n 1024) and run again\n`);
    assert.ok(!existsSync(join(dir, `x${limit}.npy`)), 'nothing written');
  }
  const r = await runLimited(256, args(256));
  assert.notEqual(r.code, null, 'ulimit -n 256: killed, it hung');
  assert.equal(r.code, 2, `ulimit -n 256: ${r.stderr}`); // not-an-image.jpg is a recorded failure
  assert.doesNotMatch(r.stderr, /^\s+at /m);
});

test('openFilesAdvice: EMFILE names the soft limit when it can be read, ENFILE the system; other errors none', () => {
  const limits = join(tempDir('spp-nofile-'), 'limits');
  writeFileSync(limits, 'Limit                     Soft Limit           Hard Limit           Units\nMax open files            24                   4096                 files\n');
  const emfile = Object.assign(new Error('EMFILE'), { code: 'EMFILE' });
  assert.equal(openFilesAdvice(emfile, limits), 'too many open files (EMFILE): raise the open-file limit (ulimit -n, now 24) and run again');
  assert.equal(openFilesAdvice(emfile, join(limits, 'absent')), 'too many open files (EMFILE): raise the open-file limit (ulimit -n) and run again');
  assert.match(openFilesAdvice(Object.assign(new Error('x'), { code: 'ENFILE' }))!, /ENFILE/);
  assert.equal(openFilesAdvice(Object.assign(new Error('x'), { code: 'ENOENT' })), undefined);
  assert.equal(openFilesAdvice('text'), undefined);
});
