/**
 * `spp-extract fit-pca <inputs…> --dim K -o proj.npz`: learns a projection (src/pca) from a sample
 * of images, or of the rows of finished .npy outputs, and writes it atomically. Also the first
 * half of `extract --pca-dim` (fitBeside).
 */
import { lstat, rm } from 'node:fs/promises';
import { UsageError } from '../core/invalid.js';
import { DEFAULT_PCA_SAMPLE } from '../core/options.js';
import { resolveCommandLine, type ResolvedCommandLine } from '../core/resolve.js';
import { printable } from '../core/printable.js';
import { expandInputs } from '../inputs/expand.js';
import { manifestPathFor, OutputRefused, partialPath } from '../output/index.js';
import { FileSink } from '../output/file-sink.js';
import { acquireOutputLock } from '../output/lock.js';
import { refuseOverlap } from '../output/overlap.js';
import { openExtractor, type Extractor } from '../pipeline/extractor.js';
import { describeSample, fitProjection, gatherFromOutputs, identityOfExtractor, sampleImages, type ProjectionChoice } from '../pipeline/fit-pca.js';
import { SampleRows, sampleRowsPath } from '../pca/gather.js';
import type { DescriptorIdentity, Projection } from '../pca/file.js';
import type { WorkItem } from '../pipeline/run.js';
import { EXIT } from './exit.js';
import { interruptNote, removeOnInterrupt, stopNow, takeOverSignals, uninterrupted } from './interrupt.js';
import { createReporter, plural, type Reporter } from './progress.js';

type Options = ResolvedCommandLine;

/** The projection a command line asks for (fit-pca's --dim, or extract's --pca-dim). */
export function projectionChoice(o: Options, k: number): ProjectionChoice {
  return { k, pre: o.pcaPre ?? 'l2', whiten: o.whiten ?? null };
}

export async function fitPcaCommand(inputs: string[], raw: Record<string, unknown>): Promise<number> {
  const o = resolveCommandLine(raw, 'fit-pca');
  const output = o.output!; // required by commander
  if (inputs.length === 0) throw new UsageError('no inputs: give images (files, folders, globs, - for paths on stdin) or spp-extract .npy outputs');
  const npy = inputs.filter((i) => /\.npy$/i.test(i));
  if (npy.length > 0 && npy.length < inputs.length) throw new UsageError('fit-pca takes images or .npy outputs, not both');
  const restoreNote = interruptNote(`fit-pca stopped; ${output} not written`);
  try {
    const reporter = await createReporter({ quiet: o.quiet === true });
    const read = npy.flatMap((s) => [{ path: s, what: 'the input' }, { path: manifestPathFor(s), what: 'the input manifest' }]);
    const result = await fitInto(output, o, projectionChoice(o, o.dim!), reporter, read, async (rowsPath, signal) => {
      if (npy.length > 0) {
        const g = await gatherFromOutputs(npy, o.sample ?? DEFAULT_PCA_SAMPLE, o.pcaPre ?? 'l2', rowsPath);
        if (!o.quiet) reporter.line(`spp-extract: fit-pca: ${plural(g.rows.count, 'row')} sampled of ${g.offered} in ${plural(npy.length, 'output')}`);
        return { rows: g.rows, identity: g.identity, failures: 0 };
      }
      const entries = await expandInputs(inputs, { stdin: process.stdin, nulSeparated: o.null === true });
      if (entries.length === 0) throw new UsageError('the inputs name no image files');
      const items: WorkItem[] = entries.map(({ source: _s, ...e }, index) => ({ index, ...e }));
      const extractor = await openExtractor({ ...o, pca: undefined });
      try {
        const i = extractor.info;
        for (const w of i.warnings) reporter.line(`spp-extract: warning: ${w}`);
        if (o.verbose) reporter.line(`spp-extract: engine ${i.engine} (${i.backend}), model ${i.model} (${i.format}), layer ${i.layer}, levels ${i.levels.join(',')}, pool ${i.pool}, dim ${i.dim}`);
        return await describeImages(items, extractor, o, o.sample ?? DEFAULT_PCA_SAMPLE, rowsPath, reporter, signal);
      } finally {
        await extractor.dispose();
      }
    });
    if (result === 'interrupted') return EXIT.interrupted;
    if (!o.quiet) process.stderr.write(fitSummary(result.projection, output));
    return result.failures > 0 ? EXIT.someFailed : EXIT.ok;
  } finally {
    restoreNote();
  }
}

export const fitSummary = (p: Projection, output: string) =>
  `spp-extract: fit-pca: ${p.meta.dim} components of ${p.meta.descriptor.dim} from ${plural(p.meta.samples, 'row')}, ` +
  `${(100 * p.meta.varianceKept).toFixed(1)} % of the variance kept${p.meta.whiten !== null ? `, whitened (alpha ${p.meta.whiten})` : ''} → ${printable(output)}\n`;

