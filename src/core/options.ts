/**
 * Every option, defined once: its library key and CLI flag, type, default, choices, check, help
 * text and the commands it belongs to. commander's options and --help (src/cli/options.ts), the
 * library's option checking (createExtractor, decodeImage, spatialPyramidPool), `info` and the
 * resume / merge compatibility check (output/resume.ts: header field → flag) all read this table.
 *
 * Values are checked once, where they enter: on the command line (errors name the flag,
 * "--size must be …") or in a library call (errors name the property, "decode.size must be …").
 * Nothing below that boundary checks them again.
 */
import { invalidParameterError } from './invalid.js';

export type CommandName = 'extract' | 'info' | 'merge' | 'fit-pca' | 'models';
/** Whose words an error uses: the CLI's flags or the library's property names. */
export type NameStyle = 'cli' | 'library';

export const POOL_MODES = ['max', 'avg', 'gem'] as const;
export const BOX_FORMATS = ['xyxy', 'xywh'] as const;
export const NORMALIZE_MODES = ['none', 'l2', 'sqrt'] as const;
export const ENGINE_CHOICES = ['auto', 'onnx', 'tfjs'] as const;
export const BACKEND_CHOICES = ['auto', 'node', 'wasm', 'cpu'] as const;
export const FAIL_ON_CHOICES = ['none', 'truncated', 'error', 'warning'] as const;
export const OUTPUT_FORMAT_CHOICES = ['npy', 'json', 'jsonl'] as const;
export const DTYPE_CHOICES = ['float32', 'float16'] as const;
export const INPUT_LAYOUTS = ['nhwc', 'nchw'] as const;
export const DEFAULT_LEVELS: readonly number[] = Object.freeze([1, 2, 4]);
/** What a descriptor goes through before a projection's centring (src/pca/transform.ts). */
export const PRE_TRANSFORMS = ['l2', 'sqrt', 'none'] as const;
export type PreTransform = (typeof PRE_TRANSFORMS)[number];

export type PoolMode = (typeof POOL_MODES)[number];
export type BoxFormat = (typeof BOX_FORMATS)[number];
export type NormalizeMode = (typeof NORMALIZE_MODES)[number];
export type EngineName = (typeof ENGINE_CHOICES)[number];
export type BackendName = (typeof BACKEND_CHOICES)[number];
export type FailOn = (typeof FAIL_ON_CHOICES)[number];
export type Dtype = (typeof DTYPE_CHOICES)[number];
export type InputLayout = (typeof INPUT_LAYOUTS)[number];
export type Rgb = { r: number; g: number; b: number };

/** How an image becomes the pixels fed to the model (decodeImage's options; `decode` in createExtractor's). */
export interface DecodeOptions {
  /** Shorter side is resized to this, aspect kept (default 224). null = native size (--no-resize). */
  size: number | null;
  /**
   * Cap on the longer side, applied after the size policy, also when size is null (default 4096).
   * Keeps extreme aspect ratios (1x20000 -> 224x4480000) and --no-resize on huge photos from
   * exploding memory; the shorter side shrinks with it but never below 1 px. null = no cap.
   */
  maxSide: number | null;
  /** Alpha is flattened onto this colour (default white 255,255,255, like a browser page). */
  background: Rgb;
  /**
   * sharp limitInputPixels (width x height as stored in the header). Default sharp's 268402689
   * (0x3FFF^2). Larger images fail with reason 'too-large' before any pixel is decoded.
   */
  maxInputPixels: number;
  /**
   * sharp failOn. Default 'error', not sharp's 'warning': 'warning' rejects JPEGs that decode
   * fine (e.g. "extraneous bytes before marker"), while 'error' still fails truncated files.
   * 'none' decodes truncated files as rows with grey filler.
   */
  failOn: FailOn;
}


