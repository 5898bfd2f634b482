/**
 * Fingerprints the TF.js → ONNX converter: for each real model in ../shared/models and the two tiny
 * fixtures, the sha256 of the ONNX bytes for the auto-chosen layer (the same choice as
 * src/backbone/onnx/backbone.ts), for one non-default layer, and one digest over every candidate layer
 * (bytes + channels, or the error message). Run before and after a converter refactor: the output
 * must not change.
 * Run: npx tsc -p tsconfig.json && node dist/scripts/check-converter-bytes.js [--all] [model-dir ...]
 * (--all also prints every layer's line, to find which one changed).
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readArtifacts, type LoadedArtifacts } from '../src/backbone/artifacts.js';
import { autoGraphNode } from '../src/backbone/tfjs/backbone.js';
import { autoKerasLeaf, convertToOnnx, kerasLeaves, parseLayersTopology } from '../src/backbone/onnx/convert.js';

const repo = resolve(new URL('../..', import.meta.url).pathname);
const sha = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

function defaultDirs(): string[] {
  const shared = join(repo, '..', 'shared', 'models');
  const real = existsSync(shared) ? readdirSync(shared).sort().map((d) => join(shared, d)) : [];
  return [...real, join(repo, 'fixtures', 'tiny-layers'), join(repo, 'fixtures', 'tiny-graph')];
}

/** Auto layer (as engine.ts picks it) and every candidate layer, in model order. */
function layersOf(loaded: LoadedArtifacts): { auto: string; all: string[] } {
  if (loaded.format === 'graph') {
    type Node = { name: string; op: string; input?: string[] };
    const nodes = (loaded.artifacts.modelTopology as { node?: Node[] }).node ?? [];
    const all = nodes.filter((n) => n.op !== 'Const' && n.op !== 'Placeholder').map((n) => n.name);
    return { auto: autoGraphNode(nodes), all };
  }
  const root = parseLayersTopology(loaded.artifacts.modelTopology);
  return { auto: autoKerasLeaf(root).layer.name, all: kerasLeaves(root).leaves.map((l) => l.layer.name) };
}

function attempt(loaded: LoadedArtifacts, layer: string): string {
  try {
    const r = convertToOnnx(loaded, layer);
    return `${sha(r.onnx)} c=${r.channels}`;
  } catch (err) {
    return `ERR ${(err as Error).name}: ${(err as Error).message}`;
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const verbose = args.includes('--all');
  const given = args.filter((a) => a !== '--all');
  const dirs = given.length > 0 ? given.map((d) => resolve(d)) : defaultDirs();
  for (const dir of dirs) {
    const loaded = await readArtifacts(join(dir, 'model.json'));
    const { auto, all } = layersOf(loaded);
    const others = all.filter((n) => n !== auto);
    const other = others[Math.floor(others.length / 2)];
    const lines = all.map((n) => `${n}\t${attempt(loaded, n)}`);
    const ok = lines.filter((l) => !l.includes('\tERR ')).length;
    const name = dir.split('/').at(-1);
    console.log(`${name} (${loaded.format})`);
    console.log(`  auto  ${auto}: ${attempt(loaded, auto)}`);
    if (other !== undefined) console.log(`  other ${other}: ${attempt(loaded, other)}`);
    console.log(`  all   ${all.length} layers, ${ok} converted: ${sha(lines.join('\n'))}`);
    if (verbose) for (const l of lines) console.log(`    ${l}`);
  }
}

await main();
