import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { expectedGroupBytes, readModelFile } from './artifacts.js';
import { ModelOptionError } from './errors.js';
import { DEFAULT_MODEL_ID, MODEL_REGISTRY, findRegistryEntry, mirrorModelJsonUrl, type RegistryEntry } from './registry.js';
import {
  CACHE_WARNING_KEY, cacheUnwritableWarning, defaultCacheDir, ensureDir, isFile, isFsError, privateTempDir, sweepStale,
} from './cache-dir.js';
import {
  downloadFirst, downloadLimits, NetworkError, SourcesFailedError, type DownloadLimits, type ManifestGroup, type Pins,
} from './download.js';

/** A base URL (or folder) holding `<id>/model.json` and its weights for registry ids: asked instead of the internet sources. */
export const MODEL_MIRROR_ENV = 'SPP_EXTRACT_MODEL_MIRROR';

/** Where a model's files are on disk once resolved, and what is known about it up front. */
export interface ResolvedModel {
  /** What the user asked for, for messages and output metadata. */
  readonly spec: string;
  readonly modelJsonPath: string;
  readonly registry?: RegistryEntry;
}

/** One line for the user; `key` groups repeats (one cache warning however many files it hit). */
export type WarningSink = (message: string, key?: string) => void;

export interface ResolveOptions extends Partial<DownloadLimits> {
  onWarning?: WarningSink;
  /** Mirror base for registry ids (default: $SPP_EXTRACT_MODEL_MIRROR); '' for none. */
  mirror?: string;
}

/** The mirror base as a URL: http(s) as is, a folder path or file: URL as a file: URL. */
export function mirrorBase(value: string): string {
  const v = value.trim();
  if (/^https?:\/\//i.test(v)) return v;
  if (/^file:/i.test(v)) return v;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(v)) throw new ModelOptionError('--model', `${MODEL_MIRROR_ENV}: expected an http(s) URL or a folder, got '${value}'`);
  return pathToFileURL(isAbsolute(v) ? v : resolve(v)).toString();
}

/** Where a registry model is downloaded from, in order: the mirror alone when one is set, else the registry's sources. */
export function registrySources(entry: RegistryEntry, mirror: string | undefined = process.env[MODEL_MIRROR_ENV]): { urls: string[]; mirror?: string } {
  if (mirror !== undefined && mirror.trim() !== '') {
    const base = mirrorBase(mirror);
    return { urls: [mirrorModelJsonUrl(base, entry)], mirror: base };
  }
  return { urls: [...entry.sources] };
}


/** Why a downloaded model folder is not usable (missing or short files), or undefined when it is. */
async function cachedModelProblem(dir: string): Promise<string | undefined> {
  let manifest: ManifestGroup[];
  try {
    manifest = (JSON.parse(await readFile(join(dir, 'model.json'), 'utf8')).weightsManifest ?? []) as ManifestGroup[];
  } catch (err) {
    return `model.json unreadable (${(err as Error).message})`;
  }
  if (!Array.isArray(manifest)) return 'no weightsManifest';
  for (const g of manifest) {
    if (!Array.isArray(g?.paths)) return 'a weightsManifest group has no paths';
    let bytes = 0;
    for (const p of g.paths as string[]) {
      const st = await stat(join(dir, String(p))).catch(() => undefined);
      if (!st?.isFile()) return `weight file '${p}' missing`;
      bytes += st.size;
    }
    const expected = expectedGroupBytes(g.weights);
    if (expected !== undefined && expected !== bytes) return `weight files hold ${bytes} bytes, the manifest needs ${expected}`;
  }
  return undefined;
}

/** What was asked for and from where, for a failed download's message. */
interface Wanted { spec: string; urls: readonly string[]; registry?: RegistryEntry; mirror?: string; pins?: Pins; label?: string }

