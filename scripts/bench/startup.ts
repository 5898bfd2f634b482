/**
 * `npm run bench` (start-up section): how long a one-image run takes, against the floor of just
 * loading its two native libraries, and what --help, --version and `merge --help` cost.
 *
 *   node dist/scripts/bench/startup.js [--rounds N]
 *
 * Commands, each a fresh `node` process timed from spawn to exit (medians over the rounds, the
 * commands alternating within each round and the order rotated every round):
 *   one image   spp-extract <photo> -o - --model <keras v1 0.75> --engine onnx (converted model cached)
 *   bare        node --input-type=module -e "await import('onnxruntime-node'); await import('sharp')"
 *   --help, --version, merge --help
 * The goal: one image ≤ 2× bare. Without ../shared the repository's tiny model and image stand in.
 * A loader hook then checks which model runtimes (tfjs, ONNX Runtime) and image decoder (sharp)
 * each command loads: --help, --version and merge should load none. Nothing is asserted: the
 * script prints PASS/MISS.
 */
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { CLI, REPO, fmt, machineLine, makeTempDir, median, removeDir, reproduceLine, sharedDir, table, tail } from './common.js';

const SCRIPT = 'dist/scripts/bench/startup.js';
const GOAL = 2;

const { values: opt } = parseArgs({ options: { rounds: { type: 'string', default: '15' } }, strict: true });

interface Run { code: number | null; ms: number; stdout: string; stderr: string }

/** `node args…` from the repository root, timed from spawn to exit; stdout is read (and dropped). */
function timeNode(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, ms: performance.now() - t0, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
  });
}

/** The model and photo: keras MobileNet v1 α0.75 and a real photo from ../shared, else the tiny fixtures. */
function inputs(): { model: string; image: string; what: string } {
  const shared = sharedDir();
  const model = join(shared, 'models', 'keras-mobilenet_v1_0.75_224');
  const image = join(shared, 'images', 'photos', 'dog.jpg');
  if (existsSync(join(model, 'model.json')) && existsSync(image)) return { model, image, what: 'keras MobileNet v1 0.75, dog.jpg (768×576)' };
  return {
    model: join(REPO, 'fixtures', 'tiny-layers'),
    image: join(REPO, 'fixtures', 'images', 'red-64x48.png'),
    what: `fixtures/tiny-layers, red-64x48.png (../shared not found at ${shared})`,
  };
}

interface Command { id: string; what: string; args: string[] }

function commands(model: string, image: string, cacheDir: string): Command[] {
  return [
    { id: 'one', what: 'spp-extract <photo> -o - --engine onnx (cached .onnx)', args: [CLI, image, '-o', '-', '--model', model, '--engine', 'onnx', '--cache-dir', cacheDir, '-q'] },
    { id: 'bare', what: "node -e \"await import('onnxruntime-node'); await import('sharp')\"", args: ['--input-type=module', '-e', "await import('onnxruntime-node'); await import('sharp')"] },
    { id: 'help', what: 'spp-extract --help', args: [CLI, '--help'] },
    { id: 'version', what: 'spp-extract --version', args: [CLI, '--version'] },
    { id: 'merge', what: 'spp-extract merge --help', args: [CLI, 'merge', '--help'] },
  ];
}

/**
 * Hooks that report, on stderr, every model runtime / decoder package a process loads: an ESM
 * resolve hook (import, import()) and a CommonJS one (require, createRequire), in the inference
 * worker too (workers inherit --import and --require).
 */
