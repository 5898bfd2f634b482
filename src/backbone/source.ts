import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { expectedGroupBytes, readModelFile } from './artifacts.js';
import { ModelOptionError } from './errors.js';
import { DEFAULT_MODEL_ID, MODEL_REGISTRY, findRegistryEntry, modelJsonUrl, type RegistryEntry } from './registry.js';
import {
  CACHE_WARNING_KEY, cacheUnwritableWarning, defaultCacheDir, ensureDir, isFile, isFsError, privateTempDir, sweepStale,
} from './cache-dir.js';
import { downloadInto, downloadLimits, NetworkError, type DownloadLimits, type ManifestGroup } from './download.js';

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

function offlineHint(spec: string, url: string, err: unknown): Error {
  if (!(err instanceof NetworkError)) return new ModelOptionError('--model', `--model ${spec}: ${(err as Error).message}`);
  return new ModelOptionError(
    '--model',
    `--model ${spec}: could not download ${url} (${err.message}). ` +
      `If this machine is offline, download the model elsewhere and pass --model /path/to/dir ` +
      `(a folder holding model.json and its weight shards).`,
  );
}

/** Downloads into a temp folder beside `dir`, then renames it into place; a concurrent winner's folder is used as is. */
async function downloadToCache(url: string, dir: string, limits: DownloadLimits): Promise<void> {
  const staging = `${dir}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
  await mkdir(staging);
  try {
    await downloadInto(url, staging, limits);
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

/** url → folder in a private temp dir, so a process whose cache is unwritable downloads each model once. */
const privateCopies = new Map<string, Promise<string>>();

async function cachedDownload(spec: string, url: string, dir: string, opts: ResolveOptions): Promise<string> {
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
        await downloadToCache(url, dir, limits);
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
        await downloadInto(url, into, limits);
        return join(into, 'model.json');
      })();
      privateCopies.set(url, copy);
      copy.catch(() => privateCopies.delete(url));
    }
    return await copy;
  } catch (err) {
    throw offlineHint(spec, url, err);
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

/**
 * Turns `--model` into a local model.json: a registry id (downloaded once into the cache), an
 * http(s) URL of a model.json (cached by URL hash), a directory holding model.json, or a
 * model.json path. An unwritable cache means a private temp copy and a warning, not a failure.
 */
export async function resolveModel(spec: string = DEFAULT_MODEL_ID, cacheDir = defaultCacheDir(), opts: ResolveOptions = {}): Promise<ResolvedModel> {
  const registry = findRegistryEntry(spec);
  if (registry) {
    const modelJsonPath = await cachedDownload(spec, modelJsonUrl(registry), join(cacheDir, registry.id), opts);
    return { spec, modelJsonPath, registry };
  }
  if (isUrl(spec)) {
    const key = createHash('sha256').update(spec).digest('hex').slice(0, 16);
    const url = /\.json(\?|$)/.test(spec) ? spec : `${spec.replace(/\/$/, '')}/model.json`;
    return { spec, modelJsonPath: await cachedDownload(spec, url, join(cacheDir, `url-${key}`), opts) };
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
