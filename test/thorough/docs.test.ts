/**
 * The documentation's commands, run. Every ```sh / ```bash block of README.md and docs/*.md runs as a
 * bash script (set -e, pipefail) in a fresh folder of its own, with `spp-extract` on the PATH, and must
 * exit 0 (or its <!-- exit: N -->); a block marked <!-- not run: REASON --> is listed as skipped with
 * its reason. What the folder holds, so the commands run as written, offline and fast:
 *   images/   140 small PNGs (more than the 128 components the PCA examples keep)
 *   photos/   a.jpg, b.png, c.webp, d.png (fixtures/images); a.jpg and b.png also at the top, data/ = photos/
 *   boxes.jsonl, examples/ (the repo's), ../shared (the real weights and photos, when present)
 *   a model cache whose `mobilenet_v2_1.00` (the default model) is fixtures/tiny-graph, so commands
 *   without --model run on the tiny model instead of downloading the real one.
 * Each `-o FILE` a block names must then exist and be complete (summary "complete": true).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { BIN } from '../helpers/cli.js';
import { blockName, docBlocks, docFiles, isShell, type DocBlock } from '../helpers/doc-blocks.js';
import { hasNumpy, NO_NUMPY } from '../helpers/python.js';
import { REPO_ROOT, SHARED_DIR, fixture } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

const ROOT = tempDir('spp-docs-');
const env: NodeJS.ProcessEnv = {
  ...process.env,
  PATH: `${join(ROOT, 'bin')}:${process.env.PATH}`,
  HOME: join(ROOT, 'home'),
  XDG_CACHE_HOME: join(ROOT, 'cache'),
  SPP_EXTRACT_CACHE: join(ROOT, 'cache', 'spp-extract'),
  NO_COLOR: '1',
};
// A default model chosen by the environment would not be the seeded one.
delete env.SPP_EXTRACT_MODEL;
delete env.SPP_EXTRACT_MODEL_MIRROR;

/** The checkout's own set-up steps: these tests run inside a checkout that has done them. */
const CHECKOUT_STEPS: [RegExp, string][] = [
  [/^npm ci && /gm, ''],
  [/^npm test\s*$/gm, ''],
  // Inside the checkout npx finds the package's own bin, which is what the PATH holds here.
  [/\bnpx spp-extract\b/g, 'spp-extract'],
];

let prepared: Promise<void> | undefined;
function prepare(): Promise<void> {
  prepared ??= (async () => {
    mkdirSync(join(ROOT, 'bin'));
    symlinkSync(BIN, join(ROOT, 'bin', 'spp-extract'));
    mkdirSync(join(ROOT, 'home'));
    cpSync(fixture('tiny-graph'), join(ROOT, 'cache', 'spp-extract', 'mobilenet_v2_1.00'), { recursive: true });
    if (existsSync(SHARED_DIR)) symlinkSync(SHARED_DIR, join(ROOT, 'shared'));
    const photos = join(ROOT, 'photos');
    mkdirSync(photos);
    cpSync(fixture('images', 'noise-100x70.jpg'), join(photos, 'a.jpg'));
    cpSync(fixture('images', 'red-64x48.png'), join(photos, 'b.png'));
    cpSync(fixture('images', 'nested', 'gray-100x70.webp'), join(photos, 'c.webp'));
    cpSync(fixture('images', 'nested', 'blue-alpha-40x90.png'), join(photos, 'd.png'));
    const images = join(ROOT, 'images');
    mkdirSync(join(images, 'sub'), { recursive: true });
    for (let i = 0; i < 140; i++) {
      const px = Buffer.alloc(32 * 24 * 3);
      for (let j = 0; j < px.length; j++) px[j] = (Math.imul(j + 1, 2654435761 + i * 40503) >>> 24) & 255;
      const name = join(images, i % 4 === 0 ? 'sub' : '', `img-${String(i).padStart(3, '0')}.png`);
      await sharp(px, { raw: { width: 32, height: 24, channels: 3 } }).png().toFile(name);
    }
    writeFileSync(join(ROOT, 'boxes.jsonl'), [
      JSON.stringify({ path: 'photos/a.jpg', boxes: [[0, 0, 50, 35], [10, 10, 90, 60]], labels: ['left', 'middle'] }),
      JSON.stringify({ path: 'photos/b.png', boxes: [[0, 0, 64, 48]] }),
    ].join('\n') + '\n');
  })();
  return prepared;
}

let faiss: boolean | undefined;
function hasFaiss(): boolean {
  faiss ??= spawnSync(process.env.PYTHON ?? 'python3', ['-c', 'import faiss'], { stdio: 'ignore', timeout: 60_000 }).status === 0;
  return faiss;
}

let folders = 0;
/** A fresh working folder under ROOT (so ../shared is ROOT/shared) with the inputs linked in. */
function workFolder(): string {
  const dir = join(ROOT, `run-${++folders}`);
  mkdirSync(dir);
  // Copies, not links: `find images …` does not descend into a link given as its start.
  for (const name of ['images', 'photos']) cpSync(join(ROOT, name), join(dir, name), { recursive: true });
  cpSync(join(ROOT, 'photos'), join(dir, 'data'), { recursive: true });
  symlinkSync(join('..', 'boxes.jsonl'), join(dir, 'boxes.jsonl'));
  symlinkSync(join(REPO_ROOT, 'examples'), join(dir, 'examples'));
  cpSync(join(ROOT, 'photos', 'a.jpg'), join(dir, 'a.jpg'));
  cpSync(join(ROOT, 'photos', 'b.png'), join(dir, 'b.png'));
  return dir;
}

