import assert from 'node:assert/strict';
import { appendFileSync, closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { NPY_HEADER_BYTES, encodeNpy, float32ToFloat16Bits, npyHeader, npyLayoutProblem, parseNpyHeader, type NpyDtype } from '../../src/output/npy.js';
import { NO_NUMPY, hasNumpy, runPython } from '../helpers/python.js';
import { tempDir } from '../helpers/tmp.js';

let dir = '';
before(() => { dir = tempDir('spp-npy-'); });

interface Loaded { shape: number[]; dtype: string; bits: number[]; half: number[] | null; c: boolean; offset: number }

/**
 * np.load()s each file given; values come back as raw bit patterns (uint16/uint32), because JSON
 * cannot carry NaN/Inf/-0 and bit equality is the exact check anyway. For float32 files `half` is
 * numpy's own float16 conversion of the loaded values. One python process for many files: numpy's
 * import dominates the cost.
 */
const LOAD = `
import numpy as np, json, sys, warnings
warnings.simplefilter('ignore')
out = []
for path in sys.argv[1:]:
    a = np.load(path)
    with open(path, 'rb') as f:
        np.lib.format.read_magic(f)
        np.lib.format.read_array_header_1_0(f)
        offset = f.tell()
    u = {2: np.uint16, 4: np.uint32}[a.dtype.itemsize]
    half = a.astype(np.float16).view(np.uint16).ravel().tolist() if a.dtype == np.float32 else None
    out.append({'shape': a.shape, 'dtype': str(a.dtype), 'bits': a.view(u).ravel().tolist(), 'half': half,
                'c': bool(a.flags['C_CONTIGUOUS']), 'offset': offset})
print(json.dumps(out))
`;

function loadAll(paths: string[]): Map<string, Loaded> {
  const res = JSON.parse(runPython(LOAD, paths)) as Loaded[];
  return new Map(paths.map((p, i) => [p, res[i]]));
}

const bits32 = (a: Float32Array) => [...new Uint32Array(a.buffer, a.byteOffset, a.length)];

/** numpy's float32 → float16 conversion of the same bit patterns. */
function numpyHalfBits(values: Float32Array): number[] {
  const f = join(dir, 'half-bits.json');
  writeFileSync(f, JSON.stringify(bits32(values)));
  const code = 'import numpy as np, json, sys, warnings\nwarnings.simplefilter("ignore")\n' +
    'b = np.array(json.load(open(sys.argv[1])), dtype=np.uint32)\n' +
    'print(json.dumps(b.view(np.float32).astype(np.float16).view(np.uint16).tolist()))';
  return JSON.parse(runPython(code, [f])) as number[];
}

const ramp = (n: number) => Float32Array.from({ length: n }, (_, i) => (i - n / 3) * 0.37);

describe('npyHeader', () => {
  it('is always NPY_HEADER_BYTES long, a multiple of 64, ending in a newline', () => {
    assert.equal(NPY_HEADER_BYTES % 64, 0);
    for (const shape of [[], [0], [5], [0, 1280], [1, 1], [123456789, 26880], [2 ** 53 - 1, 2 ** 53 - 1], [2, 3, 4, 5]]) {
      const h = npyHeader('<f4', shape);
      assert.equal(h.length, NPY_HEADER_BYTES, `shape ${shape}`);
      assert.equal(h.readUInt16LE(8) + 10, NPY_HEADER_BYTES);
      assert.equal(h[h.length - 1], 0x0a);
      assert.deepEqual(parseNpyHeader(h), { dtype: '<f4', shape, fortranOrder: false, headerBytes: NPY_HEADER_BYTES });
    }
  });

  it('writes the dict the way numpy does', () => {
    const text = (shape: number[], dtype: NpyDtype = '<f4') => npyHeader(dtype, shape).subarray(10).toString('latin1').trimEnd();
    assert.equal(text([3, 4]), "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }");
    assert.equal(text([7], '<f2'), "{'descr': '<f2', 'fortran_order': False, 'shape': (7,), }");
    assert.equal(text([]), "{'descr': '<f4', 'fortran_order': False, 'shape': (), }");
    assert.deepEqual([...npyHeader('<f4', [1]).subarray(0, 8)], [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  });

  it('throws when the shape does not fit or is not a list of non-negative integers', () => {
    assert.throws(() => npyHeader('<f4', Array(8).fill(2 ** 50)), /more than 128/);
    assert.throws(() => npyHeader('<f4', [-1, 3]), /non-negative/);
    assert.throws(() => npyHeader('<f4', [1.5]), /non-negative/);
    assert.throws(() => npyHeader('<f8' as NpyDtype, [1]), /'<f8'/);
  });

  it("writes a unicode string dtype '<U{n}' (n >= 1) and refuses '<U0' and other dtypes", () => {
    assert.equal(npyHeader('<U5', []).subarray(10).toString('latin1').trimEnd(), "{'descr': '<U5', 'fortran_order': False, 'shape': (), }");
    assert.equal(npyHeader('<U5', []).length, NPY_HEADER_BYTES);
    assert.throws(() => npyHeader('<U0', []), /'<U0'/);
    assert.throws(() => npyHeader('<i4' as NpyDtype, []), /'<i4'/);
  });

  it('is byte-identical to the header np.save writes for the same array', (t) => {
    if (!hasNumpy()) return t.skip(NO_NUMPY);
    const cases: [NpyDtype, number[]][] = [['<f4', [5, 3]], ['<f2', [0, 1280]], ['<f4', [4]], ['<f4', []]];
    const files = cases.map(([dtype, shape]) => join(dir, `np-${dtype.slice(1)}-${shape.join('x') || 'scalar'}.npy`));
    runPython('import numpy as np, sys, json\nfor p, (dt, shape) in zip(sys.argv[2:], json.loads(sys.argv[1])):\n' +
      '    np.save(p, np.zeros(shape, dtype=dt))', [JSON.stringify(cases), ...files]);
    cases.forEach(([dtype, shape], i) => {
      const theirs = readFileSync(files[i]);
      assert.deepEqual(theirs.subarray(0, NPY_HEADER_BYTES), npyHeader(dtype, shape), `${dtype} ${shape}`);
    });
  });
});

describe('encodeNpy loads in numpy', () => {
  const shapes: [string, number[]][] = [
    ['N=0', [0, 7]],
    ['N=1', [1, 7]],
    ['N=5', [5, 7]],
    ['D=1', [5, 1]],
    ['1-D', [9]],
    ['0-d', []],
  ];
  const dtypes = ['<f4', '<f2'] as const;
  const fileOf = (dtype: NpyDtype, name: string) => join(dir, `enc-${dtype.slice(1)}-${name}.npy`);
  const dataOf = (shape: number[]) => ramp(shape.reduce((a, b) => a * b, 1));

  // Written and loaded all at once on first use (one python process).
  let loaded: Map<string, Loaded> | undefined;
  const loadedFile = (dtype: NpyDtype, name: string): Loaded => {
    if (!loaded) {
      const paths: string[] = [];
      for (const dtype of dtypes) {
        for (const [name, shape] of shapes) {
          const buf = encodeNpy(dtype, shape, dataOf(shape));
          assert.equal(buf.length, NPY_HEADER_BYTES + dataOf(shape).length * (dtype === '<f4' ? 4 : 2));
          writeFileSync(fileOf(dtype, name), buf);
          paths.push(fileOf(dtype, name));
        }
      }
      loaded = loadAll(paths);
    }
    return loaded.get(fileOf(dtype, name))!;
  };

  for (const dtype of dtypes) {
    for (const [name, shape] of shapes) {
      it(`${dtype} ${name} shape (${shape})`, (t) => {
        if (!hasNumpy()) return t.skip(NO_NUMPY);
        const a = loadedFile(dtype, name);
        assert.deepEqual(a.shape, shape);
        assert.equal(a.dtype, dtype === '<f4' ? 'float32' : 'float16');
        assert.equal(a.c, true);
        assert.equal(a.offset % 64, 0);
        assert.equal(a.offset, NPY_HEADER_BYTES);
        // f4: the exact input bits; f2: what numpy's own float32 → float16 cast gives for them.
        assert.deepEqual(a.bits, dtype === '<f4' ? bits32(dataOf(shape)) : loadedFile('<f4', name).half);
      });
    }
  }

  it('rejects data that does not match the shape', () => {
    assert.throws(() => encodeNpy('<f4', [2, 3], new Float32Array(5)), /5 values/);
  });

  it('streaming: header with N=0, rows appended, header rewritten in place with the final N', (t) => {
    if (!hasNumpy()) return t.skip(NO_NUMPY);
    const D = 6;
    const cases = dtypes.flatMap((dtype) => [0, 1, 5].map((rows) => ({ dtype, rows, file: join(dir, `stream-${dtype.slice(1)}-${rows}.npy`) })));
    for (const { dtype, rows, file } of cases) {
      writeFileSync(file, npyHeader(dtype, [0, D]));
      const all = ramp(rows * D);
      for (let r = 0; r < rows; r++) {
        const row = all.slice(r * D, (r + 1) * D);
        appendFileSync(file, dtype === '<f4' ? new Uint8Array(row.buffer) : new Uint8Array(float32ToFloat16Bits(row).buffer));
      }
      const fd = openSync(file, 'r+');
      try {
        const header = npyHeader(dtype, [rows, D]);
        assert.equal(header.length, NPY_HEADER_BYTES);
        writeSync(fd, header, 0, header.length, 0);
      } finally {
        closeSync(fd);
      }
    }
    const got = loadAll(cases.map((c) => c.file));
    for (const { dtype, rows, file } of cases) {
      const a = got.get(file)!;
      assert.deepEqual(a.shape, [rows, D], `${dtype} rows=${rows}`);
      assert.equal(a.dtype, dtype === '<f4' ? 'float32' : 'float16');
      assert.equal(a.offset % 64, 0);
      const f4 = got.get(file.replace('stream-f2', 'stream-f4'))!;
      assert.deepEqual(a.bits, dtype === '<f4' ? bits32(ramp(rows * D)) : f4.half);
    }
  });
});

describe('float32ToFloat16Bits', () => {
  it('handles known values without numpy', () => {
    const v = Float32Array.of(0, -0, 1, -2, 65504, 65520, Infinity, -Infinity, 2 ** -24, 2 ** -25, 2 ** -14, 0.5);
    assert.deepEqual([...float32ToFloat16Bits(v)],
      [0x0000, 0x8000, 0x3c00, 0xc000, 0x7bff, 0x7c00, 0x7c00, 0xfc00, 0x0001, 0x0000, 0x0400, 0x3800]);
    const nan = float32ToFloat16Bits(Float32Array.of(NaN))[0];
    assert.ok((nan & 0x7c00) === 0x7c00 && (nan & 0x3ff) !== 0, `NaN → 0x${nan.toString(16)}`);
  });

  it('writes into a given output array and checks its length', () => {
    const out = new Uint16Array(2);
    assert.equal(float32ToFloat16Bits(Float32Array.of(1, 2), out), out);
    assert.deepEqual([...out], [0x3c00, 0x4000]);
    assert.throws(() => float32ToFloat16Bits(Float32Array.of(1), out), /length/);
  });

  it("matches numpy's float16 conversion bit for bit (edge cases and random bit patterns)", (t) => {
    if (!hasNumpy()) return t.skip(NO_NUMPY);
    const p = (e: number) => 2 ** e;
    const edge = [
      0, -0, 1, -1, 0.1, 1 / 3, -1 / 3, 65504, -65504, 65505, 65519, 65519.996, 65520, -65520, 65536, 1e6, -1e30,
      Infinity, -Infinity, NaN,
      p(-24), -p(-24), p(-25), p(-25) * (1 + p(-23)), 3 * p(-25), 5 * p(-25), 7 * p(-25), p(-26), 1e-45, -1e-45, 1e-38, 1e-8, 6e-8,
      p(-14), p(-14) - p(-25), p(-14) - p(-24), p(-14) + p(-25), 1023 * p(-24), 1023.5 * p(-24), 1022.5 * p(-24),
      1 + p(-11), 1 + 3 * p(-11), 1 + p(-11) + p(-23), 2049, 2051, 2050, 4097, 4099, 32784, 32800,
    ];
    // Random bit patterns cover every exponent, sign and NaN payload.
    let s = 12345;
    const rnd = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0);
    const randomBits = new Uint32Array(5000).map(() => rnd() ^ (rnd() << 16));
    // And values near the half range, where rounding matters most.
    const near = Float32Array.from({ length: 3000 }, (_, i) => (((rnd() % 2000000) / 1000000) - 1) * 2 ** ((i % 40) - 26));
    const values = new Float32Array(edge.length + randomBits.length + near.length);
    values.set(edge);
    new Uint32Array(values.buffer).set(randomBits, edge.length);
    values.set(near, edge.length + randomBits.length);

    const ours = float32ToFloat16Bits(values);
    const theirs = numpyHalfBits(values);
    const inBits = bits32(values);
    for (let i = 0; i < values.length; i++) {
      const isNaN16 = (b: number) => (b & 0x7c00) === 0x7c00 && (b & 0x3ff) !== 0;
      const label = `float32 0x${inBits[i].toString(16)} (${values[i]}): ours 0x${ours[i].toString(16)}, numpy 0x${theirs[i].toString(16)}`;
      if (Number.isNaN(values[i])) {
        // NaN payloads are not specified by IEEE; require a NaN with the same sign.
        assert.ok(isNaN16(ours[i]) && isNaN16(theirs[i]) && (ours[i] & 0x8000) === (theirs[i] & 0x8000), label);
      } else {
        assert.equal(ours[i], theirs[i], label);
      }
    }
  });
});

describe('parseNpyHeader', () => {
  it('throws on bad magic, truncation and unknown versions', () => {
    assert.throws(() => parseNpyHeader(Buffer.from('PK\x03\x04 not npy at all')), /magic/);
    assert.throws(() => parseNpyHeader(Buffer.alloc(3)), /magic/);
    assert.throws(() => parseNpyHeader(npyHeader('<f4', [2, 2]).subarray(0, 60)), /truncated/);
    const v9 = Buffer.from(npyHeader('<f4', [1]));
    v9[6] = 9;
    assert.throws(() => parseNpyHeader(v9), /version 9/);
    // A declared dict length over the limit is refused before anything is read or parsed.
    const long = Buffer.concat([npyHeader('<f4', [2]).subarray(0, 8), Buffer.from([0xff, 0xff, 0xff, 0x7f])]);
    long[6] = 2;
    assert.throws(() => parseNpyHeader(long, 10_000), /dict of 2147483647 bytes is longer than the limit of 10000/);
    assert.doesNotThrow(() => parseNpyHeader(npyHeader('<f4', [2]), 118));
    assert.throws(() => parseNpyHeader(npyHeader('<f4', [2]), 117), /dict of 118 bytes/);
  });

  it('parses headers numpy wrote (np.save and format.write_array, v1 and v2)', (t) => {
    if (!hasNumpy()) return t.skip(NO_NUMPY);
    const code = `
import numpy as np, json, sys, os
from numpy.lib import format as fmt
d = sys.argv[1]
arrays = {
  'f4': (np.zeros((5, 3), np.float32), None),
  'f8_fortran': (np.asfortranarray(np.zeros((2, 3))), None),
  'i8_scalar': (np.array(7, dtype='<i8'), None),
  'be': (np.zeros((4,), dtype='>f8'), None),
  'u1_empty': (np.zeros((0, 2, 3), np.uint8), None),
  'struct': (np.zeros((2,), dtype=[('x', '<f4'), ('y', '<i2', (2,))]), None),
  'v2': (np.zeros((3, 2), np.float16), (2, 0)),
  'v3': (np.zeros((2,), dtype=[('\\u00e9t\\u00e9', '<f4')]), (3, 0)),
}
out = {}
for name, (a, version) in arrays.items():
    p = os.path.join(d, name + '.npy')
    with open(p, 'wb') as f:
        fmt.write_array(f, a, version=version)
    with open(p, 'rb') as f:
        v = fmt.read_magic(f)
        shape, fortran, dt = fmt.read_array_header_1_0(f) if v == (1, 0) else fmt.read_array_header_2_0(f)
        out[name] = {'path': p, 'shape': list(shape), 'fortran': fortran, 'descr': fmt.dtype_to_descr(dt) if dt.names is None else None, 'offset': f.tell(), 'version': list(v)}
print(json.dumps(out))
`;
    const info = JSON.parse(runPython(code, [dir])) as Record<string, { path: string; shape: number[]; fortran: boolean; descr: string | null; offset: number; version: number[] }>;
    assert.deepEqual(info.v2.version, [2, 0]);
    assert.deepEqual(info.v3.version, [3, 0]);
    for (const [name, e] of Object.entries(info)) {
      const h = parseNpyHeader(readFileSync(e.path));
      assert.deepEqual(h.shape, e.shape, name);
      assert.equal(h.fortranOrder, e.fortran, name);
      assert.equal(h.headerBytes, e.offset, name);
      if (e.descr !== null) assert.equal(h.dtype, e.descr, name);
      else assert.match(h.dtype, /^\[\('x', '<f4'\)|^\[\('été', '<f4'\)/, name);
    }
  });

  it('accepts hand-written variants: double quotes, old 16-byte padding, Python 2 longs', () => {
    const make = (dict: string) => {
      const body = Buffer.from(dict + '\n', 'latin1');
      const head = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 0, 0]);
      head.writeUInt16LE(body.length, 8);
      return Buffer.concat([head, body, Buffer.alloc(8)]);
    };
    const py2 = make(`{"descr": "<f8", "fortran_order": True, "shape": (3L, 4L)}   `);
    assert.deepEqual(parseNpyHeader(py2), { dtype: '<f8', shape: [3, 4], fortranOrder: true, headerBytes: py2.length - 8 });
    assert.throws(() => parseNpyHeader(make("{'descr': '<f4', 'fortran_order': False}")), /shape/);
    assert.throws(() => parseNpyHeader(make("{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}")), /fortran_order/);
    assert.throws(() => parseNpyHeader(make("{'descr': '<f4', 'shape': (1,), 'fortran_order': False")), /expected/);
  });
});

describe('npyLayoutProblem', () => {
  it('accepts our own header, and says what differs from it otherwise', () => {
    assert.equal(npyLayoutProblem(npyHeader('<f4', [3, 8]), '<f4', 8, 3), undefined);
    assert.equal(npyLayoutProblem(npyHeader('<f4', [0, 8]), '<f4', 8), undefined, 'any row count when none is expected');
    assert.equal(npyLayoutProblem(npyHeader('<f2', [3, 8]), '<f4', 8, 3), "dtype '<f2', expected '<f4'");
    assert.equal(npyLayoutProblem(npyHeader('<f4', [99, 3]), '<f4', 8, 3), 'shape (99, 3), expected (3, 8)');
    assert.equal(npyLayoutProblem(npyHeader('<f4', [3]), '<f4', 8), 'shape (3,), expected (N, 8)');
    assert.match(npyLayoutProblem(Buffer.alloc(128, 0x78), '<f4', 8)!, /bad magic/);
    const v2 = Buffer.alloc(128, 0x20);
    npyHeader('<f4', [3, 8]).copy(v2, 0, 0, 8);
    v2[6] = 2;
    v2.writeUInt32LE(116, 8);
    v2.write("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 8), }", 12, 'latin1');
    v2[127] = 0x0a;
    assert.equal(npyLayoutProblem(v2, '<f4', 8, 3), 'format version 2.0, expected 1.0');
    const fortran = Buffer.from(npyHeader('<f4', [3, 8]).toString('latin1').replace('False', 'True '), 'latin1');
    assert.equal(npyLayoutProblem(fortran, '<f4', 8, 3), 'fortran_order True, expected False');
  });
});

it('rawHasNonFinite: every float32 and float16 NaN / ±Inf pattern, and no finite value (largest, subnormal, -0)', async () => {
  const { rawHasNonFinite } = await import('../../src/pipeline/finite.js');
  const f32 = (v: number[]) => new Uint8Array(new Float32Array(v).buffer);
  assert.equal(rawHasNonFinite(f32([0, -0, 1, -3.4028234663852886e38, 3.4028234663852886e38, 1e-45, -1e-45]), 'float32'), false);
  for (const v of [NaN, Infinity, -Infinity]) assert.equal(rawHasNonFinite(f32([1, 2, v, 4]), 'float32'), true, String(v));
  const f16 = (bits: number[]) => new Uint8Array(new Uint16Array(bits).buffer);
  // 0x7bff = 65504 (largest), 0x0001 subnormal, 0x8000 = -0, 0xfbff = -65504.
  assert.equal(rawHasNonFinite(f16([0x7bff, 0x0001, 0x8000, 0xfbff, 0x3c00]), 'float16'), false);
  for (const b of [0x7c00, 0xfc00, 0x7e00, 0x7c01]) assert.equal(rawHasNonFinite(f16([0x3c00, b]), 'float16'), true, b.toString(16));
});
