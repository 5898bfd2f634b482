/**
 * Option objects checked against the table (options.ts), once, where they enter: a library call
 * (names like `decode.size`) or the command line (flags like `--size`). What comes out is complete
 * (defaults filled in) and trusted by everything below.
 */
import { UnknownOptionError, invalidParameterError } from './invalid.js';
import { checkRelations } from './relations.js';
import {
  EXTRACTOR_EXTRA_KEYS, OPTIONS, attributeName, checkOption, flagName, optionsFor, resolveOption, type OptionDef,
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
  update?: boolean;
  /** Tar members' sidecar key.json into their records (inputs/tar.ts). */
  keepJson?: boolean;
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

/** Levenshtein distance, case-insensitive (`maxside` is `maxSide`). */
function distance(a: string, b: string): number {
  const [x, y] = [a.toLowerCase(), b.toLowerCase()];
  let row = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const next = [i];
    for (let j = 1; j <= y.length; j++) next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (x[i - 1] === y[j - 1] ? 0 : 1));
    row = next;
  }
  return row[y.length];
}

/**
 * What to say about an unknown key: the closest valid key (by its full dotted name or its last
 * part, so `size` finds `decode.size`) when it is close, else every valid key; and a CLI-only
 * option's key (`dtype`) says so.
 */
function suggestion(key: string, valid: readonly string[], prefix: string): string {
  const last = key.split('.').at(-1)!;
  const score = (v: string) => {
    const end = v.split('.').at(-1)!.toLowerCase();
    // A key cut short (`cache` for cacheDir) or prefixed (`pcaPre` for fitPca's pre) is as close as one typo.
    const low = last.toLowerCase();
    const cut = (low.length >= 3 && end.startsWith(low)) || (end.length >= 3 && low.endsWith(end)) ? 1 : Infinity;
    return Math.min(distance(key, v), distance(last, end), cut);
  };
  const scored = valid.map((v) => ({ v, d: score(v) })).sort((a, b) => a.d - b.d);
  const best = scored[0];
  const close = best && best.d <= Math.max(2, Math.floor(last.length / 3)) ? `did you mean ${best.v}?` : undefined;
  const cli = OPTIONS.find((d) => d.cliOnly && (d.key === last || attributeName(d) === last));
  const note = cli ? `${flagName(cli)} is a command-line option${cli.libraryNote ? `: ${cli.libraryNote}` : ''}` : undefined;
  const parts = [note, close ?? (note ? undefined : `the ${prefix ? `${prefix.slice(0, -1)} ` : ''}options are ${valid.join(', ')}`)];
  return parts.filter(Boolean).join('; ');
}

/**
 * Refuses keys `entry` does not take, nested objects included (`decode.sise`). A key whose value is
 * undefined counts as not given, as it does for the valid ones.
 */
export function refuseUnknownKeys(given: unknown, valid: readonly string[], entry: string, prefix = ''): void {
  if (typeof given !== 'object' || given === null || Array.isArray(given)) return;
  for (const [k, v] of Object.entries(given)) {
    if (v === undefined) continue;
    const key = prefix + k;
    if (valid.includes(key)) continue;
    if (valid.some((x) => x.startsWith(`${key}.`))) {
      refuseUnknownKeys(v, valid, entry, `${key}.`);
      continue;
    }
    throw new UnknownOptionError(entry, key, suggestion(key, valid.filter((x) => x.startsWith(prefix)), prefix));
  }
}

/** Every key createExtractor takes, dotted (`decode.size`): the table's library options and the extras. */
export const EXTRACTOR_KEYS: readonly string[] = [...OPTIONS.filter((d) => !d.cliOnly).map((d) => d.key), ...EXTRACTOR_EXTRA_KEYS];

/**
 * Decode options as decodeImage takes them (`size`, `maxSide` …), defaults filled in. `prefix`
 * says how the caller named the object: '' for decodeImage's own argument, 'decode.' inside
 * createExtractor's options.
 */
export function resolveDecodeOptions(o: unknown, prefix = '', entry = 'decodeImage'): DecodeOptions {
  if (o !== undefined && (typeof o !== 'object' || o === null || Array.isArray(o))) {
    throw invalidParameterError(prefix ? prefix.slice(0, -1) : 'options', 'an object', o);
  }
  // createExtractor's options were checked whole (prefix 'decode.'); decodeImage's are checked here.
  if (!prefix) refuseUnknownKeys(o, DECODE_OPTIONS.map((d) => d.key.slice('decode.'.length)), entry);
  const out: Bag = {};
  for (const def of DECODE_OPTIONS) {
    const key = def.key.slice('decode.'.length);
    out[key] = resolveOption(def, (o as Bag | undefined)?.[key], 'library', prefix + key);
  }
  // Relations between decode options (maxSide ≥ size), each named as the caller names it.
  const short = (key: string) => key.slice('decode.'.length);
  const named = DECODE_OPTIONS.map((d) => ({ ...d, key: prefix + short(d.key), atLeast: d.atLeast && prefix + short(d.atLeast) }));
  const given = new Set(DECODE_OPTIONS.filter((d) => (o as Bag | undefined)?.[short(d.key)] !== undefined).map((d) => prefix + short(d.key)));
  checkRelations(named, { values: new Map(DECODE_OPTIONS.map((d) => [prefix + short(d.key), out[short(d.key)]])), given }, 'library');
  return out as unknown as DecodeOptions;
}

/** createExtractor's options: every library option checked, errors naming the property. */
export function resolveExtractorOptions(o: unknown, entry = 'createExtractor', extraKeys: readonly string[] = []): ResolvedExtractorOptions {
  if (o !== undefined && (typeof o !== 'object' || o === null)) throw invalidParameterError('options', 'an object', o);
  refuseUnknownKeys(o, [...EXTRACTOR_KEYS, ...extraKeys], entry);
  const given = (o ?? {}) as Bag;
  const out: Bag = {};
  for (const def of LIBRARY_OPTIONS) {
    if (def.key.startsWith('decode.')) continue;
    setPath(out, def.key, resolveOption(def, given[def.key], 'library'));
  }
  out.decode = resolveDecodeOptions(given.decode, 'decode.');
  const top = LIBRARY_OPTIONS.filter((d) => !d.key.startsWith('decode.'));
  checkRelations(top, { values: new Map(top.map((d) => [d.key, out[d.key]])), given: new Set(top.filter((d) => given[d.key] !== undefined).map((d) => d.key)) }, 'library');
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

/**
 * The command line's values checked (resolveCommandLine), then its relations: `given` says which
 * flags were on the command line (commander's value source), so defaults never conflict.
 */
export function checkCommandLine(raw: Bag, command: CommandName, given: (attribute: string) => boolean): void {
  resolveCommandLine(raw, command);
  const defs: OptionDef[] = optionsFor(command);
  const values = new Map<string, unknown>();
  for (const def of defs) {
    const v = raw[attributeName(def)];
    // --size with --no-resize was not checked above (the size became null): a bad value is named before the conflict.
    values.set(def.key, v === undefined || v === null || def.type === 'boolean' ? v : checkOption(def, v, 'cli'));
  }
  checkRelations(defs, { values, given: new Set(defs.filter((d) => given(attributeName(d))).map((d) => d.key)) }, 'cli');
}

