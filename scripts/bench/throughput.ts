/**
 * `npm run bench` (throughput section), on the labelled photos of ../shared (shorter side 224,
 * levels 1,2,4, max pooling, .npy output), for tfhub v1 0.25, keras v1 0.75 and keras v2 0.35:
 *   - each pipeline stage's CPU cost alone, on the same images (stages.ts), and the bound the
 *     stages set on this machine's cores (bound.ts);
 *   - spp-extract end to end (the CLI's wall time, start-up included) as a percentage of that bound;
 *   - the `@tensorflow-models/mobilenet` peer and the tfjs lines (peers.ts), and their ratios.
 *
 *   node dist/scripts/bench/throughput.js [--rounds N] [--quick]
 *
 * Full run: 3 rounds on all 500 photos, except the two tfjs-wasm α0.75 configurations (b, e: ~10–20
 * img/s here), which take every 4th photo (125) to keep the run to a few minutes. --quick: every 5th photo for
 * every configuration, 1 round unless --rounds says otherwise.
 *
 * Each configuration runs in its own child process (so peak RSS is that configuration's alone), and
 * the configurations alternate within each round (a, b, c, … then again, starting one later each
 * round) so that a slow spell of this shared machine hits all of them, not one. We report medians
 * over the rounds. Nothing here asserts a time: it prints PASS/MISS against the targets.
 *
 * Internal: `--config <id> --list <file> --model <dir> --cache-dir <dir>` is one in-process
 * configuration, run by the parent in a fresh process; it prints one `BENCH_RESULT {json}` line.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { boundOf, boundTable, medianCosts, stageTable } from './bound.js';
import {
  CLI, REPO, fmt, machineLine, makeTempDir, median, parseCliSummary, peakMiB, removeDir, reproduceLine,
  requirePaths, rssMethod, runNode, sharedDir, table, tail,
} from './common.js';
import { peerKeras, peerTfhub } from './peers.js';
import { measureStages, pipelineDecodeAhead, type StageCosts } from './stages.js';

const SCRIPT = 'dist/scripts/bench/throughput.js';
const LEVELS = [1, 2, 4];
const RESULT_TAG = 'BENCH_RESULT ';
const GOALS = { ofBound: 0.9, vsPeer: 4, vsTfjs: 5 };
const QUICK_EVERY = 5; // --quick: every 5th photo (100 of 500)
const SLOW_EVERY = 4; // full run, the tfjs-wasm α0.75 configurations: every 4th photo (125)

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string' },
    quick: { type: 'boolean', default: false },
    config: { type: 'string' },
    list: { type: 'string' },
    model: { type: 'string' },
    'cache-dir': { type: 'string' },
  },
  strict: true,
});

/** The three models of the bound: their folder under ../shared/models and their configuration ids. */
interface Model { label: string; dir: string; e2e: string; stages: string }
const MODELS: readonly Model[] = [
  { label: 'tfhub v1 0.25', dir: 'tfhub-mobilenet_v1_025_224', e2e: 'a25', stages: 'c25' },
  { label: 'keras v1 0.75', dir: 'keras-mobilenet_v1_0.75_224', e2e: 'a', stages: 'c' },
  { label: 'keras v2 0.35', dir: 'keras-mobilenet_v2_0.35_224-in-classifier', e2e: 'a2', stages: 'c2' },
];

// ---------------------------------------------------------------------------------------------
// In-process configurations (run in a child of this script).
// ---------------------------------------------------------------------------------------------

interface ChildResult {
  config: string;
  images: number;
  maxRssKiB: number;
  backend: string;
  /** Peers: seconds of the timed loop. */
  seconds?: number;
  /** Stage children: each stage's cost alone, per image. */
  stages?: StageCosts;
}

