/**
 * `npm run bench:datasets`: datasets as they really are (issue "Datasets as they really are").
 * keras MobileNet v1 α0.75 (the README's model), engine onnx, converted once into a private cache
 * before anything is timed. Whole CLI commands, timed from spawn to exit (start-up included),
 * alternating within each round with the order rotated every round; medians. Nothing is asserted:
 * the script prints PASS/MISS against the targets, and checks that the outputs it compares are
 * byte-identical (a speed figure of a wrong output would mean nothing).
 *
 *   node dist/scripts/bench/datasets.js [--rounds N (default 5; 2 with --quick)] [--quick]
 *                                       [--only update,copy,tar,rss] [--big-gib G (default 2)] [--scale S (default 1)]
 *
 * update  the 500 labelled photos with 10 (2 %) held back: an output of the 490, then the 10 added.
 *         `--update` (the stored output restored before every round, untimed) against a fresh run
 *         over all 500. Target: update ≤ 5 % of the fresh run's wall time. --scale S copies the
 *         photos S times (S × 500 inputs, 2 % of them new) to show how the fixed costs weigh.
 * copy    what copying the reused rows costs, per GB of rows: an output with wide rows (levels
 *         1,2,3,4,6: 50,688 values, 198 KiB a row in .npy), then `--update` after removing the
 *         first photo (nothing to describe; every other row copied and renumbered) against
 *         `--update` with nothing changed (the same listing, hashing and model load, no copy).
 *         The difference over the bytes copied is the copy cost; .npy and .jsonl.
 * tar     the 500 labelled photos loose, as one .tar and as one .tar.gz (members in the folder
 *         walk's order): three fresh runs. Target: the .tar at least as fast as loose.
 * rss     peak RSS over archive size: photos upscaled to 6000 px wide (quality 95, ~4 MB each),
 *         packed into a ≥ G GiB archive and into one a tenth of its size; each run once (twice
 *         without --quick). Target: the large archive's peak RSS within 10 % of the small one's.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, createWriteStream, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { parseArgs } from 'node:util';
import { pack } from 'tar-stream';
import {
  CLI, HAVE_GNU_TIME, fmt, machineLine, makeTempDir, median, peakMiB, removeDir, reproduceLine, requirePaths, rssMethod,
  runNode, sharedDir, table, tail, type ChildRun,
} from './common.js';

const SCRIPT = 'dist/scripts/bench/datasets.js';
const SECTIONS = ['update', 'copy', 'tar', 'rss'] as const;
type Section = (typeof SECTIONS)[number];

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string' }, quick: { type: 'boolean', default: false }, only: { type: 'string' }, 'big-gib': { type: 'string' }, scale: { type: 'string' },
  },
  strict: true,
});
const ROUNDS = Number(opt.rounds ?? (opt.quick ? '2' : '5'));
const BIG_GIB = Number(opt['big-gib'] ?? '2');
const SCALE = Number(opt.scale ?? '1');
const ONLY = (opt.only ?? SECTIONS.join(',')).split(',').map((s) => s.trim()) as Section[];

const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');

/** Runs the CLI; a failed command stops the bench with its stderr. */
async function cli(args: string[], tmp: string, what: string, allowExit2 = false): Promise<ChildRun> {
  const r = await runNode([CLI, ...args], { tmp });
  if (r.code !== 0 && !(allowExit2 && r.code === 2)) throw new Error(`${what} failed (exit ${r.code}):\n${tail(r.stderr + r.stdout)}`);
  return r;
}

/** An output's files: the output and, for .npy, its manifest. */
function filesOf(out: string): string[] {
  return out.endsWith('.npy') ? [out, join(dirname(out), `${basename(out, '.npy')}.manifest.jsonl`)] : [out];
}

function copyOutput(from: string, to: string): void {
  filesOf(from).forEach((f, i) => copyFileSync(f, filesOf(to)[i]!));
}

/** Output bytes compared; the manifests' header lines hold the run's own paths, so only the records are compared there. */
function sameOutput(a: string, b: string): boolean {
  return filesOf(a).every((f, i) => {
    const g = filesOf(b)[i]!;
    if (f.endsWith('.npy')) return readFileSync(f).equals(readFileSync(g));
    const records = (p: string) => readFileSync(p, 'utf8').split('\n').filter((l) => !l.startsWith('{"type":"header"')).join('\n');
    return records(f) === records(g);
  });
}

