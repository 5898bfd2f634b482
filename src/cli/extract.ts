/** `spp-extract [inputs…] -o OUT`: the main command. Imported only when it runs (it loads the model runtime). */
import { isAbsolute } from 'node:path';
import { UsageError } from '../core/invalid.js';
import { toolVersion } from '../core/version.js';
import { decoderVersions } from '../decode/decode.js';
import { runtimeVersion } from '../backbone/runtime-version.js';
import { DEFAULT_PCA_SAMPLE, colourHex, findOption, flagName, parseGrid } from '../core/options.js';
import { projectionMismatch, readProjection, type Projection } from '../pca/file.js';
import { openProjector, projectingWriter, type Projector } from '../pca/projector.js';
import { identityOfExtractor } from '../pipeline/fit-pca.js';
import { describeImages, fitInto, fitSummary, projectionChoice } from './fit-pca.js';
import { resolveCommandLine, type ResolvedCommandLine } from '../core/resolve.js';
import { expandInputs } from '../inputs/expand.js';
import { readBoxesFile, recordsOf } from '../inputs/boxes.js';
import { checkUpdatable, findUpdateContinuation, openWriter, readUpdateBase, replacesFinishedOutput, outputTempFiles, prepareOutput, type OpenedOutput, type PreparedOutput, type RunHeader, type RunSummary, type UpdateBase, type UpdateContinuation } from '../output/index.js';
import { hashAhead, planUpdate, reusingWriter, type UpdateCounts, type UpdatePlan } from '../pipeline/update.js';
import { openExtractor, optionAdvice, type Extractor } from '../pipeline/extractor.js';
import { defaultDecodeAhead, prefetchDecodes, runExtraction, type RunOptions, type WorkItem } from '../pipeline/run.js';
import { parseShard, recordRef, selectShard, type ShardSpec } from '../inputs/shard.js';
import { printable } from '../core/printable.js';
import { localModelFiles } from '../backbone/source.js';
import { float16OverflowDetail } from '../pipeline/finite.js';
import { EXIT } from './exit.js';
import { interruptNote, removeOnInterrupt, stopNow, takeOverSignals, uninterrupted } from './interrupt.js';
import { createReporter, formatDuration, plural, type Reporter } from './progress.js';

type Options = ResolvedCommandLine;
type Writer = Extract<OpenedOutput, { kind: 'writer' }>;

/** What every output records about the run; resume and merge compare it field by field. */
function runHeader(info: Extractor['info'], o: Options, entries: readonly WorkItem[], shard: ShardSpec | undefined, projection?: Projection): RunHeader {
  const inputs = entries.length;
  const header: RunHeader = {
    tool: 'spp-extract',
    engine: info.engine,
    model: info.model,
    modelSha256: info.modelSha256,
    modelFormat: info.format,
    layer: info.layer,
    inputRange: info.inputRange,
    levels: info.levels,
    pool: info.pool,
    normalize: info.normalize,
    dim: info.dim,
    channels: info.channels,
    dtype: o.dtype,
    size: info.decode.size,
    maxSide: info.decode.maxSide,
    background: colourHex(info.decode.background),
    failOn: info.decode.failOn,
    inputs,
    ...(shard && shard.count > 1 ? { shard } : {}),
    versions: { 'spp-extract': toolVersion(), node: process.versions.node, ...decoderVersions(), ...runtimeVersion(info.engine) },
  };
  // Only where they apply, so the header of a plain run reads as it always has.
  if (info.pool === 'gem') header.gemP = info.gemP;
  if (info.allowNonFinite) header.allowNonFinite = true;
  // Rows with and without their sidecars must not be mixed by --resume, --update or merge.
  if (o.keepJson) header.keepJson = true;
  if ((info as { onnxSource?: string }).onnxSource === 'user') {
    Object.assign(header, { inputLayout: info.inputLayout, ...(info.mean ? { mean: info.mean } : {}), ...(info.std ? { std: info.std } : {}) });
  }
  if (o.boxes !== undefined) Object.assign(header, { regions: 'boxes', boxFormat: o.boxFormat });
  if (o.grid !== undefined) Object.assign(header, { regions: 'grid', grid: o.grid, gridFull: o.gridNoFull !== true });
  // A manifest read from another folder (or machine) says where its relative paths start.
  if (entries.some((e) => !isAbsolute(e.path))) header.relativeTo = process.cwd();
  // Rows are the projection's K values; what it is and where it was read from.
  if (projection) Object.assign(header, { dim: projection.meta.dim, pca: projectionHeader(projection) });
  return header;
}

