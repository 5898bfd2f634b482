export { createExtractor, DEFAULT_LEVELS, type Extractor, type ExtractorOptions, type ExtractorInfo, type Extraction } from './extractor.js';
export { spatialPyramidPool, descriptorLength, normalizeDescriptor, binRange, type FeatureMap, type PoolMode, type NormalizeMode } from './spp.js';
export { encodeNpy, npyHeader, parseNpyHeader } from './npy.js';
export { decodeImage, DecodeError, type DecodeOptions, type DecodedImage } from './decode.js';
export { expandInputs } from './inputs.js';
export { MODEL_REGISTRY, DEFAULT_MODEL_ID, type RegistryEntry } from './model/registry.js';
export { loadBackbone, type Backbone, type BackboneInfo, type BackboneOptions } from './model/backbone.js';
export { runBatch } from './run.js';
