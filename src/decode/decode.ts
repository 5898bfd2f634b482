import { createHash } from 'node:crypto';
import { constants as fsConstants, existsSync, promises as fsp, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { Metadata, OutputInfo, SharpOptions } from 'sharp';
import type { DecodeOptions } from '../core/options.js';
import { resolveDecodeOptions } from '../core/resolve.js';
import { readJpegHeader } from './jpeg-header.js';
import { fileKind } from '../core/file-kind.js';
import { readUpTo } from '../core/read-fully.js';

// sharp's CommonJS build: its ES module build reaches the same code through Node's ESM-to-CJS
// translation and loads ~30 ms slower, all of it on the command's start-up path (node -e, 7 runs).
const sharp = createRequire(import.meta.url)('sharp') as typeof import('sharp').default;

// One-pass batch tool: every image is opened once, so libvips' operation cache never hits and
// only grows memory over a 100k-image run.
sharp.cache(false);

/** The decoder's versions, for an output's provenance: sharp and the libvips it was built with. */
export function decoderVersions(): { sharp: string; libvips: string } {
  return { sharp: sharp.versions.sharp ?? 'unknown', libvips: sharp.versions.vips };
}

export type { DecodeOptions } from '../core/options.js';

/** The table's defaults (src/core/options.ts). */
export const DEFAULT_DECODE_OPTIONS: DecodeOptions = (() => {
  const d = resolveDecodeOptions({});
  Object.freeze(d.background);
  return Object.freeze(d);
})();

export interface DecodedImage {
  /** Interleaved RGB, row-major, width*height*3 bytes, sRGB 8-bit. */
  data: Uint8Array;
  width: number;
  height: number;
  channels: 3;
  /** Size as the user sees it: after EXIF orientation, before resizing. */
  originalWidth: number;
  originalHeight: number;
  /** sharp's format name (jpeg, png, webp, gif, heif, tiff, svg, ...). */
  format: string;
  /** A file's content identity (SHA-256 hex of the bytes decoded): --update reuses a row while it is unchanged. */
  sha256?: string;
}

export type DecodeFailureReason =
  | 'missing'
  | 'unreadable'
  | 'empty'
  | 'unsupported-format'
  | 'corrupt'
  | 'truncated'
  | 'too-large';

/** A per-file failure: the run records it and goes on. `message` is one line: "<file>: <reason>: <detail>". */
export class DecodeError extends Error {
  readonly reason: DecodeFailureReason;
  readonly file: string;
  /** The underlying cause (sharp's text, de-duplicated, one line). */
  readonly detail: string;
  constructor(file: string, reason: DecodeFailureReason, detail: string) {
    super(`${oneLine(file)}: ${reason}: ${detail}`);
    this.name = 'DecodeError';
    this.file = file;
    this.reason = reason;
    this.detail = detail;
  }
}

/**
 * Working size, pure: the shorter side becomes `size` (rounded, at least 1 px) with the aspect kept,
 * then the longer side is capped at `maxSide`, again keeping the aspect and never going below 1 px.
 * Both steps compute from the original dimensions so rounding errors do not compound.
 */
export function workingSize(
  origW: number,
  origH: number,
  opts: Pick<DecodeOptions, 'size' | 'maxSide'>,
): { width: number; height: number } {
  if (!Number.isInteger(origW) || !Number.isInteger(origH) || origW < 1 || origH < 1) {
    throw new RangeError(`workingSize: dimensions must be positive integers, got ${origW}x${origH}`);
  }
  const { size, maxSide } = opts;
  let width = origW;
  let height = origH;
  if (size !== null) {
    if (origW <= origH) {
      width = size;
      height = Math.max(1, Math.round((origH * size) / origW));
    } else {
      height = size;
      width = Math.max(1, Math.round((origW * size) / origH));
    }
  }
  if (maxSide !== null && Math.max(width, height) > maxSide) {
    if (origW >= origH) {
      width = maxSide;
      height = Math.max(1, Math.round((origH * maxSide) / origW));
    } else {
      height = maxSide;
      width = Math.max(1, Math.round((origW * maxSide) / origH));
    }
  }
  return { width, height };
}

/**
 * The most bytes one decoded image can take under the size policy (RGB, 8-bit): the shorter side is
 * at most `size` and the longer at most `maxSide`. Infinity when the policy does not bound both
 * (--no-resize without --max-side, or no cap).
 */
export function largestDecodedBytes(opts: Pick<DecodeOptions, 'size' | 'maxSide'>): number {
  const { size, maxSide } = opts;
  if (maxSide === null) return Infinity;
  return Math.min(size ?? maxSide, maxSide) * maxSide * 3;
}

/**
 * Fills defaults and checks every option, once (decodeImage's public entry; the pipeline checks
 * once in createExtractor and then calls decodeResolved). Integer options also accept
 * decimal-digit strings; background accepts {r,g,b}, '#rgb', '#rrggbb', 'r,g,b', 'white', 'black'
 * or 'gray'. Errors name the property as the caller wrote it: "size must be a positive integer, got '0'"
 * (`prefix` 'decode.' inside createExtractor's options).
 */
export function validateDecodeOptions(o: Partial<DecodeOptions>, prefix = ''): DecodeOptions {
  return resolveDecodeOptions(o, prefix);
}

function oneLine(s: string): string {
  return s.replace(/\r/g, '\\r').replace(/\n/g, '\\n');
}

/** libvips joins its error stack with newlines and often repeats lines: keep each once, on one line. */
function cleanMessage(raw: string): string {
  const seen = new Set<string>();
  for (const line of raw.split(/\r?\n/)) {
    const t = line.trim();
    if (t) seen.add(t);
  }
  const msg = [...seen].join(' | ') || 'unknown error';
  return msg.length > 500 ? `${msg.slice(0, 497)}...` : msg;
}

/** Maps sharp/libvips error text to a failure class. Order matters: first match wins. */
function classify(msg: string): DecodeFailureReason {
  if (/exceeds pixel limit|exceed(s)? 32767x32767|allocation failed|out of memory/i.test(msg)) return 'too-large';
  if (/Input file is missing/i.test(msg)) return 'missing';
  if (
    /unsupported image format|is of an unsupported|exceeds channel limit|not been built in|support is not configured|compression method is not configured/i.test(
      msg,
    )
  ) {
    return 'unsupported-format';
  }
  // A file that ends before any image data is not a usable partial image: call it corrupt.
  if (/no frames|contains no image/i.test(msg)) return 'corrupt';
  if (/premature end|unexpected end|truncated|libpng read error|end of file|not enough data/i.test(msg)) {
    return 'truncated';
  }
  return 'corrupt';
}

function fail(file: string, reason: DecodeFailureReason, detail: string): never {
  throw new DecodeError(file, reason, oneLine(detail));
}

/** What sharp reads: the caller's bytes, or the bytes (or descriptor's /proc path) of the caller's `path`. */
interface Source {
  readonly input: string | Buffer;
  readonly file: string;
  readonly path?: string;
}

/**
 * sharp and libvips word an error on bytes differently from the same error on a file ("Input
 * buffer …", "gifload_buffer: …", "source: …"): for bytes read from the user's file, it is said as
 * it would be for that file; a large file's /proc/self/fd/N (largeInput) is named by its path.
 */
function asForFile(raw: string, path: string): string {
  return raw
    .replace(/\/proc\/self\/fd\/\d+/g, () => path)
    .replace(/^Input buffer /, 'Input file ')
    .replace(/\b([a-z0-9]+load)_buffer: /g, '$1: ')
    .replace(/^source: /gm, () => `${path}: `);
}

function failFromError(src: Source, err: unknown): never {
  const raw = err instanceof Error ? err.message : String(err);
  const msg = cleanMessage(src.path === undefined ? raw : asForFile(raw, src.path));
  fail(src.file, classify(msg), msg);
}

/**
 * Files up to this size are read into memory once and handed to sharp as bytes; larger ones (rare,
 * and where the saved open is noise beside the decode) are handed to libvips as the open
 * descriptor (largeInput), so decode-ahead never holds more than a few of these in memory.
 */
export const READ_WHOLE_MAX_BYTES = 8 * 2 ** 20;

// O_NONBLOCK: opening a FIFO without a writer returns at once (fstat then refuses it) instead of
// blocking a libuv thread forever; reads of a regular file ignore the flag.
const OPEN_FLAGS = fsConstants.O_RDONLY | (fsConstants.O_NONBLOCK ?? 0);

function failFs(label: string, err: unknown): never {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') fail(label, 'missing', 'no such file');
  const message = (err as Error).message;
  // Node's message already starts with the code ("EACCES: permission denied, open …").
  fail(label, 'unreadable', code === undefined || message.startsWith(code) ? message : `${code} ${message}`);
}

/** The file's size and modification time: what a change while it is read alters. */
const stamp = (st: Stats) => `${st.size}:${st.mtimeMs}`;

/** Fails unless the open file still has the size and mtime it had at open (a write in place meanwhile). */
async function checkUnchanged(fh: FileHandle, before: Stats, label: string): Promise<void> {
  let after: Stats;
  try {
    after = await fh.stat();
  } catch (err) {
    failFs(label, err);
  }
  if (stamp(after) !== stamp(before)) {
    fail(label, 'unreadable', `changed while being read (${before.size} bytes at open, ${after.size} now)`);
  }
}

/**
 * Exactly `size` bytes from the descriptor, from offset 0. A file that shrank since fstat gives a
 * short read and fails here; one that grew (or was rewritten) fails checkUnchanged after the read.
 */
async function readExactly(fh: FileHandle, size: number, label: string): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(size);
  let got: number;
  try {
    got = await readUpTo(fh, buf, size, 0);
  } catch (err) {
    failFs(label, err);
  }
  if (got !== size) fail(label, 'unreadable', `changed while being read (${size} bytes at open, ${got} read)`);
  return buf;
}