export interface OptionDef {
  /** Library property, dotted when nested (`decode.size`); named in library errors. CLI-only options: the name the CLI reads. */
  readonly key: string;
  /** CLI flag with its argument (`--size <n>`); named in CLI errors. */
  readonly flag: string;
  readonly short?: string;
  /** What the value is, once checked. */
  readonly type: 'string' | 'integer' | 'number' | 'integer[]' | 'number[]' | 'rgb' | 'choice' | 'boolean';
  readonly help: string;
  /** Help where one command words it differently (merge's -o and --force). */
  readonly helpFor?: Partial<Record<CommandName, string>>;
  readonly commands: readonly CommandName[];
  /** Commands that refuse to run without it. */
  readonly required?: readonly CommandName[];
  /** What a valid value is, in the error: "a positive integer". Choices speak for themselves. */
  readonly expected?: string;
  /** The library's wording, where an array or object replaces the CLI's text. */
  readonly expectedLibrary?: string;
  readonly choices?: readonly string[];
  readonly default?: unknown;
  /** How the default reads in --help when it is not the value itself. */
  readonly defaultText?: string;
  /** The library may pass null (decode.size: native size; decode.maxSide: no cap). */
  readonly nullable?: boolean;
  /** Text (CLI) or value (library) → the checked value; undefined when invalid. */
  readonly check?: (v: unknown) => unknown;
  /** Field of the run header (the resume / merge compatibility check) the option lands in. */
  readonly header?: string;
  /** Not a library option. */
  readonly cliOnly?: boolean;
  /** Environment variable the CLI reads when the flag is not given (the library reads no environment). */
  readonly env?: string;
  /** What the library offers instead, said when a library call passes this CLI-only option's key. */
  readonly libraryNote?: string;
  /** Options this one cannot be given with (core/relations.ts checks them, for the CLI and the library). */
  readonly conflicts?: readonly Relation[];
  /** Options this one means nothing without. */
  readonly needs?: readonly Relation[];
  /** An option whose value this one's must not be below, when both are given (decode.maxSide ≥ decode.size). */
  readonly atLeast?: string;
}

/**
 * One option's relation to another. Only options the caller set are checked (a flag on the command
 * line, a key in a library call), never defaults. `values`: only while the other option has one of
 * these values (its default counts: --gem-p needs --pool gem, and the default pool is max);
 * without `values`, the other option must be set. `when`: only while this option has one of these.
 */
export interface Relation {
  readonly key: string;
  readonly values?: readonly unknown[];
  readonly when?: readonly unknown[];
  /** Why, after the refusal; default "pick one" (conflicts). */
  readonly why?: string;
}

/** A whole number ≥ 1, from a number or a string of digits. */
export function positiveInt(v: unknown): number | undefined {
  const n = typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : v;
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 1 ? n : undefined;
}

/** Finite numbers from `a,b,c` or an array (or one number). */
function numbers(v: unknown): number[] | undefined {
  let parts: unknown = v;
  if (typeof v === 'string') parts = v.trim() === '' ? [] : v.split(',').map((s) => (s.trim() === '' ? NaN : Number(s)));
  if (typeof parts === 'number') parts = [parts];
  return Array.isArray(parts) && parts.every((x) => typeof x === 'number' && Number.isFinite(x)) ? parts : undefined;
}

/** `1,2,4` (CLI) or [1, 2, 4] (library: numbers only); never empty. */
export function parseLevels(v: unknown): number[] | undefined {
  let list: (number | undefined)[] = [];
  if (typeof v === 'string') list = v.split(',').map((s) => positiveInt(s.trim()));
  else if (Array.isArray(v)) list = v.map((n) => (typeof n === 'number' ? positiveInt(n) : undefined));
  return list.length > 0 && list.every((n) => n !== undefined) ? (list as number[]) : undefined;
}

/** A finite number ≥ 0, from a number or a numeric string. */
export function nonNegativeNumber(v: unknown): number | undefined {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  return typeof n === 'number' && Number.isFinite(n) && n >= 0 ? n : undefined;
}

/** A loaded projection (pca/file.ts Projection), as the library may pass one: checked for shape where it is used. */
function isProjectionLike(v: unknown): boolean {
  return typeof v === 'object' && v !== null && 'meta' in v && 'components' in v && 'mean' in v;
}

/** A finite number > 0, from a number or a numeric string. */
export function positiveNumber(v: unknown): number | undefined {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : undefined;
}

/** `RxC` (e.g. 2x2, 3x4; × also accepted): rows and columns, each a positive integer. */
export function parseGrid(v: unknown): { rows: number; cols: number } | undefined {
  const m = typeof v === 'string' ? /^\s*(\d+)\s*[x×X]\s*(\d+)\s*$/.exec(v) : null;
  const rows = positiveInt(m?.[1]);
  const cols = positiveInt(m?.[2]);
  return rows !== undefined && cols !== undefined && rows * cols <= 10_000 ? { rows, cols } : undefined;
}

