/** What every converter module shares: the graph's fixed names, the cache version and the error type. */

/** Bump whenever the emitted graph changes: it is part of the .onnx cache key. */
export const CONVERTER_VERSION = 1;
export const ONNX_INPUT = 'input';
export const ONNX_OUTPUT = 'features';

/** The converted model: NHWC float32 in (`inputName`), the NHWC feature map out (`outputName`). */
export interface ConvertResult {
  onnx: Uint8Array;
  inputName: string;
  outputName: string;
  channels?: number;
}

/** A layer/node the ONNX path cannot express; the caller falls back to (or points at) tfjs. */
export class UnsupportedOpError extends Error {
  constructor(
    readonly kind: 'layer' | 'node',
    readonly layerName: string,
    readonly op: string,
    detail?: string,
  ) {
    super(
      `cannot convert ${kind} '${layerName}' (${kind === 'layer' ? 'class' : 'op'} ${op}) to ONNX` +
        (detail ? `: ${detail}` : '') +
        '; use the tfjs backend for this model/layer',
    );
    this.name = 'UnsupportedOpError';
  }
}
