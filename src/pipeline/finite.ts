/**
 * Descriptors holding NaN or ±Inf: a model whose output is not finite (a user .onnx with a Log of a
 * negative, a division by zero). Such a descriptor fails its input as `non-finite` unless the run
 * allows them (--allow-non-finite, .npy only: JSON writes them as null, losing which they were).
 */

/** The failure reason of an input (or, in a region run, a box) whose descriptor is not finite. */
export const NON_FINITE = 'non-finite';

/** Thrown by the extractor for a descriptor with NaN or ±Inf; `message` is the detail, without a file name. */
export class NonFiniteError extends Error {
  readonly reason = NON_FINITE;
  constructor(message: string) {
    super(message);
    this.name = 'NonFiniteError';
  }
}

/** What is not finite in `d`, as "3 NaN and 1 -Inf of 1365 values"; undefined when every value is finite. */
export function nonFiniteSummary(d: Float32Array): string | undefined {
  let nan = 0;
  let pos = 0;
  let neg = 0;
  for (let i = 0; i < d.length; i++) {
    const v = d[i]!;
    // v - v is 0 for every finite value and NaN for NaN and ±Inf: one test on the common path.
    if (v - v === 0) continue;
    if (v !== v) nan++;
    else if (v > 0) pos++;
    else neg++;
  }
  if (nan + pos + neg === 0) return undefined;
  const parts = [[nan, 'NaN'], [pos, '+Inf'], [neg, '-Inf']].filter(([n]) => n !== 0).map(([n, kind]) => `${n} ${kind}`);
  return `${parts.join(' and ').replace(/ and (?=.* and )/, ', ')} of ${d.length} values`;
}

/** The failure's detail for a descriptor with NaN or ±Inf; undefined when it is finite. */
export function nonFiniteDetail(d: Float32Array): string | undefined {
  const what = nonFiniteSummary(d);
  return what && `descriptor has ${what} (the model's output is not finite; --allow-non-finite keeps them in .npy)`;
}

/** The descriptor, unless it holds NaN or ±Inf and they are not allowed (then NonFiniteError). */
export function checkFinite(d: Float32Array, allow: boolean): Float32Array {
  const detail = allow ? undefined : nonFiniteDetail(d);
  if (detail !== undefined) throw new NonFiniteError(detail);
  return d;
}

/** float16 rounds every |x| >= 65520 to ±Inf (numpy's astype(np.float16) does the same). */
const FLOAT16_OVERFLOW = 65520;

/**
 * The failure's detail for a finite descriptor that --dtype float16 would turn into ±Inf; undefined
 * when every value fits. A NaN or ±Inf already there is checkFinite's, not counted here.
 */
export function float16OverflowDetail(d: Float32Array): string | undefined {
  let over = 0;
  for (let i = 0; i < d.length; i++) if (Math.abs(d[i]!) >= FLOAT16_OVERFLOW && Number.isFinite(d[i]!)) over++;
  return over === 0
    ? undefined
    : `descriptor has ${over} of ${d.length} values beyond float16's range (|x| >= 65520 would be written as ±Inf); write float32, or --allow-non-finite keeps them as ±Inf`;
}

/** Whether little-endian float32 (`<f4`) or float16 (`<f2`) bytes hold a NaN or ±Inf (exponent bits all set). */
export function rawHasNonFinite(bytes: Uint8Array, dtype: 'float32' | 'float16'): boolean {
  if (dtype === 'float16') {
    for (let i = 1; i < bytes.length; i += 2) if ((bytes[i]! & 0x7c) === 0x7c) return true;
    return false;
  }
  for (let i = 3; i < bytes.length; i += 4) if ((bytes[i]! & 0x7f) === 0x7f && (bytes[i - 1]! & 0x80) === 0x80) return true;
  return false;
}
