/**
 * Option objects checked against the table (options.ts), once, where they enter: a library call
 * (names like `decode.size`) or the command line (flags like `--size`). What comes out is complete
 * (defaults filled in) and trusted by everything below.
 */
import { invalidParameterError } from './invalid.js';
import {
  OPTIONS, attributeName, optionsFor, resolveOption,
  type BackendName, type BoxFormat, type PreTransform, type CommandName, type DecodeOptions, type Dtype, type EngineName, type InputLayout, type NormalizeMode, type PoolMode,
} from './options.js';

export interface ResolvedModelOptions {
  /** Undefined: the registry's default model. */
  model?: string;
  layer?: string;
  inputRange?: [number, number];
  engine: EngineName;
  threads?: number;
  backend: BackendName;
  inputLayout?: InputLayout;
  mean?: [number, number, number];
  std?: [number, number, number];
  cacheDir?: string;
}

export interface ResolvedSppOptions { levels: number[]; pool: PoolMode; gemP: number; normalize: NormalizeMode }

export interface ResolvedExtractorOptions extends ResolvedModelOptions, ResolvedSppOptions {
  decode: DecodeOptions;
  /** A projection file path, or a projection already read (pca/file.ts Projection, typed where it is used); undefined: raw descriptors. */
  pca?: string | object;
  /** Keep descriptors holding NaN or ±Inf (pipeline/finite.ts). */
  allowNonFinite: boolean;
}

/** The command line's own options (never seen by the library). */
export interface CliRunOptions {
  output?: string;
  format?: string;
  null?: boolean;
  /** Undefined: the default of core/cores.ts. */
  decodeAhead?: number;
  dtype: Dtype;
  resume?: boolean;
  force?: boolean;
  shard?: string;
  boxes?: string;
  boxFormat: BoxFormat;
  grid?: string;
  gridNoFull?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  layers?: boolean;
  json?: boolean;
  /** fit-pca's K; extract --pca-dim's K. */
  dim?: number;
  pcaDim?: number;
  sample?: number;
  /** Whitening's alpha (--whiten with no value: the default alpha). */
  whiten?: number;
  pcaPre?: PreTransform;
}

export type ResolvedCommandLine = ResolvedExtractorOptions & CliRunOptions;

type Bag = Record<string, unknown>;

function setPath(o: Bag, key: string, value: unknown): void {
  if (value === undefined) return;
  const parts = key.split('.');
  let at = o;
  for (const k of parts.slice(0, -1)) at = (at[k] ??= {}) as Bag;
  at[parts.at(-1)!] = value;
}

const LIBRARY_OPTIONS = OPTIONS.filter((d) => !d.cliOnly);
const DECODE_OPTIONS = LIBRARY_OPTIONS.filter((d) => d.key.startsWith('decode.'));

/**
 * Decode options as decodeImage takes them (`size`, `maxSide` …), defaults filled in. `prefix`
 * says how the caller named the object: '' for decodeImage's own argument, 'decode.' inside
 * createExtractor's options.
 */
export function resolveDecodeOptions(o: unknown, prefix = ''): DecodeOptions {
  if (o !== undefined && (typeof o !== 'object' || o === null || Array.isArray(o))) {
    throw invalidParameterError(prefix ? prefix.slice(0, -1) : 'options', 'an object', o);
  }
  const out: Bag = {};
  for (const def of DECODE_OPTIONS) {
    const key = def.key.slice('decode.'.length);
    out[key] = resolveOption(def, (o as Bag | undefined)?.[key], 'library', prefix + key);
  }
  return out as unknown as DecodeOptions;
}

/** createExtractor's options: every library option checked, errors naming the property. */
export function resolveExtractorOptions(o: unknown): ResolvedExtractorOptions {
  if (o !== undefined && (typeof o !== 'object' || o === null)) throw invalidParameterError('options', 'an object', o);
  const given = (o ?? {}) as Bag;
  const out: Bag = {};
  for (const def of LIBRARY_OPTIONS) {
    if (def.key.startsWith('decode.')) continue;
    setPath(out, def.key, resolveOption(def, given[def.key], 'library'));
  }
  out.decode = resolveDecodeOptions(given.decode, 'decode.');
  return out as unknown as ResolvedExtractorOptions;
}

/**
 * The values commander parsed for one command (strings, or the table's defaults), checked,
 * errors naming the flag. Library options the command does not take get their defaults, so
 * `info` can open the same extractor as `extract`.
 */
export function resolveCommandLine(raw: Bag, command: CommandName): ResolvedCommandLine {
  const out: Bag = {};
  const own = new Set(optionsFor(command));
  for (const def of OPTIONS) {
    if (!own.has(def)) {
      if (!def.cliOnly) setPath(out, def.key, resolveOption(def, undefined, 'cli'));
      continue;
    }
    if (def.key === 'resize') continue;
    let value = raw[attributeName(def)];
    if (def.type === 'boolean') {
      setPath(out, def.key, value);
      continue;
    }
    // --no-resize: the native size (the library's decode.size: null).
    if (def.key === 'decode.size' && raw.resize === false) value = null;
    setPath(out, def.key, value === null ? null : resolveOption(def, value, 'cli'));
  }
  return out as unknown as ResolvedCommandLine;
}

