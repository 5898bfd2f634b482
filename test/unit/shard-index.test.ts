import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseShard, selectShard, shardOfPath, type ShardSpec } from '../../src/inputs/shard.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

// The array-job recipes (docs/clusters.md, examples/): every file goes to exactly one task, the job
// files say what docs/clusters.md says, and the Kubernetes manifest has the fields the recipe relies on.
// scripts/e2e/{slurm,parallel}.sh run the Slurm and GNU parallel recipes for real (npm run e2e:slurm).

const read = (...p: string[]) => readFileSync(join(REPO_ROOT, ...p), 'utf8');

/** Paths as a directory walk gives them: nested, odd names, non-ASCII. */
function samplePaths(): string[] {
  const out: string[] = [];
  const dirs = ['dress', 'hat', 'pants', 'shoes', 'été', 'a b', 'x/y/z'];
  for (let i = 0; i < 700; i++) out.push(`images/${dirs[i % dirs.length]}/${i.toString(36)}-${(i * 7919) % 1000}.jpg`);
  out.push('images/ünïcödé.png', 'images/日本.jpg', 'images/with,comma.jpg', "images/it's.jpg", 'a.jpg');
  return out;
}

/** The task environments of one array of n tasks, as each scheduler sets them. */
function arrays(n: number): { name: string; envs: NodeJS.ProcessEnv[] }[] {
  const range = (f: (i: number) => NodeJS.ProcessEnv) => Array.from({ length: n }, (_, i) => f(i));
  const slurm = (min: number, step: number) => (i: number) => ({
    SLURM_ARRAY_TASK_ID: String(min + i * step),
    SLURM_ARRAY_TASK_MIN: String(min),
    SLURM_ARRAY_TASK_MAX: String(min + (n - 1) * step),
    SLURM_ARRAY_TASK_STEP: String(step),
    SLURM_ARRAY_TASK_COUNT: String(n),
  });
  return [
    { name: 'Kubernetes Indexed Job (JOB_COMPLETION_INDEX 0..N-1)', envs: range((i) => ({ JOB_COMPLETION_INDEX: String(i) })) },
    { name: 'Slurm --array=1-N', envs: range(slurm(1, 1)) },
    { name: 'Slurm --array=0-(N-1)', envs: range(slurm(0, 1)) },
    { name: 'Slurm --array=100-(99+N)', envs: range(slurm(100, 1)) },
    { name: 'Slurm --array=0-…:3 (step)', envs: range(slurm(0, 3)) },
    { name: 'Slurm without MIN/COUNT (ids 0..N-1)', envs: range((i) => ({ SLURM_ARRAY_TASK_ID: String(i) })) },
  ];
}

test('auto/N: each file goes to exactly one of N tasks, N = 1..8, from JOB_COMPLETION_INDEX and SLURM_ARRAY_TASK_ID/MIN', () => {
  const items = samplePaths().map((path, index) => ({ index, path }));
  for (let n = 1; n <= 8; n++) {
    for (const { name, envs } of arrays(n)) {
      const specs: ShardSpec[] = envs.map((env) => parseShard(`auto/${n}`, env));
      assert.deepEqual(specs.map((s) => s.index).sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i + 1), `${name}, N=${n}: k = 1..N once each`);
      assert.ok(specs.every((s) => s.count === n));
      // -o 'feats-{shard}.npy' as the CLI expands it: N distinct outputs.
      const outputs = new Set(specs.map((s) => 'feats-{shard}.npy'.replaceAll('{shard}', String(s.index))));
      assert.equal(outputs.size, n, `${name}, N=${n}: distinct outputs`);
      const owner = new Array<number>(items.length).fill(0);
      for (const spec of specs) {
        const mine = selectShard(items, spec);
        assert.ok(mine.every((it, j) => j === 0 || mine[j - 1].index < it.index), 'a shard keeps input order');
        for (const it of mine) owner[it.index]++;
        if (n > 1) assert.ok(mine.length > items.length / n / 2, `${name}, N=${n}: shard ${spec.index} is not starved (${mine.length})`);
      }
      const wrong = owner.flatMap((c, i) => (c === 1 ? [] : [`${items[i].path}: ${c} tasks`]));
      assert.deepEqual(wrong, [], `${name}, N=${n}: every file in exactly one task`);
    }
  }
});