/** The images of the run: the inputs named (files, folders, globs, stdin), or those a --boxes file names. */
async function listImages(inputs: string[], o: Options, reporter: Reporter): Promise<WorkItem[]> {
  const warn = (m: string) => reporter.line(`spp-extract: warning: ${m}`);
  if (o.boxes !== undefined) {
    const images = await readBoxesFile(o.boxes, process.stdin);
    // As for other inputs: a run with nothing to describe is refused, not written as an empty output.
    if (images.length === 0) throw new Error(`--boxes ${o.boxes} names no images; nothing written`);
    if (images.every((i) => i.boxes.length === 0)) throw new Error(`--boxes ${o.boxes}: none of its ${plural(images.length, 'image')} has a box; nothing written`);
    const empty = images.filter((i) => i.boxes.length === 0).length;
    if (empty > 0) warn(`${plural(empty, 'image')} in ${o.boxes} ${empty === 1 ? 'has' : 'have'} no boxes: no rows for ${empty === 1 ? 'it' : 'them'}`);
    const format = o.boxFormat;
    return images.filter((i) => i.boxes.length > 0).map((i, index) => ({ index, path: i.path, regions: { kind: 'boxes', boxes: i.boxes, format } }));
  }
  // Tar members are hashed while listed only where the run compares them with stored rows.
  const hashMembers = o.resume === true || o.update === true;
  const entries = await expandInputs(inputs, { stdin: process.stdin, nulSeparated: o.null === true, hashMembers, keepJson: o.keepJson === true });
  if (o.keepJson && !entries.some((e) => e.source === 'tar')) warn('--keep-json: no input is a .tar archive, so no record has a sidecar to keep');
  const grid = o.grid === undefined ? undefined : parseGrid(o.grid)!;
  const regions = grid ? { kind: 'grid' as const, ...grid, full: o.gridNoFull !== true } : undefined;
  return entries.map(({ source: _source, ...e }, index) => ({ index, ...e, ...(regions ? { regions } : {}) }));
}

/** Why the inputs gave no images: each is an empty folder or an empty stdin (a file or a glob gives at least one). */
function noImagesMessage(inputs: readonly string[]): string {
  const why = inputs.map((a) => (a === '-' ? 'stdin listed no paths' : `folder '${a}' holds no image files`));
  return `the inputs name no images (${why.join('; ')}); nothing written. Folders are searched for image extensions (.jpg, .png, .webp, …); name a file to read it whatever its extension`;
}

/** Region options that contradict the inputs (contradictions between options: the table's relations, checked first). */
function checkRegionOptions(inputs: string[], o: Options): void {
  if (o.boxes !== undefined && inputs.length > 0) throw new UsageError(`--boxes names the images itself; drop the other inputs (${inputs[0]}${inputs.length > 1 ? ', …' : ''})`);
}

/** Projection options that contradict each other or the run: refused before anything is read. */
function checkPcaOptions(o: Options, output: string): void {
  if (o.pcaDim === undefined) {
    const fitOnly = (['sample', 'whiten', 'pcaPre'] as const).filter((k) => o[k] !== undefined);
    if (fitOnly.length > 0) throw new UsageError(`${fitOnly.map(flagOf).join(', ')} appl${fitOnly.length > 1 ? 'y' : 'ies'} to --pca-dim (or fit-pca) only`);
    return;
  }
  if (typeof o.pca === 'string') throw new UsageError('--pca and --pca-dim contradict each other: apply a projection, or fit one');
  if (o.shard !== undefined) {
    throw new UsageError('--pca-dim with --shard would fit a different projection in every task: fit once with `spp-extract fit-pca … -o proj.npz`, then give every task --pca proj.npz');
  }
  if (o.boxes !== undefined || o.grid !== undefined) {
    throw new UsageError('--pca-dim fits on whole images; for region rows fit on a region output (`spp-extract fit-pca regions.npy --dim K -o proj.npz`), then use --pca');
  }
  if (output === '-' ) throw new UsageError('--pca-dim writes OUTPUT.pca.npz beside the output: give -o a file');
}

