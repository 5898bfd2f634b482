import { createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { expectedGroupBytes } from './artifacts.js';
import { ModelOptionError } from './errors.js';
import { DEFAULT_MODEL_ID, MODEL_REGISTRY, findRegistryEntry, modelJsonUrl, type RegistryEntry } from './registry.js';

/** Where a model's files are on disk once resolved, and what is known about it up front. */
export interface ResolvedModel {
  /** What the user asked for, for messages and output metadata. */
  readonly spec: string;
  readonly modelJsonPath: string;
  readonly registry?: RegistryEntry;
}

/** One line for the user; `key` groups repeats (one cache warning however many files it hit). */
export type WarningSink = (message: string, key?: string) => void;

export interface DownloadLimits {
  /** Bytes one model may download, model.json and weights together. */
  maxBytes: number;
  /** Abort a request that sends nothing (connect, headers or body) for this long. */
  idleTimeoutMs: number;
  /** Abort a model's whole download after this long. */
  totalTimeoutMs: number;
  maxRedirects: number;
}

export interface ResolveOptions extends Partial<DownloadLimits> {
  onWarning?: WarningSink;
}

export const MAX_DOWNLOAD_ENV = 'SPP_EXTRACT_MAX_DOWNLOAD';
export const DOWNLOAD_TIMEOUT_ENV = 'SPP_EXTRACT_DOWNLOAD_TIMEOUT';
export const DEFAULT_MAX_DOWNLOAD_BYTES = 1024 ** 3;
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
export const DEFAULT_TOTAL_TIMEOUT_MS = 30 * 60_000;
export const DEFAULT_MAX_REDIRECTS = 5;
export const CACHE_WARNING_KEY = 'model-cache-unwritable';

export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME && env.XDG_CACHE_HOME.trim() !== '' ? env.XDG_CACHE_HOME : join(homedir(), '.cache');
  return join(base, 'spp-extract');
}

/** "1073741824", "512M", "2G", "1.5g" (binary units) → bytes. */
export function parseByteSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$/i.exec(text);
  const n = m ? Number(m[1]) * 1024 ** ' kmgt'.indexOf(m[2].toLowerCase() || ' ') : NaN;
  if (!Number.isFinite(n) || n < 1) throw new Error(`${MAX_DOWNLOAD_ENV}: expected a size like 2G, 512M or a byte count, got '${text}'`);
  return Math.floor(n);
}

export function downloadLimits(opts: Partial<DownloadLimits> = {}, env: NodeJS.ProcessEnv = process.env): DownloadLimits {
  let totalTimeoutMs = DEFAULT_TOTAL_TIMEOUT_MS;
  const t = env[DOWNLOAD_TIMEOUT_ENV];
  if (t !== undefined && t.trim() !== '') {
    const s = Number(t);
    if (!Number.isFinite(s) || s <= 0) throw new Error(`${DOWNLOAD_TIMEOUT_ENV}: expected seconds, got '${t}'`);
    totalTimeoutMs = s * 1000;
  }
  const cap = env[MAX_DOWNLOAD_ENV];
  return {
    maxBytes: opts.maxBytes ?? (cap !== undefined && cap.trim() !== '' ? parseByteSize(cap) : DEFAULT_MAX_DOWNLOAD_BYTES),
    idleTimeoutMs: opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    totalTimeoutMs: opts.totalTimeoutMs ?? totalTimeoutMs,
    maxRedirects: opts.maxRedirects ?? DEFAULT_MAX_REDIRECTS,
  };
}

