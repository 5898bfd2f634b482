import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import type { RgbImage } from '../../src/backbone/tfjs/backbone.js';
import { tempDir } from './tmp.js';

/**
 * A layers model (zeroed weights) with a Conv2DTranspose, a layer the ONNX converter does not
 * handle: `--engine auto` falls back to tfjs on it; its layers before 'up' still convert.
 */
export function unconvertibleModel(): string {
  const dir = tempDir('spp-unconvertible-');
  const layer = (class_name: string, name: string, config: object, inbound: string | null) => ({
    class_name, name, config: { name, ...config }, inbound_nodes: inbound ? [[[inbound, 0, 0, {}]]] : [],
  });
  const layers = [
    layer('InputLayer', 'input_1', { batch_input_shape: [null, 32, 32, 3], dtype: 'float32' }, null),
    layer('Conv2D', 'c1', { filters: 4, kernel_size: [3, 3], strides: [1, 1], padding: 'same', activation: 'relu', use_bias: true }, 'input_1'),
    layer('Conv2DTranspose', 'up', { filters: 2, kernel_size: [3, 3], strides: [2, 2], padding: 'same', activation: 'linear', use_bias: true }, 'c1'),
    layer('GlobalAveragePooling2D', 'gap', {}, 'up'),
  ];
  const weights = [
    { name: 'c1/kernel', shape: [3, 3, 3, 4], dtype: 'float32' },
    { name: 'c1/bias', shape: [4], dtype: 'float32' },
    { name: 'up/kernel', shape: [3, 3, 2, 4], dtype: 'float32' },
    { name: 'up/bias', shape: [2], dtype: 'float32' },
  ];
  writeFileSync(join(dir, 'w.bin'), new Uint8Array(weights.reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 1) * 4, 0)));
  const modelTopology = { class_name: 'Model', config: { name: 'bad', layers, input_layers: [['input_1', 0, 0]], output_layers: [['gap', 0, 0]] } };
  writeFileSync(join(dir, 'model.json'), JSON.stringify({ format: 'layers-model', modelTopology, weightsManifest: [{ paths: ['w.bin'], weights }] }));
  return dir;
}

/** Exactly W×H RGB pixels of an image file (sharp resize, fill), independent of the tool's size policy. */
export async function pixelsOfFile(path: string, width: number, height: number): Promise<RgbImage> {
  const { data } = await sharp(path).removeAlpha().resize(width, height, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width, height };
}

/** max |a − b|, max |b| and their ratio, for comparing feature maps or descriptors. */
export function diffStats(a: ArrayLike<number>, b: ArrayLike<number>) {
  assert.equal(a.length, b.length, 'lengths differ');
  let maxDiff = 0;
  let maxAbs = 0;
  for (let i = 0; i < a.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
    maxAbs = Math.max(maxAbs, Math.abs(b[i]));
  }
  return { maxDiff, maxAbs, rel: maxAbs > 0 ? maxDiff / maxAbs : maxDiff };
}