const flagOf = (key: 'sample' | 'whiten' | 'pcaPre') => flagName(findOption(key));

/** What --update does not handle: refused before anything is read. */
function checkUpdateOptions(o: Options, output: string): void {
  if (!o.update) return;
  if (o.pcaDim !== undefined) {
    throw new UsageError(`--update with --pca-dim: it fits the projection on the inputs, so every row changes as they do; ` +
      `fit once (\`spp-extract fit-pca … -o proj.npz\`) and give --update --pca proj.npz; for an output made with --pca-dim, --pca ${pcaPathFor(output)} is the projection it was made with`);
  }
  const regions = (['boxes', 'grid'] as const).find((k) => o[k] !== undefined);
  if (regions) throw new UsageError(`--update with ${flagName(findOption(regions))} is not supported yet: region rows are several per image, and --update keeps rows by image; run again with --force`);
  if (output === '-') throw new UsageError('--update needs a file for -o (it rewrites the output there), not stdout');
}

export async function extractCommand(inputs: string[], raw: Record<string, unknown>): Promise<number> {
  const o = resolveCommandLine(raw, 'extract');
  const shard = o.shard === undefined ? undefined : parseShard(o.shard);
  const output = (o.output ?? (process.stdout.isTTY ? undefined : '-'))?.replaceAll('{shard}', String(shard?.index ?? 1));
  if (output === undefined) throw new UsageError('-o is required when stdout is a terminal (use -o - for JSONL on stdout)');
  checkRegionOptions(inputs, o);
  checkPcaOptions(o, output);
  checkUpdateOptions(o, output);
  if (inputs.length === 0 && o.boxes === undefined) throw new UsageError('no inputs: give files, folders, globs, or - to read paths from stdin');
  const restoreNote = interruptNote(o.resume ? 'stopped before the run resumed; what was on disk is kept' : 'stopped before the run started; nothing written');
  // Refuse a bad -o before the model loads; from here on the output is locked.
  const boxesFile = o.boxes !== undefined && o.boxes !== '-' ? [{ path: o.boxes, what: 'the boxes file' }] : [];
  const pcaFile = typeof o.pca === 'string' ? [{ path: o.pca, what: 'the --pca projection' }] : [];
  // Read while the model loads (~0.2 s for a 14 MB projection); a bad one is refused without waiting for the model.
  const projection = typeof o.pca === 'string' ? readProjection(o.pca) : undefined;
  projection?.catch(() => undefined);
  // --update replaces the output as --force does, once the new one is complete.
  const prepared = await prepareOutput(output, { format: o.format, resume: o.resume, force: o.force || o.update, inputs: [...boxesFile, ...pcaFile] }).then(async (p) => {
    if (!o.update) return p;
    if (p.target.kind !== 'file') {
      p.release();
      throw new UsageError(`--update needs a file for -o (it rewrites the output there), not ${printable(output)}`);
    }
    await checkUpdatable(p.target.path, p.target.target, p.format).catch((err) => {
      p.release();
      throw err;
    });
    return p;
  }).catch((err) => {
    restoreNote();
    throw err;
  });
  try {
    // Only an output that exists already can be a model file: no model.json is parsed on a fresh run's start-up.
    if (prepared.leftovers.length > 0) await prepared.refuseInputs((await localModelFiles(o.model)).map((path) => ({ path, what: 'a file of --model' })));
    if (o.dtype !== 'float32' && prepared.format !== 'npy') throw new UsageError(`--dtype ${o.dtype} applies to .npy output only`);
    if (o.allowNonFinite && prepared.format !== 'npy') {
      throw new UsageError(`--allow-non-finite applies to .npy output only: ${prepared.format.toUpperCase()} cannot hold NaN or ±Inf (it would write null)`);
    }
    if (o.pcaDim !== undefined && prepared.target.kind !== 'file') throw new UsageError('--pca-dim writes OUTPUT.pca.npz beside the output: give -o a file');
    return await extractInto(prepared, output, inputs, o, shard, projection);
  } finally {
    prepared.release();
    restoreNote();
  }
}

