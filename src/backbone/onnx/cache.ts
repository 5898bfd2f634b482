/**
 * The cache of converted models: `<cache dir>/onnx/<key>.onnx`, each file sealed with a SHA-256 of
 * its content, written with a unique temp name and an atomic rename, and — when the cache cannot be
 * written — a private temp copy or the bytes in memory, with one warning.
 */
import { createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { LoadedArtifacts } from '../artifacts.js';
import { versionOf } from '../digest.js';
import type { ProbeResult } from '../contract.js';
import { CACHE_WARNING_KEY, cacheUnwritableWarning, ensureDir, isFsError, privateTempDir, sweepStale, type WarningSink } from '../source.js';
import { CONVERTER_VERSION } from './convert/common.js';

/**
 * Cache key: the exact model bytes (model.json as on disk, then the weight shards in manifest
 * order), the cut and the converter's version. Any change to the model gives another file.
 */
export async function onnxCacheKey(modelJsonPath: string, loaded: LoadedArtifacts, layer: string): Promise<string> {
  const hash = createHash('sha256');
  hash.update(await readFile(modelJsonPath));
  const wd = loaded.artifacts.weightData;
  for (const part of wd === undefined ? [] : Array.isArray(wd) ? wd : [wd]) hash.update(new Uint8Array(part));
  hash.update(`\0layer=${layer}\0converter=${CONVERTER_VERSION}`);
  return hash.digest('hex');
}

/**
 * A key to the cache key that reads no weights: the identity of the model's files (device, inode,
 * size, mtime and ctime in nanoseconds, as git's index uses; ctime cannot be set back by a user),
 * the cut and the converter's version. Undefined when a file cannot be stat'ed (the full read then
 * reports it). Any rewrite of a file changes its ctime, so a stale entry is never found again.
 */
export async function fileIdentityKey(files: readonly string[], layer: string): Promise<string | undefined> {
  const stats = await Promise.all(files.map((f) => stat(f, { bigint: true }).catch(() => undefined)));
  const hash = createHash('sha256');
  for (const [i, st] of stats.entries()) {
    if (!st?.isFile()) return undefined;
    hash.update(`${files[i]}\0${versionOf(st)}\0`);
  }
  hash.update(`\0layer=${layer}\0converter=${CONVERTER_VERSION}`);
  return hash.digest('hex');
}

/** What a load records about a converted model, found again by the files' identity. */
export interface IndexEntry {
  /** The content key: the .onnx is `<key>.onnx`. */
  key: string;
  /** The model's content identity (LoadedArtifacts.sha256), which outputs record. */
  model: string;
  /** The load's probe (the map's size and channels at the probe's input), so a later load can skip it. */
  probe: ProbeResult;
}

const KEY_SHAPE = /^[0-9a-f]{64}$/;
const indexPath = (cacheDir: string, identity: string) => join(cacheDir, 'onnx', 'by-file', identity);
const PROBE_FIELDS = ['inputHeight', 'inputWidth', 'height', 'width', 'channels'] as const;

/** The entry recorded for these exact files, if any; anything malformed counts as none. */
export async function readIndexEntry(cacheDir: string, identity: string): Promise<IndexEntry | undefined> {
  try {
    const entry = JSON.parse(await readFile(indexPath(cacheDir, identity), 'utf8')) as IndexEntry;
    const probe = entry.probe;
    if (typeof entry.key !== 'string' || !KEY_SHAPE.test(entry.key)) return undefined;
    // Entries from before outputs recorded the model's identity lack it: read the weights once more.
    if (typeof entry.model !== 'string' || !KEY_SHAPE.test(entry.model)) return undefined;
    if (!PROBE_FIELDS.every((f) => Number.isSafeInteger(probe?.[f]) && probe[f] > 0)) return undefined;
    return { key: entry.key, model: entry.model, probe: Object.fromEntries(PROBE_FIELDS.map((f) => [f, probe[f]])) as unknown as ProbeResult };
  } catch {
    return undefined;
  }
}

/** Records the entry for these files; best effort (an unwritable cache only costs the next run a hash and a probe). */
export async function writeIndexEntry(cacheDir: string, identity: string, entry: IndexEntry): Promise<void> {
  await writeAtomic(indexPath(cacheDir, identity), Buffer.from(JSON.stringify(entry))).catch(() => undefined);
}

const guessPath = (cacheDir: string, identity: string) => join(cacheDir, 'onnx', 'by-model-json', identity);

/** Where the cache keeps the .onnx of a cache key. */
export const cachedOnnxPath = (cacheDir: string, key: string) => join(cacheDir, 'onnx', `${key}.onnx`);

/**
 * A guess made before model.json is even parsed: the cache key of the .onnx the last load of this model.json (same
 * file identity, same --layer) opened, for the worker to start creating its session early. Only a
 * hint: the load still finds the model by all its files and opens what that says.
 */
export async function readGuess(cacheDir: string, modelJsonPath: string, layerOption: string | undefined): Promise<string | undefined> {
  const identity = await fileIdentityKey([modelJsonPath], `guess:${layerOption ?? ''}`);
  if (!identity) return undefined;
  const key = await readFile(guessPath(cacheDir, identity), 'latin1').catch(() => undefined);
  return key !== undefined && KEY_SHAPE.test(key) ? key : undefined;
}

/** Records the guess; best effort. */
export async function writeGuess(cacheDir: string, modelJsonPath: string, layerOption: string | undefined, key: string): Promise<void> {
  const identity = await fileIdentityKey([modelJsonPath], `guess:${layerOption ?? ''}`);
  if (identity) await writeAtomic(guessPath(cacheDir, identity), Buffer.from(key, 'latin1')).catch(() => undefined);
}

/** Unique temp name + rename: concurrent writers each install a whole file, readers never see a partial one. */
async function writeAtomic(path: string, bytes: Uint8Array): Promise<void> {
  await ensureDir(dirname(path));
  await sweepStale(dirname(path), (name) => /\.tmp-\d+-[0-9a-f]{8}$/.test(name));
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(tmp, bytes, { flag: 'wx' });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/*
 * Cached .onnx files carry their own checksum, so a file torn by a killed process (or damaged on
 * disk) is detected instead of loaded: the SHA-256 of the model bytes is appended as one more
 * ModelProto.metadata_props entry (field 14), which ONNX Runtime reads as ordinary metadata.
 */
const SEAL_KEY = 'spp_extract_sha256';
const SEAL_HEAD = Buffer.from([0x72, 2 + SEAL_KEY.length + 2 + 64, 0x0a, SEAL_KEY.length, ...Buffer.from(SEAL_KEY), 0x12, 64]);
const SEAL_LENGTH = SEAL_HEAD.length + 64;

export function sealOnnx(model: Uint8Array): Uint8Array {
  const digest = createHash('sha256').update(model).digest('hex');
  return Buffer.concat([model, SEAL_HEAD, Buffer.from(digest, 'latin1')]);
}

/** True when `bytes` end with a seal whose checksum matches everything before it. */
export function isSealedOnnx(bytes: Uint8Array): boolean {
  if (bytes.byteLength <= SEAL_LENGTH) return false;
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const at = buf.byteLength - SEAL_LENGTH;
  if (!buf.subarray(at, at + SEAL_HEAD.length).equals(SEAL_HEAD)) return false;
  const digest = createHash('sha256').update(buf.subarray(0, at)).digest('hex');
  return buf.subarray(at + SEAL_HEAD.length).toString('latin1') === digest;
}

/** The cached model's bytes, or undefined when missing, torn or corrupt (then it is rebuilt). */
export async function readCached(path: string): Promise<Uint8Array | undefined> {
  const bytes = await readFile(path).catch(() => undefined);
  return bytes && isSealedOnnx(bytes) ? bytes : undefined;
}

export interface StoredOnnx {
  bytes: Uint8Array;
  /** The file a session loads; undefined when the model exists only in memory. */
  path?: string;
  cacheHit: boolean;
  cacheFallback?: { reason: string; to: 'temp' | 'memory' };
  /** Removes a temporary copy (no-op for the cache). */
  cleanup: () => void;
}

export interface CacheOptions {
  onWarning?: WarningSink;
  /** false: inference stays on this thread, which can run from memory without a temp file. */
  worker?: boolean;
}

/** The cache could not take the file: a private temp file (for the worker to load), else memory. */
async function fallbackStore(bytes: Uint8Array, err: NodeJS.ErrnoException, cacheDir: string, opts: CacheOptions): Promise<StoredOnnx> {
  opts.onWarning?.(cacheUnwritableWarning(cacheDir, err), CACHE_WARNING_KEY);
  const reason = err.message.split('\n')[0];
  if (opts.worker === false) return { bytes, cacheHit: false, cacheFallback: { reason, to: 'memory' }, cleanup: () => undefined };
  let dir: string | undefined;
  try {
    dir = await privateTempDir();
    const path = join(dir, 'model.onnx');
    await writeFile(path, bytes);
    const remove = () => rmSync(dir!, { recursive: true, force: true });
    return { bytes, path, cacheHit: false, cacheFallback: { reason, to: 'temp' }, cleanup: remove };
  } catch {
    if (dir) rmSync(dir, { recursive: true, force: true });
    return { bytes, cacheHit: false, cacheFallback: { reason, to: 'memory' }, cleanup: () => undefined };
  }
}

/**
 * The converted model, from the cache when a sealed copy is there, else converted and stored with
 * an atomic rename. When the cache cannot be written (EACCES, EROFS, ENOTDIR, /proc, a full disk)
 * the model goes to a private temp file (or stays in memory) and one warning says how to fix it.
 */
export async function cachedOnnx(onnxPath: string, convert: () => Promise<Uint8Array>, cacheDir: string, opts: CacheOptions): Promise<StoredOnnx> {
  const cached = await readCached(onnxPath);
  if (cached) return { bytes: cached, path: onnxPath, cacheHit: true, cleanup: () => undefined };
  const bytes = sealOnnx(await convert());
  try {
    await writeAtomic(onnxPath, bytes);
    return { bytes, path: onnxPath, cacheHit: false, cleanup: () => undefined };
  } catch (err) {
    if (!isFsError(err)) throw err;
    return fallbackStore(bytes, err, cacheDir, opts);
  }
}