export function parseRange(v: unknown): [number, number] | undefined {
  const r = numbers(v);
  return r && r.length === 2 && r[0] < r[1] ? [r[0], r[1]] : undefined;
}

/** One value for all three channels, or R,G,B. */
export function parseTriple(v: unknown): [number, number, number] | undefined {
  const r = numbers(v);
  if (!r || !(r.length === 1 || r.length === 3)) return undefined;
  return r.length === 1 ? [r[0], r[0], r[0]] : [r[0], r[1], r[2]];
}

const NAMED_COLOURS: Record<string, [number, number, number]> = { white: [255, 255, 255], black: [0, 0, 0], gray: [128, 128, 128], grey: [128, 128, 128] };

/** white, black, gray, #rgb, #rrggbb, R,G,B or {r, g, b}; each channel an integer 0–255. */
export function parseColour(v: unknown): Rgb | undefined {
  let parts: unknown[] | undefined;
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    parts = [o.r, o.g, o.b];
  } else if (typeof v === 'string') {
    const s = v.trim().toLowerCase();
    let m: RegExpExecArray | null;
    if (NAMED_COLOURS[s]) parts = NAMED_COLOURS[s];
    else if ((m = /^#?([0-9a-f])([0-9a-f])([0-9a-f])$/.exec(s))) parts = m.slice(1).map((h) => parseInt(h + h, 16));
    else if ((m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/.exec(s))) parts = m.slice(1).map((h) => parseInt(h, 16));
    else if (/^\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}$/.test(s)) parts = s.split(',').map(Number);
  }
  const [r, g, b] = (parts ?? []).map((x) => (typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 255 ? x : undefined));
  return r !== undefined && g !== undefined && b !== undefined ? { r, g, b } : undefined;
}

export const colourHex = (c: Rgb) => '#' + [c.r, c.g, c.b].map((v) => v.toString(16).padStart(2, '0')).join('');

const choice = (choices: readonly string[]) => (v: unknown) => (typeof v === 'string' && choices.includes(v) ? v : undefined);
const nonEmpty = (v: unknown) => (typeof v === 'string' && v.trim() !== '' ? v : undefined);

const EXTRACT_INFO: readonly CommandName[] = ['extract', 'info'];
/** The commands that describe images: extraction, and the fit of a projection on a sample of them. */
const DESCRIBE: readonly CommandName[] = ['extract', 'info', 'fit-pca'];
const EXTRACT_FIT: readonly CommandName[] = ['extract', 'fit-pca'];
const TRIPLE = 'one number or three comma-separated numbers (R,G,B)';

