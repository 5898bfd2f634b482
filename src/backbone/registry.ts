/**
 * The pretrained backbones `@tensorflow-models/mobilenet` serves, kept as data.
 * URLs and input ranges are the ones that package uses (its MODEL_INFO table); graph models from
 * TF Hub take images in [0, 1]. The feature map is the input of the embedding node (the global
 * average pool), i.e. the last conv feature map.
 */
export interface RegistryEntry {
  readonly id: string;
  readonly version: 1 | 2;
  readonly alpha: number;
  /** TF Hub module URL; the model.json lives at `${url}/model.json?tfjs-format=file`. */
  readonly url: string;
  readonly inputRange: readonly [number, number];
  /** Global-pool node whose input is the last conv feature map. */
  readonly embeddingNode: string;
}

const V1_EMBEDDING = 'module_apply_default/MobilenetV1/Logits/global_pool';
const V2_EMBEDDING = 'module_apply_default/MobilenetV2/Logits/AvgPool';

function hub(version: 1 | 2, alpha: number, path: string): RegistryEntry {
  return {
    id: `mobilenet_v${version}_${alpha.toFixed(2)}`,
    version,
    alpha,
    url: `https://tfhub.dev/google/imagenet/${path}`,
    inputRange: [0, 1],
    embeddingNode: version === 1 ? V1_EMBEDDING : V2_EMBEDDING,
  };
}

export const MODEL_REGISTRY: readonly RegistryEntry[] = [
  hub(1, 0.25, 'mobilenet_v1_025_224/classification/1'),
  hub(1, 0.5, 'mobilenet_v1_050_224/classification/1'),
  hub(1, 0.75, 'mobilenet_v1_075_224/classification/1'),
  hub(1, 1.0, 'mobilenet_v1_100_224/classification/1'),
  hub(2, 0.5, 'mobilenet_v2_050_224/classification/2'),
  hub(2, 0.75, 'mobilenet_v2_075_224/classification/2'),
  hub(2, 1.0, 'mobilenet_v2_100_224/classification/2'),
];

export const DEFAULT_MODEL_ID = 'mobilenet_v2_1.00';

/** Accepts `mobilenet_v2_1.00`, `mobilenet_v2_1.0`, `mobilenet_v2_1`, `v2_1.0`, `v1-0.25`. */
export function findRegistryEntry(spec: string): RegistryEntry | undefined {
  const m = /^(?:mobilenet[_-]?)?v([12])[_-]([0-9.]+)$/i.exec(spec.trim());
  if (!m) return undefined;
  const version = Number(m[1]);
  const alpha = Number(m[2]);
  return MODEL_REGISTRY.find((e) => e.version === version && e.alpha === alpha);
}

export function modelJsonUrl(entry: RegistryEntry): string {
  return `${entry.url}/model.json?tfjs-format=file`;
}