function downloadFailure(w: Wanted, err: unknown): Error {
  const network = err instanceof NetworkError || (err instanceof SourcesFailedError && err.network);
  const label = w.label ?? `--model ${w.spec}`;
  if (!network) return new ModelOptionError('--model', `${label}: ${(err as Error).message}`);
  const what = err instanceof SourcesFailedError
    ? `could not download it from any of its ${err.failures.length} sources (${err.message})`
    : `could not download ${w.urls[0]} (${(err as Error).message})`;
  const mirror = w.mirror ? ` (${MODEL_MIRROR_ENV} is set: only the mirror was asked)` : '';
  const pull = w.registry?.id ?? w.spec;
  const elsewhere = w.registry && !w.mirror
    ? `set ${MODEL_MIRROR_ENV} to a mirror holding ${w.registry.id}/model.json and its weight files, `
    : w.registry ? `put ${w.registry.id}/model.json and its weight files in the mirror, ` : '';
  return new ModelOptionError(
    '--model',
    `${label}: ${what}${mirror}. If this machine is offline, run \`spp-extract models pull ${pull}\` on one with internet ` +
      `into the same cache folder (--cache-dir or XDG_CACHE_HOME), ${elsewhere}` +
      `or pass --model /path/to/dir (a folder holding model.json and its weight shards).`,
  );
}

/** Downloads into a temp folder beside `dir`, then renames it into place; a concurrent winner's folder is used as is. */
async function downloadToCache(w: Wanted, dir: string, limits: DownloadLimits): Promise<void> {
  const staging = `${dir}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
  await mkdir(staging);
  try {
    await downloadFirst(w.urls, staging, limits, w.pins);
    for (let attempt = 0; ; attempt++) {
      try {
        await rename(staging, dir);
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
        // Someone else finished first: theirs is as good as ours.
        if ((await cachedModelProblem(dir)) === undefined) return;
        if (attempt > 0) throw err;
        await discard(dir);
      }
    }
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** Moves a broken cache folder aside before deleting it, so no reader sees it half-deleted. */
async function discard(dir: string): Promise<void> {
  const aside = `${dir}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
  await rename(dir, aside).catch(() => undefined);
  await rm(aside, { recursive: true, force: true });
}

/** sources → folder in a private temp dir, so a process whose cache is unwritable downloads each model once. */
const privateCopies = new Map<string, Promise<string>>();

async function cachedDownload(w: Wanted, dir: string, opts: ResolveOptions): Promise<string> {
  const url = w.urls.join(' ');
  const modelJsonPath = join(dir, 'model.json');
  const limits = downloadLimits(opts);
  if (await isFile(modelJsonPath)) {
    if ((await cachedModelProblem(dir)) === undefined) return modelJsonPath;
    await discard(dir).catch(() => undefined);
  }
  const cacheDir = dirname(dir);
  let unwritable: unknown = privateCopies.has(url) ? 'already found unwritable by this process' : undefined;
  if (unwritable === undefined) {
    try {
      await ensureDir(cacheDir);
      await sweepStale(cacheDir, (name) => name.startsWith(`${basename(dir)}.partial-`));
    } catch (err) {
      if (!isFsError(err)) throw err;
      unwritable = err;
    }
  }
  try {
    if (unwritable === undefined) {
      try {
        await downloadToCache(w, dir, limits);
        return modelJsonPath;
      } catch (err) {
        // A file-system failure here is the cache's (EACCES, EROFS, ENOSPC …): network errors and refusals are not fs errors.
        if (!isFsError(err)) throw err;
        unwritable = err;
      }
    }
    opts.onWarning?.(cacheUnwritableWarning(cacheDir, unwritable), CACHE_WARNING_KEY);
    let copy = privateCopies.get(url);
    if (!copy) {
      copy = (async () => {
        const into = join(await privateTempDir(), 'model');
        await mkdir(into);
        await downloadFirst(w.urls, into, limits, w.pins);
        return join(into, 'model.json');
      })();
      privateCopies.set(url, copy);
      copy.catch(() => privateCopies.delete(url));
    }
    return await copy;
  } catch (err) {
    throw downloadFailure(w, err);
  }
}

const isUrl = (spec: string) => /^https?:\/\//i.test(spec);
const ONNX_NAME = /\.onnx$/i;

/**
 * Whether `--model` names an ONNX file rather than a TF.js model: a path ending in `.onnx` (any
 * case), or an http(s) URL whose path part ends in `.onnx` (query string ignored). Both engines and
 * loadEngine ask this one function.
 */