/** Rounds of alternating commands (order rotated each round); `before` runs untimed before each command. */
async function alternate(
  cases: { name: string; before?: () => void; args: string[]; allowExit2?: boolean }[], tmp: string,
): Promise<Map<string, ChildRun[]>> {
  const runs = new Map(cases.map((c) => [c.name, [] as ChildRun[]]));
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < cases.length; k++) {
      const c = cases[(k + round) % cases.length]!;
      c.before?.();
      runs.get(c.name)!.push(await cli(c.args, tmp, c.name, c.allowExit2));
    }
  }
  return runs;
}

const wall = (rs: ChildRun[]) => median(rs.map((r) => r.wallMs)) / 1000;
const cpu = (rs: ChildRun[]) => median(rs.map((r) => r.cpuMs ?? NaN)) / 1000;

/**
 * Copies the labelled photos (class folders kept; `copies` > 1: under c0/, c1/ …) into `dir`;
 * returns their paths in walk order. `skip` sees each photo's position among all copies.
 */
function copyLabelled(labelled: string, dir: string, skip: (rel: string, i: number) => boolean = () => false, copies = 1): string[] {
  const out: string[] = [];
  let i = 0;
  const classes = readdirSync(labelled).filter((d) => statSync(join(labelled, d)).isDirectory()).sort();
  for (let c = 0; c < copies; c++) {
    for (const cls of classes) {
      for (const f of readdirSync(join(labelled, cls)).sort()) {
        const rel = copies > 1 ? join(`c${c}`, cls, f) : join(cls, f);
        if (!skip(rel, i++)) {
          mkdirSync(join(dir, dirname(rel)), { recursive: true });
          copyFileSync(join(labelled, cls, f), join(dir, rel));
          out.push(join(dir, rel));
        }
      }
    }
  }
  return out;
}

async function updateSection(labelled: string, common: string[], tmp: string): Promise<void> {
  const images = join(tmp, 'update-images');
  // Every 50th photo is held back: the 2 % that "arrive" (spread over the classes and the order).
  const heldBack = (_: string, i: number) => i % 50 === 25;
  const kept = copyLabelled(labelled, images, heldBack, SCALE).length;
  const stored = join(tmp, 'stored.npy');
  await cli([images, '-o', stored, ...common], tmp, `the stored output (${kept} photos)`);
  const added = copyLabelled(labelled, join(tmp, 'update-new'), (rel, i) => !heldBack(rel, i), SCALE);
  for (const f of added) copyFileSync(f, join(images, relative(join(tmp, 'update-new'), f)));
  const updated = join(tmp, 'updated.npy');
  const fresh = join(tmp, 'fresh.npy');
  const runs = await alternate([
    { name: 'update', before: () => copyOutput(stored, updated), args: [images, '-o', updated, '--update', ...common] },
    { name: 'fresh', args: [images, '-o', fresh, '--force', ...common] },
    // What any run pays before its first image: process start-up, listing one file, the model's load.
    { name: 'one', args: [added[0]!, '-o', join(tmp, 'one.npy'), '--force', ...common] },
  ], tmp);
  const same = sameOutput(updated, fresh);
  const counts = /\((\d+ reused, \d+ added, \d+ redone, \d+ dropped)\)/.exec(runs.get('update')![0]!.stderr)?.[1] ?? '?';
  const ratio = wall(runs.get('update')!) / wall(runs.get('fresh')!);
  const all = kept + added.length;
  console.log(`\n## --update with 2 % new photos (${kept} stored + ${added.length} added; ${counts})\n`);
  console.log(table(['command', 'wall s', 'CPU s'], [
    [`spp-extract --update (${all} inputs, ${added.length} described)`, fmt(wall(runs.get('update')!), 2), fmt(cpu(runs.get('update')!), 2)],
    [`spp-extract --force (fresh run, ${all} described)`, fmt(wall(runs.get('fresh')!), 2), fmt(cpu(runs.get('fresh')!), 2)],
  ]));
  const one = wall(runs.get('one')!);
  const beyond = (wall(runs.get('update')!) - one) / (wall(runs.get('fresh')!) - one);
  console.log(`\nupdate / fresh, wall: ${fmt(ratio, 3)} (${fmt(100 * ratio, 1)} %; target ≤ 5 %: ${verdict(ratio <= 0.05)}); ` +
    `CPU: ${fmt(cpu(runs.get('update')!) / cpu(runs.get('fresh')!), 3)}; the updated output is ${same ? '' : 'NOT '}byte-identical to the fresh run's`);
  console.log(`a one-photo run (start-up and model load) takes ${fmt(one, 2)} s; beyond it, update / fresh: ${fmt(beyond, 3)} (${fmt(100 * beyond, 1)} %)`);
}

