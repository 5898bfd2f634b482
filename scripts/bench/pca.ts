/**
 * `npm run bench:pca`: the learned projection (fit-pca / extract --pca) in three sections, each
 * runnable alone; prints markdown tables and writes every figure to a JSON file.
 *
 *   node dist/scripts/bench/pca.js [--only quality,fit,extract] [--json OUT.json]
 *                                  [--repeats N (B, default 3)] [--pairs N (C, default 7)]
 *
 * A. quality: keras v1 α0.75 and keras v2 α0.35, levels 1,2,4, max. The split of
 *    scripts/pca_quality.py: within each class folder of images/labelled, the class's paths sorted
 *    by their bytes, even index → FIT half, odd → EVAL half. Each half is extracted once by the
 *    CLI (paths on stdin); `spp-extract fit-pca fit.npy --dim K [--whiten]` (pre l2, the default) for
 *    K = 32, 64, 128, 249 (256 is impossible with 250 fitting rows); both halves projected with the
 *    library's openProjector (the product extract --pca runs). On EVAL: leave-one-out 1-NN and mAP
 *    by cosine; a logistic-regression probe trained on the FIT half (pca-metrics.ts). Compared with
 *    scripts/pca_quality.json (same split, scikit-learn full-solver PCA), and the probe itself with
 *    scikit-learn's LogisticRegression(C=1) on two settings.
 * B. fit: a synthetic float32 matrix of 20,000 × 26,880 (D of keras v2 α0.35 at levels 1,2,4),
 *    generated once by numpy from a fixed seed: a non-negative mean, 512 latent directions with
 *    variances j^-0.8 and isotropic noise carrying 20 % of the variance (top-32 share ≈ 0.34,
 *    top-256 ≈ 0.66; the real descriptors' top-32 share is 0.39). At N = 10,000 (the first rows),
 *    alternating, --repeats each: scikit-learn PCA(256, 'randomized', random_state=0).fit in a
 *    python3 child (fit timed alone), and the tool's fit in a node child (pca-fit-child.ts: the
 *    column-mean pass plus fitPcaRows, threads = available cores); medians, ratio, agreement
 *    (explained variance, principal angles). Peak RSS of each child at N = 2,500 / 10,000 / 20,000.
 *    The matrix is deleted at the end.
 * C. extract: wall time of the whole command (spawn to exit) on the 500 photos, with and without
 *    --pca (a K=128 projection fitted on the same photos beforehand, untimed), --pairs pairs
 *    alternating (the first of each pair swaps every pair), both models; medians and ratio.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, statfsSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { readProjection } from '../../src/pca/file.js';
import { openProjector } from '../../src/pca/projector.js';
import {
  CLI, REPO, fmt, labelledPhotos, machineLine, makeTempDir, median, removeDir, reproduceLine, requirePaths, runNode,
  sharedDir, tail,
} from './common.js';
import { fitProbe, probeAccuracy, probeFeatures, probeProba, retrieval } from './pca-metrics.js';

const SCRIPT = 'dist/scripts/bench/pca.js';
const SECTIONS = ['quality', 'fit', 'extract'] as const;
type Section = (typeof SECTIONS)[number];

const { values: opt } = parseArgs({
  options: {
    only: { type: 'string' },
    json: { type: 'string' },
    repeats: { type: 'string', default: '3' },
    pairs: { type: 'string', default: '7' },
  },
  strict: true,
});
const only = (opt.only ?? SECTIONS.join(',')).split(',').map((s) => s.trim()) as Section[];
for (const s of only) if (!SECTIONS.includes(s)) throw new Error(`--only: ${s} is not one of ${SECTIONS.join(', ')}`);
const JSON_OUT = resolve(opt.json ?? join(tmpdir(), 'spp-extract-bench-pca.json'));
const REPEATS = Number(opt.repeats);
const PAIRS = Number(opt.pairs);

const MODELS = [
  { key: 'v1', name: 'keras v1 α0.75', dir: join(sharedDir(), 'models', 'keras-mobilenet_v1_0.75_224') },
  { key: 'v2', name: 'keras v2 α0.35', dir: join(sharedDir(), 'models', 'keras-mobilenet_v2_0.35_224-in-classifier') },
];
const KS = [32, 64, 128, 249];
const kLabel = (k: number) => (k === 249 ? '256→249' : String(k));
const WHITEN = [null, 10] as const;

const results: Record<string, unknown> = { machine: machineLine(), command: reproduceLine(SCRIPT, 'bench:pca') };
const saveJson = () => writeFileSync(JSON_OUT, `${JSON.stringify(results, null, 1)}\n`);

function md(header: string[], rows: (string | number)[][]): string {
  const align = header.map((_, i) => (rows.every((r) => /^[\d.\s×%–+−-]*$/.test(String(r[i] ?? ''))) ? '---:' : '---'));
  return [`| ${header.join(' | ')} |`, `|${align.join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

function python(code: string, args: string[], what: string): string {
  const r = spawnSync('python3', ['-c', code, ...args], { encoding: 'utf8', maxBuffer: 256 * 2 ** 20 });
  if (r.status !== 0) throw new Error(`${what}: python3 failed (${r.status}):\n${tail(r.stderr ?? '', 20)}`);
  return r.stdout;
}

// ---------------------------------------------------------------- .npy reading / writing

interface Npy { rows: number; dim: number; data: Float32Array }

function readNpy(path: string): Npy {
  const buf = readFileSync(path);
  if (buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${path}: not a .npy file`);
  const major = buf[6]!;
  const len = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const h = buf.toString('latin1', start, start + len);
  if (!/'descr':\s*'<f4'/.test(h)) throw new Error(`${path}: expected float32, got ${h}`);
  const shape = /'shape':\s*\((\d+),\s*(\d+)\)/.exec(h)!;
  const rows = Number(shape[1]);
  const dim = Number(shape[2]);
  const bytes = buf.subarray(start + len, start + len + rows * dim * 4);
  const data = new Float32Array(rows * dim);
  new Uint8Array(data.buffer).set(bytes);
  return { rows, dim, data };
}

/** Header fields of a .npy (shape), without reading its data. */
function npyShape(path: string): number[] {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(512);
    readSync(fd, b, 0, 512, 0);
    const m = /'shape':\s*\(([^)]*)\)/.exec(b.toString('latin1'));
    return m ? m[1]!.split(',').filter((s) => s.trim()).map(Number) : [];
  } finally {
    closeSync(fd);
  }
}

