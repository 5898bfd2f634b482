/**
 * How the run splits the machine's cores between ONNX Runtime and the sharp decoders, by default.
 * One rule, read by the backbone (--threads) and the run loop (--decode-ahead).
 *
 * Per image the CPU goes to decoding (~3.5–4 ms for a photo at the default size policy, on the
 * 2-core machines the benchmarks run on) and to the backbone (~2–7 ms at one thread for the
 * MobileNets), so neither side should get all but one core: half each, rounded in the backbone's
 * disfavour (on 2 cores: 1 ORT thread, the other core decoding, as measured best there). Decoding
 * ahead keeps two images per decoding core in flight, at least 4 (measured on 2 cores: 2 is ~4 %
 * slower than 4). On a larger machine, `npm run bench`'s stage table says which side dominates
 * for a model: give it more with --threads.
 */
import { availableParallelism } from 'node:os';

export interface CoreSplit {
  /** ONNX Runtime intra-op threads. */
  threads: number;
  /** Images decoded ahead of the backbone. */
  decodeAhead: number;
}

export function coreSplit(cores: number = availableParallelism()): CoreSplit {
  const threads = Math.max(1, Math.floor(cores / 2));
  const decoders = Math.max(1, cores - threads);
  return { threads, decodeAhead: Math.max(4, 2 * decoders) };
}
