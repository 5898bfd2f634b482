import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { zipSync } from 'fflate';
import { NPZ_MAX_ENTRIES, NpzError, decodeNpz, encodeNpz, type NpzArray } from '../../src/pca/npz.js';
import { NO_NUMPY, hasNumpy, runPython } from '../helpers/python.js';
import { tempDir } from '../helpers/tmp.js';

const MiB = 1 << 20;
const SOURCE = 'proj.npz';

const f32 = (shape: number[], values?: number[]): NpzArray => {
  const n = shape.reduce((a, b) => a * b, 1);
  return { dtype: '<f4', shape, data: Float32Array.from(values ?? Array.from({ length: n }, (_, i) => (i - n / 3) * 0.37)) };
};
const str = (value: string): NpzArray => ({ dtype: 'str', value });

const decode = (bytes: Uint8Array, maxArrayBytes = MiB) => decodeNpz(bytes, { maxArrayBytes, source: SOURCE });

/** decodeNpz refuses `bytes` with an NpzError: one line, naming the source, matching `why`. */
function refuses(bytes: Uint8Array, why: RegExp, maxArrayBytes = MiB): void {
  assert.throws(() => decode(bytes, maxArrayBytes), (err: unknown) => {
    assert.ok(err instanceof NpzError, `not an NpzError: ${String(err)}`);
    assert.ok(err.message.startsWith(`${SOURCE}: `), err.message);
    assert.ok(!err.message.includes('\n'), err.message);
    assert.match(err.message, why);
    return true;
  });
}

/** A .npy entry with a hand-written header dict (v1.0 unless `version` says otherwise). */
function npy(dict: string, data: Uint8Array | number, version: [number, number] = [1, 0]): Uint8Array {
  const pre = version[0] === 1 ? 10 : 12;
  const dictLen = Math.ceil((pre + dict.length + 1) / 64) * 64 - pre;
  const head = Buffer.alloc(pre + dictLen, 0x20);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = version[0];
  head[7] = version[1];
  if (pre === 10) head.writeUInt16LE(dictLen, 8);
  else head.writeUInt32LE(dictLen, 8);
  head.write(dict, pre, 'latin1');
  head[head.length - 1] = 0x0a;
  return Buffer.concat([head, typeof data === 'number' ? Buffer.alloc(data) : data]);
}
const dict = (descr: string, shape: string, fortran = 'False') => `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': ${shape}, }`;
const f8 = (values: number[]) => Buffer.from(Float64Array.from(values).buffer);

/** A stored zip of the given entries, as fflate writes it (any names, any contents). */
const zip = (entries: Record<string, Uint8Array>, level: 0 | 9 = 0) => Buffer.from(zipSync(entries, { level, mtime: new Date(1980, 0, 1) }));

/** Offsets of the end record and of each central-directory header (files without a zip comment). */
function layout(b: Buffer): { eocd: number; central: number[] } {
  const eocd = b.length - 22;
  assert.equal(b.readUInt32LE(eocd), 0x06054b50);
  const central: number[] = [];
  let at = b.readUInt32LE(eocd + 16);
  for (let i = 0; i < b.readUInt16LE(eocd + 10); i++) {
    assert.equal(b.readUInt32LE(at), 0x02014b50);
    central.push(at);
    at += 46 + b.readUInt16LE(at + 28) + b.readUInt16LE(at + 30) + b.readUInt16LE(at + 32);
  }
  return { eocd, central };
}

const one = () => zip({ 'a.npy': npy(dict('<f4', '(2,)'), Buffer.from(Float32Array.from([1, 2]).buffer)) });