/** A float64 or float32 row-major matrix as a .npy file (for the scikit-learn checks). */
function writeNpy(path: string, rows: readonly ArrayLike<number>[], dtype: 'f4' | 'f8'): void {
  const n = rows.length;
  const d = rows[0]!.length;
  let header = `{'descr': '<${dtype}', 'fortran_order': False, 'shape': (${n}, ${d}), }`;
  header += ' '.repeat(64 - ((10 + header.length + 1) % 64)) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const data = dtype === 'f4' ? new Float32Array(n * d) : new Float64Array(n * d);
  rows.forEach((r, i) => data.set(r, i * d));
  writeFileSync(path, Buffer.concat([head, Buffer.from(header, 'latin1'), Buffer.from(data.buffer)]));
}

/** Row number → path, from the manifest beside an output (.manifest.jsonl). */
function manifestPaths(npy: string): Map<number, string> {
  const lines = readFileSync(npy.replace(/\.npy$/, '.manifest.jsonl'), 'utf8').split('\n').filter(Boolean);
  const out = new Map<number, string>();
  for (const line of lines.slice(1)) {
    const rec = JSON.parse(line) as { row?: number; path?: string };
    if (typeof rec.row === 'number' && typeof rec.path === 'string') out.set(rec.row, resolve(rec.path));
  }
  return out;
}

function manifestHeader(npy: string): Record<string, unknown> {
  return JSON.parse(readFileSync(npy.replace(/\.npy$/, '.manifest.jsonl'), 'utf8').split('\n')[0]!) as Record<string, unknown>;
}

// ---------------------------------------------------------------- A. quality

interface Photo { path: string; label: string }

/** scripts/pca_quality.py's split: per class, paths sorted by bytes, even → fit, odd → eval. */
function splitPhotos(paths: readonly string[]): { fit: Photo[]; eval: Photo[] } {
  const byClass = new Map<string, string[]>();
  for (const p of paths) {
    const label = basename(dirname(p));
    byClass.set(label, [...(byClass.get(label) ?? []), p]);
  }
  const fit: Photo[] = [];
  const ev: Photo[] = [];
  for (const label of [...byClass.keys()].sort()) {
    const sorted = byClass.get(label)!.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    sorted.forEach((path, i) => (i % 2 === 0 ? fit : ev).push({ path, label }));
  }
  return { fit, eval: ev };
}

async function extractHalf(model: string, photos: Photo[], out: string, tmp: string): Promise<{ rows: Float32Array[]; labels: string[]; header: Record<string, unknown> }> {
  const run = await runNode([CLI, '-', '-o', out, '--model', model, '--levels', '1,2,4', '--pool', 'max', '-q', '--force'], {
    input: `${photos.map((p) => p.path).join('\n')}\n`, tmp,
  });
  if (run.code !== 0) throw new Error(`extract ${out} failed:\n${tail(run.stderr)}`);
  const npy = readNpy(out);
  const rowPath = manifestPaths(out);
  const labelOf = new Map(photos.map((p) => [resolve(p.path), p.label]));
  const rows: Float32Array[] = [];
  const labels: string[] = [];
  for (let r = 0; r < npy.rows; r++) {
    const label = labelOf.get(rowPath.get(r)!);
    if (label === undefined) throw new Error(`${out}: row ${r} (${rowPath.get(r)}) is not in this half`);
    rows.push(npy.data.subarray(r * npy.dim, (r + 1) * npy.dim));
    labels.push(label);
  }
  if (rows.length !== photos.length) throw new Error(`${out}: ${rows.length} rows for ${photos.length} photos`);
  return { rows, labels, header: manifestHeader(out) };
}

