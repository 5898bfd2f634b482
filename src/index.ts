export {
  createExtractor, optionAdvice, type Extractor, type ExtractorOptions, type ExtractorInfo, type Extraction, type MapSize, type InputRangeHint,
} from './pipeline/extractor.js';
export { DEFAULT_LEVELS, POOL_MODES, NORMALIZE_MODES, OPTIONS, type OptionDef } from './core/options.js';
export { InvalidParameterError, UsageError } from './core/invalid.js';
export { spatialPyramidPool, descriptorLength, normalizeDescriptor, binRange, type FeatureMap, type PoolMode, type NormalizeMode } from './spp/spp.js';
export { encodeNpy, npyHeader, parseNpyHeader } from './output/npy.js';
export { decodeImage, DecodeError, type DecodeOptions, type DecodedImage } from './decode/decode.js';
export { expandInputs, MissingInputError, NulSeparatedError } from './inputs/expand.js';
export { MODEL_REGISTRY, DEFAULT_MODEL_ID, type RegistryEntry } from './backbone/registry.js';
export { loadBackbone, type Backbone, type BackboneInfo, type BackboneOptions } from './backbone/tfjs/backbone.js';
export { runExtraction, runBatch, type RunOptions, type RunProgress, type WorkItem } from './pipeline/run.js';
export {
  mapBoxToCells, poolWindow, clipBox, gridBoxes, regionDescriptors, DEFAULT_GEM_P,
  type Box, type CellWindow, type ClipResult, type RegionResult, type Size,
} from './spp/regions.js';
export { parseBoxes, readBoxesFile, BoxesFileError, type BoxedImage, type GivenBox } from './inputs/boxes.js';
export { fitPca, type FitPcaOptions, type FitPcaResult } from './pipeline/fit-pca.js';
export { readProjection, parseProjection, type Projection, type ProjectionMeta, type DescriptorIdentity } from './pca/file.js';
export { PRE_TRANSFORMS, type PreTransform } from './core/options.js';
