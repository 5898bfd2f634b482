import { createHash } from 'node:crypto';
import { TarReadError } from '../inputs/tar.js';
import { DecodeError, decodeFile, decodeResolved, largestDecodedBytes, type DecodedImage, type DecodeOptions } from '../decode/decode.js';
import { coreSplit } from '../core/cores.js';
import { recordRef, type WorkItem } from '../inputs/shard.js';
import type { Extractor } from './extractor.js';
import type { BackboneHint } from '../backbone/contract.js';
import type { OutputWriter, RunSummary, SidecarJson } from '../output/records.js';
import { recordsOf } from '../inputs/boxes.js';
import { plannedBoxes, regionRecords, type RunRecord } from './regions.js';
import type { CellWindow } from '../spp/regions.js';
import { NON_FINITE, NonFiniteError } from './finite.js';

export interface RunProgress {
  /** Inputs finished by this run (rows and failures), of `total` this run has to do. */
  done: number;
  total: number;
  /** Of `done`, those that became rows: what img/s counts. */
  imagesDone: number;
  /** Whole-output counts, earlier runs of a resumed output included. */
  rows: number;
  failures: number;
  elapsedMs: number;
}

export type { WorkItem };

export interface RunOptions {
  /** Images decoded ahead of the backbone (sharp runs on libuv's pool); bounds memory. Default: defaultDecodeAhead. */
  decodeAhead?: number;
  /** Resume: items before this position are already written, with these counts. */
  startAt?: number;
  rowsBefore?: number;
  failuresBefore?: number;
  onFailure?: (path: string, reason: string, message: string) => void;
  /** Region runs: said once, when a box's window has fewer cells than the finest level has bins. */
  onWarning?: (message: string) => void;
  onProgress?: (p: RunProgress) => void;
  signal?: AbortSignal;
  /**
   * A row the output cannot hold as it is (--dtype float16 and values past its range): the problem,
   * and the row is recorded as a `non-finite` failure instead; undefined when it fits.
   */
  unrepresentable?: (descriptor: Float32Array) => string | undefined;
  /** Decodes started before the model was loaded (prefetchDecodes), for the items from `at` on. */
  prefetched?: { at: number; decoded: readonly Prefetched[] };
}

/** A failed decode of bytes already read (a tar member) carries its retry: the archive is read once. */
type Decoded = ({ ok: true; image: DecodedImage } | { ok: false; reason: string; message: string; retry?: () => Promise<Decoded> }) & Sidecar;
/** A tar member's sidecar (--keep-json): its object for the records, or why it has none (said once, as the item is written). */
type Sidecar = { json?: SidecarJson; warning?: string };
/** A decode in flight, started by prefetchDecodes. */
export type Prefetched = Promise<Decoded>;

/** The default --decode-ahead for this machine and size policy (core/cores.ts). */
export function defaultDecodeAhead(decode: DecodeOptions): number {
  return coreSplit(undefined, largestDecodedBytes(decode)).decodeAhead;
}

/** What the run decodes: a path, or an item (its bytes when its name is not UTF-8; the walk's failure, if any). */
type Input = string | Pick<WorkItem, 'path' | 'pathBytes' | 'failure' | 'member' | 'sample'>;

/**
 * Starts decoding `inputs` now, while the model loads (start-up leaves a core mostly idle); hand
 * them to runExtraction as `prefetched`. Give at most the run's decode-ahead, so memory stays what
 * the run itself holds.
 */
export function prefetchDecodes(inputs: readonly Input[], decode: DecodeOptions): Prefetched[] {
  return inputs.map((input) => decodeSafely(input, decode));
}

function safeDecode(extractor: Extractor, item: Input): Promise<Decoded> {
  return decodeSafely(item, extractor.info.decode);
}

async function decodeSafely(input: Input, decode: DecodeOptions): Promise<Decoded> {
  const { path, pathBytes, failure, member, sample } = typeof input === 'string' ? { path: input } as Exclude<Input, string> : input;
  // The walk could not read it: recorded as it said, never opened (a tar member's sidecar is still read: --keep-json).
  if (failure) {
    const sidecar = sample ? await sample.archive.readSidecar(sample, path).catch((err: Error): Sidecar => ({ warning: `${err.message}; its sidecar is not kept` })) : {};
    return { ok: false, reason: failure.reason, message: `${path}: ${failure.reason}: ${failure.error}`, ...sidecar };
  }
  if (member) {
    let bytes: Buffer;
    let sidecar: Sidecar;
    try {
      ({ bytes, ...sidecar } = await member.archive.readSample(member, path));
    } catch (err) {
      return err instanceof TarReadError
        ? { ok: false, reason: err.reason, message: `${path}: ${err.reason}: ${err.message}` }
        : failedWith(path, err);
    }
    // A member's row records the content identity of its bytes, as the same file's row does loose.
    // Its sidecar stays with it whether it decodes or not (which URL failed is worth knowing).
    const decodeBytes = (): Promise<Decoded> => decodeResolved(bytes, decode, path).then(
      (image) => ({ ok: true, image: { ...image, sha256: createHash('sha256').update(bytes).digest('hex') }, ...sidecar }),
      (err) => ({ ...failedWith(path, err), retry: undefined, ...sidecar }));
    const decoded = await decodeBytes();
    return decoded.ok ? decoded : { ...decoded, retry: decodeBytes };
  }
  try {
    return { ok: true, image: await decodeFile(pathBytes ?? path, decode, path) };
  } catch (err) {
    return failedWith(path, err);
  }
}

