import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mayExtractOnOnnx } from '../../src/cli/early.js';

test('the early worker starts for extract runs that may use ONNX Runtime, not for help, info, merge or tfjs', () => {
  const yes = [['a.jpg', '-o', 'x.npy'], ['-', '-o', '-'], ['d/', '--model', 'm.onnx'], ['a.jpg', '--engine', 'onnx'], ['a.jpg', '--', '--help']];
  const no = [
    [], ['info'], ['merge', 'a.npy'], ['help'], ['--help'], ['a.jpg', '-h'], ['-V'], ['a.jpg', '--version'],
    ['a.jpg', '--engine', 'tfjs'], ['a.jpg', '--engine=tfjs'], ['a.jpg', '--backend', 'wasm'], ['a.jpg', '--backend=cpu'],
  ];
  for (const args of yes) assert.equal(mayExtractOnOnnx(args), true, args.join(' '));
  for (const args of no) assert.equal(mayExtractOnOnnx(args), false, args.join(' '));
});
