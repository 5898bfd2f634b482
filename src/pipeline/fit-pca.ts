/**
 * Fitting a projection end to end: gather a sample (images described now, or rows of finished
 * outputs), fit the PCA on it (pca/fit.ts), and make the projection file's bytes (pca/file.ts). Shared by
 * `spp-extract fit-pca`, `extract --pca-dim` and the library's fitPca().
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError, invalidParameterError } from '../core/invalid.js';
import { DEFAULT_PCA_SAMPLE, checkOption, findOption } from '../core/options.js';
import { EXTRACTOR_KEYS, refuseUnknownKeys } from '../core/resolve.js';
import { expandInputs } from '../inputs/expand.js';
import { fitPcaRows, type RowSource } from '../pca/fit.js';
import { descriptorIdentity, encodeProjection, parseProjection, toolVersion, type DescriptorIdentity, type Projection, type ProjectionMeta } from '../pca/file.js';
import { whitenScale, type PreTransform } from '../pca/transform.js';
import { SampleRows } from '../pca/gather.js';
import { sampleKey, selectSample } from '../pca/sample.js';
import { runExtraction, type RunProgress, type WorkItem } from './run.js';
import { createExtractor, type Extractor, type ExtractorOptions } from './extractor.js';
import { NPY_HEADER_BYTES, float16BitsToFloat32, npyRowBytes } from '../output/npy.js';
import { openShardData, readShard, type RowLine, type ShardFile } from './merge.js';
import { regionOfLine } from '../output/journal.js';
import type { RunHeader } from '../output/records.js';
import { headerDifferences } from '../output/resume.js';
import { readUpTo } from '../core/read-fully.js';
import type { FileHandle } from 'node:fs/promises';
import type { OutputWriter } from '../output/records.js';

export interface ProjectionChoice {
  /** K. */
  k: number;
  pre: PreTransform;
  /** Whitening's alpha, or null. */
  whiten: number | null;
}

/** The descriptor an extractor gives before any projection (what a projection fitted on it applies to). */
export function identityOfExtractor(info: Extractor['info']): DescriptorIdentity {
  return descriptorIdentity({ ...info, dim: info.pca?.rawDim ?? info.dim });
}

/**
 * The images of a fit: at most `limit` of `items`, those whose path hashes lowest, in hash order
 * (their own `index` kept for messages).
 */
export function sampleImages(items: readonly WorkItem[], limit: number): WorkItem[] {
  return selectSample(items, limit, (i) => sampleKey(i.path));
}

export interface ImageSampleOptions {
  decodeAhead?: number;
  signal?: AbortSignal;
  onProgress?: (p: RunProgress) => void;
  onFailure?: (path: string, reason: string, message: string) => void;
}

/** Describes the sampled images into `rows`; failures are reported and left out. Returns how many failed. */
export async function describeSample(
  items: readonly WorkItem[], extractor: Extractor, rows: SampleRows, o: ImageSampleOptions = {},
): Promise<{ failures: number; complete: boolean }> {
  const sink: OutputWriter = {
    paths: [],
    row: (rec) => rows.add(rec.descriptor),
    failure: async () => undefined,
    close: async () => undefined,
    abandon: async () => undefined,
  };
  // Positions in the sample (hash order), so the run writes them in that order.
  const ordered = items.map((item, index) => ({ ...item, index }));
  const summary = await runExtraction(ordered, extractor, sink, o);
  return { failures: summary.failures, complete: summary.complete };
}

export interface FitOptions extends ProjectionChoice {
  descriptor: DescriptorIdentity;
  threads?: number;
  onPass?: (pass: number, passes: number) => void;
  signal?: AbortSignal;
}