async function extractInto(
  prepared: PreparedOutput, output: string, inputs: string[], o: Options, shard: ShardSpec | undefined, reading: Promise<Projection> | undefined,
): Promise<number> {
  const reporter = await createReporter({ quiet: o.quiet === true });
  const entries = await listImages(inputs, o, reporter);
  // An empty list is a mistake (a wrong folder, an empty find): refused before anything is written,
  // so the corrected run needs no --force. A shard that gets none of a non-empty list still writes.
  if (entries.length === 0) throw new Error(noImagesMessage(inputs));
  await prepared.refuseInputs(withoutMembers(entries).map((e) => ({ path: e.pathBytes ?? e.path, shown: e.path, what: 'the input' })));
  try {
    return await extractItems(prepared, output, entries, o, shard, reading, reporter);
  } finally {
    for (const a of new Set(entries.flatMap((e) => e.member?.archive ?? e.sample?.archive ?? []))) a.close();
  }
}

/** Tar members stand for their archive (named once) where the output must not be an input. */
function withoutMembers(entries: readonly WorkItem[]): { path: string; pathBytes?: Buffer }[] {
  const archives = new Set<string>();
  return entries.flatMap((e) => {
    if (!e.member) return [e];
    if (archives.has(e.member.archive.path)) return [];
    archives.add(e.member.archive.path);
    return [{ path: e.member.archive.path }];
  });
}

async function extractItems(
  prepared: PreparedOutput, output: string, entries: WorkItem[], o: Options, shard: ShardSpec | undefined, reading: Promise<Projection> | undefined, reporter: Reporter,
): Promise<number> {
  const items = selectShard(entries, shard);

  // The first images decode while the model loads (a fresh run starts there; --pca-dim starts with its sample).
  const ahead = o.decodeAhead ?? defaultDecodeAhead(o.decode);
  const prefetched = o.resume || o.update || o.pcaDim !== undefined ? undefined : { at: 0, decoded: prefetchDecodes(items.slice(0, ahead), o.decode) };
  // --update: the inputs are hashed while the model loads (the plan needs both).
  const identity = o.update ? hashAhead(items) : undefined;
  const loading = openExtractor({ ...o, pca: undefined });
  // The projection's runtime opens while the model loads too.
  const opening = reading?.then((p) => openProjector(p));
  let extractor: Extractor;
  try {
    await opening;
  } catch (err) {
    // A bad --pca file: refused now; the model that was loading meanwhile is closed once it is up.
    void loading.then((e) => e.dispose(), () => undefined);
    throw err;
  }
  try {
    extractor = await loading;
  } catch (err) {
    await (await opening)?.dispose();
    throw err;
  }
  let projector = await opening;
  try {
    const projection = projector?.projection ?? (o.pcaDim !== undefined ? await projectionOfRun(output, o, o.pcaDim, items, extractor, reporter) : undefined);
    if (projection === 'interrupted') return EXIT.interrupted;
    if (projection) {
      const diffs = projectionMismatch(projection.meta.descriptor, identityOfExtractor(extractor.info));
      if (diffs.length > 0) throw new UsageError(`--pca ${projection.source} was fitted for other descriptors (${diffs.join('; ')})`);
      projector ??= await openProjector(projection);
    }
    tellAboutRun(extractor, reporter, o, `${plural(items.length, 'input')}${shard ? ` (shard ${shard.index}/${shard.count} of ${entries.length})` : ''}`);
    const resumeItems = items.map((i) => (i.regions ? { ...recordRef(i), records: recordsOf(i.regions) } : i.member?.sha256 ? { ...i, sha256: i.member.sha256 } : i));
    // A signal before the run loop removes the temp files a fresh run has only begun; from the loop on they are resumable state.
    const { target, format } = prepared;
    const forgetTemps = !o.resume && target.kind === 'file' ? removeOnInterrupt(outputTempFiles(target.path, format)) : () => undefined;
    const warn = (m: string) => reporter.line(`spp-extract: warning: ${m}`);
    const header = runHeader(extractor.info, o, entries, shard, projection);
    if (o.update && target.kind === 'file') {
      forgetTemps();
      return await updateInto(prepared, header, items, output, extractor, reporter, o, identity!, projector);
    }
    let opened: OpenedOutput;
    try {
      opened = await openWriter(prepared, header, resumeItems, o.resume === true, warn);
    } finally {
      forgetTemps();
    }
    if (opened.kind === 'complete') {
      process.stderr.write(`spp-extract: ${printable(output)} is already complete (${plural(opened.rows, 'row')}, ${opened.failures} failed); nothing to do\n`);
      return opened.failures > 0 ? EXIT.someFailed : EXIT.ok;
    }
    if (o.resume && opened.startAt > 0) reporter.line(`spp-extract: resuming ${output}: ${opened.startAt} of ${plural(items.length, 'input')} already done`);
    // --force over a finished output: that output stays until this run is complete.
    const replacing = !o.resume && replacesFinishedOutput(prepared);
    const run = projector ? { ...opened, writer: projectingWriter(opened.writer, projector) } : opened;
    return await runAndReport(run, output, { resumable: target.kind === 'file', replacing, projected: projector !== undefined }, items, extractor, reporter, o, prefetched);
  } finally {
    await projector?.dispose();
    await extractor.dispose();
  }
}