async function childMain(config: string): Promise<void> {
  if (!opt.list || !opt.model || !opt['cache-dir']) throw new Error('--config needs --list, --model and --cache-dir');
  const paths = (await readFile(opt.list, 'utf8')).split('\n').filter((l) => l !== '');
  const model = opt.model;
  let result: Omit<ChildResult, 'config' | 'maxRssKiB'>;
  if (MODELS.some((m) => m.stages === config)) {
    const { costs, backend } = await measureStages(paths, model, opt['cache-dir'], LEVELS);
    result = { images: paths.length, backend, stages: costs };
  } else if (config === 'd' || config === 'e') {
    result = config === 'd' ? await peerTfhub(paths, model) : await peerKeras(paths, model);
  } else {
    throw new Error(`unknown --config ${config}`);
  }
  const out: ChildResult = { config, ...result, maxRssKiB: process.resourceUsage().maxRSS };
  process.stdout.write(`${RESULT_TAG}${JSON.stringify(out)}\n`);
}

// ---------------------------------------------------------------------------------------------
// The parent: runs every configuration R times, alternating, and prints the tables.
// ---------------------------------------------------------------------------------------------

interface Config {
  id: string;
  what: string;
  weights: string;
  /** The CLI end to end (wall time of the child), stage costs, or a peer (both in-process children of this script). */
  kind: 'cli' | 'stages' | 'peer';
  /** Full runs give these every 4th photo (tfjs wasm on α0.75: ~10–20 img/s). */
  slow: boolean;
  model: string;
  cliArgs?: string[];
}

interface Measurement {
  images: number;
  peakMiB: number;
  backend?: string;
  /** CLI (wall, start-up included) and peers (their timed loop). */
  imgPerSec?: number;
  /** CLI: its own timed loop, without start-up and model load. */
  inRunImgPerSec?: number;
  /** CLI: CPU time of the process per image, start-up included. */
  cpuMsPerImg?: number;
  stages?: StageCosts;
}

/** What the rounds run on, and where: the photos, their list files, the conversions' cache. */
interface Setup {
  /** Every photo under `labelled`, in the CLI's order: given as the folder itself. */
  folder: string[];
  all: string[];
  slow: string[];
  lists: Map<string[], string>;
  labelled: string;
  tmp: string;
  cacheDir: string;
}

function configs(modelsDir: string): Config[] {
  const keras = join(modelsDir, MODELS[1]!.dir);
  const tfhub = join(modelsDir, MODELS[0]!.dir);
  const perModel = MODELS.flatMap((m): Config[] => [
    { id: m.e2e, what: 'spp-extract e2e, --engine onnx', weights: m.label, kind: 'cli', slow: false, model: join(modelsDir, m.dir), cliArgs: ['--engine', 'onnx'] },
    { id: m.stages, what: 'each stage alone, CPU (stages table)', weights: m.label, kind: 'stages', slow: false, model: join(modelsDir, m.dir) },
  ]);
  return [
    ...perModel,
    { id: 'b', what: 'spp-extract e2e, --engine tfjs (wasm)', weights: MODELS[1]!.label, kind: 'cli', slow: true, model: keras, cliArgs: ['--engine', 'tfjs', '--backend', 'wasm'] },
    { id: 'd', what: 'peer @tensorflow-models/mobilenet, wasm', weights: MODELS[0]!.label, kind: 'peer', slow: false, model: tfhub },
    { id: 'e', what: 'peer tfjs loadLayersModel+predict+GAP, wasm', weights: MODELS[1]!.label, kind: 'peer', slow: true, model: keras },
  ];
}

const pathsFor = (c: Config, s: Setup) => (c.slow ? s.slow : s.all);