/** Fits on gathered rows; the projection and the file bytes it is (its SHA-256 is over them). */
export async function fitProjection(source: RowSource, o: FitOptions, sourceName = 'memory'): Promise<{ projection: Projection; bytes: Uint8Array }> {
  const fit = await fitPcaRows(source, { k: o.k, threads: o.threads ?? availableParallelism(), onPass: o.onPass, signal: o.signal });
  const kept = fit.explainedVariance.reduce((a, b) => a + b, 0);
  const meta: ProjectionMeta = {
    format: 'spp-extract-pca',
    version: 1,
    toolVersion: toolVersion(),
    descriptor: o.descriptor,
    dim: o.k,
    pre: o.pre,
    whiten: o.whiten,
    samples: fit.rows,
    totalVariance: fit.totalVariance,
    varianceKept: fit.totalVariance > 0 ? Math.min(1, kept / fit.totalVariance) : 0,
  };
  const bytes = encodeProjection({
    meta, mean: fit.mean, components: fit.components, explainedVariance: fit.explainedVariance, scale: whitenScale(fit.explainedVariance, o.whiten),
  });
  // Read back as any projection file is: what is used is exactly what was written.
  return { projection: parseProjection(bytes, sourceName), bytes };
}

export interface FitPcaOptions extends ExtractorOptions {
  /** K: components to keep. */
  dim: number;
  /** Fit on at most this many inputs (rows), those whose path hashes lowest; default 10,000. */
  sample?: number;
  /** Regularised whitening: true (alpha 10) or the alpha; default none. */
  whiten?: boolean | number;
  /** Before centring: 'l2' (default), 'sqrt' or 'none'. */
  pre?: PreTransform;
  /** Folder for the sample's scratch file while fitting (default: the OS temp folder); it is removed after. */
  workDir?: string;
  onProgress?: (p: RunProgress) => void;
  signal?: AbortSignal;
}

export interface FitPcaResult {
  projection: Projection;
  /** The .npz file's bytes: write them anywhere (its SHA-256 is projection.sha256). */
  bytes: Uint8Array;
  /** Sampled images that could not be described (left out of the fit). */
  failures: { path: string; reason: string; message: string }[];
}

/** fitPca's own keys, beside createExtractor's. */
const FIT_PCA_KEYS: readonly string[] = ['dim', 'sample', 'whiten', 'pre', 'workDir', 'onProgress', 'signal'];

/**
 * Fits a projection on image files (paths, folders, globs) or on spp-extract .npy outputs (all
 * inputs one kind). Options are checked as createExtractor's are, plus dim / sample / whiten / pre.
 */