/** Variance share of the top K on the FIT half (pre l2): scikit-learn full solver and randomized (the tool's algorithm). */
const SKLEARN_SHARES = `
import json, sys, numpy as np
from sklearn.decomposition import PCA
x = np.load(sys.argv[1]).astype(np.float64)
x /= np.linalg.norm(x, axis=1, keepdims=True)
ks = [int(k) for k in sys.argv[2].split(',')]
full = PCA(n_components=max(ks), svd_solver='full').fit(x).explained_variance_ratio_
rand = {k: float(PCA(n_components=k, svd_solver='randomized', random_state=0).fit(x).explained_variance_ratio_.sum()) for k in ks}
print(json.dumps({str(k): dict(full=float(full[:k].sum()), randomized=rand[k]) for k in ks}))
`;

interface QualityRow {
  model: string; desc: string; k: number | null; kLabel: string; whiten: number | null;
  bytesPerImageF16: number; nn1: number; map: number; probe: number; probeConverged: boolean; probeIterations: number;
  fitWallS?: number; varianceKept?: number; skShare?: { full: number; randomized: number };
  python?: { desc: string; nn1: number; map: number; probe: number } | null;
}

interface PyStudy { models: { model: string; layer: string; dim: number; results: { desc: string; nn1: number; map: number; probe: number }[] }[] }

function pythonFigure(study: PyStudy | undefined, model: string, desc: string) {
  const m = study?.models.find((x) => resolve(x.model) === resolve(model));
  const r = m?.results.find((x) => x.desc === desc);
  return r ? { desc: r.desc, nn1: r.nn1, map: r.map, probe: r.probe } : null;
}

function evaluate(fit: { rows: ArrayLike<number>[]; labels: string[] }, ev: { rows: ArrayLike<number>[]; labels: string[] }) {
  const { nn1, map } = retrieval(ev.rows, ev.labels);
  const f = probeFeatures(fit.rows, ev.rows);
  const model = fitProbe(f.train, fit.labels);
  return { nn1, map, probe: probeAccuracy(model, f.test, ev.labels), model, features: f };
}

const SKLEARN_PROBE = `
import json, sys, warnings, numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.exceptions import ConvergenceWarning
d = sys.argv[1]
xf = np.load(d + '/xf.npy').astype(np.float64); xe = np.load(d + '/xe.npy').astype(np.float64)
lf = np.array(json.load(open(d + '/lf.json'))); le = np.array(json.load(open(d + '/le.json')))
pt = np.load(d + '/proba_ts.npy')
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter('always', ConvergenceWarning)
    clf = LogisticRegression(max_iter=2000, C=1.0).fit(xf, lf)
conv = not any(issubclass(x.category, ConvergenceWarning) for x in w)
clf2 = LogisticRegression(max_iter=100000, C=1.0, tol=1e-10).fit(xf, lf)
def obj(c):
    p = c.predict_proba(xf)
    idx = np.searchsorted(c.classes_, lf)
    return float(-np.log(p[np.arange(len(lf)), idx]).sum() + 0.5 * (c.coef_ ** 2).sum())
pe, pe2 = clf.predict_proba(xe), clf2.predict_proba(xe)
ts_pred = clf.classes_[np.argmax(pt, axis=1)]
print(json.dumps(dict(
    acc=float(np.mean(clf.predict(xe) == le)), converged=conv, n_iter=int(clf.n_iter_[0]), objective=obj(clf),
    acc_tight=float(np.mean(clf2.predict(xe) == le)), objective_tight=obj(clf2),
    max_abs_proba_diff_default=float(np.abs(pe - pt).max()), max_abs_proba_diff_tight=float(np.abs(pe2 - pt).max()),
    pred_disagree_default=int(np.sum(ts_pred != clf.predict(xe))), pred_disagree_tight=int(np.sum(ts_pred != clf2.predict(xe))))))
`;

async function probeCheck(name: string, fit: { rows: ArrayLike<number>[]; labels: string[] }, ev: { rows: ArrayLike<number>[]; labels: string[] }) {
  const r = evaluate(fit, ev);
  const dir = makeTempDir('spp-pca-probe-');
  try {
    writeNpy(join(dir, 'xf.npy'), fit.rows, 'f4');
    writeNpy(join(dir, 'xe.npy'), ev.rows, 'f4');
    writeFileSync(join(dir, 'lf.json'), JSON.stringify(fit.labels));
    writeFileSync(join(dir, 'le.json'), JSON.stringify(ev.labels));
    writeNpy(join(dir, 'proba_ts.npy'), probeProba(r.model, r.features.test), 'f8');
    const sk = JSON.parse(python(SKLEARN_PROBE, [dir], 'probe check')) as Record<string, number | boolean>;
    return { setting: name, ts: { acc: r.probe, objective: r.model.objective, iterations: r.model.iterations, gradMax: r.model.gradMax, converged: r.model.converged }, sklearn: sk };
  } finally {
    removeDir(dir);
  }
}

