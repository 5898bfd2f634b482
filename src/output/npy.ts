/**
 * numpy .npy format helpers (writes version 1.0; reads 1.0/2.0/3.0). Pure, no I/O.
 * Spec: numpy/lib/format.py (NEP 1). Layout: magic "\x93NUMPY", major, minor, header length
 * (uint16 LE in v1, uint32 LE in v2/v3), then an ASCII Python dict literal padded with spaces and
 * ending in '\n' so that the data starts at a multiple of 64 bytes.
 */

export type NpyDtype = '<f4' | '<f2';

/** What a header can name: the float dtypes, or a unicode string of `n` code points (`<U{n}`, UTF-32LE). */
export type NpyHeaderDtype = NpyDtype | `<U${number}`;

/** The numpy dtype of a run's `--dtype`. */
export const npyDtypeOf = (dtype: 'float32' | 'float16'): NpyDtype => (dtype === 'float16' ? '<f2' : '<f4');

/** Bytes of one row of `dim` values in a run's `--dtype`. */
export const npyRowBytes = (h: { dim: number; dtype: 'float32' | 'float16' }): number => h.dim * (h.dtype === 'float16' ? 2 : 4);

/** Fixed total header length (magic + version + length + dict + padding); a multiple of 64. */
export const NPY_HEADER_BYTES = 128;

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function checkShape(shape: readonly number[]): void {
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new Error(`npy shape must hold non-negative integers, got [${shape.join(', ')}]`);
  }
}

/** Python's repr of a tuple of ints: (), (5,), (3, 4). */
function shapeRepr(shape: readonly number[]): string {
  if (shape.length === 1) return `(${shape[0]},)`;
  return `(${shape.join(', ')})`;
}

/**
 * Header for a C-order array of `shape`. Always exactly NPY_HEADER_BYTES long (space padding, final
 * '\n'), so a streaming writer can write it with N = 0 first and rewrite the row count in place.
 */
export function npyHeader(dtype: NpyHeaderDtype, shape: readonly number[]): Buffer {
  if (dtype !== '<f4' && dtype !== '<f2' && !/^<U[1-9]\d{0,9}$/.test(dtype)) {
    throw new Error(`npy dtype must be '<f4', '<f2' or '<U{n}', got '${String(dtype)}'`);
  }
  checkShape(shape);
  // Same text numpy writes (keys sorted, trailing ", ").
  const dict = `{'descr': '${dtype}', 'fortran_order': False, 'shape': ${shapeRepr(shape)}, }`;
  const headerLen = NPY_HEADER_BYTES - 10;
  if (dict.length + 1 > headerLen) {
    throw new Error(`npy header for shape ${shapeRepr(shape)} needs ${dict.length + 11} bytes, more than ${NPY_HEADER_BYTES}`);
  }
  const buf = Buffer.alloc(NPY_HEADER_BYTES, 0x20);
  MAGIC.copy(buf, 0);
  buf[6] = 1; // major
  buf[7] = 0; // minor
  buf.writeUInt16LE(headerLen, 8);
  buf.write(dict, 10, 'latin1');
  buf[NPY_HEADER_BYTES - 1] = 0x0a;
  return buf;
}

/** Header + data, little-endian; '<f2' converts to IEEE binary16 (round to nearest even). */
export function encodeNpy(dtype: NpyDtype, shape: readonly number[], data: Float32Array): Buffer {
  const header = npyHeader(dtype, shape);
  const count = shape.reduce((a, b) => a * b, 1);
  if (data.length !== count) throw new Error(`npy data has ${data.length} values, shape ${shapeRepr(shape)} needs ${count}`);
  const itemSize = dtype === '<f4' ? 4 : 2;
  const out = Buffer.alloc(header.length + count * itemSize);
  header.copy(out, 0);
  if (dtype === '<f4') {
    if (LITTLE_ENDIAN) {
      out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), header.length);
    } else {
      for (let i = 0; i < count; i++) out.writeFloatLE(data[i], header.length + 4 * i);
    }
  } else {
    const bits = float32ToFloat16Bits(data);
    if (LITTLE_ENDIAN) {
      out.set(new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength), header.length);
    } else {
      for (let i = 0; i < count; i++) out.writeUInt16LE(bits[i], header.length + 2 * i);
    }
  }
  return out;
}

/** IEEE 754 binary16 bit patterns to float32 (exact: every half is a float32). */
export function float16BitsToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i];
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) out[i] = sign * mant * 2 ** -24;
    else if (exp === 0x1f) out[i] = mant ? NaN : sign * Infinity;
    else out[i] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return out;
}

