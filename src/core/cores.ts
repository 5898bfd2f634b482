/**
 * How the run splits the machine's cores between ONNX Runtime and the sharp decoders, by default.
 * One rule, read by the backbone (--threads) and the run loop (--decode-ahead).
 *
 * Per image the CPU goes to decoding (~3.5–4 ms for a photo at the default size policy, on the
 * 2-core machines the benchmarks run on) and to the backbone (~2–7 ms at one thread for the
 * MobileNets), so neither side should get all but one core: half each, rounded in the backbone's
 * disfavour (on 2 cores: 1 ORT thread, the other core decoding, as measured best there).
 *
 * Decoding ahead: a deep queue absorbs the spread of decode times (a wide photo, a slow file) so the
 * decoders never idle while the backbone catches up: on 2 cores, 16 ahead ran tfhub v1 α0.25 ~6 %
 * faster than 4 (paired runs, 500 photos). Depth is 8 per decoding core, at least 16, but the pixels
 * held waiting stay under DECODE_AHEAD_BYTES for the largest image the size policy can produce; never
 * below 2 per decoding core, at least 4 (what a policy without a bound, e.g. --no-resize, gets).
 * On a larger machine, `npm run bench`'s stage table says which side dominates for a model: give it
 * more with --threads.
 */
import { availableParallelism } from 'node:os';

export interface CoreSplit {
  /** ONNX Runtime intra-op threads. */
  threads: number;
  /** Images decoded ahead of the backbone. */
  decodeAhead: number;
}

/** Decoded pixels the default decode-ahead may hold, for images of the largest size the policy allows. */
export const DECODE_AHEAD_BYTES = 64 * 2 ** 20;

/** `largestImageBytes`: the most bytes one decoded image can take (Infinity when the policy has no bound). */
export function coreSplit(cores: number = availableParallelism(), largestImageBytes = Infinity): CoreSplit {
  const threads = Math.max(1, Math.floor(cores / 2));
  const decoders = Math.max(1, cores - threads);
  const least = Math.max(4, 2 * decoders);
  const most = Math.max(16, 8 * decoders);
  const fits = Math.floor(DECODE_AHEAD_BYTES / largestImageBytes);
  return { threads, decodeAhead: Math.min(most, Math.max(least, fits)) };
}