describe('encodeNpz / decodeNpz', () => {
  it('round-trips float32 arrays of any shape and strings, keeping the order', () => {
    const arrays: Array<[string, NpzArray]> = [
      ['components', f32([3, 4])],
      ['metadata', str('{"dim":4,"note":"é 😀 \\u0000 end"}')],
      ['mean', f32([4])],
      ['scalar', f32([], [-0.5])],
      ['empty', f32([0, 1280])],
      ['blank', str('')],
      ['nul inside', str('a\u0000b')],
      ['specials', f32([4], [NaN, Infinity, -Infinity, -0])],
    ];
    const back = decode(encodeNpz(arrays));
    assert.deepEqual([...back.keys()], arrays.map(([n]) => n));
    for (const [name, a] of arrays) assert.deepEqual(back.get(name), a, name);
    assert.ok(Object.is((back.get('specials') as { data: Float32Array }).data[3], -0));
    // The zip order is the given order, not sorted.
    assert.deepEqual([...decode(encodeNpz([['b', f32([1])], ['a', f32([1])]])).keys()], ['b', 'a']);
    assert.deepEqual(decode(encodeNpz([])), new Map());
  });

  it('writes deterministic bytes: the same arrays give the same file in any time zone', () => {
    const arrays: Array<[string, NpzArray]> = [['components', f32([2, 3])], ['metadata', str('{"a":1}')]];
    const bytes = encodeNpz(arrays);
    assert.deepEqual(encodeNpz(arrays), bytes);
    const sha = createHash('sha256').update(bytes).digest('hex');
    const moduleUrl = new URL('../../src/pca/npz.js', import.meta.url).href;
    const code = `import { encodeNpz } from ${JSON.stringify(moduleUrl)}; import { createHash } from 'node:crypto';
      const f = (shape, values) => ({ dtype: '<f4', shape, data: Float32Array.from(values) });
      const a = ${JSON.stringify([...(arrays[0][1] as { data: Float32Array }).data])};
      process.stdout.write(createHash('sha256').update(encodeNpz([['components', f([2, 3], a)], ['metadata', { dtype: 'str', value: '{"a":1}' }]])).digest('hex'));`;
    for (const tz of ['Pacific/Kiritimati', 'America/Los_Angeles', 'UTC']) {
      const theirs = execFileSync(process.execPath, ['--input-type=module', '-e', code], { env: { ...process.env, TZ: tz }, encoding: 'utf8' });
      assert.equal(theirs, sha, tz);
    }
    // Stored, not compressed, dated 1980-01-01 00:00 (DOS date 0x0021, time 0).
    for (const at of layout(Buffer.from(bytes)).central) {
      assert.equal(Buffer.from(bytes).readUInt16LE(at + 10), 0);
      assert.equal(Buffer.from(bytes).readUInt32LE(at + 12), 0x00210000);
    }
    assert.notDeepEqual(encodeNpz([['components', f32([2, 3])], ['metadata', str('{"a":2}')]]), bytes);
  });

  it('refuses to write bad names, a name given twice, a shape that does not match, a lone surrogate', () => {
    for (const name of ['', 'a/b', '../a', 'a\\b', 'x..y', 'tab\there', 'x'.repeat(201)]) {
      assert.throws(() => encodeNpz([[name, f32([1])]]), /npz array name .* must/, JSON.stringify(name));
    }
    assert.throws(() => encodeNpz([['a', f32([1])], ['a', str('x')]]), /'a' is given twice/);
    assert.throws(() => encodeNpz([['a', { dtype: '<f4', shape: [2, 2], data: new Float32Array(3) }]]), /3 values, shape \(2, 2\) needs 4/);
    assert.throws(() => encodeNpz([['a', str('x\ud800')]]), /lone surrogate/);
  });

  it("reads '<f8' as float32, and npy versions 2.0 and 3.0", () => {
    const b = zip({
      'd.npy': npy(dict('<f8', '(3,)'), f8([0.1, -2.5, 1e300])),
      'v2.npy': npy(dict('<f4', '(1,)'), Buffer.from(Float32Array.from([7]).buffer), [2, 0]),
      'v3.npy': npy(dict('<U2', '()'), Buffer.from(new Uint32Array([0xe9, 0x1f600]).buffer), [3, 0]),
    });
    const back = decode(b);
    assert.deepEqual(back.get('d'), f32([3], [Math.fround(0.1), -2.5, Infinity]));
    assert.deepEqual(back.get('v2'), f32([1], [7]));
    assert.deepEqual(back.get('v3'), str('é😀'));
    // A 1-element string array, as np.array([s]) saves it, is the string too.
    assert.deepEqual(decode(zip({ 's.npy': npy(dict('<U1', '(1,)'), Buffer.from(new Uint32Array([0x41]).buffer)) })).get('s'), str('A'));
  });
});