function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${+(n / 1024 ** 3).toFixed(2)} GiB`;
  if (n >= 1024 ** 2) return `${+(n / 1024 ** 2).toFixed(2)} MiB`;
  if (n >= 1024) return `${+(n / 1024).toFixed(2)} KiB`;
  return `${n} bytes`;
}

async function isFile(p: string): Promise<boolean> {
  return stat(p).then((s) => s.isFile(), () => false);
}

/** A failed file-system call (EACCES, EROFS, ENOTDIR, ENOSPC …), as opposed to a bug or a bad model. */
export function isFsError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && typeof (err as NodeJS.ErrnoException).syscall === 'string';
}

/**
 * mkdir -p, one level at a time. Node's own recursive mkdir never returns on /proc (mkdir there
 * fails with ENOENT although the parent exists, and it retries forever); this walks each missing
 * component once and throws the first error.
 */
export async function ensureDir(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let p = resolve(dir); ; p = dirname(p)) {
    const st = await stat(p).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (st) {
      if (!st.isDirectory()) throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${p}'`), { code: 'ENOTDIR', syscall: 'mkdir', path: p });
      break;
    }
    missing.push(p);
    if (dirname(p) === p) break;
  }
  for (const p of missing.reverse()) {
    await mkdir(p).catch(async (err: NodeJS.ErrnoException) => {
      // Another process made it in between.
      if (err.code === 'EEXIST' && (await stat(p)).isDirectory()) return;
      throw err;
    });
  }
}

export function cacheUnwritableWarning(cacheDir: string, err: unknown): string {
  const reason = (err instanceof Error ? err.message : String(err)).split('\n')[0];
  return (
    `model cache ${cacheDir} is not writable (${reason}); this run uses a temporary copy of the model ` +
    `(downloaded/converted again on every run); set --cache-dir DIR or XDG_CACHE_HOME to a writable folder`
  );
}

const privateDirs: string[] = [];

/** A fresh folder under the OS temp dir, removed when the process exits. */
export async function privateTempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `spp-extract-${process.pid}-`));
  if (privateDirs.length === 0) {
    process.once('exit', () => {
      for (const d of privateDirs) rmSync(d, { recursive: true, force: true });
    });
  }
  privateDirs.push(dir);
  return dir;
}

/** Removes temp files/folders in `dir` that a killed process left behind (older than an hour). */
export async function sweepStale(dir: string, isTemp: (name: string) => boolean, maxAgeMs = 3_600_000): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    if (!isTemp(name)) continue;
    const p = join(dir, name);
    const st = await stat(p).catch(() => undefined);
    if (st && Date.now() - st.mtimeMs > maxAgeMs) await rm(p, { recursive: true, force: true }).catch(() => undefined);
  }
}

// ---- downloads ----

/** The server or the network failed: worth the offline hint. */
class NetworkError extends Error {}

interface ManifestGroup { paths: unknown; weights?: unknown[] }

/** Same rule as tfjs's http handler: weight paths are relative to model.json, query string kept. */
function weightUrl(modelUrl: string, path: string): string {
  const u = new URL(modelUrl);
  const base = new URL(path, `${u.origin}${u.pathname}`);
  base.search = u.search;
  return base.toString();
}

/**
 * A weight path from a downloaded model.json, checked before it names a file: relative, no '..'
 * (plain or percent-encoded), no backslashes or schemes, and inside `dir` once joined. The URL
 * parser treats %2e%2e and '\' as '..' and '/', so both the raw and the decoded form are checked.
 */
export function checkWeightPath(path: unknown, dir: string, modelUrl: string): string {
  const refuse = (why: string) => new Error(`refusing weight path ${JSON.stringify(path)} in ${modelUrl}: ${why}`);
  if (typeof path !== 'string' || path === '') throw refuse('not a file name');
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    throw refuse('malformed percent-encoding');
  }
  for (const p of [path, decoded]) {
    if (/[\x00-\x1f\x7f]/.test(p)) throw refuse('control characters');
    if (p.includes('\\')) throw refuse('backslash');
    if (p.startsWith('/') || isAbsolute(p) || /^[a-z][a-z0-9+.-]*:/i.test(p)) throw refuse('absolute path or URL');
    if (p.split('/').includes('..')) throw refuse("'..' segment");
    const target = resolve(dir, p);
    if (!target.startsWith(resolve(dir) + sep)) throw refuse(`resolves outside the model folder ${dir}`);
  }
  return path;
}

