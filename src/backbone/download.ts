/**
 * Model downloads: every weight path confined to the model's folder, sizes checked against the
 * manifest, a byte cap, idle and total timeouts, a bounded number of redirects.
 */
import { open, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { checkWeightPath, expectedGroupBytes } from './artifacts.js';
import { ensureDir } from './cache-dir.js';

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

function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${+(n / 1024 ** 3).toFixed(2)} GiB`;
  if (n >= 1024 ** 2) return `${+(n / 1024 ** 2).toFixed(2)} MiB`;
  if (n >= 1024) return `${+(n / 1024).toFixed(2)} KiB`;
  return `${n} bytes`;
}


// ---- downloads ----

/** The server or the network failed: worth the offline hint. */
export class NetworkError extends Error {}

export interface ManifestGroup { paths: unknown; weights?: unknown[] }

/** Same rule as tfjs's http handler: weight paths are relative to model.json, query string kept. */
function weightUrl(modelUrl: string, path: string): string {
  const u = new URL(modelUrl);
  const base = new URL(path, `${u.origin}${u.pathname}`);
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
export async function downloadInto(url: string, into: string, limits: DownloadLimits): Promise<void> {
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