function bash(code: string, cwd: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-e', '-o', 'pipefail', '-c', code], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000, killSignal: 'SIGKILL' });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (c) => resolve({ code: c, out }));
  });
}

/** The script as run here: comments kept (bash ignores them), the checkout's set-up steps left out. */
function script(b: DocBlock): string {
  return CHECKOUT_STEPS.reduce((code, [re, by]) => code.replace(re, by), b.code);
}

/** Why a block cannot run on this machine, or undefined. */
async function cannotRun(b: DocBlock): Promise<string | undefined> {
  if (b.notRun !== undefined) return `marked not run: ${b.notRun}`;
  if (/\.\.\/shared\b/.test(b.code) && !existsSync(SHARED_DIR)) return `needs ${SHARED_DIR} (real weights/images; set SPP_SHARED_DIR)`;
  if (/\bpython3?\b/.test(b.code) && !hasNumpy()) return NO_NUMPY;
  if (/\bfaiss\b/.test(b.code) && !hasFaiss()) return 'needs python3 with faiss (pip install faiss-cpu); skipping the faiss example';
  return undefined;
}

/** Every `-o FILE` of the script that names one file (not stdout, not a {shard} pattern). */
function outputsOf(code: string): string[] {
  return [...code.matchAll(/(?:^|\s)-o\s+'?([^\s'|;&]+)'?/g)].map((m) => m[1]!).filter((o) => o !== '-' && !o.includes('{'));
}

function assertComplete(dir: string, out: string, where: string): void {
  const path = join(dir, out);
  assert.ok(existsSync(path), `${where}: -o ${out} was not written`);
  const lastJsonLine = (p: string) => JSON.parse(readFileSync(p, 'utf8').trimEnd().split('\n').pop()!);
  if (out.endsWith('.npy')) {
    const manifest = path.replace(/\.npy$/, '.manifest.jsonl');
    assert.equal(lastJsonLine(manifest).complete, true, `${where}: ${manifest} ends with a complete summary`);
  } else if (out.endsWith('.jsonl')) {
    assert.equal(lastJsonLine(path).complete, true, `${where}: ${out} ends with a complete summary`);
  } else if (out.endsWith('.json')) {
    assert.equal(JSON.parse(readFileSync(path, 'utf8')).summary?.complete, true, `${where}: ${out} has a complete summary`);
  }
}

/** The [rows, width] of a .npy, from its header. */
function npyShape(path: string): number[] {
  const head = readFileSync(path).subarray(0, 128).toString('latin1');
  const m = /'shape': \((\d+), (\d+)\)/.exec(head);
  assert.ok(m, `${path}: a 2-D .npy header`);
  return [Number(m[1]), Number(m[2])];
}

async function runBlock(b: DocBlock): Promise<string> {
  await prepare();
  const dir = workFolder();
  const { code, out } = await bash(script(b), dir);
  assert.equal(code, b.exit, `${blockName(b)} exited ${code}, expected ${b.exit}; output:\n${out}\nscript:\n${script(b)}`);
  if (b.exit === 0) for (const o of outputsOf(script(b))) assertComplete(dir, o, blockName(b));
  return dir;
}

const blocks = docFiles().flatMap(docBlocks).filter(isShell);
/** README's set-up block: run by its own test (twice, with the real model), not by the loop. */
const setup = blocks.find((b) => b.file === 'README.md' && b.code.includes('../shared/images/photos'));

test('docs: every shell block of README.md and docs/*.md runs as written', { concurrency: 2 }, async (t) => {
  assert.ok(blocks.length >= 15, `found ${blocks.length} shell blocks`);
  await Promise.all(blocks.filter((b) => b !== setup).map(async (b) => {
    const reason = await cannotRun(b);
    return t.test(`${blockName(b)}: ${b.code.split('\n').find((l) => l.trim() && !l.startsWith('#'))?.slice(0, 80)}`,
      reason ? { skip: reason } : {}, async () => { await runBlock(b); });
  }));
});

test('README set-up: the first command writes a [6, 16128] .npy from ../shared and can be run again as it is', async (t) => {
  assert.ok(setup, 'README.md has the set-up block (spp-extract ../shared/images/photos …)');
  assert.match(setup.code, /^npm test$/m, 'the second set-up command is npm test');
  const reason = await cannotRun(setup);
  if (reason) return t.skip(reason);
  const dir = await runBlock(setup);
  assert.deepEqual(npyShape(join(dir, 'feats.npy')), [6, 16128]);
  const again = await bash(script(setup), dir);
  assert.equal(again.code, 0, `the set-up command run a second time in the same folder:\n${again.out}`);
  assert.deepEqual(npyShape(join(dir, 'feats.npy')), [6, 16128]);
});

test('docs harness: a failing command fails its block, and an output it names must exist', async () => {
  await prepare();
  const block = (code: string): DocBlock => ({ file: 'test', line: 1, lang: 'sh', code, exit: 0 });
  await assert.rejects(runBlock(block('spp-extract images/ --levels 0 -o x.npy\n')), /exited 1, expected 0/);
  await assert.rejects(runBlock(block('spp-extract photos/ -o - > /dev/null && true -o never.npy\n')), /-o never\.npy was not written/);
  await runBlock({ ...block('spp-extract photos/ -o x.npy\nspp-extract photos/ -o x.npy\n'), exit: 1 });
});