let procFd: boolean | undefined;

/**
 * A large file goes to libvips as /proc/self/fd/N of the descriptor we hold: opening that link
 * reopens the very inode we fstat'ed, never whatever the path names by now, and libvips streams it
 * (sequential read) without the whole file in memory. Reading it into memory instead would cost
 * its full size per image in flight (decode-ahead holds several, and a 1 GB TIFF is a valid
 * input). Without /proc (not Linux), undefined: the caller reads it into memory from the descriptor.
 */
function largeInput(fh: FileHandle): string | undefined {
  procFd ??= process.platform === 'linux' && existsSync('/proc/self/fd');
  return procFd ? `/proc/self/fd/${fh.fd}` : undefined;
}

/** An input opened once: what sharp reads (bytes, or the descriptor's /proc path) and the open file, closed by the caller. */
interface OpenedInput {
  readonly input: Buffer | string;
  readonly fh: FileHandle;
  readonly st: Stats;
}

/**
 * Opens `path` once (following symlinks: folder walks and users rely on them), non-blocking, and
 * checks what it is with fstat of that descriptor: missing / unreadable / not a regular file /
 * empty before sharp sees anything. Everything after reads that descriptor, never the path again,
 * so a path swapped meanwhile (rename, a symlink flipped to /dev/zero or a FIFO) cannot change
 * what is decoded. On failure the descriptor is already closed.
 */