/** The backbone and the pyramid: shared by extraction and `info`. */
const MODEL_OPTIONS: readonly OptionDef[] = [
  // Its default is the registry's (backbone/registry.ts): the backbone applies it, the CLI shows it.
  { key: 'model', flag: '--model <id|dir|url>', short: '-m', type: 'string', commands: DESCRIBE, header: 'model', env: 'SPP_EXTRACT_MODEL',
    expected: 'a registry id, a folder, a model.json path or URL, or a .onnx file', check: nonEmpty,
    help: 'registry id, a folder with model.json, a model.json path or URL, or a .onnx file' },
  { key: 'layer', flag: '--layer <name>', type: 'string', commands: DESCRIBE, header: 'layer', expected: 'a layer or node name', check: nonEmpty,
    help: 'layer (layers model) or node (graph model) giving the feature map; default: the last conv map' },
  { key: 'inputRange', flag: '--input-range <lo,hi>', type: 'number[]', commands: DESCRIBE, header: 'inputRange',
    expected: 'LOW,HIGH with LOW < HIGH (e.g. 0,1 or -1,1)', expectedLibrary: 'two numbers [low, high] with low < high', check: parseRange,
    help: 'pixel range the model expects, e.g. 0,1 or -1,1 (write --input-range=-1,1); default from the registry or per format' },
  { key: 'engine', flag: '--engine <name>', type: 'choice', commands: DESCRIBE, header: 'engine', choices: ENGINE_CHOICES, default: 'auto',
    check: choice(ENGINE_CHOICES), help: 'auto: ONNX Runtime when the model converts, else tfjs' },
  { key: 'threads', flag: '--threads <n>', type: 'integer', commands: DESCRIBE, expected: 'a positive integer', check: positiveInt,
    help: 'ONNX Runtime threads (default: half the cores, the rest decode; 1 on 2 cores)' },
  { key: 'backend', flag: '--backend <name>', type: 'choice', commands: DESCRIBE, choices: BACKEND_CHOICES, default: 'auto',
    check: choice(BACKEND_CHOICES), help: 'tfjs backend (an explicit node/wasm/cpu implies --engine tfjs)',
    conflicts: [{ key: 'engine', values: ['onnx'], when: ['node', 'wasm', 'cpu'], why: 'a tfjs backend runs the tfjs engine; drop one' }] },
  { key: 'inputLayout', flag: '--input-layout <layout>', type: 'choice', commands: DESCRIBE, header: 'inputLayout', choices: INPUT_LAYOUTS,
    check: choice(INPUT_LAYOUTS), help: "a .onnx model's image layout (default: from its input shape)" },
  { key: 'mean', flag: '--mean <r,g,b>', type: 'number[]', commands: DESCRIBE, header: 'mean', expected: TRIPLE, check: parseTriple,
    help: "a .onnx model's per-channel mean, after scaling to --input-range (torchvision: 0.485,0.456,0.406)" },
  { key: 'std', flag: '--std <r,g,b>', type: 'number[]', commands: DESCRIBE, header: 'std', expected: `${TRIPLE}, none 0`,
    check: (v) => parseTriple(v)?.every((s) => s !== 0) ? parseTriple(v) : undefined,
    help: "a .onnx model's per-channel std (torchvision: 0.229,0.224,0.225)" },
  { key: 'levels', flag: '--levels <list>', type: 'integer[]', commands: DESCRIBE, header: 'levels', default: DEFAULT_LEVELS, defaultText: '1,2,4',
    expected: 'a comma-separated list of positive integers', expectedLibrary: 'a non-empty array of positive integers', check: parseLevels,
    help: 'pyramid levels, n×n bins each (the paper: 6,3,2,1)' },
  { key: 'pool', flag: '--pool <mode>', type: 'choice', commands: DESCRIBE, header: 'pool', choices: POOL_MODES, default: 'max',
    check: choice(POOL_MODES), help: 'pooling in each bin (gem: generalized mean, see --gem-p)' },
  { key: 'gemP', flag: '--gem-p <p>', type: 'number', commands: DESCRIBE, header: 'gemP', default: 3, expected: 'a finite number > 0',
    check: positiveNumber, help: 'exponent of --pool gem (1 = avg; large p approaches max)', needs: [{ key: 'pool', values: ['gem'] }] },
  { key: 'normalize', flag: '--normalize <mode>', type: 'choice', commands: DESCRIBE, header: 'normalize', choices: NORMALIZE_MODES, default: 'none',
    check: choice(NORMALIZE_MODES), help: 'descriptor normalisation (sqrt = signed square root, then L2)' },
  // In the header only when given, so a plain run's header reads as it always has (extract.ts).
  { key: 'allowNonFinite', flag: '--allow-non-finite', type: 'boolean', commands: ['extract'], header: 'allowNonFinite', default: false,
    expected: 'true or false', check: (v) => (typeof v === 'boolean' ? v : undefined),
    help: 'keep descriptors holding NaN or ±Inf (a faulty model) as rows; .npy output only; default: such an input fails as non-finite' },
];

