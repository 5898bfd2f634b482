import { promises as fsp } from 'node:fs';
import sharp, { type Metadata, type OutputInfo, type SharpOptions } from 'sharp';

// One-pass batch tool: every image is opened once, so libvips' operation cache never hits and
// only grows memory over a 100k-image run.
sharp.cache(false);

export interface DecodeOptions {
  /** Shorter side is resized to this, aspect kept (default 224). null = native size (--no-resize). */
  size: number | null;
  /**
   * Cap on the longer side, applied after the size policy, also when size is null (default 4096).
   * Keeps extreme aspect ratios (1x20000 -> 224x4480000) and --no-resize on huge photos from
   * exploding memory; the shorter side shrinks with it but never below 1 px. null = no cap.
   */
  maxSide: number | null;
  /** Alpha is flattened onto this colour (default white 255,255,255, like a browser page). */
  background: { r: number; g: number; b: number };
  /**
   * sharp limitInputPixels (width x height as stored in the header). Default sharp's 268402689
   * (0x3FFF^2). Larger images fail with reason 'too-large' before any pixel is decoded.
   */
  maxInputPixels: number;
  /**
   * sharp failOn. Default 'error', not sharp's 'warning': 'warning' rejects JPEGs that decode
   * fine (e.g. "extraneous bytes before marker"), while 'error' still fails truncated files.
   * 'none' decodes truncated files as rows with grey filler.
   */
  failOn: 'none' | 'truncated' | 'error' | 'warning';
}

export const DEFAULT_DECODE_OPTIONS: DecodeOptions = Object.freeze({
  size: 224,
  maxSide: 4096,
  background: Object.freeze({ r: 255, g: 255, b: 255 }),
  maxInputPixels: 268402689,
  failOn: 'error',
}) as DecodeOptions;

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

const FAIL_ON = ['none', 'truncated', 'error', 'warning'] as const;

function show(v: unknown): string {
  if (typeof v === 'object' && v !== null) {
    try {
      return JSON.stringify(v);
    } catch {
      return String(v);
    }
  }
  return String(v);
}

/** Numbers, or strings of decimal digits (CLI parsers hand over strings). */
function toInt(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) ? v : undefined;
  if (typeof v === 'string' && /^\s*\d+\s*$/.test(v)) {
    const n = Number(v);
    return Number.isSafeInteger(n) ? n : undefined;
  }
  return undefined;
}

function parseBackground(v: unknown): { r: number; g: number; b: number } | undefined {
  let parts: unknown[] | undefined;
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    parts = [o.r, o.g, o.b];
  } else if (typeof v === 'string') {
    const s = v.trim().toLowerCase();
    if (s === 'white') return { r: 255, g: 255, b: 255 };
    if (s === 'black') return { r: 0, g: 0, b: 0 };
    let m = /^#?([0-9a-f])([0-9a-f])([0-9a-f])$/.exec(s);
    if (m) parts = m.slice(1).map((h) => parseInt(h + h, 16));
    else if ((m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/.exec(s))) parts = m.slice(1).map((h) => parseInt(h, 16));
    else if (/^\d+\s*,\s*\d+\s*,\s*\d+$/.test(s)) parts = s.split(',');
  }
  if (!parts) return undefined;
  const [r, g, b] = parts.map(toInt);
  const ok = (n: number | undefined): n is number => n !== undefined && n >= 0 && n <= 255;
  return ok(r) && ok(g) && ok(b) ? { r, g, b } : undefined;
}

/**
 * Fills defaults and checks every option. Integer options also accept decimal-digit strings;
 * background accepts {r,g,b}, '#rgb', '#rrggbb', 'r,g,b', 'white' or 'black'.
 * Throws an Error naming the CLI flag and the value, e.g. "--size must be a positive integer, got '0'".
 */
