/**
 * Does batching images of equal shape into one ONNX Runtime call pay on this machine? Times the
 * converted models' sessions (the same .onnx, session options and thread counts the tool uses) at
 * batch 1, 2, 4 and 8 on the default working shape of a 4:3 photo (224×299), ms per image, medians
 * over alternating rounds. The tool batches only if this shows a gain.
 *
 *   node dist/scripts/bench/batching.js [--rounds N] [--threads N]
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { loadOnnxBackbone } from '../../src/backbone/onnx/backbone.js';
import { sessionOptions } from '../../src/backbone/onnx/session.js';
import { fmt, machineLine, makeTempDir, median, removeDir, reproduceLine, sharedDir, table } from './common.js';

const { values: opt } = parseArgs({ options: { rounds: { type: 'string', default: '7' }, threads: { type: 'string', default: '1' } }, strict: true });
const MODELS = ['tfhub-mobilenet_v1_025_224', 'keras-mobilenet_v1_0.75_224', 'keras-mobilenet_v2_0.35_224-in-classifier'];
const BATCHES = [1, 2, 4, 8];
const [H, W] = [224, 299];

async function timeModel(onnxPath: string, threads: number, rounds: number): Promise<number[]> {
  const session = await ort.InferenceSession.create(onnxPath, sessionOptions(threads));
  const input = session.inputNames[0];
  const run = (n: number) => session.run({ [input]: new ort.Tensor('float32', new Float32Array(n * H * W * 3).fill(0.25), [n, H, W, 3]) });
  for (const n of BATCHES) await run(n); // first run at a shape plans its memory: not timed
  const perImage = new Map<number, number[]>(BATCHES.map((n) => [n, []]));
  for (let r = 0; r < rounds; r++) {
    // Rotate the order each round so drift on a shared machine falls on every batch size alike.
    for (const n of BATCHES.map((_, i) => BATCHES[(i + r) % BATCHES.length])) {
      const calls = 8 / n;
      const t0 = performance.now();
      for (let k = 0; k < calls; k++) await run(n);
      perImage.get(n)!.push((performance.now() - t0) / 8);
    }
  }
  await session.release();
  return BATCHES.map((n) => median(perImage.get(n)!));
}

async function main(): Promise<void> {
  const rounds = Number(opt.rounds);
  const threads = Number(opt.threads);
  console.log(`# batching: ms per image at batch ${BATCHES.join(', ')} (${H}×${W} input, ${threads} ORT thread${threads === 1 ? '' : 's'}, medians of ${rounds} rounds)`);
  console.log(`# reproduce: ${reproduceLine('dist/scripts/bench/batching.js', 'bench:batching')}`);
  console.log(`# ${machineLine()}`);
  const cacheDir = makeTempDir('spp-bench-batch-');
  const rows: string[][] = [];
  try {
    for (const name of MODELS) {
      const dir = join(sharedDir(), 'models', name);
      if (!existsSync(join(dir, 'model.json'))) {
        rows.push([name, ...BATCHES.map(() => '-'), 'not found']);
        continue;
      }
      const backbone = await loadOnnxBackbone({ model: dir, cacheDir, threads, worker: false });
      const path = backbone.info.onnxPath;
      const ms = await timeModel(path, threads, rounds);
      await backbone.dispose();
      rows.push([name, ...ms.map((v) => fmt(v, 2)), `${fmt(ms[0] / Math.min(...ms.slice(1)), 2)}×`]);
    }
  } finally {
    removeDir(cacheDir);
  }
  console.log(table(['model', ...BATCHES.map((n) => `batch ${n}`), 'best batched gain'], rows));
}

await main();
