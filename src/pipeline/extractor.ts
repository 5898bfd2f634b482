import { decodeImage, validateDecodeOptions, type DecodeOptions } from '../decode/decode.js';
import { loadEngine, type EngineOptions } from '../backbone/load.js';
import type { Backbone, BackboneInfo } from '../backbone/tfjs/backbone.js';
import {
  descriptorLength, normalizeDescriptor, spatialPyramidPool, validateLevels,
  type NormalizeMode, type PoolMode,
} from '../spp/spp.js';

export interface SppOptions {
  /** Pyramid levels, n×n bins each; default [1, 2, 4]. The paper uses e.g. [6, 3, 2, 1]. */
  levels?: readonly number[];
  pool?: PoolMode;
  normalize?: NormalizeMode;
}

export interface ExtractorOptions extends EngineOptions, SppOptions {
  decode?: Partial<DecodeOptions>;
}

export const DEFAULT_LEVELS: readonly number[] = [1, 2, 4];
export const POOL_MODES: readonly PoolMode[] = ['max', 'avg'];
export const NORMALIZE_MODES: readonly NormalizeMode[] = ['none', 'l2', 'sqrt'];

export interface ResolvedSppOptions { levels: readonly number[]; pool: PoolMode; normalize: NormalizeMode }

export function validateSppOptions(o: SppOptions): ResolvedSppOptions {
  const levels = o.levels ?? DEFAULT_LEVELS;
  validateLevels(levels);
  const pool = o.pool ?? 'max';
  if (!POOL_MODES.includes(pool)) throw new Error(`--pool must be one of ${POOL_MODES.join(', ')}, got '${String(pool)}'`);
  const normalize = o.normalize ?? 'none';
  if (!NORMALIZE_MODES.includes(normalize)) {
    throw new Error(`--normalize must be one of ${NORMALIZE_MODES.join(', ')}, got '${String(normalize)}'`);
  }
  return { levels: [...levels], pool, normalize };
}

/** One image's result with the sizes a manifest records. */
export interface Extraction {
  descriptor: Float32Array;
  /** Size as the user sees the image (EXIF orientation applied). */
  originalWidth: number;
  originalHeight: number;
  /** Size fed to the backbone. */
  inputWidth: number;
  inputHeight: number;
  mapHeight: number;
  mapWidth: number;
}

export interface ExtractorInfo extends BackboneInfo, ResolvedSppOptions {
  readonly engine: 'onnx' | 'tfjs';
  /** Why `--engine auto` fell back to tfjs, when it did. */
  readonly engineFallback?: string;
  /** Things the user should hear about even without -v (e.g. a model cache that could not be used). */
  readonly warnings: readonly string[];
  readonly dim: number;
  readonly decode: DecodeOptions;
}

export interface Extractor {
  readonly info: ExtractorInfo;
  /** Descriptor of one image (path or encoded bytes). */
  extract(input: string | Buffer): Promise<Float32Array>;
  extractDetailed(input: string | Buffer, label?: string): Promise<Extraction>;
  /** Descriptor of already decoded 8-bit RGB pixels (HWC). */
  extractPixels(image: { data: Uint8Array; width: number; height: number }): Promise<Float32Array>;
  readonly backbone: Backbone;
  dispose(): Promise<void>;
}

export async function createExtractor(options: ExtractorOptions = {}): Promise<Extractor> {
  // Validate everything cheap before loading (or downloading) a model.
  const spp = validateSppOptions(options);
  const decode = validateDecodeOptions(options.decode ?? {});
  const { backbone, engine, fallbackReason, warnings = [] } = await loadEngine(options);
  const dim = descriptorLength(backbone.info.channels, spp.levels);
  const info: ExtractorInfo = {
    ...backbone.info, ...spp, engine, ...(fallbackReason ? { engineFallback: fallbackReason } : {}), warnings, dim, decode,
  };

  const describe = async (image: { data: Uint8Array; width: number; height: number }) => {
    const map = await backbone.featureMap(image);
    const descriptor = normalizeDescriptor(spatialPyramidPool(map, spp.levels, spp.pool), spp.normalize);
    return { descriptor, map };
  };

  const extractDetailed = async (input: string | Buffer, label?: string): Promise<Extraction> => {
    const img = await decodeImage(input, decode, label);
    const { descriptor, map } = await describe(img);
    return {
      descriptor,
      originalWidth: img.originalWidth,
      originalHeight: img.originalHeight,
      inputWidth: img.width,
      inputHeight: img.height,
      mapHeight: map.height,
      mapWidth: map.width,
    };
  };

  return {
    info,
    backbone,
    extractDetailed,
    extract: async (input) => (await extractDetailed(input)).descriptor,
    extractPixels: async (image) => (await describe(image)).descriptor,
    dispose: async () => {
      await backbone.dispose();
    },
  };
}