export function validateDecodeOptions(o: Partial<DecodeOptions>): DecodeOptions {
  const out: DecodeOptions = { ...DEFAULT_DECODE_OPTIONS, background: { ...DEFAULT_DECODE_OPTIONS.background } };
  const positive = (flag: string, v: unknown, nullable: boolean): number | null => {
    if (v === null && nullable) return null;
    const n = toInt(v);
    if (n === undefined || n < 1) throw new Error(`${flag} must be a positive integer, got '${show(v)}'`);
    return n;
  };
  if (o.size !== undefined) out.size = positive('--size', o.size, true);
  if (o.maxSide !== undefined) out.maxSide = positive('--max-side', o.maxSide, true);
  if (o.maxInputPixels !== undefined) out.maxInputPixels = positive('--max-input-pixels', o.maxInputPixels, false)!;
  if (o.background !== undefined) {
    const bg = parseBackground(o.background);
    if (!bg) {
      throw new Error(
        `--background must be r,g,b with integers 0-255 (or #rrggbb), got '${show(o.background)}'`,
      );
    }
    out.background = bg;
  }
  if (o.failOn !== undefined) {
    if (!(FAIL_ON as readonly unknown[]).includes(o.failOn)) {
      throw new Error(`--fail-on must be one of ${FAIL_ON.join(', ')}, got '${show(o.failOn)}'`);
    }
    out.failOn = o.failOn;
  }
  return out;
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

function failFromError(file: string, err: unknown): never {
  const msg = cleanMessage(err instanceof Error ? err.message : String(err));
  fail(file, classify(msg), msg);
}

/** missing / unreadable / empty, checked with the file system before sharp sees the path. */
async function checkFile(path: string, label: string): Promise<void> {
  let st;
  try {
    st = await fsp.stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') fail(label, 'missing', 'no such file');
    fail(label, 'unreadable', `${code ?? ''} ${(err as Error).message}`.trim());
  }
  if (st.isDirectory()) fail(label, 'unreadable', 'is a directory');
  // FIFOs, sockets, devices: opening one could block forever.
  if (!st.isFile()) fail(label, 'unreadable', 'not a regular file');
  try {
    const fh = await fsp.open(path, 'r');
    await fh.close();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    fail(label, 'unreadable', `${code ?? ''} ${(err as Error).message}`.trim());
  }
  if (st.size === 0) fail(label, 'empty', '0 bytes');
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
 * Throws DecodeError for anything wrong with the input; plain Error only for invalid options.
 */
export async function decodeImage(
  input: string | Buffer,
  opts?: Partial<DecodeOptions>,
  label?: string,
): Promise<DecodedImage> {
  const o = validateDecodeOptions(opts ?? {});
  const file = label ?? (typeof input === 'string' ? input : '<buffer>');

  if (typeof input === 'string') await checkFile(input, file);
  else if (input.length === 0) fail(file, 'empty', '0 bytes');

  // Header only. No pixel limit here so a too-large image is reported with its dimensions.
  let meta: Metadata;
  try {
    meta = await sharp(input, { failOn: o.failOn, limitInputPixels: false }).metadata();
  } catch (err) {
    failFromError(file, err);
  }
  const w = meta.width;
  const h = meta.height;
  if (!(Number.isInteger(w) && Number.isInteger(h) && w > 0 && h > 0)) {
    fail(file, 'corrupt', `header gives no usable dimensions (${w}x${h})`);
  }
  if (w * h > o.maxInputPixels) {
    fail(file, 'too-large', `${w}x${h} = ${w * h} pixels exceeds the limit of ${o.maxInputPixels} (--max-input-pixels)`);
  }
  // Orientations 5-8 swap width and height.
  const swap = (meta.orientation ?? 1) >= 5;
  const originalWidth = meta.autoOrient?.width ?? (swap ? h : w);
  const originalHeight = meta.autoOrient?.height ?? (swap ? w : h);
  const target = workingSize(originalWidth, originalHeight, o);

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
    const scale = Math.max(target.width / originalWidth, target.height / originalHeight);
    loadOpts.density = Math.min(100000, Math.max(1, (meta.density ?? 72) * scale));
  }

  let data: Buffer;
  let info: OutputInfo;
  try {
    ({ data, info } = await sharp(input, loadOpts)
      .flatten({ background: o.background })
      .resize({ width: target.width, height: target.height, fit: 'fill', kernel: 'lanczos3' })
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true }));
  } catch (err) {
    failFromError(file, err);
  }
  const pixels = info.width * info.height;
  const rgb = data.length === pixels * info.channels ? toRgb(data, pixels, info.channels) : undefined;
  if (!rgb || info.width !== target.width || info.height !== target.height) {
    fail(
      file,
      'corrupt',
      `decoder returned ${info.width}x${info.height}x${info.channels} (${data.length} bytes), expected ${target.width}x${target.height}x3`,
    );
  }
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