/**
 * --update: the stored output's rows are kept where the file is unchanged (path and SHA-256), the
 * other inputs are described, and the result is written as a fresh run's files under temp names,
 * renamed over the stored output once complete. Cut short, the stored output stays; the temp files
 * are what a fresh run would have written so far: --update again continues them (when the inputs
 * and options are the same so far), --resume finishes them as a fresh run.
 */
async function updateInto(
  prepared: PreparedOutput, header: RunHeader, items: WorkItem[], output: string, extractor: Extractor, reporter: Reporter, o: Options,
  identity: (path: string | Buffer) => Promise<string | undefined>, projector?: Projector,
): Promise<number> {
  const { target, format } = prepared;
  if (target.kind !== 'file') throw new UsageError('--update needs a file for -o');
  const base: UpdateBase = await readUpdateBase(target.path, target.target, format, header);
  try {
    const startOver = (why: string) => reporter.line(`spp-extract: ${printable(output)}: the temp files of an interrupted update are stale (${why}); starting over`);
    let continuation: UpdateContinuation = await findUpdateContinuation(target.path, target.target, format, header, items);
    if (continuation.kind === 'stale') startOver('the inputs or options changed since');
    let plan = await planUpdate(items, header.inputs, base, continuation.kind === 'resume' ? continuation.identities : [], identity);
    if (plan === 'stale') {
      startOver('a file it had done changed since');
      continuation = { kind: 'fresh' };
      plan = await planUpdate(items, header.inputs, base, [], identity) as UpdatePlan;
    }
    if (plan.upToDate) {
      process.stderr.write(`spp-extract: ${printable(output)} is up to date (${plural(plan.counts.reused, 'row')} reused); nothing to do\n`);
      return EXIT.ok;
    }
    const at = continuation.kind === 'resume' ? continuation.point : { kind: 'fresh' as const };
    if (at.kind === 'resume') reporter.line(`spp-extract: continuing the interrupted update of ${printable(output)}: ${at.startAt} of ${plural(items.length, 'input')} already done`);
    const forgetTemps = at.kind === 'fresh' ? removeOnInterrupt(outputTempFiles(target.path, format)) : () => undefined;
    let opened: Writer;
    try {
      opened = await openWriter(prepared, header, [], false, undefined, at) as Writer;
    } finally {
      forgetTemps();
    }
    // The described inputs run from their first; the rows before (done, and kept) are counted in.
    // Kept rows are projected already: they join after the projection, in input order.
    const reusing = reusingWriter(opened.writer, plan, base);
    const run = { ...opened, writer: projector ? projectingWriter(reusing, projector) : reusing, startAt: 0, rows: opened.rows + plan.counts.reused };
    return await runAndReport(run, output, { resumable: true, replacing: true, projected: projector !== undefined, update: plan.counts }, plan.extract, extractor, reporter, o);
  } finally {
    await base.close();
  }
}

