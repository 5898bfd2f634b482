/**
 * The default feature layer of a layers model, picked on the JSON config.
 *
 * NOTE: this is the same rule as autoLayersLeaf in src/model/backbone.ts (which runs on a loaded
 * tfjs model); the two must agree, since the layer is part of the .onnx cache key and the engines'
 * feature maps must be interchangeable. Kept here, alone, until the two are merged.
 */
import { pair, type KerasModel } from './keras-model.js';
import { kerasLeaves, type KerasLeaf } from './keras-shapes.js';

const GLOBAL_POOLS = new Set(['GlobalAveragePooling2D', 'GlobalMaxPooling2D', 'Flatten']);

/**
 * backbone.ts's autoLayersLeaf on the JSON config instead of a loaded tfjs model (no tfjs needed to
 * pick the layer, which is part of the .onnx cache key): the input of the first global pool,
 * skipping a 1x1 conv classifier head right before it.
 */
export function autoKerasLeaf(root: KerasModel): KerasLeaf {
  const { leaves, outputShape } = kerasLeaves(root);
  const poolAt = leaves.findIndex((l) => GLOBAL_POOLS.has(l.layer.className));
  if (poolAt <= 0) {
    const last4d = [...leaves].reverse().find((l) => l.shape?.length === 4);
    if (!last4d) throw new Error('--layer: the model has no 4-D layer output; name one with --layer');
    return last4d;
  }
  const before = leaves[poolAt - 1];
  const classes = (outputShape ?? []).at(-1);
  const cfg = before.layer.config as { filters?: number; kernel_size?: number[] | number };
  const k = pair(cfg.kernel_size);
  const isClassMap = before.layer.className === 'Conv2D' && cfg.filters === classes && k[0] === 1 && k[1] === 1;
  return isClassMap && poolAt >= 2 ? leaves[poolAt - 2] : before;
}