test('auto/N refuses an array of another size, ids off the array, and junk in the environment', () => {
  const slurm = (id: number, min: number, count: number, step = 1) => ({
    SLURM_ARRAY_TASK_ID: String(id), SLURM_ARRAY_TASK_MIN: String(min), SLURM_ARRAY_TASK_COUNT: String(count), SLURM_ARRAY_TASK_STEP: String(step),
  });
  // One task resubmitted on its own (sbatch --array=3) would be task 1 of 1: another shard's work.
  assert.throws(() => parseShard('auto/4', slurm(3, 3, 1)), /this Slurm array has 1 task\(s\) \(SLURM_ARRAY_TASK_COUNT\), not 4.*scontrol requeue/);
  assert.throws(() => parseShard('auto/4', slurm(1, 1, 8)), /has 8 task\(s\).*not 4/);
  assert.throws(() => parseShard('auto/4', slurm(4, 0, 4, 3)), /SLURM_ARRAY_TASK_ID 4 is not in an array from 0 by 3/);
  assert.throws(() => parseShard('auto/4', { SLURM_ARRAY_TASK_ID: '5', SLURM_ARRAY_TASK_MIN: '1' }), /K = 5/);
  assert.throws(() => parseShard('auto/4', { SLURM_ARRAY_TASK_ID: '0', SLURM_ARRAY_TASK_MIN: '1' }), /not in an array from 1/);
  assert.throws(() => parseShard('auto/4', { SLURM_ARRAY_TASK_ID: '' }), /SLURM_ARRAY_TASK_ID must be a non-negative integer, got ''/);
  assert.throws(() => parseShard('auto/4', { JOB_COMPLETION_INDEX: '1.5' }), /JOB_COMPLETION_INDEX must be a non-negative integer/);
  assert.throws(() => parseShard('auto/4', { JOB_COMPLETION_INDEX: '4' }), /K = 5/);
  // Explicit k/n ignores the environment.
  assert.deepEqual(parseShard('3/4', slurm(1, 1, 8)), { index: 3, count: 4 });
});

// ---------------------------------------------------------------------------------------------
// The recipes: docs/clusters.md blocks (marked <!-- recipe: NAME -->) and examples/ files.

function readmeBlock(name: string): string {
  const lines = read('docs', 'clusters.md').split('\n');
  const at = lines.indexOf(`<!-- recipe: ${name} -->`);
  assert.ok(at >= 0, `docs/clusters.md has a <!-- recipe: ${name} --> block`);
  const open = lines.findIndex((l, i) => i > at && l.startsWith('```'));
  const close = lines.findIndex((l, i) => i > open && l.startsWith('```'));
  assert.ok(open === at + 1 && close > open, `<!-- recipe: ${name} --> is followed by a fenced block`);
  return lines.slice(open + 1, close).join('\n') + '\n';
}

const hasSh = spawnSync('/bin/sh', ['-c', 'exit 0']).status === 0;
const hasBash = spawnSync('bash', ['-c', 'exit 0']).status === 0;

/** A stub spp-extract on PATH that records its argv (one per line) and exits with $STUB_RC. */
function stubTool(): { dir: string; argv: () => string[] } {
  const dir = tempDir('spp-recipe-');
  mkdirSync(join(dir, 'bin'));
  const log = join(dir, 'argv.txt');
  writeFileSync(join(dir, 'bin', 'spp-extract'), `#!/bin/sh\nprintf '%s\\n' "$@" > '${log}'\nexit "\${STUB_RC:-0}"\n`);
  chmodSync(join(dir, 'bin', 'spp-extract'), 0o755);
  return { dir, argv: () => readFileSync(log, 'utf8').trimEnd().split('\n') };
}

function run(shell: string, args: string[], cwd: string, env: NodeJS.ProcessEnv) {
  return spawnSync(shell, args, { cwd, env: { PATH: process.env.PATH, ...env }, encoding: 'utf8', timeout: 30_000 });
}

