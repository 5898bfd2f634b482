/**
 * Model downloads: every weight path confined to the model's folder, sizes checked against the
 * manifest, pinned SHA-256 checked, a byte cap, idle and total timeouts, a bounded number of
 * redirects. Each file is requested at its own URL (resolved against the model.json URL given,
 * not where a redirect landed) and follows its own redirects: TF Hub sends each file through
 * Kaggle to a storage URL signed for that file alone.
 */
import { createHash, type Hash } from 'node:crypto';
import { mkdir, open, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openRegularForRead } from '../core/read-regular.js';
import { checkWeightPath, expectedGroupBytes } from './artifacts.js';
import { ensureDir, isFsError } from './cache-dir.js';

export interface DownloadLimits {
  /** Bytes one model may download, model.json and weights together. */
  maxBytes: number;
  /** Abort a request that sends nothing (connect, headers or body) for this long. */
  idleTimeoutMs: number;
  /** Abort a model's whole download after this long. */
  totalTimeoutMs: number;
  maxRedirects: number;
}


export const MAX_DOWNLOAD_ENV = 'SPP_EXTRACT_MAX_DOWNLOAD';
export const DOWNLOAD_TIMEOUT_ENV = 'SPP_EXTRACT_DOWNLOAD_TIMEOUT';
export const DEFAULT_MAX_DOWNLOAD_BYTES = 1024 ** 3;
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
export const DEFAULT_TOTAL_TIMEOUT_MS = 30 * 60_000;
export const DEFAULT_MAX_REDIRECTS = 5;

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

export function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${+(n / 1024 ** 3).toFixed(2)} GiB`;
  if (n >= 1024 ** 2) return `${+(n / 1024 ** 2).toFixed(2)} MiB`;
  if (n >= 1024) return `${+(n / 1024).toFixed(2)} KiB`;
  return `${n} bytes`;
}


// ---- downloads ----

/** The server or the network failed: worth the offline hint. */
export class NetworkError extends Error {}

/** A file's content is not the one the registry pins. */
export class IntegrityError extends Error {}

/** Every source of a model failed; `network` when one of them for want of a connection or a server's answer. */
export class SourcesFailedError extends Error {
  constructor(readonly failures: readonly { url: string; error: Error }[]) {
    // Most messages name their URL already.
    super(failures.map((f) => (f.error.message.includes(f.url) ? f.error.message : `${f.url}: ${f.error.message}`)).join('; '));
  }
  get network(): boolean {
    return this.failures.some((f) => f.error instanceof NetworkError);
  }
}

/**
 * A URL a redirect led to, for messages: its query string (a storage signature, a token) is never
 * shown, only that there was one.
 */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}${u.search ? '?…' : ''}`;
  } catch {
    return '(unparsable URL)';
  }
}

/** The URL asked for as given; a hop a server sent it to, without its query. */
const hopText = (url: string, current: string) => (current === url ? url : redactedUrl(current));

export interface ManifestGroup { paths: unknown; weights?: unknown[] }

/** Same rule as tfjs's http handler: weight paths are relative to model.json, query string kept. */
function weightUrl(modelUrl: string, path: string): string {
  const u = new URL(modelUrl);
  const bare = new URL(u);
  bare.search = '';
  bare.hash = '';
  const base = new URL(path, bare);
  base.search = u.search;
  return base.toString();
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
  if (!location) throw new NetworkError(`HTTP ${res.status} without a Location header for ${hopText(url, current)}`);
  if (hop >= limits.maxRedirects) throw new NetworkError(`more than ${limits.maxRedirects} redirects fetching ${url} (last: ${hopText(url, current)})`);
  const next = new URL(location, current);
  if (next.protocol !== 'http:' && next.protocol !== 'https:') {
    throw new NetworkError(`redirect to a non-http(s) URL ${redactedUrl(next.toString())} from ${hopText(url, current)}`);
  }
  return next.toString();
}