/** How images become pixels: `decode.*` in the library. `info` uses the size policy only. */
const DECODE_OPTIONS: readonly OptionDef[] = [
  { key: 'decode.size', flag: '--size <n>', type: 'integer', commands: DESCRIBE, header: 'size', default: 224, nullable: true,
    expected: 'a positive integer', check: positiveInt, help: 'resize so the shorter side is N pixels, aspect kept',
    conflicts: [{ key: 'resize', values: [false], why: '--no-resize feeds the native size; drop one' }] },
  { key: 'resize', flag: '--no-resize', type: 'boolean', commands: DESCRIBE, default: true, cliOnly: true,
    help: 'feed the native size (still capped by --max-side)' },
  { key: 'decode.maxSide', flag: '--max-side <n>', type: 'integer', commands: DESCRIBE, header: 'maxSide', default: 4096, nullable: true,
    expected: 'a positive integer', check: positiveInt, help: 'cap on the longer side fed to the model', atLeast: 'decode.size' },
  { key: 'decode.background', flag: '--background <colour>', type: 'rgb', commands: EXTRACT_FIT, header: 'background',
    default: { r: 255, g: 255, b: 255 }, defaultText: 'white', check: parseColour,
    expected: 'white, black, gray, #rrggbb or R,G,B with integers 0-255', expectedLibrary: '{r, g, b} with integers 0-255, #rrggbb or r,g,b',
    help: 'colour transparent pixels are flattened onto (white, black, gray, #rrggbb, R,G,B)' },
  { key: 'decode.maxInputPixels', flag: '--max-input-pixels <n>', type: 'integer', commands: EXTRACT_FIT, default: 268402689,
    expected: 'a positive integer', check: positiveInt, help: 'refuse images whose header declares more pixels (decompression-bomb guard)' },
  { key: 'decode.failOn', flag: '--fail-on <level>', type: 'choice', commands: EXTRACT_FIT, header: 'failOn', choices: FAIL_ON_CHOICES, default: 'error',
    check: choice(FAIL_ON_CHOICES), help: 'sharp failOn: how picky decoding is about damaged data' },
];

/** Region descriptors: several windows of one image's feature map (one forward pass). */
const REGION_OPTIONS: readonly OptionDef[] = [
  { key: 'boxes', flag: '--boxes <file>', type: 'string', commands: ['extract'], cliOnly: true, expected: 'a file path, or - for stdin', check: nonEmpty,
    help: 'one descriptor per box: JSONL {"path", "boxes": [[x0,y0,x1,y1],...], "labels"?} or CSV path,x0,y0,x1,y1[,label]; the file names the images',
    conflicts: [{ key: 'grid' }] },
  { key: 'boxFormat', flag: '--box-format <format>', type: 'choice', commands: ['extract'], header: 'boxFormat', choices: BOX_FORMATS, default: 'xyxy', cliOnly: true,
    check: choice(BOX_FORMATS), help: 'box coordinates: xyxy = x0,y0,x1,y1; xywh = x,y,width,height (COCO)', needs: [{ key: 'boxes' }] },
  { key: 'grid', flag: '--grid <RxC>', type: 'string', commands: ['extract'], header: 'grid', cliOnly: true, expected: 'RxC with positive integers, e.g. 2x2',
    check: (v) => (parseGrid(v) ? String(v).trim().toLowerCase().replace('×', 'x') : undefined),
    help: 'one descriptor per cell of an R×C grid of each image, after the whole image (window 0)' },
  { key: 'gridNoFull', flag: '--grid-no-full', type: 'boolean', commands: ['extract'], cliOnly: true, help: 'with --grid: leave out the whole-image window', needs: [{ key: 'grid' }] },
];