test('Slurm recipe: docs/clusters.md shows examples/spp-extract.sbatch verbatim, and the merge line', () => {
  const job = read('examples', 'spp-extract.sbatch');
  assert.equal(readmeBlock('slurm-job'), job, 'docs/clusters.md block <!-- recipe: slurm-job --> = examples/spp-extract.sbatch (scripts/e2e/slurm.sh submits that block)');
  assert.match(job, /^#!\/bin\/bash\n/);
  for (const line of ['#SBATCH --array=', '#SBATCH --requeue', '#SBATCH --open-mode=append']) assert.ok(job.includes(line), line);
  const submit = readmeBlock('slurm-submit');
  assert.match(submit, /^spp-extract merge feats-\*\.npy -o feats\.npy$/m);
  assert.match(submit, /sbatch --array=1-\d+ spp-extract\.sbatch/);
});

test('Slurm recipe: argv from the array environment, relative paths, exit 2 → COMPLETED, others passed on', (t) => {
  if (!hasBash) return t.skip('needs bash');
  const { dir, argv } = stubTool();
  const env = { PATH: `${join(dir, 'bin')}:${process.env.PATH}`, IMAGES: 'images', MODEL: 'model', SLURM_ARRAY_TASK_ID: '2', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_COUNT: '4', SLURM_CPUS_PER_TASK: '2' };
  const job = join(REPO_ROOT, 'examples', 'spp-extract.sbatch');
  for (const [rc, expected] of [[0, 0], [2, 0], [1, 1], [130, 130], [137, 137]]) {
    const r = run('bash', [job], dir, { ...env, STUB_RC: String(rc) });
    assert.equal(r.status, expected, `tool exit ${rc} → job exit ${expected}: ${r.stderr}`);
  }
  const args = argv();
  assert.deepEqual(args.slice(0, 1), ['images'], 'IMAGES as given (relative to the submit folder)');
  const opt = (name: string) => args[args.indexOf(name) + 1];
  assert.equal(opt('--model'), 'model');
  assert.equal(opt('--shard'), 'auto/4', 'N from SLURM_ARRAY_TASK_COUNT');
  assert.equal(opt('-o'), 'feats-{shard}.npy', '{shard} reaches spp-extract unexpanded');
  assert.equal(opt('--threads'), '2');
  assert.equal(opt('--cache-dir'), '.spp-cache', 'one cache in the submit folder, shared by all tasks');
  assert.ok(args.includes('--resume'));
  // The shard k the tool will compute from that environment.
  assert.deepEqual(parseShard(opt('--shard'), env), { index: 2, count: 4 });
});

test('GNU parallel recipe: N in ::: and {}/N agree; a job exiting 2 counts as done', (t) => {
  const block = readmeBlock('parallel');
  const line = block.split('\n').find((l) => l.startsWith('parallel '));
  assert.ok(line, 'a parallel line');
  const m = /^parallel -j(\d+) --retries \d+ '(.*)' ::: ([\d ]+)$/.exec(line);
  assert.ok(m, `parallel -jN --retries R '<command>' ::: 1 … N, got: ${line}`);
  const ks = m[3].trim().split(/\s+/).map(Number);
  const n = ks.length;
  assert.deepEqual(ks, Array.from({ length: n }, (_, i) => i + 1));
  const command = m[2];
  assert.ok(command.includes(`--shard {}/${n}`) && command.includes('-o feats-{}.npy') && command.includes('--resume'), command);
  assert.match(block, /^spp-extract merge feats-\*\.npy -o feats\.npy$/m);
  if (!hasSh) return t.skip('needs /bin/sh');
  const { dir, argv } = stubTool();
  for (const [rc, ok] of [[0, true], [2, true], [1, false], [137, false]] as const) {
    // parallel runs the command in a shell with {} replaced by the argument.
    const r = run('/bin/sh', ['-c', command.replaceAll('{}', '3')], dir, {
      PATH: `${join(dir, 'bin')}:${process.env.PATH}`, IMAGES: 'images', MODEL: 'model', STUB_RC: String(rc),
    });
    assert.equal(r.status === 0, ok, `tool exit ${rc}: job ${ok ? 'done' : 'failed (retried)'}`);
  }
  const args = argv();
  assert.equal(args[0], 'images');
  assert.equal(args[args.indexOf('--shard') + 1], `3/${n}`);
  assert.equal(args[args.indexOf('-o') + 1], 'feats-3.npy');
});

// ---------------------------------------------------------------------------------------------
// Kubernetes: a small YAML reader for the subset the manifest uses (block mappings and sequences,
// plain and quoted scalars, comments); anything else (flow collections, block scalars, anchors) is
// refused so the manifest stays in a subset this test can check.

type Yaml = null | boolean | number | string | Yaml[] | { [k: string]: Yaml };

function stripComment(line: string): string {
  let quote = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = '';
    } else if (c === "'" || c === '"') {
      quote = c;
    } else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]))) {
      return line.slice(0, i);
    }
  }
  return line;
}