type Gathered = { rows: SampleRows; identity: DescriptorIdentity; failures: number };

/** Describes the sampled images into the scratch rows (the extractor gives raw descriptors). */
export async function describeImages(
  items: readonly WorkItem[], extractor: Extractor, o: Options, limit: number, rowsPath: string, reporter: Reporter, signal: AbortSignal,
): Promise<Gathered | 'interrupted'> {
  const sample = sampleImages(items, limit);
  let rows: SampleRows | undefined;
  try {
    if (!o.quiet) reporter.line(`spp-extract: fit-pca: describing ${plural(sample.length, 'image')}${sample.length < items.length ? ` sampled of ${items.length}` : ''}`);
    rows = await SampleRows.create(rowsPath, extractor.info.dim, o.pcaPre ?? 'l2');
    reporter.start(sample.length);
    const { failures, complete } = await describeSample(sample, extractor, rows, {
      decodeAhead: o.decodeAhead, signal,
      onProgress: (p) => reporter.update(p),
      onFailure: (_p, _r, message) => reporter.line(`spp-extract: failed: ${message}`),
    }).finally(() => reporter.stop());
    if (!complete) {
      await rows.remove();
      return 'interrupted';
    }
    return { rows, identity: identityOfExtractor(extractor.info), failures };
  } catch (err) {
    await rows?.remove();
    throw err;
  }
}

/**
 * The output side of a fit: `-o` checked (a .npz; an existing one only with --force; never one of
 * `read`), locked, the sample gathered by `gather`, fitted, written under a temp name and renamed.
 * A signal stops it between blocks and leaves nothing behind.
 */
export async function fitInto(
  output: string, o: { force?: boolean; threads?: number; quiet?: boolean }, choice: ProjectionChoice, reporter: Reporter,
  read: { path: string; what: string }[],
  gather: (rowsPath: string, signal: AbortSignal) => Promise<Gathered | 'interrupted'>,
): Promise<{ projection: Projection; failures: number } | 'interrupted'> {
  if (!/\.npz$/i.test(output)) throw new UsageError(`-o ${output}: a projection is a .npz file; name it *.npz`);
  const rowsPath = sampleRowsPath(output);
  const temp = partialPath(output);
  await refuseOverlap([output, temp, rowsPath], output, read);
  const lock = acquireOutputLock(output, output);
  const forget = removeOnInterrupt([rowsPath, temp]);
  const abort = new AbortController();
  const off = takeOverSignals((sig) => {
    if (abort.signal.aborted) stopNow(sig, `fit-pca stopped at once; ${output} not written`);
    else abort.abort();
  });
  try {
    const existing = await lstat(output).catch(() => undefined);
    if (existing && !existing.isFile()) throw new OutputRefused(`-o ${output}: it is not a regular file; not touching it`);
    if (existing && !o.force) throw new OutputRefused(`-o ${output} already exists; use --force to overwrite it`);
    const gathered = await gather(rowsPath, abort.signal);
    if (gathered === 'interrupted') return stopped(reporter, output);
    try {
      const source = await gathered.rows.source();
      if (source.rows <= choice.k) {
        throw new Error(`fit-pca: --dim ${choice.k} needs more than ${choice.k} sample rows, got ${source.rows}` +
          (gathered.failures > 0 ? ` (${gathered.failures} sampled inputs failed)` : ''));
      }
      if (!o.quiet) reporter.line(`spp-extract: fit-pca: fitting ${choice.k} components on ${plural(source.rows, 'row')} of ${source.dim}`);
      const fitted = await fitProjection(source, {
        ...choice, descriptor: gathered.identity, threads: o.threads, signal: abort.signal,
        onPass: (pass, passes) => reporter.status(`fitting: pass ${pass} of ${passes} over the sample`),
      }, output).catch((err) => {
        if (abort.signal.aborted) return 'interrupted' as const;
        throw err;
      }).finally(() => reporter.stop());
      if (fitted === 'interrupted') return stopped(reporter, output);
      const { projection, bytes } = fitted;
      const sink = await FileSink.create(output, { target: output, file: output });
      try {
        await sink.append(bytes);
        await uninterrupted(() => sink.commit(), (ok) => (ok ? `stopped after fit-pca; ${output} is complete` : `fit-pca stopped; ${output} not written`));
      } catch (err) {
        await sink.abandon();
        await rm(temp, { force: true });
        throw err;
      }
      return { projection: { ...projection, source: output }, failures: gathered.failures };
    } finally {
      await gathered.rows.remove();
    }
  } finally {
    off();
    forget();
    lock.release();
  }
}

function stopped(reporter: Reporter, output: string): 'interrupted' {
  reporter.line(`spp-extract: fit-pca stopped by a signal; ${output} not written`);
  return 'interrupted';
}
