import { DecodeError, decodeResolved, type DecodedImage, type DecodeOptions } from '../decode/decode.js';
import type { WorkItem } from '../inputs/shard.js';
import type { Extractor } from './extractor.js';
import type { OutputWriter, RunSummary } from '../output/records.js';

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
  /** Images decoded ahead of the backbone (sharp runs on libuv's pool); bounds memory. */
  decodeAhead?: number;
  /** Resume: items before this position are already written, with these counts. */
  startAt?: number;
  rowsBefore?: number;
  failuresBefore?: number;
  onFailure?: (path: string, reason: string, message: string) => void;
  onProgress?: (p: RunProgress) => void;
  signal?: AbortSignal;
  /** A decode started before the model was loaded (prefetchDecode), for the item at `at`. */
  prefetched?: { at: number; decoded: Prefetched };
}

type Decoded = { ok: true; image: DecodedImage } | { ok: false; reason: string; message: string };
/** A decode in flight, started by prefetchDecode. */
export type Prefetched = Promise<Decoded>;

/** Starts decoding one image now (e.g. while the model loads); hand it to runExtraction as `prefetched`. */
export function prefetchDecode(path: string, decode: DecodeOptions): Prefetched {
  return decodeSafely(path, decode);
}

function safeDecode(extractor: Extractor, path: string): Promise<Decoded> {
  return decodeSafely(path, extractor.info.decode);
}

async function decodeSafely(path: string, decode: DecodeOptions): Promise<Decoded> {
  try {
    return { ok: true, image: await decodeResolved(path, decode, path) };
  } catch (err) {
    if (err instanceof DecodeError) return { ok: false, reason: err.reason, message: err.message };
    return { ok: false, reason: 'error', message: `${path}: ${(err as Error).message ?? String(err)}` };
  }
}

type Outcome =
  | { ok: true; item: WorkItem; width: number; height: number; descriptor: Float32Array }
  | { ok: false; item: WorkItem; reason: string; message: string };

/**
 * Runs every item through the extractor into the writer. Not batching: decodes up to
 * `decodeAhead` images in parallel (sharp, libuv's pool) while the backbone runs one image at a
 * time; image i's row is written while the backbone works on image i+1. Rows and failures reach
 * the writer strictly in input order. Every item becomes a row or a failure.
 */
export async function runExtraction(
  items: readonly WorkItem[],
  extractor: Extractor,
  writer: OutputWriter,
  opts: RunOptions = {},
): Promise<RunSummary> {
  const ahead = Math.max(1, opts.decodeAhead ?? 4);
  const started = Date.now();
  const pending = new Map<number, Promise<Decoded>>();
  const first = opts.startAt ?? 0;
  let scheduled = first;
  const rowsBefore = opts.rowsBefore ?? 0;
  let rows = rowsBefore;
  let failures = opts.failuresBefore ?? 0;
  let written = first;
  const inFlight: Promise<Outcome>[] = [];
  if (opts.prefetched && opts.prefetched.at === first && first < items.length) {
    pending.set(first, opts.prefetched.decoded);
    scheduled = first + 1;
  }

  const writeNext = async () => {
    const outcome = await inFlight.shift()!;
    const { item } = outcome;
    if (outcome.ok) {
      await writer.row({ index: item.index, path: item.path, width: outcome.width, height: outcome.height, descriptor: outcome.descriptor });
      rows++;
    } else {
      failures++;
      opts.onFailure?.(item.path, outcome.reason, outcome.message);
      await writer.failure({ index: item.index, path: item.path, reason: outcome.reason, error: outcome.message });
    }
    written++;
    opts.onProgress?.({ done: written - first, total: items.length - first, imagesDone: rows - rowsBefore, rows, failures, elapsedMs: Date.now() - started });
  };

  for (let next = first; next < items.length; next++) {
    if (opts.signal?.aborted) break;
    while (scheduled < items.length && scheduled < next + ahead) {
      pending.set(scheduled, safeDecode(extractor, items[scheduled].path));
      scheduled++;
    }
    let decoded = await pending.get(next)!;
    pending.delete(next);
    const item = items[next];
    if (!decoded.ok) {
      // libvips keeps one error buffer for all threads: with decodes in flight the message (even
      // "Unknown error") can belong to another file. Retry alone so the recorded reason is this file's.
      await Promise.allSettled(pending.values());
      decoded = await safeDecode(extractor, item.path);
    }
    if (decoded.ok) {
      const { originalWidth: width, originalHeight: height } = decoded.image;
      inFlight.push(
        extractor.extractPixels(decoded.image).then(
          (descriptor): Outcome => ({ ok: true, item, width, height, descriptor }),
          (err: Error): Outcome => ({ ok: false, item, reason: 'backbone', message: `${item.path}: backbone failed: ${err.message}` }),
        ),
      );
    } else {
      inFlight.push(Promise.resolve({ ok: false, item, reason: decoded.reason, message: decoded.message }));
    }
    // Keep one image in the backbone while the one before it is pooled and written.
    while (inFlight.length > 1) await writeNext();
  }
  while (inFlight.length > 0) await writeNext();
  // Let decodes already started settle so nothing runs after we return.
  await Promise.allSettled(pending.values());
  return { rows, failures, complete: written === items.length };
}

/** @deprecated the old name of runExtraction (it never batched). */
export const runBatch = runExtraction;