export function isOnnxModelSpec(spec: string | undefined): boolean {
  if (spec === undefined) return false;
  if (!isUrl(spec)) return ONNX_NAME.test(spec);
  try {
    return ONNX_NAME.test(new URL(spec).pathname);
  } catch {
    return false;
  }
}

/**
 * The local file of an ONNX `--model`. An .onnx URL is refused with a clear message: .onnx files
 * are read from disk only (the download cache holds TF.js models), so download it and pass its path.
 */
export function localOnnxPath(spec: string): string {
  if (isUrl(spec)) {
    throw new ModelOptionError('--model', `--model ${spec}: a .onnx model is read from a local file, not downloaded; download it and pass its path`);
  }
  return resolve(spec);
}

/** A model that is downloaded into the cache (a registry id or an http(s) URL): its folder there and its sources; undefined for anything else. */
export function downloadable(spec: string, cacheDir: string, mirror?: string): (Wanted & { dir: string }) | undefined {
  const registry = findRegistryEntry(spec);
  if (registry) {
    const { urls, mirror: base } = registrySources(registry, mirror);
    return { spec, urls, registry, ...(base ? { mirror: base } : {}), ...(registry.sha256 ? { pins: registry.sha256 } : {}), dir: join(cacheDir, registry.id) };
  }
  if (isUrl(spec)) {
    const key = createHash('sha256').update(spec).digest('hex').slice(0, 16);
    const url = /\.json(\?|$)/.test(spec) ? spec : `${spec.replace(/\/$/, '')}/model.json`;
    return { spec, urls: [url], dir: join(cacheDir, `url-${key}`) };
  }
  return undefined;
}

/** A cached model's state: complete or why not, its bytes on disk. */
export interface CachedState { readonly dir: string; readonly complete: boolean; readonly problem?: string; readonly bytes?: number }

export async function cachedState(dir: string): Promise<CachedState> {
  if (!(await isFile(join(dir, 'model.json')))) return { dir, complete: false, problem: 'not downloaded' };
  const problem = await cachedModelProblem(dir);
  if (problem) return { dir, complete: false, problem };
  const names = ['model.json', ...(await readModelFile(join(dir, 'model.json'))).weightFiles];
  let bytes = 0;
  for (const f of names) bytes += (await stat(resolve(dir, f))).size;
  return { dir, complete: true, bytes };
}

async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The first pinned file whose content on disk differs, as a message; undefined when all match. */
async function pinProblem(dir: string, pins: Pins | undefined): Promise<string | undefined> {
  for (const [name, expected] of Object.entries(pins ?? {})) {
    const actual = await fileSha256(join(dir, name)).catch((err: Error) => `unreadable (${err.message})`);
    if (actual !== expected) return `'${name}' has SHA-256 ${actual}, the registry pins ${expected}`;
  }
  return undefined;
}

export interface PullResult {
  readonly spec: string;
  readonly dir: string;
  readonly modelJsonPath: string;
  /** 'cached': it was there and complete (pinned files verified); 'downloaded': fetched now. */
  readonly status: 'cached' | 'downloaded';
  /** Why a cached copy was fetched again. */
  readonly replaced?: string;
  /** Where it came from, when downloaded now (SOURCE_URL). */
  readonly source?: string;
}

/**
 * Makes sure a registry id or URL model is complete in `cacheDir`, downloading it when it is not:
 * what `models pull` runs on a machine with internet before jobs run on machines without. A
 * cached copy whose pinned files differ is replaced. An unwritable cache is an error here: a
 * private temporary copy would help no later run.
 */