async function quality(): Promise<void> {
  console.log('## A. Quality: fit on the FIT half (250 photos), metrics on the EVAL half (250)\n');
  const photos = labelledPhotos();
  requirePaths(MODELS.map((m) => m.dir), 'bench:pca quality');
  const split = splitPhotos(photos);
  const studyPath = join(REPO, 'scripts', 'pca_quality.json');
  const study = existsSync(studyPath) ? (JSON.parse(readFileSync(studyPath, 'utf8')) as PyStudy) : undefined;
  const out: QualityRow[] = [];
  const checks: unknown[] = [];
  const tmp = makeTempDir('spp-pca-quality-');
  try {
    for (const m of MODELS) {
      const fit = await extractHalf(m.dir, split.fit, join(tmp, `${m.key}-fit.npy`), tmp);
      const ev = await extractHalf(m.dir, split.eval, join(tmp, `${m.key}-eval.npy`), tmp);
      const dim = fit.rows[0]!.length;
      const t0 = performance.now();
      const raw = evaluate(fit, ev);
      console.error(`  ${m.key} raw: ${((performance.now() - t0) / 1000).toFixed(1)} s, probe ${raw.model.iterations} L-BFGS iterations`);
      out.push({
        model: m.name, desc: 'raw', k: null, kLabel: `raw (${dim})`, whiten: null, bytesPerImageF16: 2 * dim,
        nn1: raw.nn1, map: raw.map, probe: raw.probe, probeConverged: raw.model.converged, probeIterations: raw.model.iterations,
        python: pythonFigure(study, m.dir, 'raw'),
      });
      if (m.key === 'v2') checks.push(await probeCheck(`${m.name} raw (D=${dim})`, fit, ev));
      const shares = JSON.parse(python(SKLEARN_SHARES, [join(tmp, `${m.key}-fit.npy`), KS.join(',')], 'variance shares')) as Record<string, { full: number; randomized: number }>;
      for (const k of KS) {
        for (const whiten of WHITEN) {
          const proj = join(tmp, `${m.key}-k${k}-${whiten ?? 'none'}.npz`);
          const args = [CLI, 'fit-pca', join(tmp, `${m.key}-fit.npy`), '--dim', String(k), '--pca-pre', 'l2', '-o', proj, '-q', '--force'];
          if (whiten !== null) args.push('--whiten', String(whiten));
          const run = await runNode(args, { tmp });
          if (run.code !== 0) throw new Error(`fit-pca failed:\n${tail(run.stderr)}`);
          const projection = await readProjection(proj);
          if (projection.meta.samples !== fit.rows.length) throw new Error(`${proj}: fitted on ${projection.meta.samples} rows`);
          const projector = await openProjector(projection, 1);
          const pf = { rows: await projector.project(fit.rows), labels: fit.labels };
          const pe = { rows: await projector.project(ev.rows), labels: ev.labels };
          await projector.dispose();
          const r = evaluate(pf, pe);
          const desc = `pca pre=l2 K=${k === 249 ? '249 (for 256)' : k} whiten=${whiten === null ? 'none' : `a=${whiten}`}`;
          out.push({
            model: m.name, desc, k, kLabel: kLabel(k), whiten, bytesPerImageF16: 2 * k,
            nn1: r.nn1, map: r.map, probe: r.probe, probeConverged: r.model.converged, probeIterations: r.model.iterations,
            fitWallS: run.wallMs / 1000, varianceKept: projection.meta.varianceKept, skShare: shares[String(k)],
            python: pythonFigure(study, m.dir, desc),
          });
          if (m.key === 'v2' && k === 128 && whiten === null) checks.push(await probeCheck(`${m.name} K=128 l2 no whitening`, pf, pe));
        }
      }
    }
  } finally {
    removeDir(tmp);
  }
  const pct = (x: number) => fmt(100 * x, 1);
  const img = (a: number, b: number | undefined) => (b === undefined ? '–' : `${Math.round(250 * (a - b)) >= 0 ? '+' : '−'}${Math.abs(Math.round(250 * (a - b)))}`);
  for (const m of MODELS) {
    const rows = out.filter((r) => r.model === m.name);
    console.log(`### ${m.name} (levels 1,2,4 max; pre l2 for the projections)\n`);
    console.log(md(
      ['descriptor', 'whiten', 'bytes/img fp16', 'var kept: tool / sk rand / sk full', '1-NN', 'mAP', 'probe', 'py 1-NN', 'py mAP', 'py probe', 'Δ imgs 1-NN / probe'],
      rows.map((r) => [
        r.kLabel, r.k === null ? '–' : r.whiten === null ? 'none' : `α ${r.whiten}`, r.bytesPerImageF16,
        r.varianceKept === undefined ? '–' : `${fmt(100 * r.varianceKept, 2)} / ${fmt(100 * r.skShare!.randomized, 2)} / ${fmt(100 * r.skShare!.full, 2)}`,
        pct(r.nn1), pct(r.map), `${pct(r.probe)}${r.probeConverged ? '' : ' (nc)'}`,
        r.python ? pct(r.python.nn1) : '–', r.python ? pct(r.python.map) : '–', r.python ? pct(r.python.probe) : '–',
        r.python ? `${img(r.nn1, r.python.nn1)} / ${img(r.probe, r.python.probe)}` : '–',
      ]),
    ));
    const raw = rows.find((r) => r.k === null)!;
    console.log('\nGoal at K=128 (1-NN ≥ raw, mAP ≥ raw + 3 points):');
    for (const r of rows.filter((x) => x.k === 128)) {
      const okNn = r.nn1 >= raw.nn1;
      const okMap = 100 * (r.map - raw.map) >= 3;
      console.log(`- ${r.whiten === null ? 'no whitening' : `whiten α ${r.whiten}`}: 1-NN ${pct(r.nn1)} vs ${pct(raw.nn1)} ${okNn ? 'MET' : 'MISSED'}; ` +
        `mAP ${pct(r.map)} vs ${pct(raw.map)} (${100 * (r.map - raw.map) >= 0 ? '+' : ''}${fmt(100 * (r.map - raw.map), 1)}) ${okMap ? 'MET' : 'MISSED'}`);
    }
    console.log('');
  }
  console.log('py = scripts/pca_quality.json (numpy/scikit-learn, full-solver PCA, same split); Δ imgs = (tool − py) in EVAL images (1 image = 0.4 points).');
  console.log('var kept: share of the FIT half\'s variance in the K components: the tool\'s fit, scikit-learn PCA(svd_solver=\'randomized\', random_state=0) (the same algorithm and iteration rule), and the exact (full) solver the py figures used.');
  console.log('Probe: multinomial logistic regression, Σ cross-entropy + ½‖W‖², L-BFGS to max |gradient| ≤ 1e-6 (raw descriptors solved exactly in the span of the 250 training rows).\n');
  console.log('Probe implementation vs scikit-learn LogisticRegression(C=1) on the same features (default max_iter=2000, and tol=1e-10 for a tight reference):\n');
  console.log(md(['setting', 'ts acc', 'sk acc', 'sk acc (tight)', 'ts objective', 'sk objective', 'sk objective (tight)', 'max |Δp| vs sk / tight', 'pred. differ vs sk / tight'],
    (checks as { setting: string; ts: { acc: number; objective: number }; sklearn: Record<string, number> }[]).map((c) => [
      c.setting, pct(c.ts.acc), pct(c.sklearn.acc!), pct(c.sklearn.acc_tight!), fmt(c.ts.objective, 4), fmt(c.sklearn.objective!, 4), fmt(c.sklearn.objective_tight!, 4),
      `${c.sklearn.max_abs_proba_diff_default!.toExponential(1)} / ${c.sklearn.max_abs_proba_diff_tight!.toExponential(1)}`,
      `${c.sklearn.pred_disagree_default} / ${c.sklearn.pred_disagree_tight}`,
    ])));
  console.log('');
  results.quality = { split: 'per class, paths sorted by bytes; even index -> fit, odd -> eval', rows: out, probeChecks: checks };
  saveJson();
}

