/**
 * Data-parallel inference: more inference workers, each with its own session of the same thread
 * count, join once the run is found waiting on the backbone, and images go to the least busy one.
 * Every session runs as the first does, so the maps are the same bytes as a run on one worker. On
 * 2 cores a big backbone (keras v1 α0.75: 7 ms at one thread, 4.6 ms at two, for 18 % more CPU)
 * gains more from two one-thread sessions on two images than from one session on two threads,
 * whose threads wait on each other whenever a decoder takes their core.
 */
import type { BackboneHint, FeatureMap, RgbPixels } from '../contract.js';
import type { OpenedModel, OpenRequest } from './session.js';
import type { InferenceEngine } from './worker-client.js';

/** Images counted before deciding; the share of them that must have found the decoders ahead. */
export const GROW_AFTER = 32;
export const GROW_WHEN_WAITED = 0.75;

interface Member { engine: InferenceEngine; busy: number }

/**
 * `first` is the engine the load opens; `spawn` makes another (a new worker); at most `most` in all.
 * The decision is taken once, after GROW_AFTER images: a run that did not wait on the backbone
 * keeps one engine (decode-bound models lose a little to a second session's memory and start).
 */
export function growingEngine(first: InferenceEngine, spawn: () => InferenceEngine, most: number): InferenceEngine & { sessions(): Promise<number> } {
  const members: Member[] = [{ engine: first, busy: 0 }];
  let model: { source: string | Uint8Array; request: OpenRequest } | undefined;
  let runs = 0;
  let waited = 0;
  let decided = most <= 1;
  let growing: Promise<void> | undefined;

  const closeExtra = async () => {
    const extra = members.splice(1);
    await Promise.all(extra.map((m) => m.engine.close()));
  };

  /** Opens one more engine on the same model; one that fails to open is closed and not used. */
  const grow = async (count: number) => {
    const m = model!;
    await Promise.all(Array.from({ length: count }, async () => {
      const engine = spawn();
      try {
        await engine.open(m.source, m.request);
        if (model === m) members.push({ engine, busy: 0 });
        else await engine.close();
      } catch {
        await engine.close();
      }
    }));
  };

  const note = (hint: BackboneHint | undefined) => {
    if (decided) return;
    runs++;
    if (hint?.waitedOn) waited++;
    if (runs < GROW_AFTER) return;
    decided = true;
    if (waited >= GROW_WHEN_WAITED * runs) growing = grow(most - 1);
  };

  const leastBusy = () => members.reduce((a, b) => (b.busy < a.busy ? b : a));

  return {
    /** How many engines run, once a growth under way has settled. */
    sessions: async () => {
      await growing;
      return members.length;
    },
    open: async (source, request): Promise<OpenedModel> => {
      await growing;
      await closeExtra();
      model = undefined;
      runs = waited = 0;
      decided = most <= 1;
      const opened = await first.open(source, request);
      // The others skip the probe: the first's proves the file, and they open the very same.
      model = { source, request: { ...request, knownProbe: opened.probe } };
      return opened;
    },
    preload: (path, threads) => first.preload(path, threads),
    featureMap: async (image: RgbPixels, hint?: BackboneHint): Promise<FeatureMap> => {
      note(hint);
      const member = leastBusy();
      member.busy++;
      try {
        return await member.engine.featureMap(image, hint);
      } finally {
        member.busy--;
      }
    },
    close: async () => {
      model = undefined;
      await growing;
      await closeExtra();
      await first.close();
    },
  };
}
