/**
 * Inference worker: runs the ONNX Runtime session off the main thread. onnxruntime-node's
 * session.run blocks the thread that calls it, so on the main thread it would stall sharp's
 * decode callbacks, SPP and writing; here it overlaps with them.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { makeFeatureMap, sessionOptions, type WorkerConfig } from './session.js';

export interface WorkerRequest { id: number; data: Uint8Array; width: number; height: number }
export type WorkerReply =
  | { id: number; ok: true; data: Float32Array; height: number; width: number; channels: number }
  | { id: number; ok: false; message: string };

const config = workerData as WorkerConfig;
const session = await ort.InferenceSession.create(config.onnxPath, sessionOptions(config.threads));
const featureMap = makeFeatureMap({ ...config, session });

parentPort!.on('message', async (req: WorkerRequest | 'close') => {
  if (req === 'close') {
    // End by emptying the event loop, not process.exit: tearing the thread down while ORT
    // releases its session can abort the whole process.
    await session.release().catch(() => undefined);
    parentPort!.close();
    return;
  }
  try {
    const map = await featureMap(req);
    // Copy out of ORT's buffer so it can be transferred rather than cloned.
    const data = map.data.byteOffset === 0 && map.data.byteLength === map.data.buffer.byteLength ? map.data : map.data.slice();
    const reply: WorkerReply = { id: req.id, ok: true, data, height: map.height, width: map.width, channels: map.channels };
    parentPort!.postMessage(reply, [data.buffer as ArrayBuffer]);
  } catch (err) {
    parentPort!.postMessage({ id: req.id, ok: false, message: (err as Error).message } satisfies WorkerReply);
  }
});
parentPort!.postMessage('ready');
