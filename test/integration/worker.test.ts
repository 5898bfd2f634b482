import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadOnnxBackbone } from '../../src/backbone/onnx/backbone.js';
import { spawnInferenceWorker } from '../../src/backbone/onnx/worker-client.js';
import { syntheticPixels } from '../helpers/pixels.js';
import { fixture } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

test('the inference worker widens to more threads once, after 32 images the run waited on, with the same maps; a run that did not wait stays narrow', async () => {
  const reference = await loadOnnxBackbone({ model: fixture('tiny-layers'), threads: 1, cacheDir: tempDir('spp-widen-'), worker: false });
  const images = Array.from({ length: 40 }, (_, i) => syntheticPixels(40 + (i % 7), 30 + (i % 5), i));
  const expected = [];
  for (const img of images) expected.push((await reference.featureMap(img)).data);
  await reference.dispose();
  const request = { threads: 1, wideThreads: 2, range: reference.info.inputRange, layout: 'nhwc' as const, label: 'tiny-layers' };

  for (const waitedOn of [true, false]) {
    const worker = spawnInferenceWorker();
    try {
      await worker.open(reference.info.onnxPath, request);
      const threads: (number | undefined)[] = [];
      for (const [i, img] of images.entries()) {
        const map = await worker.featureMap(img, { waitedOn });
        threads.push(map.threads);
        assert.deepEqual(map.data, expected[i], `image ${i}: the same map whatever the threads`);
      }
      assert.deepEqual(threads, waitedOn ? [...Array(32).fill(1), ...Array(8).fill(2)] : Array(40).fill(1));
    } finally {
      await worker.close();
    }
  }
});
