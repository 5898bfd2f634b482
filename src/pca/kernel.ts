/**
 * The PCA's heavy matrix products on ONNX Runtime's CPU kernels (MLAS GEMM: ~170 GFLOP/s for a
 * 600×26,880 by 26,880×266 product on 2 cores, where a JS loop manages ~1). Each product is a tiny
 * graph built here and fed at run time; nothing is written to disk. Loaded only by the commands that
 * fit or apply a projection.
 */
import { createRequire } from 'node:module';
import type * as Ort from 'onnxruntime-node';
import { DataType, encodeModel, type Attribute, type GraphProto, type NodeProto, type ValueInfoProto } from '../backbone/onnx/proto.js';

// Loaded when a kernel opens, not when this module is imported: a run without a projection never
// pays for ONNX Runtime on the main thread.
let loaded: { ort: typeof Ort; options: (threads: number) => Ort.InferenceSession.SessionOptions } | undefined;
async function runtime() {
  if (!loaded) {
    const { sessionOptions } = await import('../backbone/onnx/session.js');
    loaded = { ort: createRequire(import.meta.url)('onnxruntime-node') as typeof Ort, options: sessionOptions };
  }
  return loaded;
}

const f32 = (name: string, shape: (number | string)[]): ValueInfoProto => ({ name, elemType: DataType.FLOAT, shape });
const f64 = (name: string, shape: (number | string)[]): ValueInfoProto => ({ name, elemType: DataType.DOUBLE, shape });
const transA: Attribute = { name: 'transA', type: 'int', i: 1 };
const node = (opType: string, inputs: string[], outputs: string[], attributes: Attribute[] = []): NodeProto => ({ opType, inputs, outputs, attributes });

function model(name: string, nodes: NodeProto[], inputs: ValueInfoProto[], outputs: ValueInfoProto[], initializers: GraphProto['initializers'] = []): Uint8Array {
  return encodeModel({ opsetVersion: 13, graph: { name, nodes, initializers, inputs, outputs } });
}

const run = async (s: Ort.InferenceSession, feeds: Record<string, Ort.Tensor>) => s.run(feeds);

/** The products of one randomized-PCA fit (fit.ts). */
export interface FitKernel {
  /**
   * One row block X (rows×D) of a pass: with Xc = X − mean and P = Xc·Z, returns M + Xcᵀ·P (D×L),
   * PᵀP (L×L) and the sum of Xc's squares (for the total variance).
   */
  passBlock(x: Float32Array, rows: number, mean: Float32Array, z: Float32Array, m: Float32Array): Promise<{ m: Float32Array; g: Float32Array; squares: number }>;
  /** AᵀA for A (rows×cols), float64. */
  gram(a: Float64Array, rows: number, cols: number): Promise<Float64Array>;
  /** A·B for A (m×k) and B (k×n), float64. */
  matmul(a: Float64Array, m: number, k: number, b: Float64Array, n: number): Promise<Float64Array>;
  dispose(): Promise<void>;
}

export async function openFitKernel(dim: number, basis: number, threads: number): Promise<FitKernel> {
  const { ort, options: sessionOptions } = await runtime();
  const options = sessionOptions(threads);
  const pass = await ort.InferenceSession.create(model('pca-pass', [
    node('Sub', ['x', 'mean'], ['xc']),
    node('MatMul', ['xc', 'z'], ['p']),
    node('Gemm', ['xc', 'p', 'm'], ['m_out'], [transA]),
    node('Gemm', ['p', 'p'], ['g'], [transA]),
    node('Mul', ['xc', 'xc'], ['sq']),
    node('ReduceSum', ['sq'], ['squares'], [{ name: 'keepdims', type: 'int', i: 0 }]),
  ], [f32('x', ['rows', dim]), f32('mean', [dim]), f32('z', [dim, basis]), f32('m', [dim, basis])],
  [f32('m_out', [dim, basis]), f32('g', [basis, basis]), f32('squares', [])]), options);
  const gram = await ort.InferenceSession.create(model('gram', [node('Gemm', ['a', 'a'], ['c'], [transA])],
    [f64('a', ['r', 'c'])], [f64('c', ['c', 'c'])]), options);
  const matmul = await ort.InferenceSession.create(model('matmul', [node('MatMul', ['a', 'b'], ['c'])],
    [f64('a', ['m', 'k']), f64('b', ['k', 'n'])], [f64('c', ['m', 'n'])]), options);
  return {
    async passBlock(x, rows, mean, z, m) {
      const out = await run(pass, {
        x: new ort.Tensor('float32', x.subarray(0, rows * dim), [rows, dim]),
        mean: new ort.Tensor('float32', mean, [dim]),
        z: new ort.Tensor('float32', z, [dim, basis]),
        m: new ort.Tensor('float32', m, [dim, basis]),
      });
      return { m: out.m_out.data as Float32Array, g: out.g.data as Float32Array, squares: Number((out.squares.data as Float32Array)[0]) };
    },
    async gram(a, rows, cols) {
      return (await run(gram, { a: new ort.Tensor('float64', a, [rows, cols]) })).c.data as Float64Array;
    },
    async matmul(a, m, k, b, n) {
      return (await run(matmul, { a: new ort.Tensor('float64', a, [m, k]), b: new ort.Tensor('float64', b, [k, n]) })).c.data as Float64Array;
    },
    async dispose() {
      await Promise.all([pass.release(), gram.release(), matmul.release()]);
    },
  };
}

/**
 * (X − mean)·Wᵀ for row batches, W (K×D). Every batch is run with
 * at least two rows: ORT gives a one-row product another summation order (a GEMV path), and a row's
 * bits must not depend on the batch it came in (resume and merge are byte-identical to one run).
 */
export interface ProjectKernel {
  project(x: Float32Array, rows: number): Promise<Float32Array>;
  dispose(): Promise<void>;
}

export async function openProjectKernel(mean: Float32Array, components: Float32Array, k: number, dim: number, threads: number): Promise<ProjectKernel> {
  const { ort, options: sessionOptions } = await runtime();
  // W and the mean are fed with every batch, not stored in the graph: serialising 14 MB of
  // initializers cost ~0.3 s of start-up (v2 α0.35, K 128), packing W per batch ~1.3 ms.
  const session = await ort.InferenceSession.create(model('pca-project', [
    node('Sub', ['x', 'mean'], ['xc']),
    node('Gemm', ['xc', 'w'], ['y'], [{ name: 'transB', type: 'int', i: 1 }]),
  ], [f32('x', ['rows', dim]), f32('mean', [dim]), f32('w', [k, dim])], [f32('y', ['rows', k])]), sessionOptions(threads));
  const meanTensor = new ort.Tensor('float32', mean, [dim]);
  const weights = new ort.Tensor('float32', components, [k, dim]);
  return {
    async project(x, rows) {
      const padded = rows >= 2 ? x.subarray(0, rows * dim) : padTo2(x, dim);
      const out = await run(session, { x: new ort.Tensor('float32', padded, [Math.max(2, rows), dim]), mean: meanTensor, w: weights });
      return (out.y.data as Float32Array).subarray(0, rows * k);
    },
    dispose: () => session.release(),
  };
}

function padTo2(x: Float32Array, dim: number): Float32Array {
  const out = new Float32Array(2 * dim);
  out.set(x.subarray(0, dim));
  return out;
}