function failedWith(path: string, err: unknown): Extract<Decoded, { ok: false }> {
  if (err instanceof DecodeError) return { ok: false, reason: err.reason, message: err.message };
  return { ok: false, reason: 'error', message: `${path}: ${(err as Error).message ?? String(err)}` };
}

/**
 * Images left in the backbone while the oldest is pooled and written. engine-pool.ts runs up to two
 * at once; the third waits in a worker's queue, so the session that finishes first starts its next
 * image at once instead of waiting for this thread (keras v1 α0.75: ~4 % less wall than 2; 4 is no better).
 */
export const IN_BACKBONE = 3;

/** An item's records: one row, its box rows and failures (made as they are written), or one failure of the whole image. */
type Outcome = { item: WorkItem; records: Iterable<RunRecord> };

/** The image failed as a whole (decode, backbone): one record, which in a region run counts its boxes. */
function failed(item: WorkItem, reason: string, message: string, json?: SidecarJson): Outcome {
  const boxes = item.regions ? { boxes: recordsOf(item.regions) } : {};
  return { item, records: [{ kind: 'failure', rec: { ...recordRef(item), ...sidecarField(json), ...boxes, reason, error: message } }] };
}

const sidecarField = (json: SidecarJson | undefined) => (json ? { json } : {});

/** One pass of the backbone: the image's row, or (region runs) a record per box. */
async function describe(
  item: WorkItem, image: DecodedImage, extractor: Extractor, warnSmall: (m: string) => void, hint: BackboneHint, json?: SidecarJson,
): Promise<Outcome> {
  const { path } = item;
  const size = { width: image.originalWidth, height: image.originalHeight };
  if (!item.regions) {
    const descriptor = await extractor.extractPixels(image, hint);
    const identity = image.sha256 !== undefined ? { sha256: image.sha256 } : {};
    return { item, records: [{ kind: 'row', rec: { ...recordRef(item), ...sidecarField(json), ...size, ...identity, descriptor } }] };
  }
  const planned = plannedBoxes(item.regions, size.width, size.height);
  const describe = await extractor.regionDescriber(image, hint);
  const { levels, mapSize } = extractor.info;
  const finest = Math.max(...levels);
  const plan = item.regions;
  const onSmall = (box: number, w: CellWindow) => {
    const spans = `spans ${w.x1 - w.x0}×${w.y1 - w.y0} cells of the feature map, fewer than the finest level's ${finest}×${finest} bins, so its bins repeat cells`;
    if (plan.kind !== 'grid') {
      warnSmall(`${path}: box ${box} ${spans}; small objects want a larger --size or --no-resize (said once)`);
      return;
    }
    // A grid's tiles are the same in every image: say what gives them distinct bins, in numbers.
    const cells = Math.min(w.x1 - w.x0, w.y1 - w.y0);
    const fewer = levels.filter((n) => n <= cells);
    const stride = mapSize ? mapSize.input / Math.min(mapSize.height, mapSize.width) : undefined;
    const size = stride ? Math.ceil(finest * Math.max(plan.rows, plan.cols) * stride) : undefined;
    warnSmall(`--grid ${plan.rows}x${plan.cols}: a tile of ${path} ${spans}; every tile gets distinct bins with ` +
      `--levels ${(fewer.length > 0 ? fewer : [1]).join(',')}, or with ${size ? `--size ${size}` : 'a larger --size'} (said once)`);
  };
  return { item, records: regionRecords(item, image, planned, describe, finest, onSmall, json) };
}

/**
 * Runs every item through the extractor into the writer. Not batching: decodes up to
 * `decodeAhead` images in parallel (sharp, libuv's pool) while up to IN_BACKBONE images are in the
 * backbone; image i's row is written while the backbone works on the ones after it. Rows and
 * failures reach the writer strictly in input order. Every item becomes a row or a failure.
 */