describe('numpy cross-check', () => {
  it('np.load(allow_pickle=False) reads what encodeNpz writes', (t) => {
    if (!hasNumpy()) return t.skip(NO_NUMPY);
    const dir = tempDir('spp-npz-');
    const file = join(dir, 'ours.npz');
    const meta = JSON.stringify({ dim: 4, name: 'é 😀', nested: { a: [1, 2] } });
    const arrays: Array<[string, NpzArray]> = [['components', f32([3, 4])], ['metadata', str(meta)], ['mean', f32([4])], ['empty', f32([0, 2])]];
    writeFileSync(file, encodeNpz(arrays));
    const out = JSON.parse(runPython(`
import numpy as np, json, sys
with np.load(sys.argv[1], allow_pickle=False) as f:
    res = {'files': f.files}
    for k in f.files:
        a = f[k]
        res[k] = {'dtype': a.dtype.str, 'shape': list(a.shape), 'c': bool(a.flags['C_CONTIGUOUS']),
                  'values': a.ravel().tolist() if a.dtype.kind == 'f' else None}
    res['str'] = str(f['metadata'])
    res['item'] = f['metadata'][()]
print(json.dumps(res))`, [file])) as Record<string, unknown>;
    assert.deepEqual(out.files, ['components', 'metadata', 'mean', 'empty']);
    for (const [name, a] of arrays) {
      const got = out[name] as { dtype: string; shape: number[]; c: boolean; values: number[] | null };
      if (a.dtype === 'str') {
        assert.equal(got.dtype, `<U${[...meta].length}`);
        assert.deepEqual(got.shape, []);
      } else {
        assert.deepEqual(got, { dtype: '<f4', shape: a.shape, c: true, values: [...a.data] }, name);
      }
    }
    assert.equal(out.str, meta);
    assert.equal(out.item, meta);
  });

  it("decodes np.savez's file (float32 arrays + np.array(json)) and refuses np.savez_compressed's", (t) => {
    if (!hasNumpy()) return t.skip(NO_NUMPY);
    const dir = tempDir('spp-npz-');
    const plain = join(dir, 'numpy.npz');
    const packed = join(dir, 'numpy-compressed.npz');
    const expected = JSON.parse(runPython(`
import numpy as np, json, sys
comp = (np.arange(12, dtype=np.float32).reshape(3, 4) - 5) / 7
mean = np.array([0.25, -1, 3e-8, 2], dtype=np.float32)
meta = json.dumps({'dim': 4, 'name': 'é 😀'})
np.savez(sys.argv[1], components=comp, mean=mean, metadata=np.array(meta))
np.savez_compressed(sys.argv[2], components=comp)
print(json.dumps({'components': comp.ravel().tolist(), 'mean': mean.tolist(), 'metadata': meta}))`, [plain, packed])) as { components: number[]; mean: number[]; metadata: string };
    const back = decode(readFileSync(plain));
    assert.deepEqual([...back.keys()], ['components', 'mean', 'metadata']);
    assert.deepEqual(back.get('components'), f32([3, 4], expected.components));
    assert.deepEqual(back.get('mean'), f32([4], expected.mean));
    assert.deepEqual(back.get('metadata'), str(expected.metadata));
    refuses(readFileSync(packed), /entry 'components\.npy' is compressed \(np\.savez_compressed\); save it with np\.savez/);
  });
});