async function openInput(path: string | Buffer, label: string): Promise<OpenedInput> {
  let fh: FileHandle;
  try {
    fh = await fsp.open(path, OPEN_FLAGS);
  } catch (err) {
    failFs(label, err);
  }
  try {
    let st: Stats;
    try {
      st = await fh.stat();
    } catch (err) {
      failFs(label, err);
    }
    if (st.isDirectory()) fail(label, 'unreadable', 'is a directory');
    if (!st.isFile()) fail(label, 'unreadable', `not a regular file (${fileKind(st)})`);
    if (st.size === 0) fail(label, 'empty', '0 bytes');
    const large = st.size > READ_WHOLE_MAX_BYTES ? largeInput(fh) : undefined;
    const input = large ?? (await readExactly(fh, st.size, label));
    if (large === undefined) await checkUnchanged(fh, st, label);
    return { input, fh, st };
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
}

/** Defensive: libvips should already give 3 bands after toColourspace('srgb') and flatten. */
function toRgb(data: Uint8Array, pixels: number, channels: number): Uint8Array | undefined {
  if (channels === 3) return data;
  if (channels < 1 || channels > 4) return undefined;
  const out = new Uint8Array(pixels * 3);
  for (let i = 0; i < pixels; i++) {
    const s = i * channels;
    const grey = channels <= 2;
    out[i * 3] = data[s]!;
    out[i * 3 + 1] = data[grey ? s : s + 1]!;
    out[i * 3 + 2] = data[grey ? s : s + 2]!;
  }
  return out;
}

/**
 * Decodes one image to 8-bit sRGB RGB at the working size. Never decodes pixels of an image whose
 * header says it is over maxInputPixels (libvips can abort the process on such images).
 * Throws DecodeError for anything wrong with the input; InvalidParameterError (before touching the
 * input) for invalid options.
 */
export async function decodeImage(
  input: string | Buffer,
  opts?: Partial<DecodeOptions>,
  label?: string,
): Promise<DecodedImage> {
  return decodeResolved(input, validateDecodeOptions(opts ?? {}), label);
}

/** decodeImage with options already checked (the pipeline: once per run, not once per image). */
export async function decodeResolved(input: string | Buffer, o: DecodeOptions, label?: string): Promise<DecodedImage> {
  if (typeof input === 'string') return decodeFile(input, o, label);
  const file = label ?? '<buffer>';
  if (input.length === 0) fail(file, 'empty', '0 bytes');
  return decodeSource({ input, file }, o);
}

/**
 * Decodes the file at `path` (a string, or a Buffer for a name that is not valid UTF-8), options
 * already checked. The file is opened once and only that descriptor is read (openInput); it is
 * closed when the decode ends, whatever the outcome. `label` names the file in errors (default:
 * the path).
 */
export async function decodeFile(path: string | Buffer, o: DecodeOptions, label?: string): Promise<DecodedImage> {
  const file = label ?? (typeof path === 'string' ? path : path.toString());
  const { input, fh, st } = await openInput(path, file);
  try {
    const image = await decodeSource({ input, file, path: typeof path === 'string' ? path : file }, o);
    // In memory: ~1.3 ms per MiB. A large file is read once more, from the same descriptor.
    const sha256 = typeof input === 'string' ? await hashOfOpenFile(fh, file) : createHash('sha256').update(input).digest('hex');
    // libvips (and the hash) read the descriptor's file itself: it must not have been written to meanwhile.
    if (typeof input === 'string') await checkUnchanged(fh, st, file);
    return { ...image, sha256 };
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/**
 * SHA-256 hex of an open file's bytes, read in pieces of at most 1 MiB from offset 0. `size` (from
 * fstat) sizes the buffer: a small file is then one read, a short read being its end.
 */
async function hashOfOpenFile(fh: FileHandle, label: string, size = HASH_PIECE): Promise<string> {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(Math.min(size + 1, HASH_PIECE));
  try {
    for (let at = 0; ;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, at);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      at += bytesRead;
      if (bytesRead < buf.length) break;
    }
  } catch (err) {
    failFs(label, err);
  }
  return hash.digest('hex');
}

const HASH_PIECE = 1 << 20;

/**
 * The content identity decodeFile records for `path` (same open, same checks), without decoding:
 * undefined when it cannot be read as a regular file now (the run then records why).
 */
export async function contentIdentity(path: string | Buffer): Promise<string | undefined> {
  let fh: FileHandle;
  try {
    fh = await fsp.open(path, OPEN_FLAGS);
  } catch {
    return undefined;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size === 0) return undefined;
    return await hashOfOpenFile(fh, typeof path === 'string' ? path : path.toString(), st.size);
  } catch {
    return undefined;
  } finally {
    await fh.close().catch(() => undefined);
  }
}

async function decodeSource(src: Source, o: DecodeOptions): Promise<DecodedImage> {
  const { file } = src;
  let header = await readHeader(src, o);
  let pixels = await decodeAt(src, o, header);
  // The JS header and libvips disagree (an orientation libvips reads otherwise): libvips decides.
  if (!pixels.ok && header.byJs) {
    header = await readHeader(src, o, true);
    pixels = await decodeAt(src, o, header);
  }
  if (!pixels.ok) fail(file, 'corrupt', pixels.problem);
  const { rgb, info } = pixels;
  const { meta, originalWidth, originalHeight } = header;
  return {
    data: rgb,
    width: info.width,
    height: info.height,
    channels: 3,
    originalWidth,
    originalHeight,
    format: meta.format,
  };
}

/** `byJs`: the dimensions came from jpeg-header.ts, not from libvips. */
type Header = { meta: Pick<Metadata, 'format' | 'density'>; originalWidth: number; originalHeight: number; byJs: boolean };

/**
 * Header only, no pixel limit, so a too-large image is reported with its dimensions. A JPEG in
 * memory is read in JS (jpeg-header.ts) unless `full`; anything it does not vouch for asks libvips.
 */
async function readHeader(src: Source, o: DecodeOptions, full = false): Promise<Header> {
  const fast = !full && typeof src.input !== 'string' ? readJpegHeader(src.input) : undefined;
  if (fast) {
    checkPixels(src.file, fast.width, fast.height, o);
    return { meta: { format: 'jpeg' }, ...asShown(fast.width, fast.height, fast.orientation), byJs: true };
  }
  const { file } = src;
  let meta: Metadata;
  try {
    meta = await sharp(src.input, { failOn: o.failOn, limitInputPixels: false }).metadata();
  } catch (err) {
    failFromError(src, err);
  }
  const w = meta.width;
  const h = meta.height;
  if (!(Number.isInteger(w) && Number.isInteger(h) && w > 0 && h > 0)) {
    fail(file, 'corrupt', `header gives no usable dimensions (${w}x${h})`);
  }
  checkPixels(file, w, h, o);
  const shown = asShown(w, h, meta.orientation ?? 1);
  return { meta, originalWidth: meta.autoOrient?.width ?? shown.originalWidth, originalHeight: meta.autoOrient?.height ?? shown.originalHeight, byJs: false };
}

/** The size as the user sees it: EXIF orientations 5-8 swap width and height. */
function asShown(w: number, h: number, orientation: number): { originalWidth: number; originalHeight: number } {
  return orientation >= 5 ? { originalWidth: h, originalHeight: w } : { originalWidth: w, originalHeight: h };
}

function checkPixels(file: string, w: number, h: number, o: DecodeOptions): void {
  if (w * h > o.maxInputPixels) {
    fail(file, 'too-large', `${w}x${h} = ${w * h} pixels exceeds the limit of ${o.maxInputPixels} (--max-input-pixels)`);
  }
}

/** Pixels at the header's working size, or what came back instead. */
async function decodeAt(src: Source, o: DecodeOptions, header: Header): Promise<{ ok: true; rgb: Uint8Array; info: OutputInfo } | { ok: false; problem: string }> {
  const { meta, originalWidth, originalHeight } = header;
  const target = workingSize(originalWidth, originalHeight, o);
  const { data, info } = await decodePixels(src, o, meta, { width: originalWidth, height: originalHeight }, target);
  const pixels = info.width * info.height;
  const rgb = data.length === pixels * info.channels ? toRgb(data, pixels, info.channels) : undefined;
  if (rgb && info.width === target.width && info.height === target.height) return { ok: true, rgb, info };
  return {
    ok: false,
    problem: `decoder returned ${info.width}x${info.height}x${info.channels} (${data.length} bytes), expected ${target.width}x${target.height}x3`,
  };
}

type Size = { width: number; height: number };

/**
 * Oriented, flattened, resized while streaming (never at full size in memory), 8-bit sRGB. sharp
 * already skips the flatten for an image without alpha, and shrinks a JPEG on load (in the DCT)
 * when the resize follows in the same pipeline and reduces by 3x or more; forcing it for smaller
 * reductions would change the pixels.
 */
async function decodePixels(
  src: Source, o: DecodeOptions, meta: Header['meta'], original: Size, target: Size,
): Promise<{ data: Buffer; info: OutputInfo }> {
  const loadOpts: SharpOptions = {
    failOn: o.failOn,
    limitInputPixels: o.maxInputPixels,
    autoOrient: true,
    sequentialRead: true,
    pages: 1, // animated / multi-page: first frame only
    page: 0,
  };
  if (meta.format === 'svg') {
    // Rasterise vectors near the target size instead of upscaling a small bitmap.
    const scale = Math.max(target.width / original.width, target.height / original.height);
    loadOpts.density = Math.min(100000, Math.max(1, (meta.density ?? 72) * scale));
  }
  try {
    return await sharp(src.input, loadOpts)
      .flatten({ background: o.background })
      .resize({ width: target.width, height: target.height, fit: 'fill', kernel: 'lanczos3' })
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (err) {
    failFromError(src, err);
  }
}
