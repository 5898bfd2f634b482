import { Command, Option } from 'commander';
import { BACKEND_CHOICES, type BackendChoice } from '../backbone/tfjs/backend.js';
import type { DecodeOptions } from '../decode/decode.js';
import type { EngineChoice } from '../backbone/load.js';
import { createExtractor, validateSppOptions, type Extractor, type ExtractorOptions } from '../pipeline/extractor.js';
import { expandInputs } from '../inputs/expand.js';
import { validateInputRange } from '../backbone/tfjs/backbone.js';
import { DEFAULT_MODEL_ID, MODEL_REGISTRY } from '../backbone/registry.js';
import { mergeShards } from '../pipeline/merge.js';
import { OutputError, openWriter, prepareOutput, type OpenedOutput, type PreparedOutput, type RunHeader, type RunSummary } from '../output/index.js';
import { parseShard, selectShard, type ShardSpec } from '../shard.js';
import { createReporter, formatDuration, type Reporter } from './progress.js';
import { runBatch, type WorkItem } from '../pipeline/run.js';
import type { NormalizeMode, PoolMode } from '../spp/spp.js';

/** Exit codes (documented in the README). */
export const EXIT = { ok: 0, fatal: 1, someFailed: 2, interrupted: 130, brokenPipe: 141 } as const;

class UsageError extends Error {}

function positiveInt(option: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value.trim()) || Number(value) < 1) {
      throw new UsageError(`${option} must be a positive integer, got '${value}'`);
    }
    return Number(value);
  };
}

export function parseLevels(value: string): number[] {
  const parts = value.split(',').map((s) => s.trim());
  if (parts.length === 0 || parts.some((p) => !/^\d+$/.test(p) || Number(p) < 1)) {
    throw new UsageError(`--levels must be a comma-separated list of positive integers, got '${value}'`);
  }
  return parts.map(Number);
}

function parseTriple(option: string) {
  return (value: string): number[] => {
    const parts = value.split(',').map((p) => Number(p.trim()));
    if (!(parts.length === 1 || parts.length === 3) || !parts.every(Number.isFinite)) {
      throw new UsageError(`${option} must be one number or three comma-separated numbers (R,G,B), got '${value}'`);
    }
    return parts;
  };
}

function parseRange(value: string): [number, number] {
  const parts = value.split(',').map((s) => Number(s.trim()));
  try {
    return validateInputRange(parts) as [number, number];
  } catch {
    throw new UsageError(`--input-range must be LOW,HIGH with LOW < HIGH (e.g. 0,1 or -1,1), got '${value}'`);
  }
}

const NAMED_COLOURS: Record<string, [number, number, number]> = { white: [255, 255, 255], black: [0, 0, 0], gray: [128, 128, 128], grey: [128, 128, 128] };

export function parseBackground(value: string): { r: number; g: number; b: number } {
  const v = value.trim().toLowerCase();
  let rgb = NAMED_COLOURS[v];
  const hex = /^#?([0-9a-f]{6})$/.exec(v);
  if (!rgb && hex) rgb = [0, 2, 4].map((i) => parseInt(hex[1].slice(i, i + 2), 16)) as [number, number, number];
  const list = /^(\d{1,3}),(\d{1,3}),(\d{1,3})$/.exec(v);
  if (!rgb && list) rgb = [Number(list[1]), Number(list[2]), Number(list[3])];
  if (!rgb || rgb.some((c) => c > 255)) {
    throw new UsageError(`--background must be white, black, gray, #rrggbb or R,G,B, got '${value}'`);
  }
  return { r: rgb[0], g: rgb[1], b: rgb[2] };
}

interface CommonOpts {
  model: string;
  engine: EngineChoice;
  threads?: number;
  inputLayout?: 'nhwc' | 'nchw';
  mean?: number[];
  std?: number[];
  layer?: string;
  inputRange?: [number, number];
  backend: BackendChoice;
  levels: number[];
  pool: PoolMode;
  normalize: NormalizeMode;
  size: number;
  resize: boolean;
  maxSide?: number;
  background: { r: number; g: number; b: number };
  maxInputPixels?: number;
  failOn: DecodeOptions['failOn'];
  cacheDir?: string;
}

