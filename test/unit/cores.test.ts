import assert from 'node:assert/strict';
import { test } from 'node:test';
import { coreSplit, DECODE_AHEAD_BYTES } from '../../src/core/cores.js';

test('core split: half the cores to ONNX Runtime (at least 1); unbounded images: two in flight per decoding core, at least 4', () => {
  const table: [number, number, number][] = [[1, 1, 4], [2, 1, 4], [3, 1, 4], [4, 2, 4], [8, 4, 8], [16, 8, 16], [64, 32, 64]];
  for (const [cores, threads, decodeAhead] of table) assert.deepEqual(coreSplit(cores), { threads, decodeAhead }, `${cores} cores`);
});

test('core split: small images decode up to 8 ahead per decoding core (at least 16), within the byte budget', () => {
  const photo = 224 * 4096 * 3; // the default policy's largest image
  const table: [number, number][] = [[1, 16], [2, 16], [4, 16], [16, Math.floor(DECODE_AHEAD_BYTES / photo)], [64, 64]];
  for (const [cores, decodeAhead] of table) assert.equal(coreSplit(cores, photo).decodeAhead, decodeAhead, `${cores} cores`);
  assert.equal(coreSplit(16, 1000).decodeAhead, 64, 'tiny images: the depth cap, not the budget');
  // An image as big as the budget: the floor, never fewer.
  assert.equal(coreSplit(2, DECODE_AHEAD_BYTES).decodeAhead, 4);
  assert.equal(coreSplit(2, DECODE_AHEAD_BYTES / 10).decodeAhead, 10);
  assert.ok(coreSplit(2, photo).decodeAhead * photo <= DECODE_AHEAD_BYTES);
});
