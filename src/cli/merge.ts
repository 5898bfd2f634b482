/** `spp-extract merge <shards…> -o OUT` (.npy, .jsonl or .json, as the shards): loads no model runtime and no image decoder. */
import { UsageError } from '../core/invalid.js';
import { printable } from '../core/printable.js';
import { resolveCommandLine } from '../core/resolve.js';
import { expandFileGlobs } from '../inputs/expand.js';
import { manifestPathFor, outputTempFiles, prepareOutput } from '../output/index.js';
import { mergeShards } from '../pipeline/merge.js';
import { EXIT } from './exit.js';
import { interruptNote, removeOnInterrupt, uninterrupted } from './interrupt.js';
import { plural } from './text.js';

export async function mergeCommand(args: string[], raw: Record<string, unknown>): Promise<number> {
  const o = resolveCommandLine(raw, 'merge');
  const output = o.output!; // required by commander
  const shards = await expandFileGlobs(args);
  // A merge is redone, never resumed: a signal removes its half-written temp files.
  const restoreNote = interruptNote(`merge stopped; ${output} not written`);
  const read = shards.flatMap((s) => [{ path: s, what: 'the shard' }, ...(/\.npy$/i.test(s) ? [{ path: manifestPathFor(s), what: 'the shard manifest' }] : [])]);
  const prepared = await prepareOutput(output, { force: o.force, inputs: read, canResume: false }).catch((err) => {
    restoreNote();
    throw err;
  });
  try {
    if (prepared.target.kind !== 'file') throw new UsageError(`merge writes a file (.npy, .jsonl or .json, as the shards are), got -o ${output}`);
    const warned = new Set<string>();
    const warn = (m: string) => {
      if (!warned.has(m)) process.stderr.write(`spp-extract: warning: ${printable(m)}\n`);
      warned.add(m);
    };
    const forgetTemps = removeOnInterrupt(outputTempFiles(prepared.target.path, prepared.format));
    const commit = (close: () => Promise<void>) => uninterrupted(close, (ok) => (ok ? `stopped after the merge; ${output} is complete` : `merge stopped; ${output} not written`));
    const summary = await mergeShards(shards, prepared.target.path, output, warn, commit).finally(forgetTemps);
    interruptNote(`stopped after the merge; ${output} is complete`);
    if (!o.quiet) process.stderr.write(`spp-extract: merged ${plural(shards.length, 'shard')}: ${plural(summary.rows, 'row')}, ${summary.failures} failed → ${printable(output)}\n`);
    return summary.failures > 0 ? EXIT.someFailed : EXIT.ok;
  } finally {
    prepared.release();
    restoreNote();
  }
}
