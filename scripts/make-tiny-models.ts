/**
 * Writes two tiny TF.js models into fixtures/ so the test suite exercises real model loading,
 * input-shape patching and layer cutting on machines without ../shared:
 *  - fixtures/tiny-layers: Keras-style layers model (conv 3x3/2 relu → depthwise 3x3/2 relu → conv 1x1 relu
 *    → GAP → dense softmax), input pinned to [null,224,224,3] like the real exports.
 *  - fixtures/tiny-graph: converter-style graph model (Placeholder pinned to 224 → Conv2D/2 SAME → BiasAdd
 *    → Relu6 → Mean over H,W), like TF Hub's MobileNets.
 * Weights come from a fixed-seed PRNG, so reruns write identical bytes.
 * Run: npm run build && node dist/scripts/make-tiny-models.js
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mulberry32 } from './prng.js';

const rand = mulberry32(20261124);
const weights = (n: number, scale: number) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);

interface Tensor { name: string; shape: number[]; data: Float32Array | Int32Array }

const dtypeOf = (t: Tensor) => (t.data instanceof Int32Array ? 'int32' : 'float32');

async function save(dir: string, modelTopology: object, tensors: Tensor[], extra: object = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  const bytes = Buffer.concat(tensors.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)));
  const manifest = [{ paths: ['group1-shard1of1.bin'], weights: tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: dtypeOf(t) })) }];
  await writeFile(join(dir, 'group1-shard1of1.bin'), bytes);
  await writeFile(join(dir, 'model.json'), JSON.stringify({ ...extra, modelTopology, weightsManifest: manifest }, null, 1) + '\n');
}

function layersModel(): [object, Tensor[]] {
  const layer = (class_name: string, name: string, inbound: string | null, config: object) => ({
    class_name,
    name,
    config: { name, trainable: true, ...config },
    inbound_nodes: inbound ? [[[inbound, 0, 0, {}]]] : [],
  });
  const conv = { padding: 'same', data_format: 'channels_last', dilation_rate: [1, 1], use_bias: true,
    kernel_initializer: { class_name: 'Zeros', config: {} }, bias_initializer: { class_name: 'Zeros', config: {} } };
  const layers = [
    layer('InputLayer', 'input_1', null, { batch_input_shape: [null, 224, 224, 3], dtype: 'float32', sparse: false }),
    layer('Conv2D', 'conv1', 'input_1', { ...conv, filters: 4, kernel_size: [3, 3], strides: [2, 2], activation: 'relu' }),
    layer('DepthwiseConv2D', 'dw2', 'conv1', { ...conv, kernel_size: [3, 3], strides: [2, 2], depth_multiplier: 1, activation: 'relu',
      depthwise_initializer: { class_name: 'Zeros', config: {} } }),
    layer('Conv2D', 'pw3', 'dw2', { ...conv, filters: 6, kernel_size: [1, 1], strides: [1, 1], activation: 'relu' }),
    layer('GlobalAveragePooling2D', 'gap', 'pw3', { data_format: 'channels_last' }),
    layer('Dense', 'logits', 'gap', { units: 5, activation: 'softmax', use_bias: true,
      kernel_initializer: { class_name: 'Zeros', config: {} }, bias_initializer: { class_name: 'Zeros', config: {} } }),
  ];
  const topology = {
    class_name: 'Model',
    config: { name: 'tiny', layers, input_layers: [['input_1', 0, 0]], output_layers: [['logits', 0, 0]] },
    keras_version: '2.1.4',
    backend: 'tensorflow',
  };
  const tensors: Tensor[] = [
    { name: 'conv1/kernel', shape: [3, 3, 3, 4], data: weights(108, 0.5) },
    { name: 'conv1/bias', shape: [4], data: weights(4, 0.1) },
    { name: 'dw2/depthwise_kernel', shape: [3, 3, 4, 1], data: weights(36, 0.5) },
    { name: 'dw2/bias', shape: [4], data: weights(4, 0.1) },
    { name: 'pw3/kernel', shape: [1, 1, 4, 6], data: weights(24, 0.5) },
    { name: 'pw3/bias', shape: [6], data: weights(6, 0.1) },
    { name: 'logits/kernel', shape: [6, 5], data: weights(30, 0.5) },
    { name: 'logits/bias', shape: [5], data: weights(5, 0.1) },
  ];
  return [topology, tensors];
}

function graphModel(): [object, Tensor[]] {
  const f32 = { type: 'DT_FLOAT' };
  const ints = (xs: number[]) => ({ list: { i: xs.map(String) } });
  const constNode = (name: string, dims: number[], dtype = 'DT_FLOAT') => ({
    name, op: 'Const',
    attr: { dtype: { type: dtype }, value: { tensor: { dtype, tensorShape: { dim: dims.map((d) => ({ size: String(d) })) } } } },
  });
  const node = [
    { name: 'images', op: 'Placeholder', attr: { dtype: f32, shape: { shape: { dim: [-1, 224, 224, 3].map((d) => ({ size: String(d) })) } } } },
    constNode('tiny/conv/weights', [3, 3, 3, 8]),
    constNode('tiny/conv/biases', [8]),
    constNode('tiny/global_pool/reduction_indices', [2], 'DT_INT32'),
    { name: 'tiny/conv/Conv2D', op: 'Conv2D', input: ['images', 'tiny/conv/weights'],
      attr: { T: f32, strides: ints([1, 2, 2, 1]), padding: { s: Buffer.from('SAME').toString('base64') },
        data_format: { s: Buffer.from('NHWC').toString('base64') }, dilations: ints([1, 1, 1, 1]) } },
    { name: 'tiny/conv/BiasAdd', op: 'BiasAdd', input: ['tiny/conv/Conv2D', 'tiny/conv/biases'],
      attr: { T: f32, data_format: { s: Buffer.from('NHWC').toString('base64') } } },
    { name: 'tiny/conv/Relu6', op: 'Relu6', input: ['tiny/conv/BiasAdd'], attr: { T: f32 } },
    { name: 'tiny/global_pool', op: 'Mean', input: ['tiny/conv/Relu6', 'tiny/global_pool/reduction_indices'],
      attr: { T: f32, Tidx: { type: 'DT_INT32' }, keep_dims: { b: true } } },
  ];
  const tensors: Tensor[] = [
    { name: 'tiny/conv/weights', shape: [3, 3, 3, 8], data: weights(216, 0.5) },
    { name: 'tiny/conv/biases', shape: [8], data: weights(8, 0.2) },
    { name: 'tiny/global_pool/reduction_indices', shape: [2], data: new Int32Array([1, 2]) },
  ];
  return [{ node, library: {}, versions: {} }, tensors];
}

async function main(): Promise<void> {
  const root = process.argv[2] ?? 'fixtures';
  const [lt, lw] = layersModel();
  await save(join(root, 'tiny-layers'), lt, lw, { format: 'layers-model', generatedBy: 'spp-extract scripts/make-tiny-models.ts' });

  const [gt, gw] = graphModel();
  await save(join(root, 'tiny-graph'), gt, gw, { format: 'graph-model', generatedBy: 'spp-extract scripts/make-tiny-models.ts' });
}

await main();