/** The extraction run itself, the command line only. */
const RUN_OPTIONS: readonly OptionDef[] = [
  { key: 'output', flag: '--output <path>', short: '-o', type: 'string', commands: ['extract', 'merge', 'fit-pca'], required: ['merge', 'fit-pca'], cliOnly: true,
    help: 'output .npy, .json, .jsonl, or - for JSONL on stdout (default - when stdout is not a terminal)',
    helpFor: { merge: 'the merged output, in the shards\' format', 'fit-pca': 'the projection file (.npz)' } },
  { key: 'format', flag: '--format <format>', short: '-f', type: 'choice', commands: ['extract'], choices: OUTPUT_FORMAT_CHOICES, cliOnly: true,
    check: choice(OUTPUT_FORMAT_CHOICES), help: 'output format, for a name without a known extension (default: from the extension)' },
  { key: 'null', flag: '--null', short: '-0', type: 'boolean', commands: EXTRACT_FIT, cliOnly: true, help: 'paths on stdin are NUL-separated (find -print0)' },
  { key: 'decodeAhead', flag: '--decode-ahead <n>', type: 'integer', commands: EXTRACT_FIT, expected: 'a positive integer', cliOnly: true,
    check: positiveInt, help: 'images decoded in parallel ahead of the model (default: 16 on 2 cores at the default size policy; 8 per decoding core within 64 MiB of pixels, never below 4)' },
  { key: 'dtype', flag: '--dtype <type>', type: 'choice', commands: ['extract'], header: 'dtype', choices: DTYPE_CHOICES, default: 'float32', cliOnly: true,
    check: choice(DTYPE_CHOICES), help: '.npy element type (float16 halves the file; ~3 significant digits)',
    libraryNote: "descriptors are Float32Array; encodeNpy('<f2', shape, data) writes them as float16" },
  { key: 'keepJson', flag: '--keep-json', type: 'boolean', commands: ['extract'], header: 'keepJson', cliOnly: true,
    help: 'tar inputs: copy each image member\'s sidecar key.json (an object of at most 1 MiB) into its record as `json`' },
  { key: 'resume', flag: '--resume', type: 'boolean', commands: ['extract'], cliOnly: true, help: 'finish an interrupted run of the same output (same inputs and options)',
    conflicts: [{ key: 'force' }] },
  { key: 'update', flag: '--update', type: 'boolean', commands: ['extract'], cliOnly: true,
    help: 'bring a complete output up to date with its inputs: keep the rows of unchanged files (same path and SHA-256), describe new or changed ones, drop removed ones',
    conflicts: [{ key: 'resume', why: '--update needs a complete output; --resume finishes an interrupted one' }, { key: 'force', why: '--force starts over, --update reuses rows' }] },
  { key: 'force', flag: '--force', type: 'boolean', commands: ['extract', 'merge', 'fit-pca'], cliOnly: true,
    help: 'overwrite an existing output and discard an interrupted run', helpFor: { merge: 'overwrite an existing output', 'fit-pca': 'overwrite an existing projection file' } },
  { key: 'shard', flag: '--shard <k/n>', type: 'string', commands: ['extract'], cliOnly: true,
    help: 'process shard k of n (auto/n: k from SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX); {shard} in -o becomes k' },
  { key: 'quiet', flag: '--quiet', short: '-q', type: 'boolean', commands: ['extract', 'merge', 'fit-pca'], cliOnly: true,
    help: 'no progress, summary or hints on stderr (failures and warnings are still reported)', helpFor: { merge: 'no summary on stderr (warnings are still reported)' } },
  { key: 'verbose', flag: '--verbose', short: '-v', type: 'boolean', commands: EXTRACT_FIT, cliOnly: true, help: 'print the backend, model and layer used' },
  { key: 'layers', flag: '--layers', type: 'boolean', commands: ['info'], cliOnly: true, help: 'also list the candidate layers / nodes' },
  { key: 'json', flag: '--json', type: 'boolean', commands: ['info', 'models'], cliOnly: true, help: 'machine-readable output' },
];

const CACHE_OPTIONS: readonly OptionDef[] = [
  { key: 'cacheDir', flag: '--cache-dir <dir>', type: 'string', commands: [...DESCRIBE, 'models'], expected: 'a folder path', check: nonEmpty,
    help: 'model cache (default $XDG_CACHE_HOME/spp-extract or ~/.cache/spp-extract)' },
];

/** The default alpha of --whiten: the only one that kept mAP near the unwhitened value (scripts/pca_quality.json). */
export const DEFAULT_WHITEN_ALPHA = 10;
export const DEFAULT_PCA_SAMPLE = 10_000;