// ---------------------------------------------------------------- B. fit speed and memory

const FIT_N = 10_000;
const RSS_NS = [2_500, 10_000, 20_000];
const FIT_D = 26_880;
const FIT_K = 256;

const GENERATE = `
import sys, numpy as np
path, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = 512
rng = np.random.default_rng(20260)
lam = np.arange(1, r + 1, dtype=np.float64) ** -0.8
basis = rng.standard_normal((r, d), dtype=np.float32) / np.float32(np.sqrt(d))
sig = np.sqrt(lam).astype(np.float32)
mu = np.abs(rng.standard_normal(d, dtype=np.float32))
noise = np.float32(np.sqrt(0.25 * lam.sum() / d))
out = np.lib.format.open_memmap(path, mode='w+', dtype='<f4', shape=(n, d))
for s in range(0, n, 500):
    c = min(500, n - s)
    z = rng.standard_normal((c, r), dtype=np.float32) * sig
    block = z @ basis
    block += mu
    block += noise * rng.standard_normal((c, d), dtype=np.float32)
    out[s:s + c] = block
out.flush()
del out
`;

const SKLEARN_FIT = `
import json, sys, time, resource, numpy as np
from threadpoolctl import threadpool_info
from sklearn.decomposition import PCA
path, n, k, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
with open(path, 'rb') as f:
    major, minor = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read(f)
    X = np.fromfile(f, dtype=dtype, count=n * shape[1]).reshape(n, shape[1])
t0 = time.perf_counter()
p = PCA(n_components=k, svd_solver='randomized', random_state=0).fit(X)
t = time.perf_counter() - t0
if out:
    np.save(out, p.components_.astype(np.float32))
print(json.dumps(dict(fitS=t, maxRssKiB=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    threads=[f"{i['internal_api']}:{i['num_threads']}" for i in threadpool_info()], dtype=str(X.dtype),
    explainedVariance=p.explained_variance_.tolist(),
    totalVariance=float(p.explained_variance_[0] / p.explained_variance_ratio_[0]))))
`;

