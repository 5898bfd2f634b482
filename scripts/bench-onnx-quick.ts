/**
 * Quick ms/img of the backbone alone at 224x224: tfjs-wasm vs onnxruntime-node with 1 and 2 threads,
 * medians over RUNS runs after 5 warm-ups (pixels fixed, preprocessing + inference + read-back).
 * Run: npm run build && node dist/scripts/bench-onnx-quick.js [model-dir] [runs]
 * Default model: ../shared/models/keras-mobilenet_v1_0.75_224.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { loadBackbone, type Backbone, type RgbImage } from '../src/backbone/tfjs/backbone.js';
import { loadOnnxBackbone } from '../src/backbone/onnx/backbone.js';

const repo = resolve(new URL('../..', import.meta.url).pathname);
const model = process.argv[2] ?? join(repo, '..', 'shared', 'models', 'keras-mobilenet_v1_0.75_224');
const runs = Number(process.argv[3] ?? 30);
const photo = join(repo, '..', 'shared', 'images', 'photos', 'grace_hopper.jpg');

async function pixels(): Promise<RgbImage> {
  const { data } = await sharp(photo).removeAlpha().resize(224, 224, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: 224, height: 224 };
}

async function median(b: Backbone, img: RgbImage): Promise<number> {
  for (let i = 0; i < 5; i++) await b.featureMap(img);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await b.featureMap(img);
    times.push(performance.now() - t0);
  }
  times.sort((a, c) => a - c);
  return times[Math.floor(times.length / 2)];
}

const img = await pixels();
const cacheDir = mkdtempSync(join(tmpdir(), 'spp-bench-onnx-'));
console.log(`model ${model}, 224x224, median of ${runs} runs`);
const tfjs = await loadBackbone({ model, backend: 'wasm' });
console.log(`tfjs ${tfjs.info.backend.padEnd(34)} ${(await median(tfjs, img)).toFixed(1)} ms/img  (layer ${tfjs.info.layer})`);
tfjs.dispose();
for (const threads of [1, 2]) {
  const onnx = await loadOnnxBackbone({ model, threads, cacheDir });
  console.log(`${onnx.info.backend.padEnd(39)} ${(await median(onnx, img)).toFixed(1)} ms/img  (layer ${onnx.info.layer})`);
  onnx.dispose();
}