export async function fitPca(inputs: readonly string[], options: FitPcaOptions): Promise<FitPcaResult> {
  if (!Array.isArray(inputs) || inputs.length === 0 || !inputs.every((i) => typeof i === 'string')) {
    throw invalidParameterError('inputs', 'a non-empty array of paths', inputs);
  }
  refuseUnknownKeys(options, [...EXTRACTOR_KEYS, ...FIT_PCA_KEYS], 'fitPca');
  const { dim, sample, whiten, pre, workDir, onProgress, signal, ...extractorOptions } = options ?? ({} as FitPcaOptions);
  const k = checkOption(findOption('dim'), dim, 'library', 'dim') as number;
  const limit = (sample === undefined ? DEFAULT_PCA_SAMPLE : checkOption(findOption('sample'), sample, 'library', 'sample')) as number;
  const alpha = whiten === undefined || whiten === false ? null : (checkOption(findOption('whiten'), whiten, 'library', 'whiten') as number);
  const preTransform = (pre === undefined ? 'l2' : checkOption(findOption('pcaPre'), pre, 'library', 'pre')) as PreTransform;
  const choice: ProjectionChoice = { k, pre: preTransform, whiten: alpha };
  const dir = await mkdtemp(join(workDir ?? tmpdir(), 'spp-extract-fit-'));
  const rowsPath = join(dir, 'rows.f32');
  try {
    const npy = inputs.filter((i) => /\.npy$/i.test(i));
    if (npy.length > 0 && npy.length < inputs.length) throw new UsageError('fitPca takes images or .npy outputs, not both');
    let rows: SampleRows;
    let descriptor: DescriptorIdentity;
    const failures: FitPcaResult['failures'] = [];
    if (npy.length > 0) {
      ({ rows, identity: descriptor } = await gatherFromOutputs(npy, limit, preTransform, rowsPath));
    } else {
      const extractor = await createExtractor({ ...extractorOptions, pca: undefined });
      try {
        const entries = await expandInputs(inputs);
        const items: WorkItem[] = entries.map(({ source: _s, ...e }, index) => ({ index, ...e }));
        rows = await SampleRows.create(rowsPath, extractor.info.dim, preTransform);
        const done = await describeSample(sampleImages(items, limit), extractor, rows, {
          signal, onProgress, onFailure: (path, reason, message) => failures.push({ path, reason, message }),
        });
        if (!done.complete) throw new Error('fitPca: aborted');
        descriptor = identityOfExtractor(extractor.info);
      } finally {
        await extractor.dispose();
      }
    }
    try {
      const source = await rows.source();
      if (source.rows <= k) throw new Error(`fitPca: dim ${k} needs more than ${k} sample rows, got ${source.rows}`);
      const { projection, bytes } = await fitProjection(source, { ...choice, descriptor, signal });
      return { projection, bytes, failures };
    } finally {
      await rows.remove();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** What an spp-extract output's header says its rows are, for a projection's metadata. */
export const identityOfHeader = (h: RunHeader): DescriptorIdentity => descriptorIdentity({ ...h, levels: [...h.levels] });

/**
 * Rows of finished spp-extract .npy outputs (whole-image or region rows; several outputs of the same
 * options, e.g. shards), checked as merge checks them: the `limit` whose path (plus box, for region
 * rows) hashes lowest, pre-transformed into `rows`, in hash order.
 */
export async function gatherFromOutputs(
  paths: readonly string[], limit: number, pre: PreTransform, rowsPath: string, onRow?: () => void,
): Promise<{ rows: SampleRows; identity: DescriptorIdentity; header: RunHeader; offered: number }> {
  const outputs: ShardFile[] = [];
  for (const p of paths) outputs.push(await readShard(p, 'fit-pca'));
  const first = outputs[0].header;
  if ((first as { pca?: unknown }).pca !== undefined) throw new Error(`fit-pca: ${outputs[0].path} holds projected rows (made with --pca); fit on raw descriptors`);
  for (const o of outputs.slice(1)) {
    const { shard: _a, inputs: _b, ...x } = first;
    const { shard: _c, inputs: _d, ...y } = o.header;
    const diffs = headerDifferences(x as RunHeader, y as RunHeader).filter((d) => !/^--(size|max-side|background|fail-on|dtype|box-format|grid)\b/.test(d));
    if (diffs.length > 0) throw new Error(`fit-pca: ${o.path} holds other descriptors than ${outputs[0].path} (${diffs.join('; ')})`);
  }
  const all: { output: number; rec: RowLine }[] = [];
  outputs.forEach((o, output) => {
    for (const rec of o.records) if (rec.type === 'row') all.push({ output, rec });
  });
  const chosen = selectSample(all, limit, ({ rec }) => sampleKey(rec.path, regionOfLine(rec)?.boxIndex));
  const handles: FileHandle[] = [];
  const rows = await SampleRows.create(rowsPath, first.dim, pre);
  try {
    for (const o of outputs) handles.push(await openShardData(o, npyRowBytes(o.header), 'fit-pca'));
    for (const { output, rec } of chosen) {
      const h = outputs[output].header;
      const rowBytes = npyRowBytes(h);
      const buf = Buffer.alloc(rowBytes);
      const got = await readUpTo(handles[output], buf, rowBytes, NPY_HEADER_BYTES + rec.row * rowBytes);
      if (got !== rowBytes) throw new Error(`fit-pca: ${outputs[output].path}: short read at row ${rec.row}`);
      const values = h.dtype === 'float16'
        ? float16BitsToFloat32(new Uint16Array(buf.buffer, buf.byteOffset, h.dim))
        : new Float32Array(buf.buffer, buf.byteOffset, h.dim);
      if (!values.every(Number.isFinite)) throw new Error(`fit-pca: ${outputs[output].path} row ${rec.row} (${rec.path}) holds NaN or ±Inf`);
      await rows.add(values);
      onRow?.();
    }
  } catch (err) {
    await rows.remove();
    throw err;
  } finally {
    await Promise.all(handles.map((h) => h.close().catch(() => undefined)));
  }
  return { rows, identity: identityOfHeader(first), header: first, offered: all.length };
}