function yamlScalar(t: string): Yaml {
  if (t.startsWith("'")) {
    assert.ok(t.length >= 2 && t.endsWith("'"), `yaml: unterminated '${t}'`);
    return t.slice(1, -1).replaceAll("''", "'");
  }
  if (t.startsWith('"')) return JSON.parse(t) as string;
  if (/^[[{|>&*!%@`]/.test(t)) throw new Error(`yaml: '${t}' is outside the subset this test reads`);
  if (/^-?\d+$/.test(t)) return Number(t);
  if (t === 'true' || t === 'false') return t === 'true';
  if (t === 'null' || t === '~') return null;
  return t;
}

function parseYaml(src: string): Yaml {
  const lines = src.split('\n').map(stripComment).filter((l) => l.trim() !== '' && l.trim() !== '---')
    .map((l) => {
      assert.ok(!l.includes('\t'), 'yaml: tabs');
      return { indent: l.length - l.trimStart().length, text: l.trim() };
    });
  let i = 0;
  const isItem = (t: string) => t === '-' || t.startsWith('- ');
  const keyLine = /^([^'"\s:][^:]*|'[^']*'|"[^"]*"):(?:\s+(.*))?$/;
  const block = (): Yaml => (isItem(lines[i].text) ? seq(lines[i].indent) : map(lines[i].indent));
  const nested = (indent: number): Yaml => {
    if (i >= lines.length) return null;
    if (lines[i].indent > indent) return block();
    if (lines[i].indent === indent && isItem(lines[i].text)) return seq(indent); // key:\n- item
    return null;
  };
  function seq(indent: number): Yaml[] {
    const out: Yaml[] = [];
    while (i < lines.length && lines[i].indent === indent && isItem(lines[i].text)) {
      const rest = lines[i].text.slice(1).trimStart();
      if (rest === '') {
        i++;
        out.push(nested(indent));
      } else if (keyLine.test(rest) && !/^['"]/.test(rest)) {
        lines[i] = { indent: indent + 2, text: rest }; // "- key: v" opens a mapping at the item's column
        out.push(map(indent + 2));
      } else {
        out.push(yamlScalar(rest));
        i++;
      }
    }
    return out;
  }
  function map(indent: number): { [k: string]: Yaml } {
    const out: { [k: string]: Yaml } = {};
    while (i < lines.length && lines[i].indent === indent && !isItem(lines[i].text)) {
      const m = keyLine.exec(lines[i].text);
      assert.ok(m, `yaml: expected 'key: value', got '${lines[i].text}'`);
      const key = String(yamlScalar(m[1]));
      assert.ok(!(key in out), `yaml: duplicate key ${key}`);
      i++;
      out[key] = m[2] === undefined || m[2] === '' ? nested(indent) : yamlScalar(m[2]);
    }
    return out;
  }
  const doc = block();
  assert.equal(i, lines.length, `yaml: could not read from line '${lines[i]?.text}' (bad indentation?)`);
  return doc;
}

test('parseYaml reads the subset (and agrees with PyYAML on the manifest when python3 has it)', () => {
  assert.deepEqual(parseYaml('a: 1\nb:\n  - x\n  - k: v # c\n    n: "2"\nc:\n- \'it\'\'s\'\nd: true\n'),
    { a: 1, b: ['x', { k: 'v', n: '2' }], c: ["it's"], d: true });
  assert.throws(() => parseYaml('a: [1, 2]\n'), /outside the subset/);
  assert.throws(() => parseYaml('a: |\n  text\n'), /outside the subset/);
  const py = spawnSync('python3', ['-c', 'import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))', join(REPO_ROOT, 'examples', 'k8s-indexed-job.yaml')], { encoding: 'utf8', timeout: 30_000 });
  if (py.status === 0) assert.deepEqual(parseYaml(read('examples', 'k8s-indexed-job.yaml')), JSON.parse(py.stdout));
});

test('Kubernetes recipe: examples/k8s-indexed-job.yaml is an Indexed Job whose pods run shard JOB_COMPLETION_INDEX+1 of completions', (t) => {
  const job = parseYaml(read('examples', 'k8s-indexed-job.yaml')) as any;
  assert.equal(job.apiVersion, 'batch/v1');
  assert.equal(job.kind, 'Job');
  assert.equal(typeof job.metadata?.name, 'string');
  const spec = job.spec;
  assert.equal(spec.completionMode, 'Indexed', 'JOB_COMPLETION_INDEX is only set in Indexed mode');
  const n = spec.completions;
  assert.ok(Number.isInteger(n) && n >= 1, 'completions: N');
  assert.ok(Number.isInteger(spec.parallelism) && spec.parallelism >= 1 && spec.parallelism <= n);
  assert.ok(Number.isInteger(spec.backoffLimit) && spec.backoffLimit >= 1, 'failed pods are retried');
  const pod = spec.template.spec;
  assert.equal(pod.restartPolicy, 'OnFailure', 'a killed container restarts with the same index and resumes');
  assert.equal(pod.containers.length, 1);
  const c = pod.containers[0];
  assert.equal(typeof c.image, 'string');
  assert.ok(Array.isArray(c.command) && c.command.length === 3 && c.command[0] === '/bin/sh' && c.command[1] === '-c', 'command: /bin/sh -c <line>');
  const line: string = c.command[2];
  assert.ok(line.includes(`--shard auto/${n}`), `--shard auto/${n} (= completions) in: ${line}`);
  assert.ok(line.includes('"feats-{shard}.npy"') && line.includes('--resume'), line);
  assert.match(line, /\|\| \[ \$\? -eq 2 \]$/, 'exit 2 (done, some inputs failed) counts as success');
  // Images, outputs and cache live on the one shared volume the pod mounts.
  const mounts: { name: string; mountPath: string }[] = c.volumeMounts;
  const paths = [...line.matchAll(/(\/data\/[\w./-]*)/g)].map((x) => x[1]);
  assert.ok(paths.length >= 3, `images, out and cache paths in: ${line}`);
  for (const p of paths) {
    const mount = mounts.find((mt) => p === mt.mountPath || p.startsWith(mt.mountPath + '/'));
    assert.ok(mount, `${p} is on a mounted volume`);
    const vol = pod.volumes.find((v: any) => v.name === mount.name);
    assert.ok(vol?.persistentVolumeClaim?.claimName, `${p}: volume ${mount.name} is a PersistentVolumeClaim (shared storage)`);
  }
  assert.match(line, /--cache-dir \/data\//, 'one model cache for all pods');
  assert.ok(c.resources?.requests?.cpu && c.resources?.requests?.memory);
  // The line itself: stub spp-extract, /data mapped to a temp folder, the exit-code mapping.
  if (!hasSh) return t.skip('needs /bin/sh');
  const { dir, argv } = stubTool();
  for (const [rc, expected] of [[0, 0], [2, 0], [1, 1]]) {
    const r = run('/bin/sh', ['-c', line.replaceAll('/data', join(dir, 'data'))], dir, { PATH: `${join(dir, 'bin')}:${process.env.PATH}`, STUB_RC: String(rc), JOB_COMPLETION_INDEX: '0' });
    assert.equal(r.status, expected, `tool exit ${rc} → container exit ${expected}: ${r.stderr}`);
  }
  const args = argv();
  assert.equal(args[args.indexOf('-o') + 1], 'feats-{shard}.npy');
  assert.deepEqual(parseShard(args[args.indexOf('--shard') + 1], { JOB_COMPLETION_INDEX: String(n - 1) }), { index: n, count: n });
});

test('shard rule: a file keeps its shard when others are added; auto/N reads Slurm and Kubernetes indices', () => {
  const paths = Array.from({ length: 2000 }, (_, i) => `data/class-${i % 7}/img-${i}.jpg`);
  const before = new Map(paths.map((p) => [p, shardOfPath(p, 4)]));
  const counts = [1, 2, 3, 4].map((k) => [...before.values()].filter((s) => s === k).length);
  assert.ok(counts.every((c) => c > 400 && c < 600), `balanced: ${counts}`);
  for (const p of paths) assert.equal(shardOfPath(p, 4), before.get(p));
  assert.deepEqual(parseShard('2/5', {}), { index: 2, count: 5 });
  assert.deepEqual(parseShard('auto/4', { SLURM_ARRAY_TASK_ID: '7', SLURM_ARRAY_TASK_MIN: '4' }), { index: 4, count: 4 });
  assert.deepEqual(parseShard('auto/4', { SLURM_ARRAY_TASK_ID: '1' }), { index: 2, count: 4 }, 'no MIN: 0-based ids');
  assert.deepEqual(parseShard('auto/4', { JOB_COMPLETION_INDEX: '0' }), { index: 1, count: 4 });
});