const AGREE = `
import json, sys, numpy as np
t = np.fromfile(sys.argv[1], dtype='<f4').reshape(int(sys.argv[3]), -1).astype(np.float64)
s = np.load(sys.argv[2]).astype(np.float64)
res = {}
for j in (10, 32, 64, 128, 256):
    sv = np.clip(np.linalg.svd(t[:j] @ s[:j].T, compute_uv=False), 0, 1)
    res[str(j)] = dict(minCos=float(sv.min()), maxAngleDeg=float(np.degrees(np.arccos(sv.min()))), meanCos2=float((sv ** 2).mean()))
res['componentAbsCos'] = np.abs(np.sum(t * s, axis=1)).tolist()
print(json.dumps(res))
`;

interface ToolFit { fitS: number; meanS: number; maxRssKiB: number; explainedVariance: number[]; totalVariance: number; blockRows: number; threads: number }
interface SkFit { fitS: number; maxRssKiB: number; threads: string[]; explainedVariance: number[]; totalVariance: number; dtype: string }

async function toolFit(matrix: string, n: number, tmp: string, components = ''): Promise<ToolFit> {
  const args = [join(REPO, 'dist', 'scripts', 'bench', 'pca-fit-child.js'), matrix, String(n), String(FIT_K), String(availableParallelism())];
  if (components) args.push(components);
  const run = await runNode(args, { tmp });
  if (run.code !== 0) throw new Error(`tool fit failed:\n${tail(run.stderr)}`);
  return JSON.parse(run.stdout.trim().split('\n').at(-1)!) as ToolFit;
}

function skFit(matrix: string, n: number, components = ''): SkFit {
  return JSON.parse(python(SKLEARN_FIT, [matrix, String(n), String(FIT_K), components], 'sklearn fit').trim().split('\n').at(-1)!) as SkFit;
}