/**
 * Converts float32 values to IEEE 754 binary16 bit patterns: round to nearest, ties to even;
 * subnormal results; overflow (|x| >= 65520) → ±Inf; NaN stays NaN (quiet, top payload bits kept,
 * as x86 F16C does). Writes into `out` when given (same length), else a new array.
 */
export function float32ToFloat16Bits(values: Float32Array, out?: Uint16Array): Uint16Array {
  const n = values.length;
  const res = out ?? new Uint16Array(n);
  if (res.length !== n) throw new Error(`float16 output has length ${res.length}, expected ${n}`);
  // Reinterpret the float32 bits in place; Float32Array offsets are always 4-byte aligned.
  const u32 = new Uint32Array(values.buffer, values.byteOffset, n);
  for (let i = 0; i < n; i++) {
    const x = u32[i];
    const sign = (x >>> 16) & 0x8000;
    const abs = x & 0x7fffffff;
    if (abs >= 0x7f800000) {
      // Inf or NaN; a NaN whose payload lives only in the low 13 bits still gets the quiet bit.
      res[i] = abs === 0x7f800000 ? sign | 0x7c00 : sign | 0x7e00 | ((abs & 0x7fffff) >>> 13);
      continue;
    }
    if (abs >= 0x477ff000) {
      // >= 65520 = halfway between 65504 (max half) and 65536: rounds (to even) to Inf.
      res[i] = sign | 0x7c00;
      continue;
    }
    const exp = abs >>> 23;
    if (exp < 113) {
      // Result is subnormal or zero: count units of 2^-24. Below 2^-25 everything rounds to 0.
      if (exp < 102) {
        res[i] = sign;
        continue;
      }
      const m = (abs & 0x7fffff) | 0x800000; // value = m * 2^(exp-150)
      const shift = 126 - exp; // 14..24
      let q = m >>> shift;
      const rem = m & ((1 << shift) - 1);
      const half = 1 << (shift - 1);
      if (rem > half || (rem === half && (q & 1) === 1)) q++; // may carry into the smallest normal: fine
      res[i] = sign | q;
      continue;
    }
    const mant = abs & 0x7fffff;
    let q = ((exp - 112) << 10) | (mant >>> 13);
    const rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && (q & 1) === 1)) q++; // carry into the exponent is correct
    res[i] = sign | q;
  }
  return res;
}

// ---------------------------------------------------------------------------------------------
// Reading headers: a small parser for the Python literal subset numpy headers use.

type PyValue = string | number | boolean | null | PyValue[] | { [k: string]: PyValue };

class LiteralParser {
  pos = 0;
  constructor(readonly src: string) {}

  fail(msg: string): never {
    throw new Error(`npy header: ${msg} at offset ${this.pos} in ${JSON.stringify(this.src.trim())}`);
  }

  ws(): void {
    while (this.pos < this.src.length && /\s/.test(this.src[this.pos])) this.pos++;
  }

  value(): PyValue {
    this.ws();
    const ch = this.src[this.pos];
    if (ch === '{') return this.dict();
    if (ch === '(') return this.seq('(', ')');
    if (ch === '[') return this.seq('[', ']');
    if (ch === "'" || ch === '"') return this.str();
    const m = /^(?:[-+]?\d+L?|True|False|None)/.exec(this.src.slice(this.pos));
    if (!m) this.fail('unexpected token');
    this.pos += m[0].length;
    if (m[0] === 'True') return true;
    if (m[0] === 'False') return false;
    if (m[0] === 'None') return null;
    return Number(m[0].replace(/L$/, '')); // "3L": headers written by Python 2
  }

  str(): string {
    const quote = this.src[this.pos++];
    let s = '';
    while (this.pos < this.src.length) {
      const ch = this.src[this.pos++];
      if (ch === quote) return s;
      if (ch === '\\') {
        const next = this.src[this.pos++];
        s += next === 'n' ? '\n' : next === 't' ? '\t' : next;
      } else {
        s += ch;
      }
    }
    return this.fail('unterminated string');
  }

  seq(open: string, close: string): PyValue[] {
    this.pos++; // open
    const items: PyValue[] = [];
    for (;;) {
      this.ws();
      if (this.src[this.pos] === close) { this.pos++; return items; }
      items.push(this.value());
      this.ws();
      if (this.src[this.pos] === ',') this.pos++;
      else if (this.src[this.pos] !== close) this.fail(`expected ',' or '${close}' after ${open}...`);
    }
  }

