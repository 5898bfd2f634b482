import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { removeOnInterrupt } from '../../src/cli/interrupt.js';
import { interruptedBySignal, runInterruptSteps } from '../../src/core/interrupt-cleanup.js';
import { FileSink } from '../../src/output/file-sink.js';
import { tempDir } from '../helpers/tmp.js';

// Runs the steps a signal runs, so it marks this process as stopping: the only test in its file.
test('a signal removes only the temp files this process created after registering them, then nothing new is created', async () => {
  const dir = tempDir('spp-interrupt-');
  const earlier = join(dir, '.x.npy.partial');
  const ours = join(dir, '.x.manifest.jsonl.partial');
  writeFileSync(earlier, 'an earlier run left this: resumable, not ours');
  removeOnInterrupt([earlier, ours]);
  writeFileSync(ours, 'begun by this run');
  assert.equal(interruptedBySignal(), false);
  runInterruptSteps();
  assert.equal(interruptedBySignal(), true);
  assert.ok(existsSync(earlier), 'what was there before is kept');
  assert.ok(!existsSync(ours), 'what this run began is removed');
  await assert.rejects(FileSink.create(join(dir, 'y.npy'), { target: 'y.npy', file: 'y.npy' }), /-o y\.npy: cannot create y\.npy: stopped by a signal/);
  assert.ok(!existsSync(join(dir, '.y.npy.partial')));
});