async function copySection(labelled: string, common: string[], tmp: string): Promise<void> {
  const images = join(tmp, 'copy-images');
  const paths = copyLabelled(labelled, images);
  const wide = [...common.filter((_, i, a) => a[i] !== '--levels' && a[i - 1] !== '--levels'), '--levels', '1,2,3,4,6'];
  console.log('\n## Copying reused rows (levels 1,2,3,4,6: 50,688 values a row)\n');
  const rows: string[][] = [];
  for (const ext of ['npy', 'jsonl']) {
    const stored = join(tmp, `wide.${ext}`);
    await cli([images, '-o', stored, ...wide], tmp, `the stored wide .${ext} output`);
    const work = join(tmp, `work.${ext}`);
    const first = paths[0]!;
    const original = join(labelled, relative(images, first));
    const runs = await alternate([
      // The first photo removed: nothing to describe, every other row copied (and renumbered).
      { name: 'copy', before: () => { copyOutput(stored, work); rmSync(first, { force: true }); }, args: [images, '-o', work, '--update', ...wide] },
      // Nothing changed: the same listing, hashing and model load; nothing written.
      { name: 'same', before: () => { copyOutput(stored, work); copyFileSync(original, first); }, args: [images, '-o', work, '--update', ...wide] },
    ], tmp);
    copyFileSync(original, first);
    const rowBytes = ext === 'npy' ? (statSync(stored).size - 128) / paths.length : statSync(stored).size / paths.length;
    const copied = rowBytes * (paths.length - 1);
    const diff = wall(runs.get('copy')!) - wall(runs.get('same')!);
    rows.push([`.${ext}`, fmt(copied / 2 ** 20, 0), fmt(wall(runs.get('copy')!), 2), fmt(wall(runs.get('same')!), 2), fmt(diff / (copied / 2 ** 30), 1)]);
  }
  console.log(table(['format', 'MiB copied', 'update, 1 removed (s)', 'update, nothing changed (s)', 's per GiB copied'], rows));
  console.log('\n(.npy rows are copied as bytes; .jsonl rows are parsed and written again, so per GiB of text they cost more.)');
}

/** A tar of the files in order, names relative to `root`, gzip-compressed when `gzip`. */
async function writeTar(files: readonly string[], root: string, archive: string, gzip = false, names?: readonly string[]): Promise<void> {
  const p = pack();
  const out = createWriteStream(archive);
  const done = gzip ? pipeline(p, createGzip(), out) : pipeline(p, out);
  for (let i = 0; i < files.length; i++) {
    const body = readFileSync(files[i]!);
    await new Promise<void>((resolve, reject) => p.entry({ name: names?.[i] ?? relative(root, files[i]!), size: body.length }, body, (err) => (err ? reject(err) : resolve())));
  }
  p.finalize();
  await done;
}

