/**
 * The projection file (`proj.npz`): numpy-native, `np.load(f, allow_pickle=False)` gives
 *   mean (D,)  components (K, D)  explained_variance (K,)  scale (K,)   float32
 *   metadata   a 0-d string array holding JSON (what the projection was fitted for and how)
 * Its SHA-256 is the projection's identity in output headers. Everything read back is checked:
 * the file is an input like any other.
 */
import { createHash } from 'node:crypto';
import { decodeNpz, encodeNpz, type NpzArray } from './npz.js';
import { PRE_TRANSFORMS, type PreTransform } from './transform.js';
import { openRegularFile, readExactly } from '../output/regular-file.js';

/** The descriptor a projection applies to: every field that changes what the numbers mean. */
export interface DescriptorIdentity {
  model: string;
  modelSha256?: string;
  layer: string;
  levels: readonly number[];
  pool: string;
  gemP?: number;
  normalize: string;
  /** D: the raw descriptor's length. */
  dim: number;
}

/** The identity of the descriptors a source gives (an extractor's info, an output's header). */
export function descriptorIdentity(x: Omit<DescriptorIdentity, 'gemP' | 'modelSha256'> & { modelSha256?: string; gemP?: number }): DescriptorIdentity {
  return {
    model: x.model, ...(x.modelSha256 !== undefined ? { modelSha256: x.modelSha256 } : {}), layer: x.layer, levels: x.levels,
    pool: x.pool, ...(x.pool === 'gem' ? { gemP: x.gemP } : {}), normalize: x.normalize, dim: x.dim,
  };
}

export interface ProjectionMeta {
  format: 'spp-extract-pca';
  version: 1;
  toolVersion: string;
  descriptor: DescriptorIdentity;
  /** K. */
  dim: number;
  pre: PreTransform;
  /** Regularised whitening's alpha (transform.ts whitenScale), or null: no whitening. */
  whiten: number | null;
  /** Rows the fit used, and their total variance (sum of the D column variances). */
  samples: number;
  totalVariance: number;
  /** Share of the total variance the K components keep. */
  varianceKept: number;
}

export interface Projection {
  readonly meta: ProjectionMeta;
  readonly mean: Float32Array;
  readonly components: Float32Array;
  readonly explainedVariance: Float32Array;
  readonly scale: Float32Array;
  /** SHA-256 (hex) of the file's bytes. */
  readonly sha256: string;
  /** Where it was read from (a path), or 'memory'. */
  readonly source: string;
}

/** Largest array a projection file may hold (64 k × 1 k float32 components is 256 MiB). */
export const MAX_PROJECTION_BYTES = 1024 * 2 ** 20;

export function encodeProjection(p: Omit<Projection, 'sha256' | 'source'>): Uint8Array {
  const k = p.meta.dim;
  const d = p.meta.descriptor.dim;
  const f32 = (shape: number[], data: Float32Array): NpzArray => ({ dtype: '<f4', shape, data });
  return encodeNpz([
    ['mean', f32([d], p.mean)],
    ['components', f32([k, d], p.components)],
    ['explained_variance', f32([k], p.explainedVariance)],
    ['scale', f32([k], p.scale)],
    ['metadata', { dtype: 'str', value: JSON.stringify(p.meta) }],
  ]);
}

export const sha256Hex = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

export class ProjectionFileError extends Error {
  constructor(source: string, why: string) {
    super(`${source}: not a usable projection file: ${why}`);
    this.name = 'ProjectionFileError';
  }
}

/** Checks a projection file's bytes: every array there, of the shapes the metadata says, finite. */
export function parseProjection(bytes: Uint8Array, source: string): Projection {
  const bad = (why: string) => new ProjectionFileError(source, why);
  let arrays: Map<string, NpzArray>;
  try {
    arrays = decodeNpz(bytes, { maxArrayBytes: MAX_PROJECTION_BYTES, source });
  } catch (err) {
    const message = (err as Error).message;
    throw bad(message.startsWith(`${source}: `) ? message.slice(source.length + 2) : message);
  }
  const metaArray = arrays.get('metadata');
  if (metaArray?.dtype !== 'str') throw bad("no 'metadata' string array (made by spp-extract fit-pca?)");
  let meta: ProjectionMeta;
  try {
    meta = JSON.parse(metaArray.value) as ProjectionMeta;
  } catch {
    throw bad("'metadata' is not JSON");
  }
  const problem = metaProblem(meta);
  if (problem) throw bad(`metadata: ${problem}`);
  const k = meta.dim;
  const d = meta.descriptor.dim;
  const float = (name: string, shape: number[]): Float32Array => {
    const a = arrays.get(name);
    if (!a) throw bad(`no '${name}' array`);
    if (a.dtype === 'str') throw bad(`'${name}' is a string, not numbers`);
    if (a.shape.join(',') !== shape.join(',')) throw bad(`'${name}' has shape (${a.shape.join(', ')}), the metadata says (${shape.join(', ')})`);
    // A loop: every(Number.isFinite) takes 5× as long on 3.4 M values.
    for (let i = 0; i < a.data.length; i++) if (!Number.isFinite(a.data[i])) throw bad(`'${name}' holds NaN or ±Inf`);
    return a.data;
  };
  const mean = float('mean', [d]);
  const components = float('components', [k, d]);
  const explainedVariance = float('explained_variance', [k]);
  const scale = float('scale', [k]);
  return { meta, mean, components, explainedVariance, scale, sha256: sha256Hex(bytes), source };
}

