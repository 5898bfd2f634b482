/**
 * Too few file descriptors (issue 17): `ulimit -n 20` printed a raw stack trace (the loading of our
 * own modules failed with EMFILE), a little higher Node's bare "EMFILE … open '…/run.js'". Now one
 * line that names the limit and how to raise it, or a run that goes through.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
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

test('too few file descriptors: one line naming the limit, never a stack trace', { timeout: 300_000 }, async () => {
  const dir = tempDir('spp-nofile-');
  let refused = 0;
  for (const limit of [22, 26, 30, 36]) {
    const r = await runLimited(limit, [fixture('images'), '-o', join(dir, `x${limit}.npy`), '--model', fixture('tiny-layers'), '--engine', 'onnx']);
    assert.notEqual(r.code, null, `ulimit -n ${limit}: killed, it hung`);
    assert.doesNotMatch(r.stderr, /^\s+at /m, `ulimit -n ${limit}: a stack trace:\n${r.stderr}`);
    if (r.code === 1) {
      refused++;
      assert.match(r.stderr, /^spp-extract: error: too many open files \(EMFILE\)[^\n]*raise the open-file limit \(ulimit -n[^\n]*\n$/, `ulimit -n ${limit}`);
    } else {
      assert.ok(r.code === 0 || r.code === 2, `ulimit -n ${limit}: exit ${r.code}: ${r.stderr}`);
    }
  }
  assert.ok(refused > 0, 'no limit was low enough to test anything');
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
