import { DecodeError, decodeImage, type DecodedImage } from './decode.js';
import type { Extractor } from './extractor.js';
import type { OutputWriter, RunSummary } from './output/records.js';

export interface RunProgress { done: number; total: number; rows: number; failures: number; elapsedMs: number }

/** One input: its position in the full input list (the manifest's `index`) and its path. */
export interface WorkItem { index: number; path: string }

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
}

type Decoded = { ok: true; image: DecodedImage } | { ok: false; reason: string; message: string };

async function safeDecode(extractor: Extractor, path: string): Promise<Decoded> {
  try {
    return { ok: true, image: await decodeImage(path, extractor.info.decode, path) };
  } catch (err) {
    if (err instanceof DecodeError) return { ok: false, reason: err.reason, message: err.message };
    return { ok: false, reason: 'error', message: `${path}: ${(err as Error).message ?? String(err)}` };
  }
}

/**
 * Decodes up to `decodeAhead` images in parallel while the backbone runs one at a time; rows and
 * failures reach the writer strictly in input order. Every item becomes a row or a failure.
 */
export async function runBatch(
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
  let rows = opts.rowsBefore ?? 0;
  let failures = opts.failuresBefore ?? 0;

  const fail = async (item: WorkItem, reason: string, message: string) => {
    failures++;
    opts.onFailure?.(item.path, reason, message);
    await writer.failure({ index: item.index, path: item.path, reason, error: message });
  };

  let done = first;
  for (; done < items.length; done++) {
    if (opts.signal?.aborted) break;
    while (scheduled < items.length && scheduled < done + ahead) {
      pending.set(scheduled, safeDecode(extractor, items[scheduled].path));
      scheduled++;
    }
    let decoded = await pending.get(done)!;
    pending.delete(done);
    const item = items[done];
    if (!decoded.ok) {
      // libvips keeps one error buffer for all threads: with decodes in flight the message (even
      // "Unknown error") can belong to another file. Retry alone so the recorded reason is this file's.
      await Promise.allSettled(pending.values());
      decoded = await safeDecode(extractor, item.path);
    }
    if (!decoded.ok) {
      await fail(item, decoded.reason, decoded.message);
    } else {
      const { image } = decoded;
      let descriptor: Float32Array | undefined;
      try {
        descriptor = await extractor.extractPixels(image);
      } catch (err) {
        await fail(item, 'backbone', `${item.path}: backbone failed: ${(err as Error).message}`);
      }
      if (descriptor) {
        await writer.row({ index: item.index, path: item.path, width: image.originalWidth, height: image.originalHeight, descriptor });
        rows++;
      }
    }
    opts.onProgress?.({ done: done + 1 - first, total: items.length - first, rows, failures, elapsedMs: Date.now() - started });
  }
  // Let decodes already started settle so nothing runs after we return.
  await Promise.allSettled(pending.values());
  return { rows, failures, complete: done === items.length };
}