/** The header's record of a projection: its identity (SHA-256), K and pre-transform; where it was read from (not compared). */
function projectionHeader(p: Projection) {
  return { sha256: p.sha256, dim: p.meta.dim, inputDim: p.meta.descriptor.dim, pre: p.meta.pre, whiten: p.meta.whiten, source: p.source };
}

/**
 * --pca-dim K: the projection beside the output (OUTPUT.pca.npz). A resumed run takes the one its
 * first part used (the header check then proves it is the same); otherwise it is fitted now on a
 * sample of this run's inputs (replacing an earlier one only with --force).
 */
async function projectionOfRun(
  output: string, o: Options, k: number, items: WorkItem[], extractor: Extractor, reporter: Reporter,
): Promise<Projection | 'interrupted'> {
  const path = pcaPathFor(output);
  const existing = o.resume ? await readProjection(path).catch((err: Error) => (err.message.endsWith('no such file') ? undefined : Promise.reject(err))) : undefined;
  if (existing) {
    const choice = projectionChoice(o, k);
    if (existing.meta.dim !== k || existing.meta.pre !== choice.pre || existing.meta.whiten !== choice.whiten) {
      throw new UsageError(`--resume: ${path} has K ${existing.meta.dim}, pre-transform ${existing.meta.pre}, whitening ${existing.meta.whiten ?? 'none'}; ` +
        'this run asks for another: give the options of the first run, or --force to start over');
    }
    return existing;
  }
  const fitted = await fitInto(path, { force: o.force === true || o.resume === true, threads: o.threads }, projectionChoice(o, k), reporter, [],
    (rowsPath, signal) => describeImages(items, extractor, o, o.sample ?? DEFAULT_PCA_SAMPLE, rowsPath, reporter, signal));
  if (fitted === 'interrupted') return 'interrupted';
  if (!o.quiet) process.stderr.write(fitSummary(fitted.projection, path));
  return fitted.projection;
}

/** Where --pca-dim writes its projection: `feats.npy` → `feats.pca.npz`. */
export const pcaPathFor = (output: string) => output.replace(/(\.[^./]*)?$/, '.pca.npz');

/** Warnings always; hints unless --quiet; with -v, what the run uses. */
function tellAboutRun(extractor: Extractor, reporter: Reporter, o: Options, inputs: string): void {
  const info = extractor.info;
  const advice = optionAdvice(info, 'cli');
  for (const w of [...info.warnings, ...advice.warnings]) reporter.line(`spp-extract: warning: ${w}`);
  if (!o.quiet) for (const h of advice.hints) reporter.line(`spp-extract: hint: ${h}`);
  if (!o.verbose) return;
  if (info.engineFallback) reporter.line(`spp-extract: engine auto fell back to tfjs: ${info.engineFallback}`);
  reporter.line(`spp-extract: engine ${info.engine} (${info.backend}), model ${info.model} (${info.format}), layer ${info.layer} ` +
    `(${info.channels} ch), input range [${info.inputRange.join(', ')}], levels ${info.levels.join(',')}, ` +
    `pool ${info.pool}, dim ${info.dim}, ${inputs}`);
}

/** What a run cut short leaves: a file resumes, a stream (stdout, FIFO, device) is cut. */
const cutShort = (resumable: boolean, finish = '--resume') => (resumable ? `what is on disk is kept: finish with ${finish}` : 'the output is cut short');

/**
 * While the run loop runs, first Ctrl-C / SIGTERM: finish the image in flight, then write out what
 * is done. Second: exit now (lock released, one line).
 */
