import { readFile } from 'node:fs/promises';
import { UsageError, invalidParameterError } from '../core/invalid.js';
import type { DescriptorIdentity, Projection } from '../pca/file.js';
import type { Projector } from '../pca/projector.js';
import { projectRowSync } from '../pca/transform.js';
import { decodeResolved, type DecodeOptions } from '../decode/decode.js';
import { loadEngine, type EngineOptions } from '../backbone/load.js';
import type { Backbone, BackboneHint, BackboneInfo, RgbPixels } from '../backbone/contract.js';
import { DEFAULT_LEVELS, NORMALIZE_MODES, POOL_MODES, findOption, optionName, type NameStyle, type NormalizeMode, type PoolMode } from '../core/options.js';
import { resolveExtractorOptions, type ResolvedExtractorOptions, type ResolvedSppOptions } from '../core/resolve.js';
import { descriptorLength, normalizeDescriptor, pyramidPool } from '../spp/spp.js';
import { regionDescriber, type Box, type RegionResult } from '../spp/regions.js';
import type { DecodedImage } from '../decode/decode.js';
import { NON_FINITE, NonFiniteError, checkFinite, nonFiniteDetail } from './finite.js';

/** @deprecated import them from the package root; kept for code that imported them from here. */
export { DEFAULT_LEVELS, NORMALIZE_MODES, POOL_MODES };

export interface SppOptions {
  /** Pyramid levels, n×n bins each; default [1, 2, 4]. The paper uses e.g. [6, 3, 2, 1]. */
  levels?: readonly number[];
  pool?: PoolMode;
  /** Exponent of pool 'gem' (default 3). */
  gemP?: number;
  normalize?: NormalizeMode;
}

