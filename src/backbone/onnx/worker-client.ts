import { Worker } from 'node:worker_threads';
import { closeAtInterrupt } from '../../core/interrupt-cleanup.js';
import type { BackboneHint, FeatureMap, RgbPixels } from '../contract.js';
import { ModelOptionError } from '../errors.js';
import type { OpenedModel, OpenRequest } from './session.js';
import type { WorkerReply, WorkerRequest } from './worker.js';

/** Where inference runs: the worker thread, or (worker: false) this thread; both behave alike. */
export interface InferenceEngine {
  /** Creates the session from a file or the model's bytes and probes it; a second open replaces the first. */
  open(source: string | Uint8Array, request: OpenRequest): Promise<OpenedModel>;
  /** A hint: start creating a session from this file now; an `open` of the same file and threads takes it. */
  preload(path: string, threads: number): void;
  featureMap(image: RgbPixels, hint?: BackboneHint): Promise<FeatureMap>;
  /** Releases the session; for the worker, resolves once it has exited. */
  close(): Promise<void>;
}

type Pending = { resolve: (reply: WorkerReply & { ok: true }) => void; reject: (e: Error) => void };

/**
 * Starts the inference worker at once: it imports ONNX Runtime while the caller is still reading
 * the model, and `open` hands it the model when known. An idle worker does not keep the process
 * alive; one with a request in flight (or closing) does.
 */
export function spawnInferenceWorker(): InferenceEngine {
  // With $HOME unwritable (docker run --user), ORT's telemetry falls back to writing ':memory:.ses'
  // into the working directory. ORT reads this from the process environment when its first session
  // is created — in the worker, whose process.env is only a copy — so the main thread sets it, before
  // the worker starts. A user's value is kept.
  process.env.ORT_DISABLE_TELEMETRY ??= '1';
  const worker = new Worker(new URL('./worker.js', import.meta.url));
  worker.unref();
  const waiting = new Map<number, Pending>();
  let nextId = 0;
  let failure: Error | undefined;
  let closing = false;

  const failAll = (err: Error) => {
    failure ??= err;
    for (const w of waiting.values()) w.reject(err);
    waiting.clear();
  };
  worker.on('error', failAll);
  worker.on('exit', (code) => {
    failAll(new Error(`inference worker exited (code ${code})`));
    forgetAtInterrupt();
  });
  worker.on('message', (msg: WorkerReply) => {
    const w = waiting.get(msg.id);
    waiting.delete(msg.id);
    // Closing holds the worker until it exits (a reply still in flight must not let go of it).
    if (waiting.size === 0 && !closing) worker.unref();
    if (!w) return;
    if (msg.ok) w.resolve(msg);
    else w.reject(msg.option ? new ModelOptionError(msg.option, msg.message) : new Error(msg.message));
  });

  const request = (req: Exclude<WorkerRequest, { type: 'preload' }>) =>
    new Promise<WorkerReply & { ok: true }>((resolve, reject) => {
      if (failure) return reject(failure);
      waiting.set(req.id, { resolve, reject });
      worker.ref();
      worker.postMessage(req);
    });

  const close = () => {
    if (failure) return Promise.resolve();
    if (!closing) {
      closing = true;
      worker.ref();
      worker.postMessage('close');
    }
    return new Promise<void>((resolve) => (failure ? resolve() : worker.once('exit', () => resolve())));
  };
  // A signal: the worker finishes the ONNX Runtime call it is in and exits (process.exit would abort
  // inside it); what waits on it is refused, so the run goes no further.
  const forgetAtInterrupt = closeAtInterrupt(() => {
    const closed = close();
    failAll(new Error('stopped by a signal'));
    return closed;
  });

  return {
    open: async (source, req) => {
      const reply = await request({ type: 'open', id: nextId++, source, request: req });
      return (reply as { opened: OpenedModel }).opened;
    },
    preload: (path, threads) => {
      if (!failure && !closing) worker.postMessage({ type: 'preload', path, threads } satisfies WorkerRequest);
    },
    featureMap: async (image) => {
      // Copied, not transferred: the caller may still use its pixels (a copy is ~0.05 ms).
      const reply = await request({ type: 'run', id: nextId++, data: image.data, width: image.width, height: image.height });
      const { data, height, width, channels } = reply as Extract<WorkerReply, { data: Float32Array }>;
      return { data, height, width, channels };
    },
    close,
  };
}

let spare: InferenceEngine | undefined;

/** Starts an inference worker now, for the next load to take (see loadEngine's prestartEngine). */
export function prestartInferenceWorker(): void {
  spare ??= spawnInferenceWorker();
}

/** Closes a prestarted worker no load took (a load that failed before starting its engine). */
export async function discardPrestartedWorker(): Promise<void> {
  const worker = spare;
  spare = undefined;
  await worker?.close();
}

/** The prestarted worker when there is one, else a new one. */
export function takeInferenceWorker(): InferenceEngine {
  const worker = spare ?? spawnInferenceWorker();
  spare = undefined;
  return worker;
}