function onSignals(reporter: Reporter, resumable: boolean, finish?: string): { signal: AbortSignal; off(): void } {
  const abort = new AbortController();
  const off = takeOverSignals((sig) => {
    if (abort.signal.aborted) {
      reporter.stop();
      stopNow(sig, `stopped at once; ${cutShort(resumable, finish)}`);
      return;
    }
    reporter.line(`spp-extract: ${sig}: stopping after the current image, writing what is done`);
    abort.abort();
  });
  return { signal: abort.signal, off };
}

async function runAndReport(
  opened: Writer, output: string, { resumable, replacing, projected, update }: { resumable: boolean; replacing: boolean; projected: boolean; update?: UpdateCounts },
  items: WorkItem[], extractor: Extractor,
  reporter: Reporter, o: Options, prefetched?: RunOptions['prefetched'],
): Promise<number> {
  const { writer } = opened;
  // An update cut short continues with --update (--resume would describe the rest again).
  const finish = update ? '--update' : '--resume';
  const signals = onSignals(reporter, resumable, finish);
  // A signal once the loop is over (the engine closing) stops at once: say what the loop left.
  let after = `stopped; ${cutShort(resumable, finish)}`;
  reporter.start(items.length - opened.startAt);
  const started = Date.now();
  let imagesDone = 0;
  let summary: RunSummary;
  try {
    summary = await runExtraction(items, extractor, writer, {
      decodeAhead: o.decodeAhead,
      startAt: opened.startAt,
      rowsBefore: opened.rows,
      failuresBefore: opened.failures,
      signal: signals.signal,
      onProgress: (p) => {
        imagesDone = p.imagesDone;
        reporter.update(p);
      },
      onFailure: (_path, _reason, message) => reporter.line(`spp-extract: failed: ${message}`),
      onWarning: (message) => reporter.line(`spp-extract: warning: ${message}`),
      prefetched,
      // Projected rows are unit vectors: float16 holds them.
      ...(o.dtype === 'float16' && !o.allowNonFinite && !projected ? { unrepresentable: float16OverflowDetail } : {}),
    });
    // Cut short while replacing an output: keep the old one; this run's progress stays resumable under temp names.
    if (!summary.complete && replacing) await writer.abandon();
    else await uninterrupted(() => writer.close(summary));
    if (summary.complete) after = `stopped after the run; ${output === '-' ? 'stdout' : output} is complete`;
  } catch (err) {
    // The disk is full, a write failed, stdout closed: what is on disk stays resumable.
    await writer.abandon();
    throw err;
  } finally {
    reporter.stop();
    signals.off();
    interruptNote(after);
  }
  const where = output === '-' ? 'stdout' : printable(writer.paths.join(' + '));
  const kept = !summary.complete && replacing ? `temp files; ${printable(output)} is still the earlier output` : undefined;
  if (!o.quiet) process.stderr.write(summaryLine(summary, imagesDone, (Date.now() - started) / 1000, kept ?? where, o, update));
  if (!summary.complete) return EXIT.interrupted;
  return summary.failures > 0 ? EXIT.someFailed : EXIT.ok;
}

/** `done: 6 rows, 0 failed, 0:02 (3.1 img/s) → feats.npy + feats.manifest.jsonl`; img/s counts images this run described. */
function summaryLine(summary: RunSummary, imagesDone: number, secs: number, where: string, o: Options, update?: UpdateCounts): string {
  const rate = secs > 0 ? imagesDone / secs : 0;
  const state = summary.complete ? 'done' : `interrupted (finish with ${update ? '--update' : '--resume'})`;
  const rss = o.verbose ? `, peak RSS ${Math.round(process.resourceUsage().maxRSS / 1024)} MiB` : '';
  const counts = update ? ` (${update.done !== undefined ? `${update.done} done before, ` : ''}${update.reused} reused, ${update.added} added, ${update.redone} redone, ${update.dropped} dropped)` : '';
  return `spp-extract: ${state}: ${plural(summary.rows, 'row')}${counts}, ${summary.failures} failed, ` +
    `${formatDuration(secs * 1000)} (${rate.toFixed(1)} img/s${rss}) → ${where}\n`;
}
