import assert from 'node:assert/strict';
import { test } from 'node:test';
import { coreSplit } from '../../src/core/cores.js';

test('core split: half the cores to ONNX Runtime (at least 1), two images in flight per decoding core, at least 4', () => {
  const table: [number, number, number][] = [[1, 1, 4], [2, 1, 4], [3, 1, 4], [4, 2, 4], [8, 4, 8], [16, 8, 16], [64, 32, 64]];
  for (const [cores, threads, decodeAhead] of table) assert.deepEqual(coreSplit(cores), { threads, decodeAhead }, `${cores} cores`);
});