/** Shared by every request of one model download: the byte budget and the deadline. */
interface Budget { limits: DownloadLimits; used: number; deadline: number }

/** One request's abort controller, re-armed on every chunk: no data for idleTimeoutMs, or the deadline, aborts it. */
function idleTimer(budget: Budget) {
  const { limits } = budget;
  const controller = new AbortController();
  let timedOut: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    const left = budget.deadline - Date.now();
    const ms = Math.max(0, Math.min(limits.idleTimeoutMs, left));
    timer = setTimeout(() => {
      timedOut = ms < limits.idleTimeoutMs
        ? `download took longer than ${limits.totalTimeoutMs / 1000} s (${DOWNLOAD_TIMEOUT_ENV} raises it)`
        : `no data for ${limits.idleTimeoutMs / 1000} s`;
      controller.abort();
    }, ms);
  };
  arm();
  return { signal: controller.signal, arm, timedOut: () => timedOut, clear: () => clearTimeout(timer) };
}

type Timer = ReturnType<typeof idleTimer>;

/** Where a redirect response points (checked: a Location, within the hop limit, http(s) only). */
async function redirectTarget(res: Response, url: string, current: string, hop: number, limits: DownloadLimits): Promise<string> {
  await res.body?.cancel().catch(() => undefined);
  const location = res.headers.get('location');
  if (!location) throw new NetworkError(`HTTP ${res.status} without a Location header for ${current}`);
  if (hop >= limits.maxRedirects) throw new NetworkError(`more than ${limits.maxRedirects} redirects fetching ${url} (last: ${current})`);
  const next = new URL(location, current);
  if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new NetworkError(`redirect to a non-http(s) URL ${next} from ${current}`);
  return next.toString();
}