export async function pullModel(spec: string, cacheDir: string, opts: ResolveOptions = {}): Promise<PullResult> {
  const found = downloadable(spec, cacheDir, opts.mirror);
  const w = found && { ...found, label: spec };
  if (!w) throw new ModelOptionError('--model', `'${spec}' is neither a registry id (${MODEL_REGISTRY.map((e) => e.id).join(', ')}) nor an http(s) URL: only those are downloaded`);
  const modelJsonPath = join(w.dir, 'model.json');
  const before = await cachedState(w.dir);
  let replaced: string | undefined = before.complete ? await pinProblem(w.dir, w.pins) : undefined;
  const id = w.registry?.id ?? spec;
  if (before.complete && replaced === undefined) return { spec: id, dir: w.dir, modelJsonPath, status: 'cached' };
  if (replaced !== undefined || before.problem !== 'not downloaded') {
    replaced ??= before.problem;
    await discard(w.dir);
  }
  try {
    await ensureDir(cacheDir);
  } catch (err) {
    if (!isFsError(err)) throw err;
    throw new Error(`the model cache ${cacheDir} is not writable (${err.message}); set --cache-dir DIR or XDG_CACHE_HOME to a writable folder`);
  }
  let warned: string | undefined;
  await cachedDownload(w, w.dir, { ...opts, onWarning: (m) => (warned ??= m) }).then((path) => {
    if (path !== modelJsonPath) throw new Error(warned ?? `the model cache ${cacheDir} is not writable`);
  });
  const source = (await readFile(join(w.dir, 'SOURCE_URL'), 'utf8').catch(() => '')).trim();
  return { spec: id, dir: w.dir, modelJsonPath, status: 'downloaded', ...(replaced ? { replaced } : {}), ...(source ? { source } : {}) };
}

/**
 * Turns `--model` into a local model.json: a registry id (downloaded once into the cache), an
 * http(s) URL of a model.json (cached by URL hash), a directory holding model.json, or a
 * model.json path. An unwritable cache means a private temp copy and a warning, not a failure.
 */
export async function resolveModel(spec: string = DEFAULT_MODEL_ID, cacheDir = defaultCacheDir(), opts: ResolveOptions = {}): Promise<ResolvedModel> {
  const cached = downloadable(spec, cacheDir, opts.mirror);
  if (cached) {
    const modelJsonPath = await cachedDownload(cached, cached.dir, opts);
    return cached.registry ? { spec, modelJsonPath, registry: cached.registry } : { spec, modelJsonPath };
  }
  const path = resolve(spec);
  const st = await stat(path).catch(() => undefined);
  if (st?.isDirectory()) {
    const modelJsonPath = join(path, 'model.json');
    if (!(await isFile(modelJsonPath))) throw new ModelOptionError('--model', `--model ${spec}: directory has no model.json`);
    return { spec, modelJsonPath };
  }
  if (st?.isFile()) {
    // Cheap sanity check so a wrong file fails here rather than deep inside tfjs.
    const head = (await readFile(path, 'utf8').catch(() => '')).trimStart();
    if (!head.startsWith('{')) throw new ModelOptionError('--model', `--model ${spec}: not a TF.js model.json`);
    return { spec, modelJsonPath: path };
  }
  const known = MODEL_REGISTRY.map((e) => e.id).join(', ');
  throw new ModelOptionError('--model', `--model: '${spec}' is neither a known model (${known}) nor an existing path or URL`);
}

// Callers and tests know these by the module that resolves models.
export { CACHE_WARNING_KEY, cacheUnwritableWarning, defaultCacheDir, ensureDir, isFsError, privateTempDir, sweepStale } from './cache-dir.js';
export { checkWeightPath } from './artifacts.js';
export {
  DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_MAX_DOWNLOAD_BYTES, DEFAULT_MAX_REDIRECTS, DEFAULT_TOTAL_TIMEOUT_MS,
  DOWNLOAD_TIMEOUT_ENV, downloadLimits, MAX_DOWNLOAD_ENV, parseByteSize, type DownloadLimits,
} from './download.js';

/**
 * The files on disk a local --model reads (a .onnx; a TF.js model.json and the weight shards it
 * names), so that an output is never written over them; none for a registry id or a URL. Only the
 * model.json is parsed, not the weights; one that cannot be parsed counts alone (its load says why).
 */
export async function localModelFiles(spec: string | undefined): Promise<string[]> {
  if (spec === undefined || isUrl(spec)) return [];
  if (isOnnxModelSpec(spec)) return [localOnnxPath(spec)];
  const st = await stat(spec).catch(() => undefined);
  if (!st) return [];
  const modelJson = st.isDirectory() ? join(spec, 'model.json') : spec;
  // Only a regular file is read here (a FIFO would wait for a writer): the load reports anything else.
  if (!(await stat(modelJson).catch(() => undefined))?.isFile()) return [modelJson];
  const model = await readModelFile(modelJson).catch(() => undefined);
  return [modelJson, ...(model?.weightFiles ?? [])];
}