async function fitBench(): Promise<void> {
  console.log(`## B. Fit speed and memory: K = ${FIT_K}, D = ${FIT_D}, synthetic float32 matrix\n`);
  const tmp = makeTempDir('spp-pca-fit-');
  const maxN = Math.max(...RSS_NS);
  const need = maxN * FIT_D * 4 + 200 * 2 ** 20;
  const fsStat = statfsSync(tmp);
  const free = fsStat.bavail * fsStat.bsize;
  console.log(`temp dir ${tmp}: ${fmt(free / 2 ** 30, 1)} GiB free, the matrix needs ${fmt(need / 2 ** 30, 2)} GiB`);
  if (free < need * 1.5) {
    console.log('B skipped: not enough free disk in the temp dir');
    removeDir(tmp);
    return;
  }
  const matrix = join(tmp, 'x.npy');
  try {
    const t0 = performance.now();
    python(GENERATE, [matrix, String(maxN), String(FIT_D)], 'generate');
    console.log(`generated ${maxN} × ${FIT_D} in ${fmt((performance.now() - t0) / 1000, 1)} s (numpy, seed 20260); timings use the first ${FIT_N} rows\n`);
    const tool: ToolFit[] = [];
    const sk: SkFit[] = [];
    const toolComp = join(tmp, 'tool.f32');
    const skComp = join(tmp, 'sk.npy');
    for (let r = 0; r < REPEATS; r++) {
      const first = r === 0;
      if (r % 2 === 0) {
        sk.push(skFit(matrix, FIT_N, first ? skComp : ''));
        tool.push(await toolFit(matrix, FIT_N, tmp, first ? toolComp : ''));
      } else {
        tool.push(await toolFit(matrix, FIT_N, tmp));
        sk.push(skFit(matrix, FIT_N));
      }
      console.error(`  round ${r + 1}: sklearn ${fmt(sk.at(-1)!.fitS, 2)} s, tool ${fmt(tool.at(-1)!.meanS, 2)} + ${fmt(tool.at(-1)!.fitS, 2)} s`);
    }
    const agree = JSON.parse(python(AGREE, [toolComp, skComp, String(FIT_K)], 'agreement')) as Record<string, { minCos: number; maxAngleDeg: number; meanCos2: number }> & { componentAbsCos: number[] };
    const skMed = median(sk.map((s) => s.fitS));
    const toolFitMed = median(tool.map((t) => t.fitS));
    const toolMeanMed = median(tool.map((t) => t.meanS));
    const toolTotalMed = median(tool.map((t) => t.fitS + t.meanS));
    console.log(md(['fit (N = 10,000)', 'runs (s)', 'median (s)', 'threads'], [
      ['scikit-learn PCA randomized (fit only, X in memory)', sk.map((s) => fmt(s.fitS, 2)).join(', '), fmt(skMed, 2), sk[0]!.threads.join(' ')],
      ['tool: column-mean pass', tool.map((t) => fmt(t.meanS, 2)).join(', '), fmt(toolMeanMed, 2), '1 (JS)'],
      ['tool: fitPcaRows', tool.map((t) => fmt(t.fitS, 2)).join(', '), fmt(toolFitMed, 2), `${tool[0]!.threads} (ORT)`],
      ['tool: mean pass + fitPcaRows', tool.map((t) => fmt(t.fitS + t.meanS, 2)).join(', '), fmt(toolTotalMed, 2), ''],
    ]));
    const ratio = toolTotalMed / skMed;
    console.log(`\nratio tool / scikit-learn: ${fmt(ratio, 2)}× with the mean pass, ${fmt(toolFitMed / skMed, 2)}× fitPcaRows alone (goal ≤ 2×: ${ratio <= 2 ? 'MET' : 'MISSED'})\n`);
    const evT = tool[0]!.explainedVariance;
    const evS = sk[0]!.explainedVariance;
    const rel = (j: number) => Math.abs(evT[j]! - evS[j]!) / evS[j]!;
    const maxRel = (upTo: number) => Math.max(...Array.from({ length: upTo }, (_, j) => rel(j)));
    const sumRel = (upTo: number) => {
      const a = evT.slice(0, upTo).reduce((x, y) => x + y, 0);
      const b = evS.slice(0, upTo).reduce((x, y) => x + y, 0);
      return (a - b) / b;
    };
    console.log(md(['top j', 'max |Δλ|/λ', 'Σλ tool vs sk', 'largest principal angle', 'mean cos²'], [10, 32, 64, 128, 256].map((j) => [
      j, `${fmt(100 * maxRel(j), 3)} %`, `${sumRel(j) >= 0 ? '+' : ''}${fmt(100 * sumRel(j), 3)} %`, `${fmt(agree[String(j)]!.maxAngleDeg, 2)}°`, fmt(agree[String(j)]!.meanCos2, 5),
    ])));
    console.log(`\nexplained variance share of the top 256: tool ${fmt(100 * evT.reduce((a, b) => a + b, 0) / tool[0]!.totalVariance, 2)} %, ` +
      `scikit-learn ${fmt(100 * evS.reduce((a, b) => a + b, 0) / sk[0]!.totalVariance, 2)} %; |cos| of components 1–10: ` +
      `${agree.componentAbsCos.slice(0, 10).map((c) => c.toFixed(4)).join(' ')}\n`);
    const rss: { n: number; toolMiB: number; toolS: number; skMiB: number; skS: number }[] = [];
    for (const n of RSS_NS) {
      const t = n === FIT_N ? tool[0]! : await toolFit(matrix, n, tmp);
      const s = n === FIT_N ? sk[0]! : skFit(matrix, n);
      rss.push({ n, toolMiB: t.maxRssKiB / 1024, toolS: t.fitS + t.meanS, skMiB: s.maxRssKiB / 1024, skS: s.fitS });
      console.error(`  RSS N=${n}: tool ${fmt(t.maxRssKiB / 1024, 0)} MiB, sklearn ${fmt(s.maxRssKiB / 1024, 0)} MiB`);
    }
    console.log(md(['N', 'matrix (MiB)', 'tool peak RSS (MiB)', 'tool time (s)', 'scikit-learn peak RSS (MiB)', 'scikit-learn fit (s)'],
      rss.map((r) => [r.n, fmt(r.n * FIT_D * 4 / 2 ** 20, 0), fmt(r.toolMiB, 0), fmt(r.toolS, 1), fmt(r.skMiB, 0), fmt(r.skS, 1)])));
    const maxTool = Math.max(...rss.map((r) => r.toolMiB));
    console.log(`\ntool peak RSS: process.resourceUsage().maxRSS of the fit child; scikit-learn: ru_maxrss of its child (includes X in memory). ` +
      `Goal flat in N and ≤ 1 GiB: ${maxTool <= 1024 && maxTool - Math.min(...rss.map((r) => r.toolMiB)) < 64 ? 'MET' : 'MISSED'} (max ${fmt(maxTool, 0)} MiB)\n`);
    results.fit = {
      data: 'synthetic: |N(0,1)| mean, 512 latent directions (Gaussian / sqrt(D)) with variances j^-0.8, isotropic noise 20 % of the variance; numpy seed 20260',
      n: FIT_N, d: FIT_D, k: FIT_K, repeats: REPEATS,
      sklearn: sk.map(({ explainedVariance: _e, ...s }) => s), tool: tool.map(({ explainedVariance: _e, ...t }) => t),
      medians: { sklearnFitS: skMed, toolMeanS: toolMeanMed, toolFitS: toolFitMed, toolTotalS: toolTotalMed }, ratio, ratioFitOnly: toolFitMed / skMed,
      agreement: { ...agree, maxRelEv: Object.fromEntries([10, 32, 64, 128, 256].map((j) => [j, maxRel(j)])) },
      explainedVarianceTop10: { tool: evT.slice(0, 10), sklearn: evS.slice(0, 10) },
      rss,
    };
    saveJson();
  } finally {
    removeDir(tmp);
    console.log(`(temp dir ${tmp} removed: ${existsSync(tmp) ? 'NO' : 'yes'})\n`);
  }
}