async function runCli(c: Config, s: Setup): Promise<Measurement> {
  const paths = pathsFor(c, s);
  const out = join(s.tmp, `out-${c.id}.npy`);
  const common = ['--levels', LEVELS.join(','), '--pool', 'max', '--size', '224', '--cache-dir', s.cacheDir, '--force', '-v'];
  // The full set is given as the folder, as a user would; a subset as a list on stdin.
  const whole = paths === s.folder;
  const r = await runNode([CLI, whole ? s.labelled : '-', '-o', out, '--model', c.model, ...c.cliArgs!, ...common], {
    tmp: s.tmp, input: whole ? undefined : paths.join('\n') + '\n',
  });
  const sum = parseCliSummary(r.stderr);
  if (r.code !== 0 || sum.rows !== paths.length) throw new Error(`config ${c.id}: spp-extract exited ${r.code}, rows ${sum.rows}:\n${tail(r.stderr)}`);
  await rm(out, { force: true });
  await rm(out.replace(/\.npy$/, '.manifest.jsonl'), { force: true });
  return {
    imgPerSec: paths.length / (r.wallMs / 1000), peakMiB: peakMiB(r, sum.peakRssMiB), images: paths.length,
    inRunImgPerSec: sum.imgPerSec, cpuMsPerImg: r.cpuMs === undefined ? undefined : r.cpuMs / paths.length,
    backend: sum.engineLine?.replace(/^spp-extract: engine /, '').replace(/, model .*$/, ''),
  };
}

async function runChild(c: Config, s: Setup): Promise<Measurement> {
  const list = s.lists.get(pathsFor(c, s))!;
  // --expose-gc: the stage child collects before each timed stage.
  // Stages: libuv's pool sized as bin/spp-extract.cjs sizes it, so decoding is timed as the command runs it.
  const uv = c.kind === 'stages' ? { UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? String(availableParallelism()) } : {};
  const r = await runNode(['--expose-gc', join(REPO, SCRIPT), '--config', c.id, '--list', list, '--model', c.model, '--cache-dir', s.cacheDir],
    { tmp: s.tmp, env: { ...process.env, ...uv } });
  const line = r.stdout.split('\n').find((l) => l.startsWith(RESULT_TAG));
  if (r.code !== 0 || !line) throw new Error(`config ${c.id} failed (exit ${r.code}):\n${tail(r.stderr + r.stdout)}`);
  const child = JSON.parse(line.slice(RESULT_TAG.length)) as ChildResult;
  return {
    images: child.images, peakMiB: peakMiB(r, child.maxRssKiB / 1024), backend: child.backend,
    imgPerSec: child.seconds === undefined ? undefined : child.images / child.seconds, stages: child.stages,
  };
}

function roundNote(c: Config, m: Measurement): string {
  if (m.stages) return `${c.id} Σ ${fmt(boundOf(m.stages, availableParallelism()).sumMs, 2)} ms/img CPU`;
  return `${c.id} ${fmt(m.imgPerSec ?? NaN)} img/s`;
}

async function runRounds(list: Config[], s: Setup, rounds: number): Promise<Map<string, Measurement[]>> {
  const results = new Map<string, Measurement[]>(list.map((c) => [c.id, []]));
  const started = performance.now();
  for (let round = 0; round < rounds; round++) {
    // Rotate the starting configuration each round so none always runs first (cold) or last.
    const order = list.map((_, i) => list[(i + round) % list.length]!);
    const notes: string[] = [];
    for (const c of order) {
      const m = c.kind === 'cli' ? await runCli(c, s) : await runChild(c, s);
      results.get(c.id)!.push(m);
      notes.push(roundNote(c, m));
    }
    console.log(`# round ${round + 1}/${rounds} (${fmt((performance.now() - started) / 1000, 0)} s): ${notes.join(', ')}`);
  }
  return results;
}

type Results = Map<string, Measurement[]>;

function medianOf(results: Results, id: string, f: (m: Measurement) => number | undefined): number {
  return median(results.get(id)!.map(f).filter((x): x is number => x !== undefined && Number.isFinite(x)));
}

const rate = (r: Results, id: string) => medianOf(r, id, (m) => m.imgPerSec);
const inRun = (r: Results, id: string) => medianOf(r, id, (m) => m.inRunImgPerSec);

