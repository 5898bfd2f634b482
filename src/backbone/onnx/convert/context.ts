/**
 * What the per-op rules see of a conversion in progress, as interfaces: keras-ops.ts and tf-ops.ts /
 * tf-conv.ts depend on these, and keras-convert.ts / tf-graph.ts implement them, so the rule tables
 * and the converters that dispatch to them do not import each other (no cycle).
 */
import type { KerasLayer } from '../../keras/config.js';
import type { OnnxBuilder, Val } from './builder.js';
import type { TfNode } from './tf-node.js';
import type { Weight } from './weights.js';

/** A Keras conversion: the builder and the layers' weights (keras-convert.ts's KerasContext). */
export interface KerasCx {
  readonly b: OnnxBuilder;
  /** `layer/weight`, or the one manifest name ending in it (nested models prefix their own name). */
  weight(l: KerasLayer, w: string, required?: boolean): Weight | undefined;
}

/** A TF graph conversion: the builder, converted values and constants (tf-graph.ts's GraphContext). */
export interface GraphCx {
  readonly b: OnnxBuilder;
  readonly placeholder: TfNode | undefined;
  readonly input: Val;
  /** Folding into a conv is safe only when nothing else reads the intermediate (and it is not the output). */
  foldable(name: string): boolean;
  /** The converted value of a node output reference. */
  value(ref: string): Val;
  /** The node's first input, converted. */
  one(n: TfNode): Val;
  /** A Const (possibly behind Identity) as a weight, else undefined. */
  constOf(ref: string): Weight | undefined;
  needConst(n: TfNode, ref: string, what: string): Weight;
}
