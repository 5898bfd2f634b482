/**
 * The layout's two rules, checked on the sources: imports (type imports too) only point down the
 * stages, and no module imports itself back through others (no cycle).
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../helpers/shared.js';

/** Bottom to top: a module may import from its own stage or any stage before it. */
export const STAGES = ['core', 'inputs', 'decode', 'backbone', 'spp', 'output', 'pca', 'pipeline', 'cli', 'index.ts'] as const;

const SRC = join(REPO_ROOT, 'src');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Relative imports of a file (static, dynamic and `export … from`), as repo paths of .ts files. */
export function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)['"](\.{1,2}\/[^'"]+)['"]/g)].map((m) => m[1]);
  return specs.map((s) => resolve(dirname(file), s).replace(/\.js$/, '.ts'));
}

const stageOf = (file: string) => {
  const top = relative(SRC, file).split('/')[0];
  const i = STAGES.indexOf(top as (typeof STAGES)[number]);
  assert.ok(i >= 0, `${relative(REPO_ROOT, file)} is in no stage (${STAGES.join(', ')})`);
  return i;
};

test('every module sits in a stage, and imports only from its own stage or below', () => {
  const upward: string[] = [];
  for (const file of sources(SRC)) {
    const from = stageOf(file);
    for (const target of importsOf(file)) {
      if (stageOf(target) > from) upward.push(`${relative(SRC, file)} → ${relative(SRC, target)}`);
    }
  }
  assert.deepEqual(upward, [], `imports that climb: ${upward.join('; ')}`);
});

test('no import cycle', () => {
  const graph = new Map(sources(SRC).map((f) => [f, importsOf(f)]));
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]) => {
    if (state.get(f) === 'done') return;
    if (state.get(f) === 'open') {
      cycles.push([...path.slice(path.indexOf(f)), f].map((p) => relative(SRC, p)).join(' → '));
      return;
    }
    state.set(f, 'open');
    for (const t of graph.get(f) ?? []) visit(t, [...path, f]);
    state.set(f, 'done');
  };
  for (const f of graph.keys()) visit(f, []);
  assert.deepEqual(cycles, []);
});

test('the checker sees what it should: a known import and a made-up climb', () => {
  const cli = join(SRC, 'cli', 'extract.ts');
  assert.ok(importsOf(cli).some((p) => p.startsWith(join(SRC, 'pipeline'))), 'the extract command imports the pipeline');
  assert.ok(stageOf(join(SRC, 'cli', 'x.ts')) > stageOf(join(SRC, 'output', 'x.ts')), 'cli sits above output');
});
