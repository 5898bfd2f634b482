/**
 * TF graph model (GraphDef nodes) → ONNX, from the placeholder up to one node. Nodes convert on
 * demand from the target backwards (memoised), so only the target's ancestors are emitted; the
 * per-op rules live in tf-ops.ts / tf-conv.ts.
 */
import type { LoadedArtifacts } from '../../artifacts.js';
import { ModelOptionError } from '../../errors.js';
import { ONNX_INPUT, type ConvertResult } from './common.js';
import type { GraphCx } from './context.js';
import { finishGraph, OnnxBuilder, startGraph, type Val } from './builder.js';
import { decodeWeights, type Weight } from './weights.js';
import { clean, unsupportedNode, type TfNode } from './tf-node.js';
import { GRAPH_OPS } from './tf-ops.js';

/** One conversion's state: the builder, converted values, and constant lookup. */
export class GraphContext implements GraphCx {
  readonly b = new OnnxBuilder();
  readonly placeholder: TfNode | undefined;
  readonly input: Val;
  private readonly memo = new Map<string, Val>();
  private readonly consumers = new Map<string, number>();

  constructor(
    nodes: TfNode[],
    private readonly byName: Map<string, TfNode>,
    private readonly weights: Map<string, Weight>,
    private readonly target: string,
  ) {
    for (const n of nodes) for (const i of n.input ?? []) if (!i.startsWith('^')) this.consumers.set(clean(i), (this.consumers.get(clean(i)) ?? 0) + 1);
    this.placeholder = nodes.filter((n) => n.op === 'Placeholder')[0];
    const inDims = this.placeholder?.attr?.shape as unknown as { shape?: { dim?: { size?: string }[] } } | undefined;
    const inC = Number(inDims?.shape?.dim?.[3]?.size ?? 3);
    this.input = startGraph(this.b, inC > 0 ? inC : 3);
  }

  /** Folding into a conv is safe only when nothing else reads the intermediate (and it is not the output). */
  foldable(name: string): boolean {
    return name !== this.target && this.consumers.get(name) === 1;
  }

  /** The converted value of a node output reference. */
  value(ref: string): Val {
    const name = clean(ref);
    const hit = this.memo.get(name);
    if (hit) return hit;
    const n = this.byName.get(name);
    if (!n) throw new Error(`graph model: node input '${ref}' does not exist`);
    const op = GRAPH_OPS.get(n.op);
    if (!op) throw unsupportedNode(n);
    const v = op(this, n);
    this.memo.set(name, v);
    return v;
  }

  /** The node's first input, converted. */
  one(n: TfNode): Val {
    return this.value(n.input![0]);
  }

  /** A Const (possibly behind Identity) as a weight, else undefined. */
  constOf(ref: string): Weight | undefined {
    const n = this.byName.get(clean(ref));
    if (!n) return undefined;
    if (n.op === 'Identity' && n.input?.[0]) return this.constOf(n.input[0]);
    if (n.op !== 'Const') return undefined;
    const w = this.weights.get(n.name);
    if (!w) throw new Error(`graph model: no weights for Const '${n.name}'`);
    return w;
  }

  needConst(n: TfNode, ref: string, what: string): Weight {
    const w = this.constOf(ref);
    if (!w) throw unsupportedNode(n, `${what} is not a constant`);
    return w;
  }
}

export function convertGraph(loaded: LoadedArtifacts, target: string): ConvertResult {
  const nodes = ((loaded.artifacts.modelTopology as { node?: TfNode[] }).node ?? []) as TfNode[];
  const byName = new Map(nodes.map((n) => [n.name, n]));
  if (!byName.has(target)) throw new ModelOptionError('--layer', `--layer: no node '${target}' in this graph model`);
  const cx = new GraphContext(nodes, byName, decodeWeights(loaded.artifacts), target);
  const out = cx.value(target);
  return finishGraph(cx.b, ONNX_INPUT, cx.input.channels ?? 3, out);
}