/** Feeds the body to `sink`, stopping at `tooBig`; returns the bytes received. */
async function readBody(res: Response, current: string, timer: Timer, tooBig: (n: number) => Error | undefined, sink: (chunk: Uint8Array) => Promise<void> | void): Promise<number> {
  let received = 0;
  const reader = res.body?.getReader();
  if (!reader) return received;
  try {
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (err) {
        const timedOut = timer.timedOut();
        throw new NetworkError(timedOut ? `${timedOut} from ${current}` : `${(err as Error).message} (${current})`);
      }
      if (chunk.done) return received;
      received += chunk.value.byteLength;
      const over = tooBig(received);
      if (over) throw over;
      timer.arm();
      await sink(chunk.value);
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

/**
 * GETs `url` with manual, bounded redirects, feeding the body to `sink` chunk by chunk. Stops at
 * the budget, at `maxBytes` for this file (the manifest's size), on no data for idleTimeoutMs,
 * or at the deadline.
 */
async function fetchStream(url: string, budget: Budget, sink: (chunk: Uint8Array) => Promise<void> | void, maxBytes?: number): Promise<number> {
  const { limits } = budget;
  let current = url;
  for (let hop = 0; ; hop++) {
    const timer = idleTimer(budget);
    try {
      let res: Response;
      try {
        res = await fetch(current, { redirect: 'manual', signal: timer.signal });
      } catch (err) {
        const timedOut = timer.timedOut();
        throw new NetworkError(timedOut ? `${timedOut} from ${current}` : `${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message} (${current})`);
      }
      if ([301, 302, 303, 307, 308].includes(res.status)) {
        current = await redirectTarget(res, url, current, hop, limits);
        continue;
      }
      if (!res.ok) {
        await res.body?.cancel().catch(() => undefined);
        throw new NetworkError(`HTTP ${res.status} ${res.statusText} for ${url}`);
      }
      const tooBig = (n: number) =>
        n + budget.used > limits.maxBytes
          ? new Error(`${url}: the model is larger than the ${formatBytes(limits.maxBytes)} download cap (${MAX_DOWNLOAD_ENV}=2G raises it)`)
          : maxBytes !== undefined && n > maxBytes
            ? new Error(`${url}: weight data larger than the manifest's ${maxBytes} bytes`)
            : undefined;
      const declared = Number(res.headers.get('content-length') ?? NaN);
      const early = Number.isFinite(declared) ? tooBig(declared) : undefined;
      if (early) {
        await res.body?.cancel().catch(() => undefined);
        throw early;
      }
      const received = await readBody(res, current, timer, tooBig, sink);
      budget.used += received;
      return received;
    } finally {
      timer.clear();
    }
  }
}

async function fetchJson(url: string, budget: Budget): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  await fetchStream(url, budget, (c) => void chunks.push(c));
  return Buffer.concat(chunks);
}

async function fetchToFile(url: string, path: string, budget: Budget, maxBytes?: number): Promise<number> {
  await ensureDir(dirname(path));
  const fh = await open(path, 'wx');
  try {
    return await fetchStream(url, budget, async (c) => void (await fh.write(c)), maxBytes);
  } finally {
    await fh.close();
  }
}

/**
 * Downloads model.json and its weight shards into `into` (a fresh folder): every weight path is
 * checked, each manifest group's shards must add up to the bytes its weight specs need, and the
 * whole model stays under the download cap. model.json is written last: its presence marks a
 * complete download.
 */
async function downloadInto(url: string, into: string, limits: DownloadLimits): Promise<void> {
  const budget: Budget = { limits, used: 0, deadline: Date.now() + limits.totalTimeoutMs };
  const modelJson = await fetchJson(url, budget);
  let manifest: ManifestGroup[];
  try {
    const parsed = JSON.parse(modelJson.toString('utf8')) as { weightsManifest?: unknown };
    manifest = (parsed.weightsManifest ?? []) as ManifestGroup[];
    if (!Array.isArray(manifest)) throw new Error('weightsManifest is not a list');
  } catch (err) {
    throw new Error(`${url}: not a TF.js model.json (${(err as Error).message})`);
  }
  // Every path is checked before anything is fetched, so a hostile manifest gets nothing written.
  const seen = new Set<string>();
  const groups = manifest.map((g, i) => {
    if (!g || !Array.isArray(g.paths)) throw new Error(`${url}: weightsManifest[${i}] has no paths list`);
    const paths = g.paths.map((p) => checkWeightPath(p, into, url));
    for (const p of paths) {
      if (seen.has(p)) throw new Error(`${url}: weight file '${p}' is listed twice`);
      seen.add(p);
    }
    return { paths, expected: expectedGroupBytes(g.weights) };
  });
  const declared = groups.reduce((n, g) => n + (g.expected ?? 0), 0);
  if (declared + modelJson.byteLength > limits.maxBytes) {
    throw new Error(`${url}: the model declares ${formatBytes(declared)} of weights, over the ${formatBytes(limits.maxBytes)} download cap (${MAX_DOWNLOAD_ENV}=2G raises it)`);
  }
  for (const g of groups) {
    let got = 0;
    for (const p of g.paths) {
      const wurl = weightUrl(url, p);
      got += await fetchToFile(wurl, join(into, p), budget, g.expected === undefined ? undefined : g.expected - got);
    }
    if (g.expected !== undefined && got !== g.expected) {
      const one = g.paths.length === 1;
      throw new Error(`${weightUrl(url, g.paths[g.paths.length - 1])}: weight file${one ? '' : 's'} '${g.paths.join("', '")}' ` +
        `hold${one ? 's' : ''} ${got} bytes, the manifest's weights need ${g.expected}`);
    }
  }
  await writeFile(join(into, 'SOURCE_URL'), `${url}\n`);
  await writeFile(join(into, 'model.json'), modelJson);
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
