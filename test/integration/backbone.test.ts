import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as mobilenet from '@tensorflow-models/mobilenet';
import { IMAGENET_CLASSES } from '@tensorflow-models/mobilenet/dist/imagenet_classes.js';
import * as tf from '@tensorflow/tfjs';
import { createExtractor } from '../../src/pipeline/extractor.js';
import { loadBackbone } from '../../src/backbone/tfjs/backbone.js';
import { preprocess } from '../../src/backbone/preprocess.js';
import { readArtifacts } from '../../src/backbone/artifacts.js';
import { hasNumpy } from '../helpers/python.js';
import { REPO_ROOT, fixture, missingShared, sharedPath } from '../helpers/shared.js';
import { syntheticPixels } from '../helpers/pixels.js';
import { diffStats, pixelsOfFile } from '../helpers/models.js';
import { tempDir } from '../helpers/tmp.js';

const TFHUB_V1_025 = 'models/tfhub-mobilenet_v1_025_224';
const KERAS_V1_075 = 'models/keras-mobilenet_v1_0.75_224';

const pixelsOf = pixelsOfFile;
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => diffStats(a, b).maxDiff;

/** Feature map computed by scripts/tiny_reference.py (numpy, no tfjs) on the same pixels. */
function numpyReference(modelDir: string, img: { data: Uint8Array; width: number; height: number }, range: readonly number[]) {
  const dir = tempDir('spp-tiny-');
  const raw = join(dir, 'pixels.rgb');
  writeFileSync(raw, img.data);
  const out = execFileSync('python3', [join(REPO_ROOT, 'scripts', 'tiny_reference.py'), modelDir, raw,
    String(img.height), String(img.width), String(range[0]), String(range[1])], { maxBuffer: 1 << 28 });
  return JSON.parse(out.toString()) as { shape: number[]; data: number[] };
}


for (const [name, layer] of [['tiny-layers', 'pw3'], ['tiny-graph', 'tiny/conv/Relu6']] as const) {
  test(`${name}: auto layer, patched input, feature maps equal an independent numpy forward pass`, async (t) => {
    if (!hasNumpy()) return t.skip('needs python3 with numpy');
    const backbone = await loadBackbone({ model: fixture(name), backend: 'wasm', inputRange: [-1, 1] });
    try {
      assert.equal(backbone.info.layer, layer, 'auto-detected feature layer');
      assert.equal(backbone.info.layerChosenBy, 'auto');
      for (const [w, h] of [[224, 224], [37, 23], [480, 320], [1, 1]]) {
        const img = syntheticPixels(w, h, w * 1000 + h);
        const map = await backbone.featureMap(img);
        const ref = numpyReference(fixture(name), img, [-1, 1]);
        assert.deepEqual([map.height, map.width, map.channels], ref.shape, `shape at ${w}x${h}`);
        assert.ok(maxAbsDiff(map.data, ref.data) < 1e-4, `values at ${w}x${h}`);
      }
    } finally {
      backbone.dispose();
    }
  });
}

test('tiny-layers: --layer picks another layer; unknown layer is a clear error', async () => {
  const b = await loadBackbone({ model: fixture('tiny-layers'), backend: 'wasm', layer: 'conv1' });
  assert.equal(b.info.channels, 4);
  assert.deepEqual(b.info.inputRange, [-1, 1], 'layers models default to [-1,1]');
  b.dispose();
  await assert.rejects(loadBackbone({ model: fixture('tiny-layers'), backend: 'wasm', layer: 'nope' }), /--layer: no layer 'nope'/);
  await assert.rejects(loadBackbone({ model: '/nonexistent/model', backend: 'wasm' }), /--model: '\/nonexistent\/model' is neither/);
});

test('tiny-graph: the input range is applied as x*(hi-lo)/255+lo', async (t) => {
  if (!hasNumpy()) return t.skip('needs python3 with numpy');
  const b = await loadBackbone({ model: fixture('tiny-graph'), backend: 'wasm', inputRange: [0, 1] });
  const img = syntheticPixels(40, 30, 7);
  const ref = numpyReference(fixture('tiny-graph'), img, [0, 1]);
  assert.ok(maxAbsDiff((await b.featureMap(img)).data, ref.data) < 1e-4);
  b.dispose();
});