  dict(): { [k: string]: PyValue } {
    this.pos++; // {
    const d: { [k: string]: PyValue } = {};
    for (;;) {
      this.ws();
      if (this.src[this.pos] === '}') { this.pos++; return d; }
      const ch = this.src[this.pos];
      if (ch !== "'" && ch !== '"') this.fail('expected a string key');
      const key = this.str();
      this.ws();
      if (this.src[this.pos++] !== ':') this.fail("expected ':'");
      this.ws();
      const start = this.pos;
      d[key] = this.value();
      // Keep the literal text of a structured descr (a list) so it can be reported as a string.
      if (key === 'descr' && typeof d[key] !== 'string') d[key] = this.src.slice(start, this.pos);
      this.ws();
      if (this.src[this.pos] === ',') this.pos++;
      else if (this.src[this.pos] !== '}') this.fail("expected ',' or '}'");
    }
  }
}

/**
 * Parses the header of a .npy file (v1.0, v2.0 or v3.0; any valid dict, not just ours).
 * `dtype` is the descr string (for structured dtypes, the literal text of the descr list);
 * `headerBytes` is where the data starts. Throws on bad magic, a truncated buffer or a bad dict,
 * and on a dict longer than `maxDictBytes` (numpy's own default limit is 10000) before reading it.
 */
export function parseNpyHeader(buf: Buffer, maxDictBytes = Infinity): { dtype: string; shape: number[]; fortranOrder: boolean; headerBytes: number } {
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) throw new Error('not a .npy file: bad magic (expected \\x93NUMPY)');
  const major = buf[6];
  let headerLen: number;
  let start: number;
  if (major === 1) {
    headerLen = buf.readUInt16LE(8);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) throw new Error('npy header truncated');
    headerLen = buf.readUInt32LE(8);
    start = 12;
  } else {
    throw new Error(`unsupported .npy format version ${major}.${buf[7]}`);
  }
  if (headerLen > maxDictBytes) throw new Error(`npy header dict of ${headerLen} bytes is longer than the limit of ${maxDictBytes}`);
  const headerBytes = start + headerLen;
  if (buf.length < headerBytes) throw new Error(`npy header truncated: needs ${headerBytes} bytes, have ${buf.length}`);
  const text = buf.subarray(start, headerBytes).toString(major === 3 ? 'utf8' : 'latin1');

  const p = new LiteralParser(text);
  p.ws();
  if (text[p.pos] !== '{') p.fail('header is not a dict');
  const d = p.value() as { [k: string]: PyValue };
  p.ws();
  if (p.pos !== text.length) p.fail('trailing characters after the dict');

  const { descr, fortran_order: fortran, shape } = d;
  if (typeof descr !== 'string') throw new Error("npy header: missing 'descr'");
  if (typeof fortran !== 'boolean') throw new Error("npy header: 'fortran_order' must be True or False");
  if (!Array.isArray(shape) || !shape.every((s) => typeof s === 'number' && Number.isSafeInteger(s) && s >= 0)) {
    throw new Error("npy header: 'shape' must be a tuple of non-negative integers");
  }
  return { dtype: descr, shape: shape as number[], fortranOrder: fortran, headerBytes };
}

/**
 * Why `buf` (a file's first NPY_HEADER_BYTES or more) is not the header spp-extract writes: v1.0,
 * NPY_HEADER_BYTES long, `dtype`, C order, shape (rows, dim); `rows` undefined accepts any count.
 * Undefined when it is. Files that are merged or resumed are checked with it, not trusted.
 */
export function npyLayoutProblem(buf: Buffer, dtype: NpyDtype, dim: number, rows?: number): string | undefined {
  let h: ReturnType<typeof parseNpyHeader>;
  try {
    h = parseNpyHeader(buf);
  } catch (err) {
    return (err as Error).message.slice(0, 200);
  }
  if (buf[6] !== 1 || buf[7] !== 0) return `format version ${buf[6]}.${buf[7]}, expected 1.0`;
  if (h.headerBytes !== NPY_HEADER_BYTES) return `header of ${h.headerBytes} bytes, expected ${NPY_HEADER_BYTES}`;
  if (h.dtype !== dtype) return `dtype '${h.dtype.slice(0, 40)}', expected '${dtype}'`;
  if (h.fortranOrder) return 'fortran_order True, expected False';
  const want = rows === undefined ? `(N, ${dim})` : shapeRepr([rows, dim]);
  if (h.shape.length !== 2 || h.shape[1] !== dim || (rows !== undefined && h.shape[0] !== rows)) {
    return `shape ${shapeRepr(h.shape)}, expected ${want}`;
  }
  return undefined;
}
