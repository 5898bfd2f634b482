/**
 * Decode cost, old against new: an earlier revision's decoder and this checkout's, side by side in
 * one process, on the 500 labelled photos of ../shared at the default size policy.
 *
 *   node dist/scripts/bench/decode.js [--against <git rev>] [--rounds N] [--in-flight 1,4]
 *
 * Each round decodes every photo once with each decoder, the two alternating (old first in even
 * rounds, new first in odd ones) so that a slow spell of this shared machine hits both. Per pass:
 * wall ms/img and CPU ms/img (process.cpuUsage: this thread and libvips' threads together). We
 * print medians over the rounds and the median of the per-round new/old ratios (paired, so drift
 * between rounds cancels). `--in-flight 4` keeps four decodes going, as the pipeline's decode-ahead does.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type * as DecodeModule from '../../src/decode/decode.js';
import { REPO, fmt, labelledPhotos, machineLine, median, reproduceLine, table } from './common.js';
import { buildRevision, importFrom, resolveRevision } from './revision.js';

const { values: opt } = parseArgs({
  options: {
    against: { type: 'string', default: 'HEAD' },
    rounds: { type: 'string', default: '9' },
    'in-flight': { type: 'string', default: '1,4' },
  },
  strict: true,
});

type Decode = typeof DecodeModule;
interface Pass { wallMs: number; cpuMs: number }

/** Decodes every file with `inFlight` decodes going at once; per-image wall and CPU time. */
async function pass(decode: Decode, files: readonly string[], inFlight: number): Promise<Pass> {
  const o = decode.validateDecodeOptions({});
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const file = files[next++]!;
      await decode.decodeResolved(file, o, file);
    }
  };
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: inFlight }, worker));
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { wallMs: wallMs / files.length, cpuMs: (cpu.user + cpu.system) / 1000 / files.length };
}

async function main(): Promise<void> {
  const files = labelledPhotos();
  const rounds = Math.max(1, Number(opt.rounds));
  const inFlights = opt['in-flight'].split(',').map(Number);
  const sha = resolveRevision(opt.against);
  const old = await importFrom<Decode>(buildRevision(sha), 'decode/decode.js');
  const now = await importFrom<Decode>(join(REPO, 'dist', 'src'), 'decode/decode.js');
  // Untimed: the page cache, the JIT and libvips' first-use set-up.
  for (const d of [old, now]) await pass(d, files, 4);

  const runs = new Map<string, Pass[]>();
  const record = (key: string, p: Pass) => runs.set(key, [...(runs.get(key) ?? []), p]);
  for (let r = 0; r < rounds; r++) {
    for (const k of inFlights) {
      const order: [string, Decode][] = r % 2 === 0 ? [['old', old], ['new', now]] : [['new', now], ['old', old]];
      for (const [name, d] of order) record(`${name}/${k}`, await pass(d, files, k));
    }
  }

  const rows = inFlights.map((k) => {
    const [a, b] = [runs.get(`old/${k}`)!, runs.get(`new/${k}`)!];
    const ratio = (f: (p: Pass) => number) => median(b.map((p, i) => f(p) / f(a[i]!)));
    return [
      String(k), fmt(median(a.map((p) => p.wallMs)), 3), fmt(median(b.map((p) => p.wallMs)), 3), fmt(ratio((p) => p.wallMs), 3),
      fmt(median(a.map((p) => p.cpuMs)), 3), fmt(median(b.map((p) => p.cpuMs)), 3), fmt(ratio((p) => p.cpuMs), 3),
    ];
  });
  console.log(`decode, ${files.length} labelled photos, default size policy, ${rounds} rounds; old = ${sha.slice(0, 12)} (${opt.against}), new = this checkout`);
  console.log(machineLine());
  console.log(table(['in flight', 'old wall ms/img', 'new wall ms/img', 'new/old', 'old CPU ms/img', 'new CPU ms/img', 'new/old'], rows));
  console.log(`reproduce: ${reproduceLine('dist/scripts/bench/decode.js')}`);
}

await main();
