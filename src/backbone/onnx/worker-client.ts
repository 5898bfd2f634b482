import { Worker } from 'node:worker_threads';
import type { FeatureMap } from '../../spp/spp.js';
import type { RgbPixels, WorkerConfig } from './session.js';
import type { WorkerReply, WorkerRequest } from './worker.js';

export interface InferenceWorker {
  featureMap(image: RgbPixels): Promise<FeatureMap>;
  /** Resolves once the worker has released its session and exited. */
  close(): Promise<void>;
}

/** Starts the inference worker and resolves once its session is loaded. */
export function startInferenceWorker(config: WorkerConfig): Promise<InferenceWorker> {
  const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: config });
  const waiting = new Map<number, { resolve: (m: FeatureMap) => void; reject: (e: Error) => void }>();
  let nextId = 0;
  let failure: Error | undefined;
  let closing = false;

  const failAll = (err: Error) => {
    failure = err;
    for (const w of waiting.values()) w.reject(err);
    waiting.clear();
  };
  worker.on('error', failAll);
  worker.on('exit', (code) => failAll(new Error(`inference worker exited (code ${code})`)));

  return new Promise((resolveStart, rejectStart) => {
    worker.once('error', rejectStart);
    worker.on('message', (msg: WorkerReply | 'ready') => {
      if (msg === 'ready') {
        // An idle worker must not keep the process alive; one with work in flight must.
        worker.unref();
        resolveStart({ featureMap, close });
        return;
      }
      const w = waiting.get(msg.id);
      waiting.delete(msg.id);
      // Closing holds the worker until it exits (a reply still in flight must not let go of it).
      if (waiting.size === 0 && !closing) worker.unref();
      if (!w) return;
      if (msg.ok) w.resolve({ data: msg.data, height: msg.height, width: msg.width, channels: msg.channels });
      else w.reject(new Error(msg.message));
    });
  });

  function close(): Promise<void> {
    if (failure) return Promise.resolve();
    // Held (ref) until it has exited, so the process never ends under a worker mid-teardown.
    closing = true;
    worker.ref();
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.postMessage('close');
    return exited;
  }

  function featureMap(image: RgbPixels): Promise<FeatureMap> {
    if (failure) return Promise.reject(failure);
    return new Promise((resolve, reject) => {
      const id = nextId++;
      waiting.set(id, { resolve, reject });
      worker.ref();
      // Copied, not transferred: the caller may still use its pixels (a copy is ~0.05 ms).
      const req: WorkerRequest = { id, data: image.data, width: image.width, height: image.height };
      worker.postMessage(req);
    });
  }
}