interface ExtractOpts extends CommonOpts {
  output?: string;
  format?: string;
  null?: boolean;
  decodeAhead: number;
  dtype: 'float32' | 'float16';
  shard?: string;
  resume?: boolean;
  force?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

function addModelOptions(cmd: Command): Command {
  return cmd
    .option('-m, --model <id|dir|url>', `registry id (${MODEL_REGISTRY.map((e) => e.id).join(', ')}), a folder with model.json, a model.json path or URL`, DEFAULT_MODEL_ID)
    .option('--layer <name>', 'layer (layers model) or node (graph model) giving the feature map; default: the last conv map')
    .option('--input-range <lo,hi>', 'pixel range the model expects, e.g. 0,1 or -1,1 (write --input-range=-1,1); default from the registry or per format', parseRange)
    .addOption(new Option('--engine <name>', 'auto: ONNX Runtime when the model converts, else tfjs').choices(['auto', 'onnx', 'tfjs']).default('auto'))
    .option('--threads <n>', 'ONNX Runtime threads (default: cores - 1, leaving one to the decoders)', positiveInt('--threads'))
    .addOption(new Option('--backend <name>', 'tfjs backend (an explicit node/wasm/cpu implies --engine tfjs)').choices(BACKEND_CHOICES as string[]).default('auto'))
    .addOption(new Option('--input-layout <layout>', 'a .onnx model\'s image layout (default: from its input shape)').choices(['nhwc', 'nchw']))
    .option('--mean <r,g,b>', 'a .onnx model\'s per-channel mean, after scaling to --input-range (torchvision: 0.485,0.456,0.406)', parseTriple('--mean'))
    .option('--std <r,g,b>', 'a .onnx model\'s per-channel std (torchvision: 0.229,0.224,0.225)', parseTriple('--std'))
    .addOption(new Option('--levels <list>', 'pyramid levels, n×n bins each (the paper: 6,3,2,1)').argParser(parseLevels).default([1, 2, 4], '1,2,4'))
    .addOption(new Option('--pool <mode>', 'pooling in each bin').choices(['max', 'avg']).default('max'))
    .addOption(new Option('--normalize <mode>', 'descriptor normalisation (sqrt = signed square root, then L2)').choices(['none', 'l2', 'sqrt']).default('none'))
    .option('--size <n>', 'resize so the shorter side is N pixels, aspect kept', positiveInt('--size'), 224)
    .option('--no-resize', 'feed the native size (still capped by --max-side)')
    .option('--max-side <n>', 'cap on the longer side fed to the model (default: 4096)', positiveInt('--max-side'))
    .addOption(new Option('--background <colour>', 'colour transparent pixels are flattened onto (white, black, #rrggbb, R,G,B)').argParser(parseBackground).default({ r: 255, g: 255, b: 255 }, 'white'))
    .option('--max-input-pixels <n>', 'refuse images whose header declares more pixels (decompression-bomb guard; default: 268402689)', positiveInt('--max-input-pixels'))
    .addOption(new Option('--fail-on <level>', 'sharp failOn: how picky decoding is about damaged data').choices(['none', 'truncated', 'error', 'warning']).default('error'))
    .option('--cache-dir <dir>', 'model cache (default $XDG_CACHE_HOME/spp-extract or ~/.cache/spp-extract)');
}

function extractorOptions(o: CommonOpts): ExtractorOptions {
  const decode: Partial<DecodeOptions> = {
    size: o.resize ? o.size : null,
    background: o.background,
    failOn: o.failOn,
  };
  if (o.maxSide !== undefined) decode.maxSide = o.maxSide;
  if (o.maxInputPixels !== undefined) decode.maxInputPixels = o.maxInputPixels;
  return {
    model: o.model,
    engine: o.engine,
    threads: o.threads,
    inputLayout: o.inputLayout,
    mean: o.mean,
    std: o.std,
    layer: o.layer,
    inputRange: o.inputRange,
    backend: o.backend,
    levels: o.levels,
    pool: o.pool,
    normalize: o.normalize,
    cacheDir: o.cacheDir,
    decode,
  };
}

const hex = (c: { r: number; g: number; b: number }) =>
  '#' + [c.r, c.g, c.b].map((v) => v.toString(16).padStart(2, '0')).join('');

function runHeader(info: Extractor['info'], o: ExtractOpts, inputs: number, shard: ShardSpec | undefined): RunHeader {
  return {
    tool: 'spp-extract',
    engine: info.engine,
    model: info.model,
    format: info.format,
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
    background: hex(info.decode.background),
    failOn: info.decode.failOn,
    inputs,
    ...(shard && shard.count > 1 ? { shard } : {}),
  };
}

async function extractCommand(inputs: string[], o: ExtractOpts): Promise<number> {
  const shard = o.shard === undefined ? undefined : parseShard(o.shard);
  const output = (o.output ?? (process.stdout.isTTY ? undefined : '-'))?.replaceAll('{shard}', String(shard?.index ?? 1));
  if (output === undefined) throw new UsageError('-o is required when stdout is a terminal (use -o - for JSONL on stdout)');
  if (inputs.length === 0) throw new UsageError('no inputs: give files, folders, globs, or - to read paths from stdin');
  if (o.resume && o.force) throw new UsageError('--resume and --force contradict each other: pick one');
  const options = extractorOptions(o);
  validateSppOptions(options);
  // Refuse a bad -o before the model loads; from here on the output is locked.
  const prepared = await prepareOutput(output, { format: o.format, resume: o.resume, force: o.force });
  try {
    if (o.dtype !== 'float32' && prepared.format !== 'npy') throw new UsageError(`--dtype ${o.dtype} applies to .npy output only`);
    return await extractInto(prepared, output, inputs, o, options, shard);
  } finally {
    prepared.release();
  }
}

async function extractInto(
  prepared: PreparedOutput, output: string, inputs: string[], o: ExtractOpts, options: ExtractorOptions, shard: ShardSpec | undefined,
): Promise<number> {
  const reporter = createReporter({ quiet: o.quiet === true });
  const entries = await expandInputs(inputs, { stdin: process.stdin, nulSeparated: o.null === true, onWarning: (m) => reporter.line(`spp-extract: warning: ${m}`) });
  if (entries.length === 0) reporter.line('spp-extract: warning: the inputs name no image files');
  const items = selectShard(entries.map((e, index) => ({ index, path: e.path })), shard);

  const extractor = await createExtractor(options);
  try {
    const info = extractor.info;
    for (const w of info.warnings) reporter.line(`spp-extract: warning: ${w}`);
    if (o.verbose) {
      if (info.engineFallback) reporter.line(`spp-extract: engine auto fell back to tfjs: ${info.engineFallback}`);
      reporter.line(`spp-extract: engine ${info.engine} (${info.backend}), model ${info.model} (${info.format}), layer ${info.layer} ` +
        `(${info.channels} ch), input range [${info.inputRange.join(', ')}], levels ${info.levels.join(',')}, ` +
        `pool ${info.pool}, dim ${info.dim}, ${items.length} inputs${shard ? ` (shard ${shard.index}/${shard.count} of ${entries.length})` : ''}`);
    }
    const opened = await openWriter(prepared, runHeader(info, o, entries.length, shard), items, o.resume === true);
    if (opened.kind === 'complete') {
      process.stderr.write(`spp-extract: ${output} is already complete (${opened.rows} rows, ${opened.failures} failed); nothing to do\n`);
      return opened.failures > 0 ? EXIT.someFailed : EXIT.ok;
    }
    if (o.resume && opened.startAt > 0) reporter.line(`spp-extract: resuming ${output}: ${opened.startAt} of ${items.length} inputs already done`);
    return await runAndReport(opened, output, items, extractor, reporter, o);
  } finally {
    await extractor.dispose();
  }
}

async function runAndReport(
  opened: Extract<OpenedOutput, { kind: 'writer' }>, output: string, items: WorkItem[], extractor: Extractor, reporter: Reporter, o: ExtractOpts,
): Promise<number> {
  const { writer } = opened;
  // First Ctrl-C: finish the image in flight, then write out what is done. Second: exit now.
  const abort = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (abort.signal.aborted) process.exit(EXIT.interrupted);
    reporter.line(`spp-extract: ${sig}: stopping after the current image, writing what is done`);
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  reporter.start(items.length - opened.startAt);
  const started = Date.now();
  let summary: RunSummary;
  try {
    summary = await runBatch(items, extractor, writer, {
      decodeAhead: o.decodeAhead,
      startAt: opened.startAt,
      rowsBefore: opened.rows,
      failuresBefore: opened.failures,
      signal: abort.signal,
      onProgress: (p) => reporter.update(p),
      onFailure: (_path, _reason, message) => reporter.line(`spp-extract: failed: ${message}`),
    });
    await writer.close(summary);
  } catch (err) {
    // The disk is full, a write failed, stdout closed: what is on disk stays resumable.
    await writer.abandon();
    throw err;
  } finally {
    reporter.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  const secs = (Date.now() - started) / 1000;
  const processed = summary.rows + summary.failures - opened.rows - opened.failures;
  const rate = secs > 0 ? processed / secs : 0;
  const where = output === '-' ? 'stdout' : writer.paths.join(' + ');
  const state = summary.complete ? 'done' : 'interrupted (finish with --resume)';
  if (!o.quiet) {
    const rss = o.verbose ? `, peak RSS ${Math.round(process.resourceUsage().maxRSS / 1024)} MiB` : '';
    process.stderr.write(`spp-extract: ${state}: ${summary.rows} rows, ${summary.failures} failed, ` +
      `${formatDuration(secs * 1000)} (${rate.toFixed(1)} img/s${rss}) → ${where}\n`);
  }
  if (!summary.complete) return EXIT.interrupted;
  return summary.failures > 0 ? EXIT.someFailed : EXIT.ok;
}

async function mergeCommand(shards: string[], o: { output: string; force?: boolean }): Promise<number> {
  const prepared = await prepareOutput(o.output, { force: o.force });
  try {
    if (prepared.format !== 'npy' || prepared.target.kind !== 'file') throw new UsageError(`merge writes .npy, got -o ${o.output}`);
    const summary = await mergeShards(shards, prepared.target.path, o.output);
    process.stderr.write(`spp-extract: merged ${shards.length} shards: ${summary.rows} rows, ${summary.failures} failed → ${o.output}\n`);
    return summary.failures > 0 ? EXIT.someFailed : EXIT.ok;
  } finally {
    prepared.release();
  }
}

async function infoCommand(o: CommonOpts & { layers?: boolean; json?: boolean }): Promise<number> {
  const options = extractorOptions(o);
  const extractor = await createExtractor(options);
  const i = extractor.info;
  for (const w of i.warnings) process.stderr.write(`spp-extract: warning: ${w}\n`);
  const summary = {
    engine: i.engine,
    ...(i.engineFallback ? { engineFallback: i.engineFallback } : {}),
    backend: i.backend,
    model: i.model,
    modelJson: i.modelJsonPath,
    modelFormat: i.format,
    inputRange: i.inputRange,
    inputRangeSource: i.inputRangeSource,
    layer: i.layer,
    layerChosenBy: i.layerChosenBy,
    channels: i.channels,
    levels: i.levels,
    pool: i.pool,
    normalize: i.normalize,
    dim: i.dim,
    size: i.decode.size,
    maxSide: i.decode.maxSide,
  };
  const layers = o.layers ? extractor.backbone.candidateLayers() : undefined;
  if (o.json) {
    process.stdout.write(JSON.stringify(layers ? { ...summary, layers } : summary, null, 2) + '\n');
  } else {
    const rows: [string, string][] = [
      ['engine', i.engine + (i.engineFallback ? ` (auto fell back to tfjs: ${i.engineFallback})` : '')],
      ['backend', i.backend],
      ['model', `${i.model} (${i.format} model)`],
      ['model.json', i.modelJsonPath],
      ['input range', `[${i.inputRange.join(', ')}] (${i.inputRangeSource})`],
      ['layer', `${i.layer} (${i.layerChosenBy})`],
      ['channels', String(i.channels)],
      ['levels', `${i.levels.join(',')} (${i.levels.map((n) => n * n).reduce((a, b) => a + b, 0)} bins)`],
      ['pool', i.pool],
      ['normalize', i.normalize],
      ['descriptor length', `${i.dim} = ${i.channels} × ${i.levels.map((n) => n * n).join(' + ')}`],
      ['input size', i.decode.size === null ? 'native' : `shorter side ${i.decode.size}`],
    ];
    const width = Math.max(...rows.map(([k]) => k.length));
    for (const [k, v] of rows) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
    if (layers) {
      process.stdout.write(`\ncandidate layers (${layers.length}):\n`);
      for (const l of layers) process.stdout.write(`  ${l.name}  ${l.kind}${l.shape ? `  [${l.shape.map((d) => d ?? '?').join(',')}]` : ''}\n`);
    }
  }
  await extractor.dispose();
  return EXIT.ok;
}

export function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command('spp-extract')
    .description('Fixed-length image descriptors: pretrained MobileNet + spatial pyramid pooling → .npy / JSON / JSONL')
    .argument('[inputs...]', 'image files, folders (recursive), globs, or - for paths on stdin')
    .option('-o, --output <path>', 'output .npy, .json, .jsonl, or - for JSONL on stdout (default - when stdout is not a terminal)')
    .addOption(new Option('-f, --format <format>', 'output format (default: from the extension)').choices(['npy', 'json', 'jsonl']))
    .option('-0, --null', 'paths on stdin are NUL-separated (find -print0)')
    .option('--decode-ahead <n>', 'images decoded in parallel ahead of the model', positiveInt('--decode-ahead'), 4)
    .addOption(new Option('--dtype <type>', '.npy element type (float16 halves the file; ~3 significant digits)').choices(['float32', 'float16']).default('float32'))
    .option('--resume', 'finish an interrupted run of the same output (same inputs and options)')
    .option('--force', 'overwrite an existing output and discard an interrupted run')
    .option('--shard <k/n>', 'process shard k of n (auto/n: k from SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX); {shard} in -o becomes k')
    .option('-q, --quiet', 'no progress or summary on stderr (failures are still reported)')
    .option('-v, --verbose', 'print the backend, model and layer used')
    // Options after `info` belong to info, not to the extract command sharing their names.
    .enablePositionalOptions();
  addModelOptions(program).action(async (inputs: string[], o: ExtractOpts) => setExit(await extractCommand(inputs, o)));
  addModelOptions(
    program
      .command('info')
      .description('print the backend, model, input range, layer, channels and descriptor length')
      .option('--layers', 'also list the candidate layers / nodes')
      .option('--json', 'machine-readable output'),
  ).action(async (o: CommonOpts & { layers?: boolean; json?: boolean }) => setExit(await infoCommand(o)));
  program
    .command('merge')
    .description('merge --shard outputs (.npy + manifests) into what one run over all inputs writes')
    .argument('<shards...>', 'the shard .npy files')
    .requiredOption('-o, --output <path>', 'merged .npy')
    .option('--force', 'overwrite an existing output')
    .action(async (shards: string[], o: { output: string; force?: boolean }) => setExit(await mergeCommand(shards, o)));
  return program;
}

export async function main(argv: string[] = process.argv): Promise<number> {
  let code: number = EXIT.ok;
  const program = buildProgram((c) => (code = c));
  program.exitOverride();
  program.configureOutput({ writeErr: (s) => process.stderr.write(s) });
  try {
    await program.parseAsync(argv);
  } catch (err) {
    const e = err as Error & { code?: string; exitCode?: number };
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return EXIT.ok;
    if (e.code?.startsWith('commander.')) return EXIT.fatal; // commander already printed the message
    if (err instanceof OutputError && err.target === '-' && err.code === 'EPIPE') return EXIT.brokenPipe;
    let msg = (e.message ?? String(err)).split('\n')[0];
    if (err instanceof OutputError && err.target !== '-') msg += '; what is on disk is kept: fix the cause, then finish with --resume';
    process.stderr.write(`spp-extract: error: ${msg}\n`);
    return EXIT.fatal;
  }
  return code;
}
export { systemReason } from '../output/index.js';
