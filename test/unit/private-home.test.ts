/** Issue 19, friction 10: `npm test` wrote converted .onnx models into the user's real ~/.cache/spp-extract. */
import assert from 'node:assert/strict';
import { homedir, tmpdir, userInfo } from 'node:os';
import { relative, isAbsolute } from 'node:path';
import { test } from 'node:test';
import { defaultCacheDir } from '../../src/backbone/cache-dir.js';
import { REPO_ROOT } from '../helpers/shared.js';

const inside = (dir: string, parent: string) => {
  const rel = relative(parent, dir);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
};

test('tests run with $HOME and the model cache in a temp folder, never the user\'s own', () => {
  assert.ok(inside(homedir(), tmpdir()), `HOME is ${homedir()}, not under ${tmpdir()}`);
  assert.ok(inside(defaultCacheDir(), tmpdir()), `the default model cache is ${defaultCacheDir()}`);
  const real = userInfo().homedir;
  if (!inside(tmpdir(), real)) assert.ok(!inside(defaultCacheDir(), real), `the cache ${defaultCacheDir()} is under the real home ${real}`);
  assert.ok(!inside(defaultCacheDir(), REPO_ROOT), 'nor in the checkout');
});
