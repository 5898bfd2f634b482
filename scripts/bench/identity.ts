/**
 * Proof that a change to decoding or inference changed no output: every file under
 * ../shared/images (all folders, non-images included) goes through an earlier revision's code and
 * this checkout's, and the two must agree bit for bit.
 *
 *   node dist/scripts/bench/identity.js [--against <git rev>] [--model <id>]
 *
 * - decode: decodeImage on the path (several option sets) and on the file's bytes; equal means the
 *   same pixels byte for byte and the same sizes and format, or the same failure (reason and message);
 * - descriptors: runExtraction of each revision over all files (its own extractor, the pipeline's
 *   path) into a writer that keeps the rows; equal means the same float32 bits and the same failures.
 * Exits 1 on any difference and prints the first few.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type * as DecodeModule from '../../src/decode/decode.js';
import type * as ExtractorModule from '../../src/pipeline/extractor.js';
import type * as RunModule from '../../src/pipeline/run.js';
import type { FailureRecord, OutputWriter, RowRecord } from '../../src/output/records.js';
import { REPO, makeTempDir, removeDir, requirePaths, sharedDir } from './common.js';
import { buildRevision, importFrom, resolveRevision } from './revision.js';

const { values: opt } = parseArgs({
  options: { against: { type: 'string', default: 'HEAD' }, model: { type: 'string', default: 'tfhub-mobilenet_v1_025_224' } },
  strict: true,
});

type Decode = typeof DecodeModule;
type Side = { decode: Decode; extractor: typeof ExtractorModule; run: typeof RunModule };

const OPTION_SETS: Record<string, Partial<DecodeModule.DecodeOptions>> = {
  default: {},
  lenient: { failOn: 'none' },
  native: { size: null, maxSide: 512, background: { r: 0, g: 0, b: 0 } },
  small: { size: 96, maxSide: null, failOn: 'truncated' },
};

function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(join(dir, e.name)) : [join(dir, e.name)]).sort();
}

/** A decode's outcome as one comparable string (pixels as their bytes, in hex-free form: a Buffer compare). */
async function outcome(decode: Decode, input: string | Buffer, o: Partial<DecodeModule.DecodeOptions>, label: string):
  Promise<{ text: string; data?: Uint8Array }> {
  try {
    const d = await decode.decodeImage(input, o, label);
    return { text: `ok ${d.width}x${d.height}x${d.channels} from ${d.originalWidth}x${d.originalHeight} ${d.format}`, data: d.data };
  } catch (err) {
    const e = err as Error & { reason?: string };
    return { text: `${e.name} ${e.reason ?? ''} ${e.message}` };
  }
}

async function compareDecodes(files: string[], old: Decode, now: Decode, differences: string[]): Promise<number> {
  let compared = 0;
  for (const file of files) {
    const bytes = readFileSync(file);
    const cases: [string, string | Buffer, Partial<DecodeModule.DecodeOptions>][] = [
      ...Object.entries(OPTION_SETS).map(([name, o]): [string, string, typeof o] => [name, file, o]),
      ['bytes', bytes, {}],
    ];
    for (const [name, input, o] of cases) {
      const [a, b] = [await outcome(old, input, o, file), await outcome(now, input, o, file)];
      compared++;
      const samePixels = a.data === undefined ? b.data === undefined : b.data !== undefined && Buffer.compare(a.data, b.data) === 0;
      if (a.text !== b.text || !samePixels) differences.push(`decode ${name} ${file}:\n  was ${a.text}\n  now ${b.text}${samePixels ? '' : ' (pixels differ)'}`);
    }
  }
  return compared;
}

/** Rows and failures of one revision's runExtraction over `files`, keyed by index. */
async function extractAll(side: Side, files: string[], model: string): Promise<Map<number, string | Float32Array>> {
  const cacheDir = makeTempDir('spp-identity-cache-');
  const extractor = await side.extractor.createExtractor({ model, engine: 'onnx', threads: 1, cacheDir });
  const got = new Map<number, string | Float32Array>();
  const writer: OutputWriter = {
    paths: [],
    row: async (r: RowRecord) => void got.set(r.index, r.descriptor),
    failure: async (f: FailureRecord) => void got.set(f.index, `${f.reason}: ${f.error}`),
    close: async () => undefined,
    abandon: async () => undefined,
  };
  try {
    await side.run.runExtraction(files.map((path, index) => ({ index, path })), extractor, writer);
  } finally {
    await extractor.dispose();
    removeDir(cacheDir);
  }
  return got;
}

function compareDescriptors(files: string[], a: Map<number, string | Float32Array>, b: Map<number, string | Float32Array>, differences: string[]): number {
  let rows = 0;
  files.forEach((file, i) => {
    const [x, y] = [a.get(i), b.get(i)];
    if (typeof x === 'string' || typeof y === 'string' || !x || !y) {
      if (x !== y) differences.push(`descriptor ${file}: was ${String(x).slice(0, 200)}, now ${String(y).slice(0, 200)}`);
      return;
    }
    rows++;
    const same = x.length === y.length && Buffer.compare(Buffer.from(x.buffer, x.byteOffset, x.byteLength), Buffer.from(y.buffer, y.byteOffset, y.byteLength)) === 0;
    if (!same) differences.push(`descriptor ${file}: float32 bits differ`);
  });
  return rows;
}

async function loadSide(distSrc: string): Promise<Side> {
  return {
    decode: await importFrom<Decode>(distSrc, 'decode/decode.js'),
    extractor: await importFrom<typeof ExtractorModule>(distSrc, 'pipeline/extractor.js'),
    run: await importFrom<typeof RunModule>(distSrc, 'pipeline/run.js'),
  };
}

async function main(): Promise<void> {
  const images = join(sharedDir(), 'images');
  const model = join(sharedDir(), 'models', opt.model);
  requirePaths([images, model], 'identity');
  const files = listFiles(images);
  const sha = resolveRevision(opt.against);
  const old = await loadSide(buildRevision(sha));
  const now = await loadSide(join(REPO, 'dist', 'src'));
  const differences: string[] = [];
  const decodes = await compareDecodes(files, old.decode, now.decode, differences);
  const rows = compareDescriptors(files, await extractAll(old, files, model), await extractAll(now, files, model), differences);
  console.log(`${files.length} files under ${images}; ${decodes} decodes (${Object.keys(OPTION_SETS).join(', ')}, bytes) and ` +
    `${files.length} pipeline records (${rows} descriptors, ${opt.model}) compared against ${sha.slice(0, 12)} (${opt.against})`);
  if (differences.length === 0) {
    console.log('IDENTICAL: every pixel, size, failure message and descriptor bit');
    return;
  }
  console.log(`${differences.length} DIFFERENCES, the first 20:\n${differences.slice(0, 20).join('\n')}`);
  process.exitCode = 1;
}

await main();