function writeLoadHooks(dir: string): string[] {
  const watch = "/^(onnxruntime-node|@tensorflow\\/tfjs[\\w-]*|sharp)(\\/|$)/";
  const hooks = join(dir, 'hooks.mjs');
  writeFileSync(hooks, [
    "import { writeSync } from 'node:fs';",
    `const WATCH = ${watch};`,
    'export async function resolve(specifier, context, next) {',
    '  const m = WATCH.exec(specifier);',
    "  if (m) writeSync(2, `SPP_BENCH_LOADED ${m[1]}\\n`);",
    '  return next(specifier, context);',
    '}',
  ].join('\n'));
  const register = join(dir, 'register.mjs');
  writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);
  const cjs = join(dir, 'require-hook.cjs');
  writeFileSync(cjs, [
    "const Module = require('node:module');",
    "const { writeSync } = require('node:fs');",
    `const WATCH = ${watch};`,
    'const load = Module._load;',
    'Module._load = function (request, ...rest) {',
    '  const m = WATCH.exec(request);',
    "  if (m) writeSync(2, `SPP_BENCH_LOADED ${m[1]}\\n`);",
    '  return load.call(this, request, ...rest);',
    '};',
  ].join('\n'));
  return ['--import', pathToFileURL(register).href, '--require', cjs];
}

/** Which watched packages the command loads (static and dynamic imports and requires, the inference worker's too). */
async function loadedBy(c: Command, hookArgs: string[]): Promise<string> {
  const r = await timeNode([...hookArgs, ...c.args]);
  const names = [...new Set(r.stderr.split('\n').filter((l) => l.startsWith('SPP_BENCH_LOADED ')).map((l) => l.slice(17)))].sort();
  return names.length === 0 ? 'none' : names.join(', ');
}

async function main(): Promise<void> {
  const rounds = Number(opt.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got '${opt.rounds}'`);
  const { model, image, what } = inputs();
  const tmp = makeTempDir('spp-bench-startup-');
  try {
    console.log(`# spp-extract start-up benchmark\n# reproduce: ${reproduceLine(SCRIPT, 'bench:startup')}`);
    console.log(`# ${machineLine()}`);
    console.log(`# model and photo: ${what}; ONNX conversion cached in a private cache dir before timing`);
    console.log(`# ${rounds} rounds, commands alternating (order rotated each round), one untimed warm-up round; medians`);
    const cacheDir = join(tmp, 'cache');
    const cmds = commands(model, image, cacheDir);
    // Convert once, and check every command works, untimed (this also warms the page cache).
    for (const c of cmds) {
      const r = await timeNode(c.args);
      if (r.code !== 0) throw new Error(`${c.what} exited ${r.code}:\n${tail(r.stderr + r.stdout)}`);
    }
    const times = new Map<string, number[]>(cmds.map((c) => [c.id, []]));
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < cmds.length; i++) {
        const c = cmds[(i + round) % cmds.length]!;
        const r = await timeNode(c.args);
        if (r.code !== 0) throw new Error(`${c.what} exited ${r.code}:\n${tail(r.stderr)}`);
        times.get(c.id)!.push(r.ms);
      }
    }
    const hookArgs = writeLoadHooks(tmp);
    const loads = new Map<string, string>();
    for (const c of cmds) loads.set(c.id, await loadedBy(c, hookArgs));
    report(cmds, times, loads);
  } finally {
    removeDir(tmp);
  }
}

function report(cmds: Command[], times: Map<string, number[]>, loads: Map<string, string>): void {
  const med = (id: string) => median(times.get(id)!);
  console.log('\n## Start-up (ms, wall time of the process from spawn to exit)\n');
  console.log(table(['id', 'command', 'median', 'min', 'max', 'loads (model runtimes, sharp)'], cmds.map((c) => {
    const t = times.get(c.id)!;
    return [c.id, c.what, fmt(med(c.id)), fmt(Math.min(...t)), fmt(Math.max(...t)), loads.get(c.id) ?? ''];
  })));
  const ratio = med('one') / med('bare');
  const noRuntime = ['help', 'version', 'merge'].every((id) => !/onnxruntime|tfjs/.test(loads.get(id) ?? ''));
  console.log('\n## Targets\n');
  console.log(table(['target', 'measured', 'goal', 'result'], [
    ['one image / bare (medians)', `${fmt(ratio, 2)}×`, `≤ ${GOAL}×`, ratio <= GOAL ? 'PASS' : 'MISS'],
    ['--help, --version, merge --help load no model runtime', noRuntime ? 'none loaded' : 'loaded', 'none', noRuntime ? 'PASS' : 'MISS'],
  ]));
}

await main();
