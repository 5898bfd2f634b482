/**
 * The same weights run the way a tfjs user would, in-process, for the throughput bench's ratios:
 * the `@tensorflow-models/mobilenet` peer (TF Hub v1 0.25) and keras MobileNet v1 0.75 through tfjs
 * directly, both on the wasm backend. Decoding is inside their timed loops, as it is in a user's.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface PeerResult { images: number; seconds: number; backend: string }

const WARMUP = 2; // untimed images before the timed loop (JIT, allocator, wasm memory)

/**
 * Reads a TF.js model.json and its shards as they are on disk (the peer's user on wasm has no
 * file:// handler: that needs tfjs-node). Unlike the tool's reader, nothing is patched: the
 * TF Hub graph keeps its fixed 224×224 placeholder, as the peer expects.
 */
async function originalArtifacts(modelDir: string) {
  const json = JSON.parse(await readFile(join(modelDir, 'model.json'), 'utf8'));
  const buffers: Buffer[] = [];
  const weightSpecs = [];
  for (const group of json.weightsManifest) {
    for (const p of group.paths) buffers.push(await readFile(join(modelDir, p)));
    weightSpecs.push(...group.weights);
  }
  const all = Buffer.concat(buffers);
  return {
    modelTopology: json.modelTopology, format: json.format, generatedBy: json.generatedBy, convertedBy: json.convertedBy,
    weightSpecs, weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) as ArrayBuffer,
  };
}

async function peerTf() {
  const tf = await import('@tensorflow/tfjs');
  await import('@tensorflow/tfjs-backend-wasm');
  if (!(await tf.setBackend('wasm'))) throw new Error('tfjs could not start the wasm backend');
  await tf.ready();
  const sharp = (await import('sharp')).default;
  return { tf, sharp };
}

/** Checks (untimed, on the first images) that `one` gives `dim` values, then times it over every path. */
async function timeLoop(paths: readonly string[], dim: number, one: (p: string) => Promise<number>, backend: string): Promise<PeerResult> {
  for (const p of paths.slice(0, WARMUP)) if ((await one(p)) !== dim) throw new Error(`the embedding is not ${dim}-d`);
  const t0 = performance.now();
  for (const p of paths) await one(p);
  return { images: paths.length, seconds: (performance.now() - t0) / 1000, backend };
}

/**
 * (d) The peer as its README shows it, with the exact TF Hub weights it loads for
 * {version: 1, alpha: 0.25}: per image sharp → raw RGB (full size) → int32 tensor → infer(img, true)
 * (the package normalises and resizes to 224×224 itself) → data(). The embedding: α0.25's 256-d pool.
 */
export async function peerTfhub(paths: readonly string[], modelDir: string): Promise<PeerResult> {
  const { tf, sharp } = await peerTf();
  const mobilenet = await import('@tensorflow-models/mobilenet');
  const net = await mobilenet.load({
    version: 1, alpha: 0.25, modelUrl: tf.io.fromMemory(await originalArtifacts(modelDir)), inputRange: [0, 1],
  });
  const one = async (p: string) => {
    const { data, info } = await sharp(p).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const img = tf.tensor3d(data, [info.height, info.width, 3], 'int32');
    const emb = net.infer(img, true);
    const n = (await emb.data()).length;
    img.dispose();
    emb.dispose();
    return n;
  };
  return timeLoop(paths, 256, one, `tfjs ${tf.getBackend()}`);
}

/**
 * (e) keras MobileNet v1 α0.75 "through tfjs directly", the peer for that model: loadLayersModel,
 * the model cut at conv_pw_13_relu, per image sharp → 224×224 raw RGB → [-1, 1] → predict →
 * global average → data().
 */
export async function peerKeras(paths: readonly string[], modelDir: string): Promise<PeerResult> {
  const { tf, sharp } = await peerTf();
  const full = await tf.loadLayersModel(tf.io.fromMemory(await originalArtifacts(modelDir)));
  const cut = tf.model({ inputs: full.inputs, outputs: full.getLayer('conv_pw_13_relu').output as import('@tensorflow/tfjs').SymbolicTensor });
  const one = async (p: string) => {
    const { data } = await sharp(p).removeAlpha().resize(224, 224, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
    const emb = tf.tidy(() => {
      const x = tf.tensor3d(data, [224, 224, 3], 'int32').toFloat().div(127.5).sub(1).expandDims(0);
      return (cut.predict(x) as import('@tensorflow/tfjs').Tensor).mean([1, 2]);
    });
    const n = (await emb.data()).length;
    emb.dispose();
    return n;
  };
  return timeLoop(paths, 768, one, `tfjs ${tf.getBackend()}`);
}
