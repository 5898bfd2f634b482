import { createHash } from 'node:crypto';
import { dirname, isAbsolute, join, resolve, sep } from 'node:path';
import type { io } from '@tensorflow/tfjs';
import { readRegularFile } from '../core/read-regular.js';
import type { ModelFormat } from '../core/types.js';
import { ModelOptionError } from './errors.js';

export type { ModelFormat };

interface WeightsGroup { paths: string[]; weights: io.WeightsManifestEntry[] }
interface ModelJson {
  format?: string;
  modelTopology: Record<string, unknown>;
  weightsManifest: WeightsGroup[];
  [key: string]: unknown;
}

export interface LoadedArtifacts {
  readonly format: ModelFormat;
  readonly artifacts: io.ModelArtifacts;
  /** Size is for info only. */
  readonly weightBytes: number;
  /**
   * The model's content identity: SHA-256 (hex) of model.json as on disk, then each weight shard in
   * manifest order. Outputs record it, so a resume or merge never mixes two models behind one path.
   */
  readonly sha256: string;
}

const BYTES_PER_ELEMENT: Record<string, number> = { float32: 4, int32: 4, bool: 1, complex64: 8, uint8: 1, uint16: 2, float16: 2 };

/**
 * Bytes a manifest group's shards must hold together (tfjs concatenates them), from each weight's
 * dtype (or quantized dtype) and shape; undefined when a weight's size cannot be known up front
 * (string tensors) or the spec is malformed.
 */
export function expectedGroupBytes(weights: readonly unknown[] | undefined): number | undefined {
  if (!Array.isArray(weights)) return undefined;
  let total = 0;
  for (const w of weights as { dtype?: unknown; shape?: unknown; quantization?: { dtype?: unknown } }[]) {
    const dtype = w?.quantization?.dtype ?? w?.dtype;
    const size = typeof dtype === 'string' ? BYTES_PER_ELEMENT[dtype] : undefined;
    if (size === undefined || !Array.isArray(w.shape)) return undefined;
    let n = 1;
    for (const d of w.shape) {
      if (!Number.isSafeInteger(d) || d < 0) return undefined;
      n *= d;
    }
    total += n * size;
  }
  return Number.isSafeInteger(total) ? total : undefined;
}

export function detectFormat(json: ModelJson): ModelFormat {
  if (json.format === 'graph-model' || Array.isArray((json.modelTopology as { node?: unknown }).node)) return 'graph';
  return 'layers';
}

type GraphNode = { name: string; op: string; attr?: Record<string, any> };

/** Graph models from the converter pin the placeholder to 224x224: free dims 1 and 2 so any H x W runs. */
export function freeGraphInputDims(topology: Record<string, unknown>): void {
  for (const node of (topology.node ?? []) as GraphNode[]) {
    if (node.op !== 'Placeholder') continue;
    const dims = node.attr?.shape?.shape?.dim as { size?: string }[] | undefined;
    if (dims?.length === 4) {
      dims[1] = { size: '-1' };
      dims[2] = { size: '-1' };
    }
  }
}

/** Layers models: every 4-D input shape (nested models too) becomes [null, null, null, C]. */
export function freeLayersInputDims(node: unknown): void {
  if (Array.isArray(node)) {
    for (const item of node) freeLayersInputDims(item);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const obj = node as Record<string, unknown>;
  for (const key of ['batch_input_shape', 'batch_shape', 'build_input_shape']) {
    const shape = obj[key];
    if (Array.isArray(shape) && shape.length === 4) obj[key] = [shape[0], null, null, shape[3]];
  }
  for (const value of Object.values(obj)) freeLayersInputDims(value);
}

/**
 * A manifest group's shards, from reads started together for the whole model (in parallel: ~5x
 * faster than one by one for the ~50 shards of a MobileNet); the first failure in order is reported.
 */
function groupShards(modelJsonPath: string, group: WeightsGroup, reads: PromiseSettledResult<Buffer>[]): Buffer[] {
  return reads.map((r, i) => {
    if (r.status === 'fulfilled') return r.value;
    const reason = (r.reason as Error).message;
    throw new ModelOptionError('--model', `--model ${modelJsonPath}: weight file '${group.paths[i]}' is missing or unreadable (${reason})`);
  });
}

/** A short or padded shard would otherwise surface as a shape error deep in tfjs, or not at all. */
function checkGroupBytes(modelJsonPath: string, group: WeightsGroup, groupBytes: number): void {
  const expected = expectedGroupBytes(group.weights);
  if (expected === undefined || groupBytes === expected) return;
  const one = group.paths.length === 1;
  throw new ModelOptionError(
    '--model',
    `--model ${modelJsonPath}: weight file${one ? '' : 's'} '${group.paths.join("', '")}' hold${one ? 's' : ''} ${groupBytes} bytes, ` +
      `the manifest's weights need ${expected} (truncated or mismatched file)`,
  );
}

/**
 * A weight path from a model.json (downloaded or local), checked before it names a file: relative, no '..'
 * (plain or percent-encoded), no backslashes or schemes, and inside `dir` once joined. The URL
 * parser treats %2e%2e and '\' as '..' and '/', so both the raw and the decoded form are checked.
 */
export function checkWeightPath(path: unknown, dir: string, modelUrl: string): string {
  const refuse = (why: string) => new Error(`refusing weight path ${JSON.stringify(path)} in ${modelUrl}: ${why}`);
  if (typeof path !== 'string' || path === '') throw refuse('not a file name');
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    throw refuse('malformed percent-encoding');
  }
  for (const p of [path, decoded]) {
    if (/[\x00-\x1f\x7f]/.test(p)) throw refuse('control characters');
    if (p.includes('\\')) throw refuse('backslash');
    if (p.startsWith('/') || isAbsolute(p) || /^[a-z][a-z0-9+.-]*:/i.test(p)) throw refuse('absolute path or URL');
    if (p.split('/').includes('..')) throw refuse("'..' segment");
    const target = resolve(dir, p);
    if (!target.startsWith(resolve(dir) + sep)) throw refuse(`resolves outside the model folder ${dir}`);
  }
  return path;
}

