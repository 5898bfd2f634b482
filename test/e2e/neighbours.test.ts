/**
 * examples/neighbours.py (docs/using-the-output.md), numpy variant, on the tiny model: its neighbours
 * and duplicates equal cosines computed here from the .npy, and a byte copy of an image is found as
 * a near-duplicate. Needs python3 with numpy (skips without); the faiss variant is checked against it
 * when faiss is importable. npm run e2e:neighbours runs both on real photos.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli } from '../helpers/cli.js';
import { readJsonl } from '../helpers/jsonl.js';
import { hasNumpy, NO_NUMPY } from '../helpers/python.js';
import { REPO_ROOT, fixture } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

const PYTHON = process.env.PYTHON ?? 'python3';
const SCRIPT = join(REPO_ROOT, 'examples', 'neighbours.py');

interface Result {
  rows: number;
  neighbours: { path: string; neighbours: { path: string; cosine: number }[] }[];
  duplicates: { a: string; b: string; cosine: number }[];
}

function example(dir: string, args: string[]): Result {
  return JSON.parse(execFileSync(PYTHON, [SCRIPT, 'feats.npy', ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000 })) as Result;
}

/** Rows of a float32 [N, D] .npy, L2-normalised, read without numpy. */
function unitRows(path: string): Float64Array[] {
  const buf = readFileSync(path);
  const headerLen = buf.readUInt16LE(8);
  const m = /'shape': \((\d+), (\d+)\)/.exec(buf.subarray(10, 10 + headerLen).toString('latin1'))!;
  const [n, d] = [Number(m[1]), Number(m[2])];
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset + 10 + headerLen, buf.byteOffset + 10 + headerLen + n * d * 4));
  return Array.from({ length: n }, (_, i) => {
    const row = Float64Array.from(data.subarray(i * d, (i + 1) * d));
    const norm = Math.hypot(...row);
    return row.map((v) => v / norm);
  });
}

test('examples/neighbours.py: neighbours and near-duplicates equal the cosines of the .npy; a copied image is its duplicate', async (t) => {
  if (!hasNumpy()) return t.skip(NO_NUMPY);
  const dir = tempDir('spp-neighbours-');
  mkdirSync(join(dir, 'images'));
  for (const f of ['noise-100x70.jpg', 'red-64x48.png', 'nested/gray-100x70.webp', 'nested/blue-alpha-40x90.png']) {
    copyFileSync(fixture('images', f), join(dir, 'images', f.replace('nested/', '')));
  }
  copyFileSync(fixture('images', 'noise-100x70.jpg'), join(dir, 'images', 'zz-copy.jpg'));
  const run = await runCli(['images', '-o', 'feats.npy', '--model', fixture('tiny-layers'), '-q'], { cwd: dir, env: { XDG_CACHE_HOME: join(dir, 'cache'), HOME: dir } });
  assert.equal(run.code, 0, run.stderr);

  const paths = readJsonl(join(dir, 'feats.manifest.jsonl')).filter((r) => r.type === 'row').map((r) => r.path as string);
  const x = unitRows(join(dir, 'feats.npy'));
  const cos = (i: number, j: number) => x[i]!.reduce((s, v, c) => s + v * x[j]![c]!, 0);
  const threshold = 0.99;
  const r = example(dir, ['-k', '2', '--threshold', String(threshold)]);
  assert.equal(r.rows, paths.length);

  const expectedPairs = [];
  for (let i = 0; i < x.length; i++) for (let j = i + 1; j < x.length; j++) if (cos(i, j) >= threshold) expectedPairs.push(`${paths[i]} ${paths[j]}`);
  assert.deepEqual(r.duplicates.map((d) => `${d.a} ${d.b}`).sort(), expectedPairs.sort());
  const dup = r.duplicates.find((d) => d.b === 'images/zz-copy.jpg');
  assert.equal(dup?.a, 'images/noise-100x70.jpg', 'the byte copy pairs with its original');
  assert.ok(Math.abs(dup.cosine - 1) < 1e-5, `cosine of a copy: ${dup.cosine}`);

  r.neighbours.forEach((q, i) => {
    assert.equal(q.path, paths[i]);
    const others = paths.map((_, j) => j).filter((j) => j !== i).sort((a, b) => cos(i, b) - cos(i, a));
    assert.deepEqual(q.neighbours.map((n) => n.cosine.toFixed(4)), others.slice(0, 2).map((j) => cos(i, j).toFixed(4)), `neighbours of ${q.path}`);
  });
  assert.equal(r.neighbours.find((q) => q.path === 'images/zz-copy.jpg')?.neighbours[0]?.path, 'images/noise-100x70.jpg');

  if (spawnSync(PYTHON, ['-c', 'import faiss'], { stdio: 'ignore' }).status !== 0) {
    t.diagnostic('faiss not importable (pip install faiss-cpu): its variant is checked by npm run e2e:neighbours');
    return;
  }
  const f = example(dir, ['-k', '2', '--threshold', String(threshold), '--backend', 'faiss']);
  assert.deepEqual(f.duplicates.map((d) => `${d.a} ${d.b}`).sort(), expectedPairs.sort(), 'faiss: the same duplicates');
  f.neighbours.forEach((q, i) => assert.deepEqual(q.neighbours.map((n) => n.cosine.toFixed(4)), r.neighbours[i]!.neighbours.map((n) => n.cosine.toFixed(4))));
});