function throughputTable(list: Config[], results: Results): string {
  const rows = list.filter((c) => c.kind !== 'stages').map((c) => {
    const ms = results.get(c.id)!;
    const cli = c.kind === 'cli';
    return [
      c.id, c.what, c.weights, ms[0]?.backend ?? '', String(ms[0]?.images ?? ''),
      fmt(rate(results, c.id)), ms.map((m) => fmt(m.imgPerSec ?? NaN)).join(' '),
      cli ? fmt(inRun(results, c.id)) : '', cli ? fmt(medianOf(results, c.id, (m) => m.cpuMsPerImg), 2) : '',
      fmt(medianOf(results, c.id, (m) => m.peakMiB), 0),
    ];
  });
  return table(['id', 'configuration', 'weights', 'engine / backend', 'images', 'img/s', 'per round', 'CLI in-run img/s', 'CPU ms/img', 'peak RSS MiB'], rows);
}

const stageCosts = (results: Results, m: Model) => medianCosts(results.get(m.stages)!.map((x) => x.stages!));

function printBound(results: Results, cores: number): void {
  const models = MODELS.map((m) => ({ label: m.label, costs: stageCosts(results, m) }));
  console.log(`\n## Each stage alone (medians; CPU = user + system of the whole process, all threads, per image; same images as e2e)\n`);
  console.log(stageTable(models, cores));
  console.log(`\n## The ${cores}-core bound (Σ/${cores}: the stages' CPU spread over ${cores} cores; max: a perfect pipeline, ` +
    `never splitting a stage) and spp-extract end to end (wall, start-up included)\n`);
  console.log(boundTable(MODELS.map((m, i) => ({
    label: m.label, costs: models[i]!.costs, imgPerSec: rate(results, m.e2e), inRunImgPerSec: inRun(results, m.e2e),
    cpuMsPerImg: medianOf(results, m.e2e, (x) => x.cpuMsPerImg),
  })), cores));
  console.log(`\nin-run: the CLI's own timed loop (no start-up and model load); e2e CPU ms/img: user + system of the CLI process ` +
    `(start-up included) / images, and its ratio to Σ (what the run spends beyond the stages: start-up, worker messages, GC); ` +
    `cores busy: that CPU / wall (below ${cores}: the run waited, on its own pipeline or on other processes)`);
}

function printTargets(results: Results, cores: number): void {
  const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');
  const ofBound = MODELS.map((m) => {
    const share = rate(results, m.e2e) / boundOf(stageCosts(results, m), cores).sumImgPerSec;
    return [`spp-extract e2e (${m.e2e}) / ${cores}-core bound Σ/${cores}, ${m.label}`, `${fmt(100 * share)} %`, `≥ ${100 * GOALS.ofBound} %`, verdict(share >= GOALS.ofBound)];
  });
  const vsPeer = rate(results, 'a25') / rate(results, 'd');
  const vsTfjs = rate(results, 'a') / rate(results, 'e');
  console.log('\n## Targets\n');
  console.log(table(['target', 'measured', 'goal', 'result'], [
    ...ofBound,
    ['same weights tfhub v1 0.25: spp-extract e2e onnx (a25) / peer (d)', `${fmt(vsPeer, 2)}×`, `≥ ${GOALS.vsPeer}×`, verdict(vsPeer >= GOALS.vsPeer)],
    ['same weights keras v1 0.75: spp-extract e2e onnx (a) / tfjs direct (e)', `${fmt(vsTfjs, 2)}×`, `≥ ${GOALS.vsTfjs}×`, verdict(vsTfjs >= GOALS.vsTfjs)],
  ]));
  console.log(`\nwithout start-up and model load (the CLI's own timed loop): (a25)/(d) ${fmt(inRun(results, 'a25') / rate(results, 'd'), 2)}×, ` +
    `(a)/(e) ${fmt(inRun(results, 'a') / rate(results, 'e'), 2)}×`);
  console.log(`also: engine onnx / engine tfjs end to end (a / b) = ${fmt(rate(results, 'a') / rate(results, 'b'), 2)}×`);
}

