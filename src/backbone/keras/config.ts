/**
 * Keras model configs (Keras 2 and 3 JSON, nested models included) parsed into a small tree, and
 * tfjs-layers' `model.layers` order, which decides leaf order and so the default layer.
 */

export interface Ref { layer: string; node: number; tensor: number }
export interface KerasLayer {
  readonly className: string;
  readonly name: string;
  readonly config: Record<string, any>;
  readonly inbound: Ref[][];
  /** Set for nested Sequential / Model / Functional layers. */
  readonly model?: KerasModel;
}
export interface KerasModel {
  readonly className: string;
  readonly name: string;
  readonly sequential: boolean;
  readonly layers: KerasLayer[];
  readonly inputs: Ref[];
  readonly outputs: Ref[];
}

/** A layer output shape (batch first); null where unknown. */
export type Shape = (number | null)[];

const MODEL_CLASSES = new Set(['Sequential', 'Model', 'Functional']);

/** Keras's int-or-pair configs (kernel_size, strides, ...) as a pair. */
export const pair = (v: unknown): [number, number] => (Array.isArray(v) ? [Number(v[0]), Number(v[1] ?? v[0])] : [Number(v), Number(v)]);

/** ZeroPadding2D's padding config as [[top, bottom], [left, right]]. */
export function zeroPads(p: unknown = 1): [[number, number], [number, number]] {
  if (Array.isArray(p) && Array.isArray(p[0])) return [[Number(p[0][0]), Number(p[0][1])], [Number(p[1][0]), Number(p[1][1])]];
  const [h, w] = pair(p);
  return [[h, h], [w, w]];
}

function parseRef(r: unknown): Ref | undefined {
  if (Array.isArray(r) && typeof r[0] === 'string') return { layer: r[0], node: Number(r[1] ?? 0), tensor: Number(r[2] ?? 0) };
  const h = (r as { config?: { keras_history?: unknown[] } } | null)?.config?.keras_history;
  if (Array.isArray(h)) return { layer: String(h[0]), node: Number(h[1] ?? 0), tensor: Number(h[2] ?? 0) };
  return undefined;
}

/** Every tensor reference in a Keras 2 (`[[name, node, tensor, kwargs], ...]`) or Keras 3 (`{args, kwargs}`) inbound node. */
function refsOf(node: unknown, out: Ref[] = []): Ref[] {
  const ref = parseRef(node);
  if (ref) out.push(ref);
  else if (Array.isArray(node)) for (const x of node) refsOf(x, out);
  else if (node && typeof node === 'object') for (const x of Object.values(node)) refsOf(x, out);
  return out;
}

function refList(v: unknown): Ref[] {
  if (Array.isArray(v) && typeof v[0] === 'string') return [parseRef(v)!];
  return Array.isArray(v) ? v.map((r) => parseRef(r)!).filter(Boolean) : [];
}

function parseModel(cfg: { class_name: string; config: any }): KerasModel {
  const c = cfg.config;
  const rawLayers: any[] = Array.isArray(c) ? c : (c?.layers ?? []);
  const sequential = cfg.class_name === 'Sequential';
  const layers: KerasLayer[] = rawLayers.map((l) => {
    const name: string = l.name ?? l.config?.name;
    const model = MODEL_CLASSES.has(l.class_name) ? parseModel(l) : undefined;
    return { className: l.class_name, name, config: l.config ?? {}, inbound: (l.inbound_nodes ?? []).map((n: unknown) => refsOf(n)), model };
  });
  return {
    className: cfg.class_name,
    // Old Sequential configs are a bare layer list, with no name.
    name: Array.isArray(c) ? cfg.class_name : (c?.name ?? cfg.class_name),
    sequential,
    layers,
    inputs: sequential ? [] : refList(c?.input_layers),
    outputs: sequential ? [] : refList(c?.output_layers),
  };
}

export function parseLayersTopology(topology: unknown): KerasModel {
  const t = topology as { model_config?: { class_name: string; config: any }; class_name?: string; config?: any };
  const cfg = t.model_config ?? (t as { class_name: string; config: any });
  if (!cfg?.class_name) throw new Error('layers model: modelTopology has no model config');
  return parseModel(cfg);
}

type NodeKey = { layer: string; node: number };

/** Depth-first from the outputs: nodes in post-order, and each layer's first-visit index. */
function visitFromOutputs(m: KerasModel, byName: Map<string, KerasLayer>): { order: NodeKey[]; layerIndex: Map<string, number> } {
  const layerIndex = new Map<string, number>();
  const finished = new Set<string>();
  const order: NodeKey[] = [];
  const visit = (ref: Ref) => {
    const key = `${ref.layer}:${ref.node}`;
    if (finished.has(key)) return;
    if (!layerIndex.has(ref.layer)) layerIndex.set(ref.layer, layerIndex.size);
    for (const r of byName.get(ref.layer)?.inbound[ref.node] ?? []) visit(r);
    finished.add(key);
    order.push({ layer: ref.layer, node: ref.node });
  };
  for (const o of m.outputs) visit(o);
  return { order, layerIndex };
}

/**
 * tfjs's `model.layers` order: Sequential keeps insertion order; a functional model sorts layers by
 * depth from the outputs (deepest = closest to the input first), ties by first visit from the
 * outputs (tfjs-layers Container constructor).
 */
export function orderedLayers(m: KerasModel): KerasLayer[] {
  if (m.sequential) return m.layers;
  const byName = new Map(m.layers.map((l) => [l.name, l]));
  const { order, layerIndex } = visitFromOutputs(m, byName);
  const nodeDepth = new Map<string, number>();
  const layerDepth = new Map<string, number>();
  for (const nd of [...order].reverse()) {
    const key = `${nd.layer}:${nd.node}`;
    const depth = Math.max(nodeDepth.get(key) ?? 0, layerDepth.get(nd.layer) ?? 0);
    layerDepth.set(nd.layer, depth);
    nodeDepth.set(key, depth);
    for (const r of byName.get(nd.layer)?.inbound[nd.node] ?? []) {
      const k = `${r.layer}:${r.node}`;
      nodeDepth.set(k, Math.max(depth + 1, nodeDepth.get(k) ?? 0));
    }
  }
  return m.layers
    .filter((l) => layerDepth.has(l.name))
    .sort((a, b) => layerDepth.get(b.name)! - layerDepth.get(a.name)! || layerIndex.get(a.name)! - layerIndex.get(b.name)!);
}