/** A model.json without its weights: enough to pick the layer and the input range, and to name the files. */
export interface ModelFile {
  readonly modelJsonPath: string;
  readonly format: ModelFormat;
  /** The topology with its input made size-agnostic. */
  readonly topology: Record<string, unknown>;
  /** Every weight shard, in manifest order, checked to lie inside the model's folder. */
  readonly weightFiles: readonly string[];
  readonly json: ModelJson;
  /** model.json as read, for the content identity. */
  readonly bytes: Buffer;
}

/** Reads and checks a TF.js model.json (no weights). */
export async function readModelFile(modelJsonPath: string): Promise<ModelFile> {
  const bytes = await readRegularFile(modelJsonPath);
  const json = JSON.parse(bytes.toString('utf8')) as ModelJson;
  if (!json?.modelTopology || typeof json.modelTopology !== 'object' || !Array.isArray(json.weightsManifest)) {
    throw new ModelOptionError('--model', `--model ${modelJsonPath}: not a TF.js model.json (no modelTopology/weightsManifest)`);
  }
  const format = detectFormat(json);
  if (format === 'graph') freeGraphInputDims(json.modelTopology);
  else freeLayersInputDims(json.modelTopology);
  const dir = dirname(modelJsonPath);
  const weightFiles: string[] = [];
  for (const group of json.weightsManifest) {
    if (!Array.isArray(group?.paths)) throw new ModelOptionError('--model', `--model ${modelJsonPath}: a weightsManifest group has no paths`);
    for (const p of group.paths) {
      try {
        weightFiles.push(join(dir, checkWeightPath(p, dir, modelJsonPath)));
      } catch (err) {
        throw new ModelOptionError('--model', `--model: ${(err as Error).message}`);
      }
    }
  }
  return { modelJsonPath, format, topology: json.modelTopology, weightFiles, json, bytes };
}

/** Reads a model's weight shards (checked against the manifest's sizes) into the artifacts the converters and tfjs take. */
export async function readWeights(model: ModelFile): Promise<LoadedArtifacts> {
  const { json, modelJsonPath } = model;
  // A shard bigger than its group's weights is refused unread (a FIFO or a device is refused too: it would hang or never end).
  const limits = json.weightsManifest.flatMap((g) => g.paths.map(() => expectedGroupBytes(g.weights) ?? Infinity));
  const reads = await Promise.allSettled(model.weightFiles.map((p, i) => readRegularFile(p, limits[i])));
  const buffers: Buffer[] = [];
  const weightSpecs: io.WeightsManifestEntry[] = [];
  let at = 0;
  for (const group of json.weightsManifest) {
    const mine = groupShards(modelJsonPath, group, reads.slice(at, (at += group.paths.length)));
    checkGroupBytes(modelJsonPath, group, mine.reduce((n, b) => n + b.byteLength, 0));
    buffers.push(...mine);
    weightSpecs.push(...group.weights);
  }
  // One ArrayBuffer per shard, as tfjs keeps them (its WeightData): no 10 MB copy into one buffer.
  const weightData = buffers.map((b) =>
    (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b.buffer : b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)) as ArrayBuffer,
  );
  const artifacts: io.ModelArtifacts = {
    modelTopology: json.modelTopology as io.ModelArtifacts['modelTopology'],
    weightSpecs,
    weightData,
    format: json.format as string | undefined,
    generatedBy: json.generatedBy as string | undefined,
    convertedBy: json.convertedBy as string | null | undefined,
    signature: json.signature as object | undefined,
    userDefinedMetadata: json.userDefinedMetadata as Record<string, object> | undefined,
    modelInitializer: json.modelInitializer as object | undefined,
  };
  const hash = createHash('sha256').update(model.bytes);
  for (const b of buffers) hash.update(b);
  return { format: model.format, artifacts, weightBytes: buffers.reduce((n, b) => n + b.byteLength, 0), sha256: hash.digest('hex') };
}

/**
 * Reads a TF.js model.json and its shards from disk (tfjs's own file handler needs tfjs-node),
 * with the input made size-agnostic. Plain file reading: no model runtime is loaded.
 */
export async function readArtifacts(modelJsonPath: string): Promise<LoadedArtifacts> {
  return readWeights(await readModelFile(modelJsonPath));
}