export async function runExtraction(
  items: readonly WorkItem[],
  extractor: Extractor,
  writer: OutputWriter,
  opts: RunOptions = {},
): Promise<RunSummary> {
  const ahead = Math.max(1, opts.decodeAhead ?? defaultDecodeAhead(extractor.info.decode));
  const pending = new Map<number, Promise<Decoded>>();
  const first = opts.startAt ?? 0;
  let scheduled = first;
  const inFlight: Promise<Outcome>[] = [];
  const out = recordWriter(writer, opts, first, items.length);
  const writeNext = async () => out.write(await inFlight.shift()!);
  let warned = false;
  const warnSmall = (message: string) => {
    if (!warned) opts.onWarning?.(message);
    warned = true;
  };

  // Images decoded and waiting: with the decoders this far ahead, the run waits on the backbone
  // (the hint lets the engine run more sessions at once; see BackboneHint).
  let ready = 0;
  const waitedOnWhenReady = Math.max(1, ahead - 2);
  const track = (p: Promise<Decoded>) => p.finally(() => ready++);
  if (opts.prefetched?.at === first) {
    for (const decoded of opts.prefetched.decoded.slice(0, items.length - first)) pending.set(scheduled++, track(decoded));
  }
  for (let next = first; next < items.length; next++) {
    if (opts.signal?.aborted) break;
    while (scheduled < items.length && scheduled < next + ahead) {
      pending.set(scheduled, track(safeDecode(extractor, items[scheduled])));
      scheduled++;
    }
    let decoded = await pending.get(next)!;
    pending.delete(next);
    ready--;
    const item = items[next];
    if (!decoded.ok && !item.failure) {
      // libvips keeps one error buffer for all threads: with decodes in flight the message (even
      // "Unknown error") can belong to another file. Retry alone so the recorded reason is this file's.
      await Promise.allSettled(pending.values());
      decoded = await (decoded.retry?.() ?? safeDecode(extractor, item));
    }
    if (decoded.warning) opts.onWarning?.(decoded.warning);
    const { json } = decoded;
    if (decoded.ok) {
      inFlight.push(
        describe(item, decoded.image, extractor, warnSmall, { waitedOn: ready >= waitedOnWhenReady }, json)
          .catch((err: Error) => err instanceof NonFiniteError
            ? failed(item, NON_FINITE, `${item.path}: ${NON_FINITE}: ${err.message}`, json)
            // ORT's messages can end in a newline or span several lines: a failure is one line.
            : failed(item, 'backbone', `${item.path}: backbone failed: ${err.message.trim().replace(/\s*\n\s*/g, ' | ')}`, json)),
      );
    } else {
      inFlight.push(Promise.resolve(failed(item, decoded.reason, decoded.message, json)));
    }
    // Keep images in the backbone (IN_BACKBONE) while the oldest is pooled and written.
    while (inFlight.length > IN_BACKBONE) await writeNext();
  }
  while (inFlight.length > 0) await writeNext();
  // Let decodes already started settle so nothing runs after we return.
  await Promise.allSettled(pending.values());
  return out.summary();
}

/** Writes each item's records in order, counting rows, failures and images, and reports progress. */
function recordWriter(writer: OutputWriter, opts: RunOptions, first: number, total: number) {
  const started = Date.now();
  const rowsBefore = opts.rowsBefore ?? 0;
  let rows = rowsBefore;
  let failures = opts.failuresBefore ?? 0;
  let written = first;
  let imagesDone = 0;
  return {
    async write({ records }: Outcome): Promise<void> {
      let described = false;
      for (const r of records) {
        described ||= r.kind === 'row' || r.rec.region !== undefined;
        const problem = r.kind === 'row' ? opts.unrepresentable?.(r.rec.descriptor) : undefined;
        if (r.kind === 'row' && problem === undefined) {
          await writer.row(r.rec);
          rows++;
        } else if (r.kind === 'row') {
          const { descriptor: _d, width: _w, height: _h, ...ref } = r.rec;
          const rec = { ...ref, reason: NON_FINITE, error: `${ref.path}${ref.region ? `: box ${ref.region.boxIndex}` : ''}: ${NON_FINITE}: ${problem}` };
          failures++;
          opts.onFailure?.(rec.path, rec.reason, rec.error);
          await writer.failure(rec);
        } else {
          failures++;
          opts.onFailure?.(r.rec.path, r.rec.reason, r.rec.error);
          await writer.failure(r.rec);
        }
      }
      // An image counts as done (img/s) unless it failed as a whole.
      if (described) imagesDone++;
      written++;
      opts.onProgress?.({ done: written - first, total: total - first, imagesDone, rows, failures, elapsedMs: Date.now() - started });
    },
    summary: (): RunSummary => ({ rows, failures, complete: written === total }),
  };
}

/** @deprecated the old name of runExtraction (it never batched). */
export const runBatch = runExtraction;
