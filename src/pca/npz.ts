/**
 * numpy .npz files (a zip of .npy entries, as np.savez writes them). Pure: bytes in, bytes out.
 * The zip layer is fflate's; this module only decides what it lets fflate do. Reading treats the
 * bytes as hostile: every size is checked against the caller's limit before anything is copied,
 * and every refusal is an NpzError, one line naming `source`.
 */
import { unzipSync, zipSync, type UnzipFileInfo } from 'fflate';
import { printable } from '../core/printable.js';
import { encodeNpy, npyHeader, parseNpyHeader } from '../output/npy.js';

/** A float32 array, or a 0-d numpy unicode array ('<U{n}') holding one string (JSON metadata). */
export type NpzArray = { dtype: '<f4'; shape: number[]; data: Float32Array } | { dtype: 'str'; value: string };

/** A .npz that cannot be read: `${source}: ${reason}`, one line. */
export class NpzError extends Error {
  constructor(readonly source: string, reason: string) {
    super(`${printable(source)}: ${printable(reason)}`);
    this.name = 'NpzError';
  }
}

/** More entries than any projection file has; bounds fflate's walk over the central directory. */
export const NPZ_MAX_ENTRIES = 64;
/** numpy refuses headers whose dict is longer than this (np.load's max_header_size default). */
export const NPY_MAX_DICT_BYTES = 10_000;
/** Magic, version and length field (v2/v3) in front of the dict. */
const NPY_PREAMBLE_BYTES = 12;

// Local time, because fflate writes the DOS date from local fields: the same bytes in every zone.
const FIXED_MTIME = new Date(1980, 0, 1, 0, 0, 0);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const EOCD_SIGNATURE = 0x06054b50;

function checkName(name: string): string | undefined {
  if (name === '' || name.length > 200) return 'must be 1 to 200 characters';
  if (name.includes('/') || name.includes('\\') || name.includes('..')) return "must not hold '/', '\\' or '..'";
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'must not hold control characters';
  return undefined;
}

const quote = (name: string): string => `'${name.length > 80 ? `${name.slice(0, 80)}…` : name}'`;

/** The unicode string as numpy stores it: UTF-32LE code points, '<U{n}' with n >= 1 (as np.array('') does). */
function encodeString(value: string): Buffer {
  const points: number[] = [];
  for (const ch of value) {
    const cp = ch.codePointAt(0)!;
    if (cp >= 0xd800 && cp <= 0xdfff) throw new Error('npz string holds a lone surrogate (not valid Unicode)');
    points.push(cp);
  }
  const n = Math.max(points.length, 1);
  const header = npyHeader(`<U${n}`, []);
  const out = Buffer.alloc(header.length + 4 * n);
  header.copy(out, 0);
  points.forEach((cp, i) => out.writeUInt32LE(cp, header.length + 4 * i));
  return out;
}

/**
 * A .npz holding `arrays` as `${name}.npy`, in the given order, stored (not compressed, like
 * np.savez) with a fixed timestamp, so the same arrays always give the same bytes.
 */
export function encodeNpz(arrays: ReadonlyArray<readonly [name: string, array: NpzArray]>): Uint8Array {
  const entries: Record<string, Uint8Array> = {};
  for (const [name, array] of arrays) {
    const problem = checkName(name);
    if (problem) throw new Error(`npz array name ${quote(printable(name))} ${problem}`);
    const key = `${name}.npy`;
    if (Object.hasOwn(entries, key)) throw new Error(`npz array name ${quote(printable(name))} is given twice`);
    entries[key] = array.dtype === 'str' ? encodeString(array.value) : encodeNpy('<f4', array.shape, array.data);
  }
  // Keys all end in '.npy', so none is integer-like and the object keeps the given order.
  return zipSync(entries, { level: 0, mtime: FIXED_MTIME });
}

/**
 * Refuses a zip64 end record before fflate sees it: fflate then looks for each entry's zip64 extra
 * field by walking until it finds one, and on an entry without it walks on past the end forever.
 * np.savez writes zip64 extras only in local headers, which fflate does not read; it writes a zip64
 * end record only past 65535 entries or 4 GiB, which no projection file comes near.
 * The search is fflate's own, so both find the same record.
 */