// ---------------------------------------------------------------- C. extract cost

async function extractBench(): Promise<void> {
  console.log(`## C. Extract cost: 500 photos, whole command wall (spawn to exit), ${PAIRS} alternating pairs\n`);
  requirePaths(MODELS.map((m) => m.dir), 'bench:pca extract');
  const dir = join(sharedDir(), 'images', 'labelled');
  const before = loadavg();
  console.log(`load average before: ${before.map((l) => l.toFixed(2)).join(' ')}\n`);
  const tmp = makeTempDir('spp-pca-extract-');
  const rows: unknown[] = [];
  const table: (string | number)[][] = [];
  try {
    for (const m of MODELS) {
      const proj = join(tmp, `${m.key}.npz`);
      const f = await runNode([CLI, 'fit-pca', dir, '--dim', '128', '-o', proj, '--model', m.dir, '-q', '--force'], { tmp });
      if (f.code !== 0) throw new Error(`fit-pca failed:\n${tail(f.stderr)}`);
      const plainOut = join(tmp, `${m.key}-plain.npy`);
      const pcaOut = join(tmp, `${m.key}-pca.npy`);
      const plain = [CLI, dir, '-o', plainOut, '--model', m.dir, '-q', '--force'];
      const withPca = [...plain.slice(0, 3), pcaOut, ...plain.slice(4), '--pca', proj];
      const times = { plain: [] as number[], pca: [] as number[] };
      for (let p = 0; p < PAIRS; p++) {
        const order = p % 2 === 0 ? (['plain', 'pca'] as const) : (['pca', 'plain'] as const);
        for (const which of order) {
          const r = await runNode(which === 'plain' ? plain : withPca, { tmp });
          if (r.code !== 0) throw new Error(`extract (${which}) failed:\n${tail(r.stderr)}`);
          times[which].push(r.wallMs / 1000);
        }
        console.error(`  ${m.key} pair ${p + 1}: plain ${fmt(times.plain.at(-1)!, 2)} s, --pca ${fmt(times.pca.at(-1)!, 2)} s`);
      }
      const shapes = { plain: npyShape(plainOut), pca: npyShape(pcaOut) };
      const ratios = times.pca.map((t, i) => t / times.plain[i]!);
      const r = { model: m.name, shapes, times, medianPlainS: median(times.plain), medianPcaS: median(times.pca), ratioOfMedians: median(times.pca) / median(times.plain), medianPairRatio: median(ratios) };
      rows.push(r);
      table.push([m.name, `${shapes.plain.join('×')} / ${shapes.pca.join('×')}`, fmt(r.medianPlainS, 2), fmt(r.medianPcaS, 2), fmt(r.ratioOfMedians, 3), fmt(r.medianPairRatio, 3),
        r.ratioOfMedians <= 1.1 ? 'MET' : 'MISSED']);
    }
  } finally {
    removeDir(tmp);
  }
  console.log(md(['model', 'output shape plain / --pca', 'plain median (s)', '--pca median (s)', 'ratio of medians', 'median pair ratio', 'goal ≤ 1.10'], table));
  const after = loadavg();
  console.log(`\nload average after: ${after.map((l) => l.toFixed(2)).join(' ')}\n`);
  results.extract = { pairs: PAIRS, loadBefore: before, loadAfter: after, models: rows };
  saveJson();
}

console.log(`# bench:pca\n\n${machineLine()}\n${reproduceLine(SCRIPT, 'bench:pca')}\n`);
if (only.includes('quality')) await quality();
if (only.includes('fit')) await fitBench();
if (only.includes('extract')) await extractBench();
saveJson();
console.log(`results: ${JSON_OUT}`);