describe('decodeNpz refuses hostile files', () => {
  it('every truncation of a valid file, and every single-byte corruption, fails with an NpzError or decodes', () => {
    const good = Buffer.from(encodeNpz([['components', f32([2, 3])], ['metadata', str('{"a":1}')]]));
    for (let n = 0; n < good.length; n++) {
      assert.throws(() => decode(good.subarray(0, n)), NpzError, `first ${n} bytes`);
    }
    let seed = 12345;
    const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
    for (let i = 0; i < 3000; i++) {
      const b = Buffer.from(good);
      b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
      try {
        decode(b);
      } catch (err) {
        assert.ok(err instanceof NpzError, `corruption ${i}: ${String(err)}`);
      }
    }
  });

  it('not a zip, or cut before the end record', () => {
    refuses(Buffer.from('\x93NUMPY not a zip at all'), /not a \.npz file: no zip end-of-central-directory record/);
    refuses(new Uint8Array(0), /no zip end-of-central-directory record/);
    refuses(one().subarray(0, -5), /no zip end-of-central-directory record/);
  });

  it('an entry that runs past the end of the file (the end record kept) is truncated', () => {
    const b = one();
    const [at] = layout(b).central;
    b.writeUInt32LE(b.length - 10, at! + 20);
    b.writeUInt32LE(b.length - 10, at! + 24);
    refuses(b, /entry 'a\.npy': truncated: \d+ of \d+ bytes/);
  });

  it('compressed entries (DEFLATE), even a bomb, and other compression methods', () => {
    const bomb = zip({ 'a.npy': npy(dict('<f4', '(4194304,)'), 16 * MiB) }, 9);
    assert.ok(bomb.length < 64 * 1024);
    refuses(bomb, /entry 'a\.npy' is compressed \(np\.savez_compressed\); save it with np\.savez/);
    const b = one();
    b.writeUInt16LE(14, layout(b).central[0]! + 10);
    refuses(b, /entry 'a\.npy' uses zip compression method 14/);
  });

  it('a stored entry whose two declared sizes differ', () => {
    const b = one();
    const [at] = layout(b).central;
    b.writeUInt32LE(b.readUInt32LE(at! + 24) + 1, at! + 24);
    refuses(b, /entry 'a\.npy' is stored but claims (\d+) bytes stored and (?!\1)\d+ bytes of data/);
  });

  it('declared sizes above the limit, or more than the file holds', () => {
    const b = one();
    const [at] = layout(b).central;
    b.writeUInt32LE(0xfffffff0, at! + 20);
    b.writeUInt32LE(0xfffffff0, at! + 24);
    refuses(b, /entry 'a\.npy' claims 4294967280 bytes, more than the limit of 1048576 bytes an array/);
    refuses(b, /the entries claim 4294967280 bytes, more than the file's \d+/, 2 ** 40);
    // Two directory entries pointing at the same data (each fine alone) cannot add up past the file.
    const two = zip({ 'a.npy': npy(dict('<f4', '(1000,)'), 4000), 'b.npy': npy(dict('<f4', '(1,)'), 4) });
    const { central } = layout(two);
    two.writeUInt32LE(0, central[1]! + 42);
    two.writeUInt32LE(two.readUInt32LE(central[0]! + 20), central[1]! + 20);
    two.writeUInt32LE(two.readUInt32LE(central[0]! + 24), central[1]! + 24);
    refuses(two, /entry 'b\.npy': the entries claim \d+ bytes, more than the file's/);
  });

  it("an array's shape over the limit, however large (no overflow), and data not matching the shape", () => {
    refuses(zip({ 'a.npy': npy(dict('<f4', '(1000, 1000)'), 0) }), /entry 'a\.npy': shape \(1000, 1000\) of '<f4' needs more than the limit of 1048576 bytes/);
    refuses(zip({ 'a.npy': npy(dict('<f4', `(${2 ** 53 - 1}, ${2 ** 53 - 1}, 4)`), 0) }), /needs more than the limit/);
    refuses(zip({ 'a.npy': npy(dict('<f4', '(2, 3)'), 20) }), /entry 'a\.npy': holds 20 data bytes; shape \(2, 3\) of '<f4' needs 24/);
    refuses(zip({ 'a.npy': npy(dict('<f4', '(2, 3)'), 28) }), /holds 28 data bytes; shape \(2, 3\) of '<f4' needs 24/);
    // The limit is on the data as stored: exactly at it is fine.
    assert.equal(decode(zip({ 'a.npy': npy(dict('<f4', '(256,)'), 1024) }), 1024).size, 1);
    refuses(zip({ 'a.npy': npy(dict('<f8', '(256,)'), 2048) }), /needs more than the limit of 1024 bytes/, 1024);
  });

  it('shapes with negative or non-integer dims', () => {
    refuses(zip({ 'a.npy': npy(dict('<f4', '(-1, 3)'), 0) }), /entry 'a\.npy': npy header: 'shape' must be a tuple of non-negative integers/);
    refuses(zip({ 'a.npy': npy(dict('<f4', '(1.5,)'), 0) }), /entry 'a\.npy': npy header: expected ',' or '\)'/);
    refuses(zip({ 'a.npy': npy(dict('<f4', "('2',)"), 0) }), /'shape' must be a tuple of non-negative integers/);
  });

  it('dtypes other than <f4, <f8 and <U (naming the dtype), and object arrays (pickles)', () => {
    for (const dt of ['<f2', '>f4', '<i4', '|u1', '<c8', '|b1', '|S5', '>U3']) {
      refuses(zip({ 'a.npy': npy(dict(dt, '(1,)'), 8) }), new RegExp(`dtype '\\${dt[0]}${dt.slice(1)}' is not supported`));
    }
    refuses(zip({ 'a.npy': npy(dict('|O', '(2,)'), Buffer.from('\x80\x04\x95pickle here.')) }), /entry 'a\.npy': dtype '\|O' holds Python objects \(a pickle\); refused/);
    refuses(zip({ 'a.npy': npy("{'descr': [('x', '|O')], 'fortran_order': False, 'shape': (1,), }", 8) }), /holds Python objects/);
    refuses(zip({ 'a.npy': npy("{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (1,), }", 4) }), /dtype '\[\('x', '<f4'\)\]' is not supported/);
  });

  it('Fortran order', () => {
    refuses(zip({ 'a.npy': npy(dict('<f4', '(2, 2)', 'True'), 16) }), /entry 'a\.npy': is in Fortran order; only C order is read/);
  });

  it('strings that are not one Unicode string', () => {
    refuses(zip({ 's.npy': npy(dict('<U1', '(2,)'), 8) }), /entry 's\.npy': string of shape \(2,\); expected a single string/);
    refuses(zip({ 's.npy': npy(dict('<U1', '()'), Buffer.from(new Uint32Array([0x110000]).buffer)) }), /above U\+10FFFF/);
    refuses(zip({ 's.npy': npy(dict('<U1', '()'), Buffer.from(new Uint32Array([0xdc00]).buffer)) }), /lone surrogate/);
    refuses(zip({ 's.npy': npy(dict('<U0', '()'), 0) }), /dtype '<U0' is not supported/);
  });

  it('npy versions other than 1.0, 2.0, 3.0, bad magic, and header dicts over 10000 bytes', () => {
    const data = Buffer.from(Float32Array.from([1]).buffer);
    refuses(zip({ 'a.npy': npy(dict('<f4', '(1,)'), data, [4, 0]) }), /entry 'a\.npy': unsupported \.npy format version 4\.0/);
    refuses(zip({ 'a.npy': npy(dict('<f4', '(1,)'), data, [1, 5]) }), /npy format version 1\.5 is not 1\.0, 2\.0 or 3\.0/);
    refuses(zip({ 'a.npy': Buffer.from('PK not an array') }), /entry 'a\.npy': not a \.npy file: bad magic/);
    const long = `{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'pad': '${'x'.repeat(10_000)}'}`;
    refuses(zip({ 'a.npy': npy(long, data, [2, 0]) }), /npy header dict of \d+ bytes is longer than the limit of 10000/);
  });

  it('entries not named {name}.npy, path-like names, duplicate names', () => {
    const a = npy(dict('<f4', '(1,)'), 4);
    refuses(zip({ 'a.npy': a, 'README.txt': a }), /entry 'README\.txt' is not a \.npy array/);
    refuses(zip({ 'dir/a.npy': a }), /entry 'dir\/a\.npy': an array name must not hold '\/', '\\' or '\.\.'/);
    refuses(zip({ '../a.npy': a }), /entry '\.\.\/a\.npy': an array name must not hold/);
    refuses(zip({ '..\\a.npy': a }), /an array name must not hold/);
    refuses(zip({ '.npy': a }), /entry '\.npy': an array name must be 1 to 200 characters/);
    refuses(zip({ 'a\nb.npy': a }), /entry 'a\\nb\.npy': an array name must not hold control characters/);
    const dup = zip({ 'a.npy': a, 'b.npy': a });
    const at = dup.indexOf('b.npy');
    dup.write('a', at); // local header
    dup.write('a', dup.indexOf('b.npy', at + 1)); // central directory
    refuses(dup, /entry 'a\.npy' appears twice/);
  });

  it(`more than ${NPZ_MAX_ENTRIES} entries, or a directory of 65534 entries past the end, fails at the first bad one`, () => {
    const a = npy(dict('<f4', '(1,)'), 4);
    const entries = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`x${i}.npy`, a]));
    assert.equal(decode(zip(entries(NPZ_MAX_ENTRIES))).size, NPZ_MAX_ENTRIES);
    refuses(zip(entries(NPZ_MAX_ENTRIES + 1)), new RegExp(`has more than ${NPZ_MAX_ENTRIES} entries`));
    refuses(zip(entries(5000)), new RegExp(`has more than ${NPZ_MAX_ENTRIES} entries`));
    const b = one();
    const { eocd } = layout(b);
    b.writeUInt16LE(65534, eocd + 8);
    b.writeUInt16LE(65534, eocd + 10);
    b.writeUInt32LE(b.length, eocd + 16);
    refuses(b, /entry '' is not a \.npy array/);
  });

  it('a zip64 end record (fflate would loop forever on an entry without its zip64 field)', () => {
    const b = one();
    const { eocd, central } = layout(b);
    const cdOffset = b.readUInt32LE(eocd + 16);
    b.writeUInt32LE(0xffffffff, central[0]! + 20); // "size in the zip64 field", which is missing
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(0x06064b50, 0);
    rec.writeBigUInt64LE(44n, 4);
    rec.writeBigUInt64LE(1n, 24);
    rec.writeBigUInt64LE(1n, 32);
    rec.writeBigUInt64LE(BigInt(b.readUInt32LE(eocd + 12)), 40);
    rec.writeBigUInt64LE(BigInt(cdOffset), 48);
    const locator = Buffer.alloc(20);
    locator.writeUInt32LE(0x07064b50, 0);
    locator.writeBigUInt64LE(BigInt(eocd), 8);
    locator.writeUInt32LE(1, 16);
    const end = Buffer.from(b.subarray(eocd));
    end.writeUInt16LE(0xffff, 8);
    end.writeUInt16LE(0xffff, 10);
    end.writeUInt32LE(0xffffffff, 16);
    const trap = Buffer.concat([b.subarray(0, eocd), rec, locator, end]);
    // In a child with a timeout: without the guard this never returns, and a timer cannot stop it here.
    const moduleUrl = new URL('../../src/pca/npz.js', import.meta.url).href;
    const code = `import { decodeNpz } from ${JSON.stringify(moduleUrl)};
      try { decodeNpz(Buffer.from(process.argv[1], 'base64'), { maxArrayBytes: 1 << 20, source: 'proj.npz' }); console.log('decoded'); }
      catch (e) { console.log(e.name + ': ' + e.message); }`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', code, trap.toString('base64')], { encoding: 'utf8', timeout: 30_000 });
    assert.match(out, /^NpzError: proj\.npz: is a zip64 archive/);
    // The offset alone marks it too.
    const c = one();
    c.writeUInt32LE(0xffffffff, layout(c).eocd + 16);
    refuses(c, /is a zip64 archive/);
  });

  it('errors stay one line when the source name holds a newline; a bad limit is a programming error', () => {
    assert.throws(() => decodeNpz(Buffer.from('x'), { maxArrayBytes: 1, source: 'a\nb.npz' }), (e: unknown) => e instanceof NpzError && e.message.startsWith('a\\nb.npz: not a .npz file'));
    assert.throws(() => decodeNpz(one(), { maxArrayBytes: -1, source: SOURCE }), (e: unknown) => !(e instanceof NpzError) && /maxArrayBytes must be a non-negative integer/.test(String(e)));
  });
});
