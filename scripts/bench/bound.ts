/**
 * The throughput bound of a machine with `cores` cores, from each stage's CPU cost alone
 * (stages.ts): the work per image spread over every core, Σ stage / cores, and a perfect pipeline
 * that overlaps stages but cannot split one, max(stage). The end-to-end figure is set against both.
 */
import type { Cost, StageCosts } from './stages.js';
import { fmt, median, table } from './common.js';

type Stage = keyof StageCosts;

/** The stages one image goes through in a run; decode counted as the pipeline runs it (its default depth in flight). */
export const BOUND_STAGES: readonly Stage[] = ['decodeAhead', 'backbone', 'spp', 'write'];

const STAGE_NAMES: Record<Stage, string> = {
  decodeOne: 'decode (decodeResolved, default size policy), one at a time',
  decodeAhead: 'decode, the default --decode-ahead in flight, amortised',
  backbone: 'backbone featureMap (ONNX, 1 thread, incl. uint8→float and read-back)',
  spp: 'SPP (pyramidPool, levels 1,2,4, max) + normalize',
  write: '.npy row + manifest line (project writer, temp file, close)',
};

export interface Bound {
  /** Σ of the bound's stages, CPU ms per image. */
  sumMs: number;
  /** img/s with that work spread evenly over every core. */
  sumImgPerSec: number;
  slowest: Stage;
  slowestMs: number;
  /** img/s of a perfect pipeline: the slowest stage never waits and is never split. */
  maxImgPerSec: number;
}

export function boundOf(costs: StageCosts, cores: number): Bound {
  const cpu = BOUND_STAGES.map((s) => costs[s].cpuMs);
  const sumMs = cpu.reduce((a, b) => a + b, 0);
  const slowestMs = Math.max(...cpu);
  const slowest = BOUND_STAGES[cpu.indexOf(slowestMs)]!;
  return { sumMs, sumImgPerSec: (1000 * cores) / sumMs, slowest, slowestMs, maxImgPerSec: 1000 / slowestMs };
}

/** Per stage and field, the median over rounds. */
export function medianCosts(rounds: readonly StageCosts[]): StageCosts {
  const one = (s: Stage): Cost => ({ cpuMs: median(rounds.map((r) => r[s].cpuMs)), wallMs: median(rounds.map((r) => r[s].wallMs)) });
  return { decodeOne: one('decodeOne'), decodeAhead: one('decodeAhead'), backbone: one('backbone'), spp: one('spp'), write: one('write') };
}

/** Stages as rows, one column per model: CPU ms/img, wall in parentheses. */
export function stageTable(models: readonly { label: string; costs: StageCosts }[], cores: number): string {
  const cell = (c: Cost) => `${fmt(c.cpuMs, 3)} (${fmt(c.wallMs, 3)})`;
  const stages = (Object.keys(STAGE_NAMES) as Stage[]).map((s) => [
    `${STAGE_NAMES[s]}${BOUND_STAGES.includes(s) ? '' : ' (not in Σ)'}`, ...models.map((m) => cell(m.costs[s])),
  ]);
  const bounds = models.map((m) => boundOf(m.costs, cores));
  return table(['stage: CPU ms/img (wall ms/img)', ...models.map((m) => m.label)], [
    ...stages,
    ['Σ of the four stages (decode as the run does it), CPU ms/img', ...bounds.map((b) => fmt(b.sumMs, 3))],
  ]);
}

export interface EndToEnd {
  label: string;
  costs: StageCosts;
  /** spp-extract CLI, wall, start-up included. */
  imgPerSec: number;
  /** The CLI's own timed loop (no start-up). */
  inRunImgPerSec: number;
  /** CPU of the CLI process per image, start-up included (NaN without GNU time). */
  cpuMsPerImg: number;
}

/** The bound beside the end-to-end figure, as a percentage of each. */
export function boundTable(rows: readonly EndToEnd[], cores: number): string {
  const pct = (x: number, of: number) => `${fmt((100 * x) / of)} %`;
  return table([
    'model', 'Σ CPU ms/img', `Σ/${cores} bound img/s`, 'slowest stage', 'max bound img/s', 'e2e img/s',
    `e2e % Σ/${cores}`, 'e2e % max', `in-run % Σ/${cores}`, 'e2e CPU ms/img', 'e2e CPU / Σ', 'cores busy',
  ], rows.map((r) => {
    const b = boundOf(r.costs, cores);
    return [
      r.label, fmt(b.sumMs, 2), fmt(b.sumImgPerSec), `${b.slowest} ${fmt(b.slowestMs, 2)} ms`, fmt(b.maxImgPerSec),
      fmt(r.imgPerSec), pct(r.imgPerSec, b.sumImgPerSec), pct(r.imgPerSec, b.maxImgPerSec), pct(r.inRunImgPerSec, b.sumImgPerSec),
      fmt(r.cpuMsPerImg, 2), `${fmt(r.cpuMsPerImg / b.sumMs, 2)}×`, fmt((r.cpuMsPerImg * r.imgPerSec) / 1000, 2),
    ];
  }));
}