/** Feeds the body to `sink`, stopping at `tooBig`; returns the bytes received. */
async function readBody(res: Response, shown: string, timer: Timer, tooBig: (n: number) => Error | undefined, sink: (chunk: Uint8Array) => Promise<void> | void): Promise<number> {
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
        throw new NetworkError(timedOut ? `${timedOut} from ${shown}` : `${(err as Error).message} (${shown})`);
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

/** The error that ends a read at `n` bytes: the model's cap, or this file's size in the manifest. */
function sizeGuard(url: string, budget: Budget, maxBytes: number | undefined) {
  const { limits } = budget;
  return (n: number) =>
    n + budget.used > limits.maxBytes
      ? new Error(`${url}: the model is larger than the ${formatBytes(limits.maxBytes)} download cap (${MAX_DOWNLOAD_ENV}=2G raises it)`)
      : maxBytes !== undefined && n > maxBytes
        ? new Error(`${url}: weight data larger than the manifest's ${maxBytes} bytes`)
        : undefined;
}

/** Why a server refused a hop it was redirected to, when a signed link is the likely cause; never the link itself. */
function refusedHop(status: number, current: string, hops: number): string {
  if (hops === 0) return '';
  const host = new URL(current).host;
  const signed = (status === 403 || status === 401) && new URL(current).search !== ''
    ? '; the signed link it was sent to was refused: expired, or issued for another file'
    : '';
  return ` (answered by ${host} after ${hops} redirect${hops === 1 ? '' : 's'}${signed})`;
}

/** A mirror on a file system (file: URL): read with the same size checks as a download. */
async function readLocal(url: string, budget: Budget, sink: (chunk: Uint8Array) => Promise<void> | void, maxBytes?: number): Promise<number> {
  const tooBig = sizeGuard(url, budget, maxBytes);
  let received = 0;
  let writing = false;
  const path = fileURLToPath(url);
  try {
    // A FIFO or a device in the mirror would block the read (and the exit) or never end: refused.
    const { fh } = await openRegularForRead(path).catch((err: Error) => {
      throw isFsError(err) ? err : new NetworkError(`cannot read ${path}: ${err.message.replace(`${path} `, 'it ')}`);
    });
    for await (const chunk of fh.createReadStream() as AsyncIterable<Buffer>) {
      received += chunk.byteLength;
      const over = tooBig(received);
      if (over) throw over;
      writing = true;
      await sink(chunk);
      writing = false;
    }
  } catch (err) {
    // A missing or unreadable mirror file is the source's failure; a failed write is the cache's.
    if (isFsError(err) && !writing) throw new NetworkError(`${err.code}: cannot read ${path}`);
    throw err;
  }
  budget.used += received;
  return received;
}

/**
 * GETs `url` with manual, bounded redirects, feeding the body to `sink` chunk by chunk. Stops at
 * the budget, at `maxBytes` for this file (the manifest's size), on no data for idleTimeoutMs,
 * or at the deadline.
 */
async function fetchStream(url: string, budget: Budget, sink: (chunk: Uint8Array) => Promise<void> | void, maxBytes?: number): Promise<number> {
  if (url.startsWith('file:')) return readLocal(url, budget, sink, maxBytes);
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
        const shown = hopText(url, current);
        throw new NetworkError(timedOut ? `${timedOut} from ${shown}` : `${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message} (${shown})`);
      }
      if ([301, 302, 303, 307, 308].includes(res.status)) {
        current = await redirectTarget(res, url, current, hop, limits);
        continue;
      }
      if (!res.ok) {
        await res.body?.cancel().catch(() => undefined);
        throw new NetworkError(`HTTP ${res.status} ${res.statusText} for ${url}${refusedHop(res.status, current, hop)}`);
      }
      const tooBig = sizeGuard(url, budget, maxBytes);
      const declared = Number(res.headers.get('content-length') ?? NaN);
      const early = Number.isFinite(declared) ? tooBig(declared) : undefined;
      if (early) {
        await res.body?.cancel().catch(() => undefined);
        throw early;
      }
      const received = await readBody(res, hopText(url, current), timer, tooBig, sink);
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

async function fetchToFile(url: string, path: string, budget: Budget, hash: Hash, maxBytes?: number): Promise<number> {
  await ensureDir(dirname(path));
  const fh = await open(path, 'wx');
  try {
    return await fetchStream(url, budget, async (c) => {
      hash.update(c);
      await fh.write(c);
    }, maxBytes);
  } finally {
    await fh.close();
  }
}

/** SHA-256 (hex) of each file by its name in the model folder. */
export type Pins = Readonly<Record<string, string>>;

function checkPin(pins: Pins | undefined, name: string, url: string, actual: string): void {
  const expected = pins?.[name];
  if (expected !== undefined && expected.toLowerCase() !== actual) {
    throw new IntegrityError(`${redactedUrl(url)}: '${name}' has SHA-256 ${actual}, the registry pins ${expected} (a changed or damaged file; nothing was cached)`);
  }
}

/**
 * Downloads model.json and its weight shards into `into` (a fresh folder): every weight path is
 * checked, each manifest group's shards must add up to the bytes its weight specs need, files
 * named in `pins` must have that SHA-256, and the whole model stays under the download cap.
 * model.json is written last: its presence marks a complete download.
 */
export async function downloadInto(url: string, into: string, limits: DownloadLimits, pins?: Pins): Promise<void> {
  const budget: Budget = { limits, used: 0, deadline: Date.now() + limits.totalTimeoutMs };
  const modelJson = await fetchJson(url, budget);
  // Checked before any weight is asked for: a changed model.json names other weights.
  checkPin(pins, 'model.json', url, createHash('sha256').update(modelJson).digest('hex'));
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
      const hash = createHash('sha256');
      got += await fetchToFile(wurl, join(into, p), budget, hash, g.expected === undefined ? undefined : g.expected - got);
      checkPin(pins, p, wurl, hash.digest('hex'));
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

/**
 * downloadInto from the first of `urls` that works, `into` emptied between tries. A file-system
 * failure (the cache's) ends it at once; anything else moves on to the next source. One source:
 * its own error; several: a SourcesFailedError naming each. Returns the URL used.
 */
export async function downloadFirst(urls: readonly string[], into: string, limits: DownloadLimits, pins?: Pins): Promise<string> {
  const failures: { url: string; error: Error }[] = [];
  for (const url of urls) {
    try {
      await downloadInto(url, into, limits, pins);
      return url;
    } catch (err) {
      if (isFsError(err) || urls.length === 1) throw err;
      failures.push({ url, error: err as Error });
      await rm(into, { recursive: true, force: true });
      await mkdir(into);
    }
  }
  throw new SourcesFailedError(failures);
}