/** A learned projection (src/pca): applying one (--pca), fitting one (fit-pca, --pca-dim) and how. */
const PCA_OPTIONS: readonly OptionDef[] = [
  { key: 'pca', flag: '--pca <file>', type: 'string', commands: EXTRACT_INFO, header: 'pca', expected: 'a projection file made by fit-pca (.npz)',
    expectedLibrary: 'a projection file path or a projection from readProjection()',
    check: (v) => nonEmpty(v) ?? (isProjectionLike(v) ? v : undefined),
    help: 'project each descriptor with this fit-pca projection (centre, PCA, L2): K values per row instead of D' },
  { key: 'pcaDim', flag: '--pca-dim <k>', type: 'integer', commands: ['extract'], cliOnly: true, expected: 'a positive integer', check: positiveInt,
    help: 'fit a K-component projection on a sample of these inputs first (written to OUTPUT.pca.npz), then extract with it' },
  { key: 'dim', flag: '--dim <k>', type: 'integer', commands: ['fit-pca'], required: ['fit-pca'], cliOnly: true, expected: 'a positive integer', check: positiveInt,
    help: 'components to keep (K): the projected descriptor length' },
  { key: 'sample', flag: '--sample <n>', type: 'integer', commands: EXTRACT_FIT, cliOnly: true, expected: 'a positive integer', check: positiveInt,
    defaultText: String(DEFAULT_PCA_SAMPLE), help: 'fit on at most N inputs, those whose path hashes lowest (the same whatever the order or shard)' },
  { key: 'whiten', flag: '--whiten [alpha]', type: 'number', commands: EXTRACT_FIT, cliOnly: true, expected: 'a number ≥ 0 (or no value)',
    check: (v) => (v === true ? DEFAULT_WHITEN_ALPHA : nonNegativeNumber(v)),
    help: `regularised whitening: scale component k by 1/sqrt(λk + alpha·mean(λ)) (alpha default ${DEFAULT_WHITEN_ALPHA}); default: no whitening` },
  { key: 'pcaPre', flag: '--pca-pre <transform>', type: 'choice', commands: EXTRACT_FIT, cliOnly: true, choices: PRE_TRANSFORMS, defaultText: 'l2',
    check: choice(PRE_TRANSFORMS), help: 'what each descriptor goes through before centring: l2, sqrt (signed square root, then L2) or none' },
];

/** createExtractor's keys that are no setting of the table: a warning sink and the worker switch (backbone/onnx/backbone.ts). */
export const EXTRACTOR_EXTRA_KEYS: readonly string[] = ['onWarning', 'worker'];

/** In --help's order: the run, the model and pyramid, decoding, the cache. */
export const OPTIONS: readonly OptionDef[] = [...RUN_OPTIONS, ...PCA_OPTIONS, ...MODEL_OPTIONS, ...REGION_OPTIONS, ...DECODE_OPTIONS, ...CACHE_OPTIONS];

export function optionsFor(command: CommandName): OptionDef[] {
  return OPTIONS.filter((o) => o.commands.includes(command));
}

export function findOption(key: string): OptionDef {
  const def = OPTIONS.find((o) => o.key === key);
  if (!def) throw new Error(`no option '${key}'`);
  return def;
}

/** The flag without its argument: `--max-side`. */
export const flagName = (def: OptionDef) => def.flag.split(' ')[0];

/** The property commander stores a flag under: `--max-side` → maxSide, `--no-resize` → resize. */
export const attributeName = (def: OptionDef) =>
  flagName(def).replace(/^--(no-)?/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** How an option is named to whoever passed it. */
export const optionName = (def: OptionDef, style: NameStyle) => (style === 'cli' ? flagName(def) : def.key);

function expectedText(def: OptionDef, style: NameStyle): string {
  if (def.choices) return `one of ${def.choices.join(', ')}`;
  return (style === 'library' ? def.expectedLibrary : undefined) ?? def.expected ?? 'valid';
}

/** Checks one value against its definition; errors name it as `name` (default: the flag or the key). */
export function checkOption(def: OptionDef, value: unknown, style: NameStyle, name = optionName(def, style)): unknown {
  if (value === null && def.nullable && style === 'library') return null;
  if (!def.check) return value;
  const out = def.check(value);
  if (out === undefined) throw invalidParameterError(name, expectedText(def, style), value);
  return out;
}

/** The default, copied so nobody can change the table's. */
const defaultOf = (def: OptionDef): unknown =>
  typeof def.default === 'object' && def.default !== null ? structuredClone(def.default) : def.default;

/** A value checked, or the default when it was not given. */
export function resolveOption(def: OptionDef, value: unknown, style: NameStyle, name?: string): unknown {
  return value === undefined ? defaultOf(def) : checkOption(def, value, style, name);
}

/** The flag of a run-header field, for "what changed" messages: `levels` → `--levels`. */
export function flagOfHeaderField(field: string): string | undefined {
  const def = OPTIONS.find((o) => o.header === field);
  return def ? flagName(def) : undefined;
}