async function tarSection(labelled: string, common: string[], tmp: string): Promise<void> {
  const images = join(tmp, 'tar-images');
  const paths = copyLabelled(labelled, images);
  const tar = join(tmp, 'labelled.tar');
  const tgz = join(tmp, 'labelled.tar.gz');
  await writeTar(paths, images, tar);
  await writeTar(paths, images, tgz, true);
  const outs = { loose: join(tmp, 'loose.npy'), tar: join(tmp, 'tar.npy'), tgz: join(tmp, 'tgz.npy') };
  const runs = await alternate([
    { name: 'loose', args: [images, '-o', outs.loose, '--force', ...common] },
    { name: 'tar', args: [tar, '-o', outs.tar, '--force', ...common] },
    { name: 'tgz', args: [tgz, '-o', outs.tgz, '--force', ...common] },
  ], tmp);
  const same = [outs.tar, outs.tgz].every((o) => readFileSync(o).equals(readFileSync(outs.loose)));
  const loose = wall(runs.get('loose')!);
  console.log(`\n## Tar shards against loose files (500 labelled photos; .tar ${fmt(statSync(tar).size / 2 ** 20, 1)} MiB, .tar.gz ${fmt(statSync(tgz).size / 2 ** 20, 1)} MiB)\n`);
  console.log(table(['input', 'wall s', 'CPU s', 'peak RSS MiB', 'wall / loose'], (['loose', 'tar', 'tgz'] as const).map((k) => [
    k === 'loose' ? 'folder of 500 files' : k === 'tar' ? 'one .tar' : 'one .tar.gz',
    fmt(wall(runs.get(k)!), 2), fmt(cpu(runs.get(k)!), 2), fmt(median(runs.get(k)!.map((r) => peakMiB(r))), 0), fmt(wall(runs.get(k)!) / loose, 3),
  ])));
  const ratio = wall(runs.get('tar')!) / loose;
  console.log(`\n.tar / loose, wall: ${fmt(ratio, 3)} (target ≤ 1, within noise: ${verdict(ratio <= 1.03)}); the .npy of the .tar and the .tar.gz are ${same ? '' : 'NOT '}byte-identical to the loose files'`);
}

async function rssSection(labelled: string, common: string[], tmp: string): Promise<void> {
  const { default: sharp } = await import('sharp');
  const photos = copyLabelled(labelled, join(tmp, 'rss-src'));
  const uniques = opt.quick ? 10 : 100;
  const bigDir = join(tmp, 'rss-big');
  mkdirSync(bigDir);
  const big: string[] = [];
  for (let i = 0; i < uniques; i++) {
    // Every fifth photo, upscaled: real photo content at the size of a camera's file.
    const f = join(bigDir, `${String(i).padStart(3, '0')}.jpg`);
    await sharp(photos[(i * 5) % photos.length]!).resize({ width: 6000 }).jpeg({ quality: 95 }).toFile(f);
    big.push(f);
  }
  const meanBytes = big.reduce((s, f) => s + statSync(f).size, 0) / big.length;
  const members = Math.ceil((BIG_GIB * 2 ** 30) / meanBytes);
  const files = Array.from({ length: members }, (_, i) => big[i % big.length]!);
  const names = files.map((_, i) => `${String(i).padStart(6, '0')}.jpg`);
  const large = join(tmp, 'large.tar');
  const small = join(tmp, 'small.tar');
  await writeTar(files, bigDir, large, false, names);
  const tenth = Math.ceil(members / 10);
  await writeTar(files.slice(0, tenth), bigDir, small, false, names.slice(0, tenth));
  const rounds = opt.quick ? 1 : 2;
  const runs = new Map<string, ChildRun[]>([['small', []], ['large', []]]);
  for (let round = 0; round < rounds; round++) {
    for (const k of round % 2 ? ['large', 'small'] : ['small', 'large']) {
      runs.get(k)!.push(await cli([k === 'large' ? large : small, '-o', join(tmp, `${k}.npy`), '--force', ...common], tmp, `the ${k} archive`));
    }
  }
  const peak = (k: string) => median(runs.get(k)!.map((r) => peakMiB(r)));
  console.log(`\n## Peak RSS against archive size (${uniques} photos upscaled to 6000 px wide, ${fmt(meanBytes / 2 ** 20, 1)} MiB each on average)\n`);
  console.log(table(['archive', 'members', 'size GiB', 'wall s', 'peak RSS MiB'], (['small', 'large'] as const).map((k) => [
    k === 'small' ? 'a tenth' : 'large', String(k === 'small' ? tenth : members), fmt(statSync(k === 'small' ? small : large).size / 2 ** 30, 2),
    fmt(wall(runs.get(k)!), 1), fmt(peak(k), 0),
  ])));
  const ratio = peak('large') / peak('small');
  console.log(`\nlarge / small peak RSS: ${fmt(ratio, 3)} (target ≤ 1.10: ${verdict(ratio <= 1.1)}; ${rssMethod()})`);
  // Within one run over the large archive: the highest RSS seen in each tenth of its wall time.
  const tenths = await rssByTenth([CLI, large, '-o', join(tmp, 'sampled.npy'), '--force', ...common]);
  console.log(`RSS over the large archive's run, highest in each tenth of its time (MiB, sampled every 100 ms from /proc): ${tenths.map((m) => fmt(m, 0)).join(' ')}`);
  rmSync(large);
}