const isPositiveInt = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;

function metaProblem(m: ProjectionMeta): string | undefined {
  if (typeof m !== 'object' || m === null) return 'not an object';
  if (m.format !== 'spp-extract-pca') return `format is ${JSON.stringify(m.format)}, not "spp-extract-pca"`;
  if (m.version !== 1) return `version ${JSON.stringify(m.version)} is not one this spp-extract reads (1)`;
  const d = m.descriptor;
  if (typeof d !== 'object' || d === null) return 'no descriptor identity';
  if (!isPositiveInt(d.dim) || !isPositiveInt(m.dim)) return 'dimensions are not positive integers';
  if (m.dim > d.dim) return `K = ${m.dim} is more than D = ${d.dim}`;
  if (typeof d.model !== 'string' || typeof d.layer !== 'string' || typeof d.pool !== 'string' || typeof d.normalize !== 'string') return 'descriptor identity is incomplete';
  if (!Array.isArray(d.levels) || !d.levels.every(isPositiveInt)) return 'levels are not positive integers';
  if (!PRE_TRANSFORMS.includes(m.pre)) return `pre-transform ${JSON.stringify(m.pre)} is not one of ${PRE_TRANSFORMS.join(', ')}`;
  if (m.whiten !== null && !(typeof m.whiten === 'number' && Number.isFinite(m.whiten) && m.whiten >= 0)) return 'whiten is neither null nor a number ≥ 0';
  return undefined;
}

/** Reads and checks a projection file (a regular file, at most a bounded size). */
export async function readProjection(path: string): Promise<Projection> {
  const { fh, size } = await openRegularFile(path).catch((err: Error) => {
    throw new ProjectionFileError(path, (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : err.message);
  });
  try {
    if (size > MAX_PROJECTION_BYTES * 1.1) throw new ProjectionFileError(path, `${size} bytes is larger than any projection`);
    const bytes = Buffer.alloc(size);
    await readExactly(fh, path, bytes, size, 0);
    return parseProjection(bytes, path);
  } finally {
    await fh.close();
  }
}

/** The differences between what a projection was fitted for and the descriptors of this run, named by option. */
export function projectionMismatch(fitted: DescriptorIdentity, now: DescriptorIdentity): string[] {
  const diffs: string[] = [];
  const say = (what: string, a: unknown, b: unknown) => diffs.push(`${what}: ${JSON.stringify(a)} when fitted, ${JSON.stringify(b)} now`);
  // Content identity, not the path: the same weights under another path are the same model.
  if (fitted.modelSha256 !== undefined && now.modelSha256 !== undefined) {
    if (fitted.modelSha256 !== now.modelSha256) say('--model (its content)', `${fitted.model} ${fitted.modelSha256.slice(0, 12)}…`, `${now.model} ${now.modelSha256.slice(0, 12)}…`);
  } else if (fitted.model !== now.model) {
    say('--model', fitted.model, now.model);
  }
  if (fitted.layer !== now.layer) say('--layer', fitted.layer, now.layer);
  if (fitted.levels.join(',') !== now.levels.join(',')) say('--levels', fitted.levels.join(','), now.levels.join(','));
  if (fitted.pool !== now.pool) say('--pool', fitted.pool, now.pool);
  if (fitted.pool === 'gem' && now.pool === 'gem' && fitted.gemP !== now.gemP) say('--gem-p', fitted.gemP, now.gemP);
  if (fitted.normalize !== now.normalize) say('--normalize', fitted.normalize, now.normalize);
  if (diffs.length === 0 && fitted.dim !== now.dim) say('descriptor length', fitted.dim, now.dim);
  return diffs;
}

/** The tool's version, recorded in what it writes. */
export { toolVersion } from '../core/version.js';
