/**
 * `npm run bench:memory`: does spp-extract's peak RSS stay flat as the number of inputs grows?
 * (The README promises it: inputs are a list of paths, at most --decode-ahead decoded images wait,
 * rows stream to disk.) Generates N small images once, then runs the CLI as a child process on the
 * first 1k / 5k / 20k of them and reports each run's peak RSS and img/s, and peak(largest)/peak(smallest).
 *
 *   node dist/scripts/bench/memory.js [--sizes 1000,5000,20000] [--real] [--rounds N]
 *
 * The tiny fixture model keeps the backbone cheap so 20k images take minutes, not an hour; `--real`
 * adds the real keras MobileNet v1 α0.75 from ../shared at the sizes up to 5000. No assertions.
 */
import { existsSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import {
  CLI, REPO, fmt, machineLine, makeTempDir, parseCliSummary, peakMiB, median, removeDir, reproduceLine,
  requirePaths, rssMethod, runNode, sharedDir, table, tail,
} from './common.js';

const SCRIPT = 'dist/scripts/bench/memory.js';
const { values: opt } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1000,5000,20000' },
    real: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '1' },
  },
  strict: true,
});

const sizes = opt.sizes.split(',').map((s) => Number(s.trim()));
if (sizes.length === 0 || !sizes.every((n) => Number.isInteger(n) && n > 0)) throw new Error(`--sizes must be positive integers, got '${opt.sizes}'`);
sizes.sort((a, b) => a - b);
const rounds = Number(opt.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got '${opt.rounds}'`);
const REAL_MAX = 5000; // the real model runs ~50 img/s here: 5000 images is already ~2 minutes

/**
 * Image i, deterministic: 48×32 … 96×64, a colour gradient with a few rectangles and noise from
 * an LCG seeded by i, so the decoder and the model see varied content; every third is a PNG,
 * the rest JPEG (quality varies).
 */
async function writeImage(i: number, path: string): Promise<void> {
  let s = (i * 2654435761 + 1) >>> 0;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) >>> 8) / 16777216;
  const width = 48 + Math.floor(rnd() * 49);
  const height = 32 + Math.floor(rnd() * 33);
  const base = [rnd() * 255, rnd() * 255, rnd() * 255];
  const slope = [rnd() * 4 - 2, rnd() * 4 - 2, rnd() * 4 - 2];
  const rects = Array.from({ length: 1 + Math.floor(rnd() * 4) }, () => ({
    x: Math.floor(rnd() * width), y: Math.floor(rnd() * height), w: 4 + Math.floor(rnd() * 30), h: 4 + Math.floor(rnd() * 20),
    c: [rnd() * 255, rnd() * 255, rnd() * 255],
  }));
  const noise = rnd() * 40;
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const rect = rects.find((r) => x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h);
      for (let c = 0; c < 3; c++) {
        const v = rect ? rect.c[c]! : base[c]! + slope[c]! * (x + y);
        data[(y * width + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(v + (rnd() - 0.5) * noise)));
      }
    }
  }
  const img = sharp(data, { raw: { width, height, channels: 3 } });
  await (path.endsWith('.png') ? img.png() : img.jpeg({ quality: 60 + (i % 36) })).toFile(path);
}

async function generate(dir: string, n: number): Promise<string[]> {
  const paths: string[] = [];
  for (let i = 0; i < n; i++) paths.push(join(dir, String(Math.floor(i / 1000)).padStart(3, '0'), `img${String(i).padStart(6, '0')}.${i % 3 === 0 ? 'png' : 'jpg'}`));
  for (let d = 0; d * 1000 < n; d++) await mkdir(join(dir, String(d).padStart(3, '0')), { recursive: true });
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      await writeImage(i, paths[i]!);
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  return paths;
}

interface Run { model: string; n: number; wallS: number; imgPerSec: number; inRunImgPerSec?: number; peakMiB: number; npyMiB: number; engine?: string }

async function main(): Promise<void> {
  const tiny = join(REPO, 'fixtures', 'tiny-layers');
  const keras = join(sharedDir(), 'models', 'keras-mobilenet_v1_0.75_224');
  requirePaths([join(tiny, 'model.json')], 'npm run bench:memory');
  // The tiny-model runs need nothing from ../shared; only --real does.
  const real = opt.real && existsSync(join(keras, 'model.json'));
  if (opt.real && !real) console.log(`--real: skipped, ${join(keras, 'model.json')} is missing (put ../shared beside the repository or set SPP_SHARED_DIR)`);

  console.log(`# spp-extract memory benchmark: peak RSS against the number of inputs\n# reproduce: ${reproduceLine(SCRIPT, 'bench:memory')}`);
  console.log(`# ${machineLine()}`);
  console.log(`# ${rssMethod()}; img/s = images / wall time of the CLI process (start-up included)`);

  const tmp = makeTempDir('spp-bench-mem-');
  try {
    const cacheDir = join(tmp, 'cache');
    const maxN = sizes.at(-1)!;
    let t0 = performance.now();
    const paths = await generate(join(tmp, 'images'), maxN);
    console.log(`# generated ${maxN} images (48×32 … 96×64, 1/3 PNG, 2/3 JPEG) in ${fmt((performance.now() - t0) / 1000)} s; ` +
      `each run reads the first N paths from stdin; default --size 224, levels 1,2,4, .npy output`);

    const models: { label: string; dir: string; sizes: number[] }[] = [{ label: 'fixtures/tiny-layers', dir: tiny, sizes }];
    if (real) models.push({ label: 'keras v1 0.75 (shared)', dir: keras, sizes: sizes.filter((n) => n <= REAL_MAX) });
    // Convert each model to ONNX before measuring, so no run pays (or holds memory for) the conversion.
    for (const m of models) {
      const r = await runNode([CLI, 'info', '--model', m.dir, '--engine', 'onnx', '--cache-dir', cacheDir], { tmp });
      if (r.code !== 0) throw new Error(`spp-extract info --model ${m.dir} failed:\n${tail(r.stderr + r.stdout)}`);
    }

    const runs: Run[] = [];
    t0 = performance.now();
    for (let round = 0; round < rounds; round++) {
      for (const m of models) {
        for (const n of m.sizes) {
          const out = join(tmp, 'out.npy');
          const r = await runNode(
            [CLI, '-', '-o', out, '--model', m.dir, '--engine', 'onnx', '--cache-dir', cacheDir, '--force', '-v'],
            { tmp, input: paths.slice(0, n).join('\n') + '\n' },
          );
          const s = parseCliSummary(r.stderr);
          if (r.code !== 0 || s.rows !== n) throw new Error(`${m.label} N=${n}: spp-extract exited ${r.code}, rows ${s.rows}:\n${tail(r.stderr)}`);
          const npyMiB = (await stat(out)).size / 2 ** 20;
          runs.push({
            model: m.label, n, wallS: r.wallMs / 1000, imgPerSec: n / (r.wallMs / 1000), inRunImgPerSec: s.imgPerSec,
            peakMiB: peakMiB(r, s.peakRssMiB), npyMiB, engine: s.engineLine?.replace(/^spp-extract: engine /, '').replace(/, model .*$/, ''),
          });
          console.log(`# round ${round + 1}/${rounds}: ${m.label} N=${n}: ${fmt(n / (r.wallMs / 1000))} img/s, ` +
            `peak RSS ${fmt(peakMiB(r, s.peakRssMiB), 0)} MiB (${fmt((performance.now() - t0) / 1000, 0)} s)`);
        }
      }
    }

    console.log(`\n## Peak RSS by number of inputs (median over ${rounds} round${rounds > 1 ? 's' : ''})\n`);
    const rows: string[][] = [];
    const ratios: string[] = [];
    for (const m of models) {
      const peaks: number[] = [];
      for (const n of m.sizes) {
        const rs = runs.filter((r) => r.model === m.label && r.n === n);
        const peak = median(rs.map((r) => r.peakMiB));
        peaks.push(peak);
        rows.push([
          m.label, rs[0]?.engine ?? '', String(n), fmt(median(rs.map((r) => r.wallS))), fmt(median(rs.map((r) => r.imgPerSec))),
          fmt(median(rs.map((r) => r.inRunImgPerSec ?? NaN))), fmt(peak, 0), fmt(rs[0]?.npyMiB ?? NaN),
        ]);
      }
      if (m.sizes.length > 1) {
        ratios.push(`${m.label}: peak(N=${m.sizes.at(-1)}) / peak(N=${m.sizes[0]}) = ${fmt(peaks.at(-1)! / peaks[0]!, 3)} ` +
          `(${fmt(peaks[0]!, 0)} → ${fmt(peaks.at(-1)!, 0)} MiB for ${fmt(m.sizes.at(-1)! / m.sizes[0]!, 0)}× the inputs)`);
      }
    }
    console.log(table(['model', 'engine / backend', 'N', 'wall s', 'img/s', 'CLI in-run img/s', 'peak RSS MiB', '.npy MiB'], rows));
    if (ratios.length) console.log(`\n${ratios.join('\n')}`);
    if (!opt.real) console.log('\n(--real adds the keras MobileNet v1 α0.75 from ../shared at N ≤ 5000)');
    console.log(`\n# total ${fmt((performance.now() - t0) / 1000, 0)} s of runs`);
  } finally {
    removeDir(tmp);
  }
}

await main();
