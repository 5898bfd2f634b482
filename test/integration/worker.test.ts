import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadOnnxBackbone } from '../../src/backbone/onnx/backbone.js';
import { GROW_AFTER, growingEngine } from '../../src/backbone/onnx/engine-pool.js';
import { spawnInferenceWorker, type InferenceEngine } from '../../src/backbone/onnx/worker-client.js';
import { syntheticPixels } from '../helpers/pixels.js';
import { fixture } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

test('a second inference worker joins once, after 32 images the run waited on, with the same maps; a run that did not wait keeps one; a worker that cannot open is dropped', async () => {
  const reference = await loadOnnxBackbone({ model: fixture('tiny-layers'), threads: 1, cacheDir: tempDir('spp-grow-'), worker: false });
  const images = Array.from({ length: 48 }, (_, i) => syntheticPixels(40 + (i % 7), 30 + (i % 5), i));
  const expected: Float32Array[] = [];
  for (const img of images) expected.push((await reference.featureMap(img)).data);
  await reference.dispose();
  const request = { threads: 1, range: reference.info.inputRange, layout: 'nhwc' as const, label: 'tiny-layers' };

  const cases: { waitedOn: boolean; spawn: () => InferenceEngine; engines: number }[] = [
    { waitedOn: true, spawn: spawnInferenceWorker, engines: 2 },
    { waitedOn: false, spawn: spawnInferenceWorker, engines: 1 },
    // The second worker's open fails (its session cannot be made): the run goes on with the first.
    { waitedOn: true, spawn: () => ({ ...spawnInferenceWorker(), open: () => Promise.reject(new Error('injected open failure')) }), engines: 1 },
  ];
  for (const { waitedOn, spawn, engines } of cases) {
    let spawnedRuns = 0;
    let spawned = 0;
    const pool = growingEngine(spawnInferenceWorker(), () => {
      spawned++;
      const e = spawn();
      return { ...e, featureMap: (img, hint) => (spawnedRuns++, e.featureMap(img, hint)) };
    }, 2);
    try {
      await pool.open(reference.info.onnxPath, request);
      // Two at a time, as the run loop hands them over, so a second engine has work.
      const runPair = async (i: number) => {
        const maps = await Promise.all([i, i + 1].map((k) => pool.featureMap(images[k]!, { waitedOn })));
        maps.forEach((m, k) => assert.deepEqual(m.data, expected[i + k], `image ${i + k}: the same map whichever worker ran it`));
      };
      for (let i = 0; i < GROW_AFTER - 2; i += 2) await runPair(i);
      assert.equal(spawned, 0, 'no second worker before the decision');
      await runPair(GROW_AFTER - 2);
      assert.equal(await pool.sessions(), engines, `waitedOn ${waitedOn}`);
      assert.equal(spawned, waitedOn ? 1 : 0, 'one more worker started, and only when the run waited');
      for (let i = GROW_AFTER; i < images.length; i += 2) await runPair(i);
      assert.equal(spawnedRuns > 0, engines === 2, `the second worker ran images (${spawnedRuns}) exactly when it joined`);
    } finally {
      await pool.close();
    }
  }
});
