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
  /** TF Hub module URL, as @tensorflow-models/mobilenet names it. */
  readonly url: string;
  /**
   * model.json URLs, tried in order until one downloads: TF Hub (which now redirects to Kaggle,
   * then to a signed storage URL per file), then the bucket TF Hub served TF.js modules from.
   * Weight paths resolve against the URL listed here, never against where a redirect lands.
   */
  readonly sources: readonly string[];
  /** SHA-256 (hex) of files whose content is known, by name in the model folder: checked after download. */
  readonly sha256?: Readonly<Record<string, string>>;
  /** Bytes of model.json and its weights together, where known. */
  readonly bytes?: number;
  readonly inputRange: readonly [number, number];
  /** Global-pool node whose input is the last conv feature map. */
  readonly embeddingNode: string;
}

const V1_EMBEDDING = 'module_apply_default/MobilenetV1/Logits/global_pool';
const V2_EMBEDDING = 'module_apply_default/MobilenetV2/Logits/AvgPool';

function hub(version: 1 | 2, alpha: number, path: string, known?: Pick<RegistryEntry, 'sha256' | 'bytes'>): RegistryEntry {
  const url = `https://tfhub.dev/google/imagenet/${path}`;
  return {
    id: `mobilenet_v${version}_${alpha.toFixed(2)}`,
    version,
    alpha,
    url,
    sources: [`${url}/model.json?tfjs-format=file`, `https://storage.googleapis.com/tfhub-tfjs-modules/google/imagenet/${path}/model.json`],
    ...known,
    inputRange: [0, 1],
    embeddingNode: version === 1 ? V1_EMBEDDING : V2_EMBEDDING,
  };
}

export const MODEL_REGISTRY: readonly RegistryEntry[] = [
  // The files TF Hub served for this module, byte for byte (a copy lives in ../shared/models/tfhub-mobilenet_v1_025_224).
  hub(1, 0.25, 'mobilenet_v1_025_224/classification/1', {
    sha256: {
      'model.json': '6faec7d52c5f51801302fb8f9beaf31f4ac12edc89083f8231de6c20d814f522',
      'group1-shard1of1': '0bb67208cb5d6d9ce1ebbc8e27236622ebe9c37fe54bc51de43898a3ccde21c1',
    },
    bytes: 60_507 + 1_875_348,
  }),
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

/** The first source: TF Hub's model.json URL. */
export function modelJsonUrl(entry: RegistryEntry): string {
  return entry.sources[0];
}

/** A mirror's layout: `<base>/<id>/model.json`, the weight files beside it under their manifest names. */
export function mirrorModelJsonUrl(base: string, entry: RegistryEntry): string {
  return `${base.replace(/\/+$/, '')}/${entry.id}/model.json`;
}

export const familyOf = (entry: RegistryEntry) => `MobileNet v${entry.version}`;