function checkEndRecord(bytes: Uint8Array, fail: (why: string) => never): void {
  const u32 = (at: number): number => (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
  let e = bytes.length - 22;
  for (; u32(e) !== EOCD_SIGNATURE; e--) {
    if (e <= 0 || bytes.length - e > 65558) fail('not a .npz file: no zip end-of-central-directory record (truncated, or not a zip)');
  }
  const count = bytes[e + 8]! | (bytes[e + 9]! << 8);
  const cdOffset = u32(e + 16);
  if (count === 0xffff || cdOffset === 0xffffffff) fail('is a zip64 archive (over 65535 entries or 4 GiB); a .npz from np.savez of a projection never is');
}

/** Bytes `shape` of `itemSize` holds; Infinity once past `limit` (no overflow on hostile shapes). */
function byteCount(shape: readonly number[], itemSize: number, limit: number): number {
  if (shape.includes(0)) return 0;
  let n = itemSize;
  for (const d of shape) {
    n *= d;
    if (n > limit) return Infinity;
  }
  return n;
}

const shapeText = (shape: readonly number[]): string => (shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`);

/** One .npy entry, checked: float32 (from '<f4' or '<f8'), or a '<U{n}' string of shape () or (1,). */
function decodeNpy(entry: Uint8Array, maxArrayBytes: number, fail: (why: string) => never): NpzArray {
  const buf = Buffer.from(entry.buffer, entry.byteOffset, entry.byteLength);
  let h: ReturnType<typeof parseNpyHeader>;
  try {
    h = parseNpyHeader(buf, NPY_MAX_DICT_BYTES);
  } catch (err) {
    return fail((err as Error).message.slice(0, 300));
  }
  // parseNpyHeader takes any minor version; numpy writes (and reads) only x.0.
  if (buf[7] !== 0) fail(`npy format version ${buf[6]}.${buf[7]} is not 1.0, 2.0 or 3.0`);
  const dtype = h.dtype.length > 40 ? `${h.dtype.slice(0, 40)}…` : h.dtype;
  if (/^\|O|'\|O/.test(h.dtype)) fail(`dtype '${dtype}' holds Python objects (a pickle); refused`);
  if (h.fortranOrder) fail('is in Fortran order; only C order is read (np.ascontiguousarray before saving)');
  const str = /^<U([1-9]\d{0,9})$/.exec(h.dtype);
  const itemSize = h.dtype === '<f4' ? 4 : h.dtype === '<f8' ? 8 : str ? 4 * Number(str[1]) : 0;
  if (!itemSize) fail(`dtype '${dtype}' is not supported (expected '<f4', '<f8' or a string '<U…')`);
  if (str && !(h.shape.length === 0 || (h.shape.length === 1 && h.shape[0] === 1))) {
    fail(`string of shape ${shapeText(h.shape)}; expected a single string, shape () or (1,)`);
  }
  const bytes = byteCount(h.shape, itemSize, maxArrayBytes);
  if (bytes > maxArrayBytes) fail(`shape ${shapeText(h.shape)} of '${dtype}' needs more than the limit of ${maxArrayBytes} bytes`);
  const have = buf.length - h.headerBytes;
  if (have !== bytes) fail(`holds ${have} data bytes; shape ${shapeText(h.shape)} of '${dtype}' needs ${bytes}`);

  const view = new DataView(buf.buffer, buf.byteOffset + h.headerBytes, bytes);
  if (str) {
    let value = '';
    let end = bytes / 4;
    while (end > 0 && view.getUint32(4 * (end - 1), true) === 0) end--; // numpy strips trailing NULs
    for (let i = 0; i < end; i++) {
      const cp = view.getUint32(4 * i, true);
      if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) fail(`string holds ${cp > 0x10ffff ? 'a value above U+10FFFF' : 'a lone surrogate'}; not Unicode text`);
      value += String.fromCodePoint(cp);
    }
    return { dtype: 'str', value };
  }
  const count = bytes / itemSize;
  let data: Float32Array;
  if (itemSize === 4 && LITTLE_ENDIAN) {
    data = new Float32Array(buf.buffer.slice(view.byteOffset, view.byteOffset + bytes)); // a copy: aligned, and not a view of the zip
  } else {
    data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = itemSize === 4 ? view.getFloat32(4 * i, true) : view.getFloat64(8 * i, true);
  }
  return { dtype: '<f4', shape: h.shape, data };
}

/**
 * Reads a .npz as np.savez (or encodeNpz) writes it: stored entries named `{name}.npy`, each a C-order
 * '<f4' or '<f8' array (returned as float32) or a single '<U{n}' string. Keys are the names without
 * '.npy', in the file's order. `maxArrayBytes` bounds each array's data as stored; beyond the input
 * (whose size is the caller's to bound) the read allocates at most about twice its size. Throws an
 * NpzError naming `source` for anything else.
 */
export function decodeNpz(bytes: Uint8Array, opts: { maxArrayBytes: number; source: string }): Map<string, NpzArray> {
  const { maxArrayBytes, source } = opts;
  if (!Number.isSafeInteger(maxArrayBytes) || maxArrayBytes < 0) throw new Error(`decodeNpz: maxArrayBytes must be a non-negative integer, got ${maxArrayBytes}`);
  const fail = (why: string): never => {
    throw new NpzError(source, why);
  };
  checkEndRecord(bytes, fail);

  const order: Array<{ name: string; size: number }> = [];
  const seen = new Set<string>();
  let total = 0;
  // Called by fflate for each central-directory entry before it copies anything: a refusal here
  // stops the walk, so a directory of 65535 entries or absurd sizes fails at the first bad one.
  const filter = (file: UnzipFileInfo): boolean => {
    const at = `entry ${quote(file.name)}`;
    if (order.length >= NPZ_MAX_ENTRIES) fail(`has more than ${NPZ_MAX_ENTRIES} entries`);
    if (!file.name.endsWith('.npy')) fail(`${at} is not a .npy array (np.savez names every entry {name}.npy)`);
    const name = file.name.slice(0, -4);
    const problem = checkName(name);
    if (problem) fail(`${at}: an array name ${problem}`);
    if (seen.has(name)) fail(`${at} appears twice`);
    seen.add(name);
    if (file.compression === 8) fail(`${at} is compressed (np.savez_compressed); save it with np.savez`);
    if (file.compression !== 0) fail(`${at} uses zip compression method ${file.compression}; save it with np.savez`);
    if (file.size !== file.originalSize) fail(`${at} is stored but claims ${file.size} bytes stored and ${file.originalSize} bytes of data`);
    if (file.size > maxArrayBytes + NPY_PREAMBLE_BYTES + NPY_MAX_DICT_BYTES) fail(`${at} claims ${file.size} bytes, more than the limit of ${maxArrayBytes} bytes an array`);
    // Stored entries cannot overlap, so together they fit in the file: bounds what gets copied.
    total += file.size;
    if (total > bytes.length) fail(`${at}: the entries claim ${total} bytes, more than the file's ${bytes.length}`);
    order.push({ name, size: file.size });
    return true;
  };

  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes, { filter });
  } catch (err) {
    if (err instanceof NpzError) throw err;
    return fail(`not a valid .npz (zip) file: ${String((err as Error)?.message ?? err).slice(0, 200)}`);
  }

  const out = new Map<string, NpzArray>();
  for (const { name, size } of order) {
    const entry = files[`${name}.npy`]!;
    const entryFail = (why: string): never => fail(`entry ${quote(`${name}.npy`)}: ${why}`);
    // fflate clips an entry that runs past the end of the input instead of failing.
    if (entry.length !== size) entryFail(`truncated: ${entry.length} of ${size} bytes`);
    out.set(name, decodeNpy(entry, maxArrayBytes, entryFail));
  }
  return out;
}