test('peer: level 1 avg pooling at 224x224 equals @tensorflow-models/mobilenet infer(img, true) on the same weights', async (t) => {
  const skip = missingShared(TFHUB_V1_025);
  if (skip) return t.skip(skip);
  const modelDir = sharedPath(TFHUB_V1_025);
  const extractor = await createExtractor({ model: modelDir, backend: 'wasm', levels: [1], pool: 'avg' });
  // The peer loads the untouched model.json (fixed 224 placeholder) through its own code path.
  const json = JSON.parse(readFileSync(join(modelDir, 'model.json'), 'utf8'));
  const weightData = readFileSync(join(modelDir, json.weightsManifest[0].paths[0]));
  const peer = await mobilenet.load({
    version: 1,
    alpha: 0.25,
    inputRange: [0, 1],
    modelUrl: tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: json.weightsManifest[0].weights,
      weightData: weightData.buffer.slice(weightData.byteOffset, weightData.byteOffset + weightData.byteLength),
    }) as unknown as string,
  });
  try {
    assert.deepEqual(extractor.info.inputRange, [0, 1], 'TF Hub graph models take [0,1]');
    for (const photo of ['grace_hopper.jpg', 'dog.jpg', 'eagle.jpg']) {
      const img = await pixelsOf(sharedPath('images', 'photos', photo), 224, 224);
      const ours = await extractor.extractPixels(img);
      const theirs = tf.tidy(() => peer.infer(tf.tensor3d(img.data, [224, 224, 3], 'int32'), true));
      const expected = (await theirs.data()) as Float32Array;
      theirs.dispose();
      assert.equal(ours.length, 256);
      assert.ok(maxAbsDiff(ours, expected) < 1e-4, `${photo}: max abs diff ${maxAbsDiff(ours, expected)}`);
    }
    // Any size: 320x480 gives a 10x15 map and a descriptor of the same length as 224x224.
    const big = await pixelsOf(sharedPath('images', 'photos', 'dog.jpg'), 480, 320);
    const map = await extractor.backbone.featureMap(big);
    assert.deepEqual([map.height, map.width, map.channels], [10, 15, 256]);
    assert.equal((await extractor.extractPixels(big)).length, extractor.info.dim);
  } finally {
    extractor.dispose();
  }
});

test('keras MobileNet v1 0.75 (layers): any size, and grace_hopper → "military uniform" proves the preprocessing', async (t) => {
  const skip = missingShared(KERAS_V1_075);
  if (skip) return t.skip(skip);
  const modelDir = sharedPath(KERAS_V1_075);
  const extractor = await createExtractor({ model: modelDir, backend: 'wasm', levels: [1, 2, 4] });
  try {
    assert.equal(extractor.info.layer, 'conv_pw_13_relu');
    assert.deepEqual(extractor.info.inputRange, [-1, 1]);
    assert.equal(extractor.info.dim, 768 * 21);
    for (const [w, h, mh, mw] of [[224, 224, 7, 7], [480, 320, 10, 15], [320, 480, 15, 10], [300, 200, 7, 10]]) {
      const map = await extractor.backbone.featureMap(await pixelsOf(sharedPath('images', 'photos', 'horses.jpg'), w, h));
      assert.deepEqual([map.height, map.width, map.channels], [mh, mw, 768], `${w}x${h}`);
    }
  } finally {
    extractor.dispose();
  }
  // Classify with the full network on pixels decoded by the tool and scaled by the tool's preprocessing.
  const { artifacts } = await readArtifacts(join(modelDir, 'model.json'));
  const full = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  const { decodeImage } = await import('../../src/decode/decode.js');
  const img = await decodeImage(sharedPath('images', 'photos', 'grace_hopper.jpg'));
  const x = preprocess(img, { range: [-1, 1] });
  const probs = tf.tidy(() => (full.predict(tf.tensor4d(x.data, x.dims)) as tf.Tensor).reshape([-1]));
  const top = (await probs.argMax().data())[0];
  probs.dispose();
  full.dispose();
  assert.equal(IMAGENET_CLASSES[top as keyof typeof IMAGENET_CLASSES], 'military uniform');
});

test('darknet-tiny (layers, not a MobileNet): auto layer skips the 1x1 class-map conv', async (t) => {
  const skip = missingShared('models/darknet-tiny-imagenet');
  if (skip) return t.skip(skip);
  const b = await loadBackbone({ model: sharedPath('models/darknet-tiny-imagenet'), backend: 'wasm', inputRange: [0, 1] });
  try {
    assert.equal(b.info.layer, 'leaky_re_lu_15');
    const map = await b.featureMap(syntheticPixels(480, 320, 3));
    assert.deepEqual([map.height, map.width, map.channels], [20, 30, 128]);
  } finally {
    b.dispose();
  }
});

test('keras MobileNet v2 0.35 nested inside a classifier: finds out_relu in the inner model', async (t) => {
  const skip = missingShared('models/keras-mobilenet_v2_0.35_224-in-classifier');
  if (skip) return t.skip(skip);
  const b = await loadBackbone({ model: sharedPath('models/keras-mobilenet_v2_0.35_224-in-classifier'), backend: 'wasm' });
  try {
    assert.equal(b.info.layer, 'out_relu');
    assert.equal(b.info.channels, 1280);
    const map = await b.featureMap(syntheticPixels(480, 320, 4));
    assert.deepEqual([map.height, map.width], [10, 15]);
  } finally {
    b.dispose();
  }
});
