/** What every output format records about a run, one input at a time, in input order. */
export interface RunHeader {
  tool: string;
  /** Engines differ in the last float bits, so a resume or merge must not mix them. */
  engine: 'onnx' | 'tfjs';
  model: string;
  /**
   * The model's content identity (SHA-256 hex: a .onnx file's bytes; a TF.js model.json then its
   * shards). Outputs from before it was recorded lack it: they resume and merge with a warning.
   */
  modelSha256?: string;
  /** The model's format (was `format` before 0.2; a header that says `format` still resumes and merges). */
  modelFormat: 'graph' | 'layers';
  layer: string;
  inputRange: readonly [number, number];
  levels: readonly number[];
  pool: string;
  normalize: string;
  dim: number;
  channels: number;
  dtype: 'float32' | 'float16';
  size: number | null;
  maxSide: number | null;
  background: string;
  failOn: string;
  /** Length of the full (unsharded) input list; rows' `index` counts in it. */
  inputs: number;
  /** Only with --keep-json: tar members' rows carry their sidecar `key.json` as `json`. */
  keepJson?: boolean;
  /** Only in a `--shard k/n` run's output; a merge drops it. */
  shard?: { index: number; count: number };
  /** Only with --pool gem. */
  gemP?: number;
  /** Only with --allow-non-finite: rows may hold NaN or ±Inf. */
  allowNonFinite?: boolean;
  /** Only for a user's .onnx model: how its input is laid out and normalised. */
  inputLayout?: 'nhwc' | 'nchw';
  mean?: readonly number[];
  std?: readonly number[];
  /** Only in a region run: `boxes` (--boxes) or `grid` (--grid); what the rows are. */
  regions?: 'boxes' | 'grid';
  /** --boxes runs: the box format the file's coordinates are in. */
  boxFormat?: 'xyxy' | 'xywh';
  /** --grid runs: `RxC`, and whether window 0 is the whole image. */
  grid?: string;
  gridFull?: boolean;
  /**
   * Provenance, never compared by resume or merge: the versions of spp-extract, Node, sharp, libvips
   * and the model runtime that wrote the output (outputs from before 0.2 lack it).
   */
  versions?: Record<string, string>;
  /** The folder relative `path`s are relative to (the run's working folder); absent when every path is absolute. */
  relativeTo?: string;
  /** Only with --pca / --pca-dim: the projection the rows went through (dim is then its K). */
  pca?: { sha256: string; dim: number; inputDim: number; pre: string; whiten: number | null; source: string };
}

/** Which box of its image a record is (region runs): its position, the box as given, its label. */
export interface RegionRef {
  boxIndex: number;
  box: readonly number[];
  label?: string;
}

/** A region record's fields as the journal and the outputs spell them (snake_case, as numpy users read them). */
export function regionFields(region: RegionRef | undefined): Record<string, unknown> {
  if (!region) return {};
  return { box_index: region.boxIndex, box: region.box, ...(region.label !== undefined ? { label: region.label } : {}) };
}

/**
 * A record's path as every output writes it: `path`, and `path_bytes` (base64 of the exact bytes)
 * when the name is not valid UTF-8 and `path` is its escape (core/path-text.ts).
 */
export function pathFields(rec: { path: string; pathBytes?: Buffer; key?: string; json?: SidecarJson }): { path: string; path_bytes?: string; key?: string; json?: SidecarJson } {
  // `key`: a tar member's WebDataset __key__ (inputs/tar.ts); `json`: its sidecar (--keep-json).
  return {
    path: rec.path, ...(rec.pathBytes ? { path_bytes: rec.pathBytes.toString('base64') } : {}), ...(rec.key !== undefined ? { key: rec.key } : {}),
    ...(rec.json !== undefined ? { json: rec.json } : {}),
  };
}

/** A tar member's sidecar `key.json` (--keep-json): always a JSON object. */
export type SidecarJson = { readonly [field: string]: unknown };

/** A row's content identity as every output writes it, after its size: `sha256` when known. */
export function identityFields(rec: { sha256?: string }): { sha256?: string } {
  return rec.sha256 !== undefined ? { sha256: rec.sha256 } : {};
}

export interface RowRecord {
  /** Position in the input list. */
  index: number;
  path: string;
  /** Only for a name that is not valid UTF-8: its bytes (`path` is then an escape). */
  pathBytes?: Buffer;
  /** Only for a tar member: its WebDataset key (the name up to the first dot of its last component). */
  key?: string;
  /** Only with --keep-json, for a tar member with a sidecar `key.json`: its object. */
  json?: SidecarJson;
  width: number;
  height: number;
  /** The file's content identity (SHA-256 hex of its bytes); whole-image rows of a file input. */
  sha256?: string;
  descriptor: Float32Array;
  /** Region runs: the box this row describes. */
  region?: RegionRef;
}

export interface FailureRecord {
  index: number;
  path: string;
  pathBytes?: Buffer;
  key?: string;
  json?: SidecarJson;
  reason: string;
  error: string;
  /** Region runs: the box that failed (an empty or inverted box), … */
  region?: RegionRef;
  /** … or, for an image that failed as a whole, how many boxes it takes with it. */
  boxes?: number;
}

export interface RunSummary { rows: number; failures: number; complete: boolean }

export interface OutputWriter {
  /** Final paths the run produces (output first), for messages. */
  readonly paths: readonly string[];
  row(rec: RowRecord): Promise<void>;
  failure(rec: FailureRecord): Promise<void>;
  /** Finalises: syncs and moves files to their final names. */
  close(summary: RunSummary): Promise<void>;
  /** After a failure: closes quietly, leaving what is on disk for --resume. */
  abandon(): Promise<void>;
}

export type OutputFormat = 'npy' | 'json' | 'jsonl';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['npy', 'json', 'jsonl'];

/** Plain numbers, not Float32 artefacts: JSON.stringify of a float32 widened to float64 round-trips through np.float32. */
export function descriptorToJson(d: Float32Array): number[] {
  return Array.from(d);
}
