/**
 * Inference worker: owns the process's ONNX Runtime session and runs it off the main thread.
 * onnxruntime-node's session.run blocks the thread that calls it, so on the main thread it would
 * stall sharp's decode callbacks, SPP and writing; here it overlaps with them.
 *
 * The worker is started before the model is known: it imports ONNX Runtime and sets up ORT's
 * environment while the main thread reads the model; `open` then creates the one session and
 * probes it, and `run` requests follow. A run waiting on the backbone adds workers (engine-pool.ts).
 */
import { parentPort } from 'node:worker_threads';
import { ModelOptionError } from '../errors.js';
import { createSession, makeFeatureMap, openSession, warmUp, type OpenedModel, type OpenRequest, type Runner } from './session.js';

export type WorkerRequest =
  | { type: 'preload'; path: string; threads: number }
  | { type: 'open'; id: number; source: string | Uint8Array; request: OpenRequest }
  | { type: 'run'; id: number; data: Uint8Array; width: number; height: number };
export type WorkerReply =
  | { id: number; ok: true; opened: OpenedModel }
  | { id: number; ok: true; data: Float32Array; height: number; width: number; channels: number }
  | { id: number; ok: false; message: string; option?: string };

const port = parentPort!;
// ORT's one-time set-up runs now, while the main thread resolves the model; a failure here is not
// fatal (the real session will report whatever is wrong).
const warm = warmUp().catch(() => undefined);
let runner: Runner | undefined;
let featureMap: ReturnType<typeof makeFeatureMap> | undefined;
/** A session being created from the file the main thread expects to open (a hint, never trusted as the model). */
let preloaded: { path: string; threads: number; session: ReturnType<typeof createSession> } | undefined;

/** Releases a preloaded session nobody took (once it exists). */
function releasePreloaded(): void {
  const p = preloaded;
  preloaded = undefined;
  void p?.session.then((s) => s.release(), () => undefined);
}

/** The preloaded session when `open` asks for that very file and thread count; any other is released. */
function takePreloaded(source: string | Uint8Array, threads: number): ReturnType<typeof createSession> | undefined {
  const p = preloaded;
  if (!p || p.path !== source || p.threads !== threads) return void releasePreloaded();
  preloaded = undefined;
  return p.session;
}

function fail(id: number, err: unknown): void {
  const option = err instanceof ModelOptionError ? err.option : undefined;
  port.postMessage({ id, ok: false, message: (err as Error).message, ...(option ? { option } : {}) } satisfies WorkerReply);
}

async function open(req: Extract<WorkerRequest, { type: 'open' }>): Promise<void> {
  await warm;
  await runner?.session.release().catch(() => undefined);
  runner = featureMap = undefined;
  const { runner: r, opened } = await openSession(req.source, req.request, takePreloaded(req.source, req.request.threads));
  runner = r;
  featureMap = makeFeatureMap(r);
  port.postMessage({ id: req.id, ok: true, opened } satisfies WorkerReply);
}

async function run(req: Extract<WorkerRequest, { type: 'run' }>): Promise<void> {
  if (!featureMap) throw new Error('inference worker: no model opened');
  const map = await featureMap(req);
  // Copy out of ORT's buffer so it can be transferred rather than cloned.
  const data = map.data.byteOffset === 0 && map.data.byteLength === map.data.buffer.byteLength ? map.data : map.data.slice();
  const reply: WorkerReply = { id: req.id, ok: true, data, height: map.height, width: map.width, channels: map.channels };
  port.postMessage(reply, [data.buffer as ArrayBuffer]);
}

async function handle(msg: WorkerRequest | 'close'): Promise<void> {
  if (msg === 'close') {
    // End by emptying the event loop, not process.exit: tearing the thread down while ORT
    // releases its session can abort the whole process.
    await warm;
    releasePreloaded();
    await runner?.session.release().catch(() => undefined);
    port.close();
    return;
  }
  if (msg.type === 'preload') {
    // Not awaited: the session is created while the main thread still reads the model.
    releasePreloaded();
    const session = warm.then(() => createSession(msg.path, msg.threads));
    session.catch(() => undefined);
    preloaded = { path: msg.path, threads: msg.threads, session };
    return;
  }
  try {
    await (msg.type === 'open' ? open(msg) : run(msg));
  } catch (err) {
    fail(msg.id, err);
  }
}

// One message at a time, in order: a close never overtakes an open still creating its session.
let queue = Promise.resolve();
port.on('message', (msg: WorkerRequest | 'close') => {
  queue = queue.then(() => handle(msg));
});