async function setup(labelled: string, tmp: string): Promise<Setup> {
  // The CLI's own input order (byte order of relative paths), from the library.
  const { expandInputs } = await import('../../src/inputs/expand.js');
  const folder = (await expandInputs([labelled])).map((e) => e.path);
  // Subsets take every k-th photo, so they still span the 10 classes (the first 100 would be 2).
  const every = (k: number) => folder.filter((_, i) => i % k === 0);
  const all = opt.quick ? every(QUICK_EVERY) : folder;
  const slow = opt.quick ? all : every(SLOW_EVERY);
  const lists = new Map<string[], string>();
  for (const [name, paths] of [['all', all], ['slow', slow]] as const) {
    const file = join(tmp, `${name}.txt`);
    await writeFile(file, paths.join('\n') + '\n');
    lists.set(paths, file);
  }
  return { folder, all, slow, lists, labelled, tmp, cacheDir: join(tmp, 'cache') };
}

async function parentMain(): Promise<void> {
  const rounds = Number(opt.rounds ?? (opt.quick ? 1 : 3));
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got '${opt.rounds}'`);
  const shared = sharedDir();
  const labelled = join(shared, 'images', 'labelled');
  const modelsDir = join(shared, 'models');
  requirePaths([labelled, ...MODELS.map((m) => join(modelsDir, m.dir, 'model.json'))], 'npm run bench');
  const cores = availableParallelism();
  const list = configs(modelsDir);
  const tmp = makeTempDir('spp-bench-');
  try {
    const s = await setup(labelled, tmp);
    console.log(`# spp-extract throughput benchmark\n# reproduce: ${reproduceLine(SCRIPT, 'bench:throughput')}`);
    console.log(`# ${machineLine()}`);
    console.log(`# data: ${s.all.length} photos under ${labelled}${opt.quick ? ` (--quick: every ${QUICK_EVERY}th)` : ''}; shorter side 224, ` +
      `levels ${LEVELS.join(',')}, max pooling, .npy output; b and e (tfjs wasm, α0.75) on ${s.slow.length}`);
    console.log(`# ${rounds} round(s), configurations alternating; medians reported; ${rssMethod()}`);
    console.log(`# stages: decode ${await pipelineDecodeAhead()} in flight (the run's default) on ${cores} libuv threads (as the command sets them), backbone 1 ORT thread on this thread, bound over ${cores} cores`);
    console.log(`# ONNX conversions cached in a private ${s.cacheDir} (converted once, before the rounds)`);
    // Convert every model once (cached), outside any measurement.
    for (const m of MODELS) {
      const r = await runNode([CLI, 'info', '--model', join(modelsDir, m.dir), '--engine', 'onnx', '--cache-dir', s.cacheDir], { tmp });
      if (r.code !== 0) throw new Error(`spp-extract info --model ${m.dir} failed:\n${tail(r.stderr + r.stdout)}`);
    }
    const started = performance.now();
    const results = await runRounds(list, s, rounds);
    console.log('\n## Throughput (medians over rounds; e2e img/s = images / wall time of the whole CLI process, start-up and model load included)\n');
    console.log(throughputTable(list, results));
    printBound(results, cores);
    printTargets(results, cores);
    if (s.slow.length !== s.all.length) console.log(`note: b and e ran on ${s.slow.length} photos (every ${SLOW_EVERY}th): (a)/(e) compares per-image rates over different photo sets.`);
    if (opt.quick) console.log(`note: --quick: the CLI pays its start-up over ${s.all.length} photos, so e2e sits further below the bound than in a full run.`);
    // Other processes shrink what the cores give the e2e runs (see "cores busy"); say how busy the machine was.
    console.log(`\n# total bench time ${fmt((performance.now() - started) / 1000, 0)} s; load average at the end ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    removeDir(tmp);
  }
}

if (opt.config) await childMain(opt.config);
else await parentMain();
