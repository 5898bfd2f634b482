/**
 * The cache of converted models: `<cache dir>/onnx/<key>.onnx`, each file sealed with a SHA-256 of
 * its content, written with a unique temp name and an atomic rename, and — when the cache cannot be
 * written — a private temp copy or the bytes in memory, with one warning.
 */
import { createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { LoadedArtifacts } from '../artifacts.js';
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

/** Unique temp name + rename: concurrent writers each install a whole file, readers never see a partial one. */
async function writeAtomic(path: string, bytes: Uint8Array): Promise<void> {
  await ensureDir(dirname(path));
  await sweepStale(dirname(path), (name) => /\.onnx\.tmp-\d+-[0-9a-f]{8}$/.test(name));
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
