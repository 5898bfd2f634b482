import { DecodeError, decodeImage, type DecodedImage } from './decode.js';
import type { Extractor } from './extractor.js';
import type { InputEntry } from './inputs.js';
import type { OutputWriter, RunSummary } from './output/records.js';

export interface RunProgress { done: number; total: number; rows: number; failures: number; elapsedMs: number }

export interface RunOptions {
  /** Images decoded ahead of the backbone (sharp runs on libuv's pool); bounds memory. */
  decodeAhead?: number;
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
 * failures reach the writer strictly in input order. Every input becomes a row or a failure.
 */
export async function runBatch(
  inputs: readonly InputEntry[],
  extractor: Extractor,
  writer: OutputWriter,
  opts: RunOptions = {},
): Promise<RunSummary> {
  const ahead = Math.max(1, opts.decodeAhead ?? 4);
  const started = Date.now();
  const pending = new Map<number, Promise<Decoded>>();
  let scheduled = 0;
  let rows = 0;
  let failures = 0;

  const fail = async (index: number, path: string, reason: string, message: string) => {
    failures++;
    opts.onFailure?.(path, reason, message);
    await writer.failure({ index, path, reason, error: message });
  };

  let done = 0;
  for (; done < inputs.length; done++) {
    if (opts.signal?.aborted) break;
    while (scheduled < inputs.length && scheduled < done + ahead) {
      pending.set(scheduled, safeDecode(extractor, inputs[scheduled].path));
      scheduled++;
    }
    const decoded = await pending.get(done)!;
    pending.delete(done);
    const { path } = inputs[done];
    if (!decoded.ok) {
      await fail(done, path, decoded.reason, decoded.message);
    } else {
      const { image } = decoded;
      let descriptor: Float32Array;
      try {
        descriptor = await extractor.extractPixels(image);
      } catch (err) {
        await fail(done, path, 'backbone', `${path}: backbone failed: ${(err as Error).message}`);
        continue;
      }
      await writer.row({ index: done, path, width: image.originalWidth, height: image.originalHeight, descriptor });
      rows++;
    }
    opts.onProgress?.({ done: done + 1, total: inputs.length, rows, failures, elapsedMs: Date.now() - started });
  }
  // Let decodes already started settle so nothing runs after we return.
  await Promise.allSettled(pending.values());
  return { rows, failures, complete: done === inputs.length };
}