/** Runs node with `args`, reading its VmRSS every 100 ms; the highest value in each tenth of the run (MiB). */
function rssByTenth(args: string[]): Promise<number[]> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const samples: [number, number][] = [];
    const t0 = performance.now();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => void (stderr += d.toString()));
    const timer = setInterval(() => {
      try {
        const kib = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1]);
        if (kib > 0) samples.push([performance.now() - t0, kib / 1024]);
      } catch {
        // exited between two samples
      }
    }, 100);
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(timer);
      if (code !== 0 && code !== 2) return reject(new Error(`the sampled run failed (exit ${code}):\n${tail(stderr)}`));
      const end = performance.now() - t0;
      const inTenth = (k: number) => samples.filter(([t]) => t >= (k * end) / 10 && t < ((k + 1) * end) / 10).map(([, m]) => m);
      resolvePromise(Array.from({ length: 10 }, (_, k) => (inTenth(k).length > 0 ? Math.max(...inTenth(k)) : NaN)));
    });
  });
}

async function main(): Promise<void> {
  if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error(`--rounds must be a positive integer, got '${opt.rounds}'`);
  if (!Number.isInteger(SCALE) || SCALE < 1) throw new Error(`--scale must be a positive integer, got '${opt.scale}'`);
  if (!(BIG_GIB > 0)) throw new Error(`--big-gib must be a positive number, got '${opt['big-gib']}'`);
  const unknown = ONLY.filter((s) => !SECTIONS.includes(s));
  if (unknown.length > 0) throw new Error(`--only takes ${SECTIONS.join(', ')}; got '${unknown.join(',')}'`);
  const shared = sharedDir();
  const labelled = join(shared, 'images', 'labelled');
  const keras = join(shared, 'models', 'keras-mobilenet_v1_0.75_224');
  requirePaths([labelled, join(keras, 'model.json')], 'npm run bench:datasets');
  console.log(`# spp-extract datasets benchmark (--update, tar shards)\n# reproduce: ${reproduceLine(SCRIPT, 'bench:datasets')}`);
  console.log(`# ${machineLine()}`);
  console.log(`# model: keras MobileNet v1 0.75, engine onnx; ${ROUNDS} round(s), commands alternating (order rotated each round), medians of whole-process wall time`);
  if (!HAVE_GNU_TIME) console.log('# /usr/bin/time not found: CPU columns are empty');
  if (opt.quick) console.log('# --quick: fewer rounds and a smaller rss set; the numbers are a smoke test');
  const tmp = makeTempDir('spp-bench-datasets-');
  try {
    const cacheDir = join(tmp, 'cache');
    const info = await runNode([CLI, 'info', '--model', keras, '--engine', 'onnx', '--cache-dir', cacheDir], { tmp });
    if (info.code !== 0) throw new Error(`spp-extract info failed:\n${tail(info.stderr + info.stdout)}`);
    const common = ['--model', keras, '--engine', 'onnx', '--cache-dir', cacheDir, '-v'];
    const started = performance.now();
    if (ONLY.includes('update')) await updateSection(labelled, common, tmp);
    if (ONLY.includes('copy')) await copySection(labelled, common, tmp);
    if (ONLY.includes('tar')) await tarSection(labelled, common, tmp);
    if (ONLY.includes('rss')) await rssSection(labelled, common, tmp);
    console.log(`\n# total bench time ${fmt((performance.now() - started) / 1000, 0)} s`);
  } finally {
    removeDir(tmp);
  }
}

await main();