export interface ExtractorOptions extends EngineOptions, SppOptions {
  decode?: Partial<DecodeOptions>;
  /**
   * A projection (fit-pca's .npz path, or readProjection()'s result): every descriptor becomes its
   * K projected values (info.dim is K). Refused when fitted for another model / layer / levels /
   * pool / normalize.
   */
  pca?: string | Projection;
  /** Keep descriptors holding NaN or ±Inf (default false: they throw NonFiniteError, a run records a 'non-finite' failure). */
  allowNonFinite?: boolean;
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

/** The feature map's size for a square input of `input` pixels (the size policy's shorter side). */
export interface MapSize { readonly input: number; readonly height: number; readonly width: number }

/** A model whose usual input range is probably not the default this run uses. */
export interface InputRangeHint { readonly suggested: readonly [number, number]; readonly because: string }

export interface ExtractorInfo extends BackboneInfo, ResolvedSppOptions {
  readonly engine: 'onnx' | 'tfjs';
  /** Why `--engine auto` fell back to tfjs, when it did. */
  readonly engineFallback?: string;
  /** Things the user should hear about even without -v (e.g. a model cache that could not be used). */
  readonly warnings: readonly string[];
  readonly dim: number;
  readonly decode: DecodeOptions;
  readonly allowNonFinite: boolean;
  /** Measured once at load, on a grey square image; absent when the model would not run on it. */
  readonly mapSize?: MapSize;
  readonly inputRangeHint?: InputRangeHint;
  /** With a projection: its identity and K (dim is then K; rawDim the descriptor's length before it). */
  readonly pca?: { readonly sha256: string; readonly dim: number; readonly source: string; readonly rawDim: number };
}

export interface Extractor {
  readonly info: ExtractorInfo;
  /** Descriptor of one image (path or encoded bytes). */
  extract(input: string | Buffer): Promise<Float32Array>;
  extractDetailed(input: string | Buffer, label?: string): Promise<Extraction>;
  /** Descriptor of already decoded 8-bit RGB pixels (HWC). */
  extractPixels(image: RgbPixels, hint?: BackboneHint): Promise<Float32Array>;
  /**
   * One descriptor per box ([x0, y0, x1, y1], pixels of the image as displayed: EXIF orientation
   * applied), all from one forward pass: each box is mapped onto the feature map and pooled with
   * the pyramid's levels inside it (see mapBoxToCells, poolWindow). Boxes are clipped to the image;
   * a box that is empty, inverted, outside the image or not four finite numbers throws a RangeError
   * naming it (regionsOfImage reports each box instead).
   */
  extractRegions(input: string | Buffer, boxes: readonly Box[]): Promise<Float32Array[]>;
  /** Per box: its descriptor, or why it has none; for a decoded image (decodeImage's result). */
  regionsOfImage(image: DecodedImage, boxes: readonly Box[], hint?: BackboneHint): Promise<RegionResult[]>;
  /** regionsOfImage one box at a time: runs the backbone once, then pools each box when asked. */
  regionDescriber(image: DecodedImage, hint?: BackboneHint): Promise<(box: Box) => RegionResult>;
  readonly backbone: Backbone;
  dispose(): Promise<void>;
}

/** Checks every option once (errors name the property: "levels must be …", "decode.size must be …"), then loads the model. */
export async function createExtractor(options: ExtractorOptions = {}): Promise<Extractor> {
  const { onWarning, worker } = options;
  return openExtractor(resolveExtractorOptions(options), { onWarning, worker });
}

/** createExtractor for options already checked (the CLI checks them with flag names). */
export async function openExtractor(
  o: ResolvedExtractorOptions, extra: Pick<EngineOptions, 'onWarning' | 'worker'> = {},
): Promise<Extractor> {
  const { levels, pool, gemP, normalize, decode, allowNonFinite: allow, pca, ...model } = o;
  // The command line leaves an unset flag undefined.
  const allowNonFinite = allow === true;
  const engineOptions: EngineOptions = { ...model, ...definedOnly(extra) };
  const { backbone, engine, fallbackReason, warnings = [] } = await loadEngine(engineOptions);
  const [mapSize, inputRangeHint] = await Promise.all([probeMapSize(backbone, decode), guessInputRangeHint(backbone.info)]);
  const rawDim = descriptorLength(backbone.info.channels, levels);
  let projector: Projector | undefined;
  try {
    projector = pca === undefined ? undefined : await openPca(pca as string | Projection, { ...backbone.info, levels, pool, gemP, normalize, dim: rawDim });
  } catch (err) {
    await backbone.dispose();
    throw err;
  }
  const projection = projector?.projection;
  const info: ExtractorInfo = {
    ...backbone.info, levels, pool, gemP, normalize, engine, ...(fallbackReason ? { engineFallback: fallbackReason } : {}), warnings,
    dim: projection ? projection.meta.dim : rawDim, decode, allowNonFinite,
    ...(mapSize ? { mapSize } : {}), ...(inputRangeHint ? { inputRangeHint } : {}),
    ...(projection ? { pca: { sha256: projection.sha256, dim: projection.meta.dim, source: projection.source, rawDim } } : {}),
  };
  // One row at a time here (the CLI batches rows in front of its writer instead: pca/projector.ts).
  const project = async (d: Float32Array) => (projector ? (await projector.project([d]))[0] : d);

  const describe = async (image: RgbPixels, hint?: BackboneHint) => {
    const map = await backbone.featureMap(image, hint);
    const descriptor = await project(checkFinite(normalizeDescriptor(pyramidPool(map, levels, pool, gemP), normalize), allowNonFinite));
    return { descriptor, map };
  };

  const describer = async (img: DecodedImage, hint?: BackboneHint) => {
    const map = await backbone.featureMap(img, hint);
    const image = { width: img.originalWidth, height: img.originalHeight };
    const describeBox = regionDescriber(map, image, { width: img.width, height: img.height }, { levels, pool, gemP, normalize });
    if (allowNonFinite) return describeBox;
    // Checked per box: one box's window can hold the map's NaN while another's does not.
    return (box: Box): RegionResult => {
      const r = describeBox(box);
      const detail = r.ok ? nonFiniteDetail(r.descriptor) : undefined;
      return detail === undefined ? r : { ok: false, reason: NON_FINITE, message: `${NON_FINITE}: ${detail}` };
    };
  };
  const regionsOfImage = async (img: DecodedImage, boxes: readonly Box[], hint?: BackboneHint): Promise<RegionResult[]> => {
    const results = boxes.map(await describer(img, hint));
    if (!projector) return results;
    const ok = results.filter((r): r is Extract<RegionResult, { ok: true }> => r.ok);
    const projected = await projector.project(ok.map((r) => r.descriptor));
    ok.forEach((r, i) => (r.descriptor = projected[i]));
    return results;
  };

  const extractRegions = async (input: string | Buffer, boxes: readonly Box[]): Promise<Float32Array[]> => {
    if (!Array.isArray(boxes)) throw invalidParameterError('boxes', 'an array of [x0, y0, x1, y1] boxes', boxes);
    const results = await regionsOfImage(await decodeResolved(input, decode, typeof input === 'string' ? input : undefined), boxes);
    return results.map((r, k) => {
      if (!r.ok) throw r.reason === NON_FINITE ? new NonFiniteError(`boxes[${k}]: ${r.message}`) : new RangeError(`boxes[${k}]: ${r.message}`);
      return r.descriptor;
    });
  };

  const extractDetailed = async (input: string | Buffer, label?: string): Promise<Extraction> => {
    const img = await decodeResolved(input, decode, label);
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
    extractPixels: async (image, hint) => (await describe(image, hint)).descriptor,
    extractRegions,
    regionsOfImage,
    // The per-box function is synchronous: with a projection, each box is projected in JS (projectRowSync).
    regionDescriber: projector ? projectedDescriber(describer, projector) : describer,
    dispose: async () => {
      await projector?.dispose();
      await backbone.dispose();
    },
  };
}

/** A region describer whose rows are projected, like every other descriptor of a projecting extractor. */
function projectedDescriber(
  describer: (img: DecodedImage, hint?: BackboneHint) => Promise<(box: Box) => RegionResult>, projector: Projector,
): (img: DecodedImage, hint?: BackboneHint) => Promise<(box: Box) => RegionResult> {
  return async (img, hint) => {
    const describeBox = await describer(img, hint);
    return (box) => {
      const r = describeBox(box);
      return r.ok ? { ...r, descriptor: projectRowSync(projector.projection, r.descriptor) } : r;
    };
  };
}

/** Reads (or takes) the projection and refuses one fitted for other descriptors. */
async function openPca(pca: string | Projection, now: DescriptorIdentity): Promise<Projector> {
  const { descriptorIdentity, readProjection, projectionMismatch } = await import('../pca/file.js');
  const { openProjector } = await import('../pca/projector.js');
  const projection = typeof pca === 'string' ? await readProjection(pca) : pca;
  const { meta, mean, components, scale } = projection;
  const k = meta?.dim;
  const d = meta?.descriptor?.dim;
  if (!(mean instanceof Float32Array && components instanceof Float32Array && scale instanceof Float32Array) ||
    !(mean.length === d && components.length === k * d && scale.length === k)) {
    throw invalidParameterError('pca', 'a projection file path or a projection from readProjection()', '(an object whose arrays do not match its metadata)');
  }
  const diffs = projectionMismatch(projection.meta.descriptor, descriptorIdentity(now));
  if (diffs.length > 0) throw new UsageError(`pca ${projection.source} was fitted for other descriptors (${diffs.join('; ')})`);
  return openProjector(projection);
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The side the size policy gives an image's shorter side (224 by default; 224 for --no-resize too). */
export function referenceSide(decode: DecodeOptions): number {
  return Math.min(decode.size ?? 224, decode.maxSide ?? Infinity);
}

/** One forward pass on a grey square at the reference side: the map size SPP will usually see. */
async function probeMapSize(backbone: Backbone, decode: DecodeOptions): Promise<MapSize | undefined> {
  const side = referenceSide(decode);
  // The load already ran one at that size (the map's size does not depend on the pixels).
  const probe = backbone.probe;
  if (probe && probe.inputHeight === side && probe.inputWidth === side) return { input: side, height: probe.height, width: probe.width };
  try {
    const map = await backbone.featureMap({ data: new Uint8Array(side * side * 3).fill(128), width: side, height: side });
    return { input: side, height: map.height, width: map.width };
  } catch {
    return undefined; // a model with a fixed input size of another side: no measurement, no warning
  }
}

/**
 * Layers models default to [-1, 1] (Keras MobileNets). Darknet models — named so, or built on
 * LeakyReLU as Darknet's are — are trained on [0, 1]. A guess from the name and the layer types,
 * said as a hint, never applied.
 */
async function guessInputRangeHint(info: BackboneInfo): Promise<InputRangeHint | undefined> {
  if (info.format !== 'layers' || info.inputRangeSource !== 'layers-default') return undefined;
  if (/darknet/i.test(`${info.model} ${info.modelJsonPath}`)) {
    return { suggested: [0, 1], because: 'its name says Darknet, and Darknet models are trained on [0, 1]' };
  }
  const json = await readFile(info.modelJsonPath, 'utf8').catch(() => '');
  if (/"class_name"\s*:\s*"LeakyReLU"/.test(json)) {
    return { suggested: [0, 1], because: 'it uses LeakyReLU activations, as Darknet models trained on [0, 1] do' };
  }
  return undefined;
}

/**
 * What a run should say about its options beyond errors: levels finer than the feature map
 * (warnings) and a likely input range (hints), naming options the way the caller spells them.
 */
export function optionAdvice(info: ExtractorInfo, style: NameStyle): { warnings: string[]; hints: string[] } {
  const warnings: string[] = [];
  const hints: string[] = [];
  const m = info.mapSize;
  const tooFine = m && info.decode.size !== null ? info.levels.filter((n) => n > Math.min(m.height, m.width)) : [];
  if (m && tooFine.length > 0) {
    const side = Math.min(m.height, m.width);
    warnings.push(`${optionName(findOption('levels'), style)} ${[...new Set(tooFine)].join(',')}: more bins per side than the feature map has cells ` +
      `(${m.height}×${m.width} at a ${m.input}×${m.input} input), so its bins repeat cells; levels up to ${side}, ` +
      `or a larger ${optionName(findOption('decode.size'), style)}, give distinct bins`);
  }
  const h = info.inputRangeHint;
  if (h) {
    const range = style === 'cli' ? `--input-range ${h.suggested.join(',')}` : `inputRange: [${h.suggested.join(', ')}]`;
    hints.push(`this model probably expects pixels in [${h.suggested.join(', ')}], not the layers-model default ` +
      `[${info.inputRange.join(', ')}]: ${h.because}; if so, pass ${range} (a guess, not read from the model)`);
  }
  return { warnings, hints };
}
