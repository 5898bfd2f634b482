/** tfjs weight shards → named typed arrays (what both converters read kernels and constants from). */
import type { io } from '@tensorflow/tfjs';

export interface Weight { readonly shape: number[]; readonly data: Float32Array | Int32Array }

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** All shards as one buffer: the weight specs index it by running offset, across shard boundaries. */
function concatShards(raw: io.ModelArtifacts['weightData']): Uint8Array {
  const parts = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  const total = parts.reduce((n, p) => n + p.byteLength, 0);
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    bytes.set(new Uint8Array(p), at);
    at += p.byteLength;
  }
  return bytes;
}

/** uint8/uint16 affine-quantized or float16 values back to float32 (int32 specs rounded back). */
function dequantize(bytes: Uint8Array, view: DataView, offset: number, n: number, spec: io.WeightsManifestEntry): { weight: Weight; size: number } {
  const q = spec.quantization!;
  const size = q.dtype === 'uint8' ? 1 : 2;
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const p = offset + i * size;
    if (q.dtype === 'float16') data[i] = halfToFloat(view.getUint16(p, true));
    else data[i] = (q.dtype === 'uint8' ? bytes[p] : view.getUint16(p, true)) * (q.scale ?? 1) + (q.min ?? 0);
  }
  return { weight: { shape: spec.shape, data: spec.dtype === 'int32' ? Int32Array.from(data, Math.round) : data }, size: n * size };
}

/** Plain float32/int32/bool values (copied out of the shard buffer); other dtypes are only skipped. */
function plain(bytes: Uint8Array, offset: number, n: number, spec: io.WeightsManifestEntry): Weight | undefined {
  if (spec.dtype === 'float32') return { shape: spec.shape, data: new Float32Array(bytes.buffer.slice(offset, offset + n * 4)) };
  if (spec.dtype === 'int32') return { shape: spec.shape, data: new Int32Array(bytes.buffer.slice(offset, offset + n * 4)) };
  if (spec.dtype === 'bool') return { shape: spec.shape, data: Int32Array.from(bytes.subarray(offset, offset + n)) };
  return undefined;
}

/** Decodes tfjs weight shards (float32/int32, and the uint8/uint16/float16 quantized forms) by name. */
export function decodeWeights(artifacts: io.ModelArtifacts): Map<string, Weight> {
  const bytes = concatShards(artifacts.weightData);
  const view = new DataView(bytes.buffer);
  const out = new Map<string, Weight>();
  let offset = 0;
  for (const spec of artifacts.weightSpecs ?? []) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    if (spec.dtype === 'string') {
      // Strings: per element a uint32 length then the bytes; skipped, only their size matters.
      for (let i = 0; i < n; i++) offset += 4 + view.getUint32(offset, true);
      continue;
    }
    if (spec.quantization) {
      const { weight, size } = dequantize(bytes, view, offset, n, spec);
      out.set(spec.name, weight);
      offset += size;
      continue;
    }
    const w = plain(bytes, offset, n, spec);
    if (w) out.set(spec.name, w);
    offset += n * (spec.dtype === 'bool' ? 1 : spec.dtype === 'complex64' ? 8 : 4);
  }
  return out;
}
