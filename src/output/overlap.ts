/** An output must never replace one of the run's own inputs (a boxes file, a shard, an image). */
import { stat } from 'node:fs/promises';
import { OutputRefused } from './errors.js';

/** One file the run reads, and what it is to the run (for the message). */
export interface ReadFile { path: string | Buffer; what: string; /** How messages name a path given as bytes. */ shown?: string }

const idOf = (st: { dev: number; ino: number }) => `${st.dev}:${st.ino}`;

/** Stats at most this many inputs at once (a 100k-image list must not open 100k requests). */
const STATS_IN_FLIGHT = 64;

/**
 * Refuses, naming both, when an existing output file (final or temp name, reached through any
 * symlink) is the same file as one of `inputs`. Files that do not exist yet cannot be inputs.
 */
export async function refuseOverlap(outputFiles: readonly string[], target: string, inputs: readonly ReadFile[]): Promise<void> {
  const outputs = new Map<string, string>();
  for (const f of outputFiles) {
    const st = await stat(f).catch(() => undefined);
    if (st?.isFile()) outputs.set(idOf(st), f);
  }
  if (outputs.size === 0) return;
  for (let at = 0; at < inputs.length; at += STATS_IN_FLIGHT) {
    const batch = inputs.slice(at, at + STATS_IN_FLIGHT);
    const stats = await Promise.all(batch.map((i) => stat(i.path).catch(() => undefined)));
    stats.forEach((st, k) => {
      const same = st && outputs.get(idOf(st));
      if (same === undefined) return;
      const input = batch[k]!;
      const shown = input.shown ?? String(input.path);
      const named = shown === same ? '' : ` (the same file as ${same})`;
      throw new OutputRefused(`-o ${target} would replace ${input.what} ${shown}${named}: choose another -o`);
    });
  }
}
