export { createExtractor, DEFAULT_LEVELS, type Extractor, type ExtractorOptions, type ExtractorInfo, type Extraction } from './pipeline/extractor.js';
export { spatialPyramidPool, descriptorLength, normalizeDescriptor, binRange, type FeatureMap, type PoolMode, type NormalizeMode } from './spp/spp.js';
export { encodeNpy, npyHeader, parseNpyHeader } from './output/npy.js';
export { decodeImage, DecodeError, type DecodeOptions, type DecodedImage } from './decode/decode.js';
export { expandInputs } from './inputs/expand.js';
export { MODEL_REGISTRY, DEFAULT_MODEL_ID, type RegistryEntry } from './backbone/registry.js';
export { loadBackbone, type Backbone, type BackboneInfo, type BackboneOptions } from './backbone/tfjs/backbone.js';
export { runBatch } from './pipeline/run.js';
