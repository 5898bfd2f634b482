/** `spp-extract info`: what a run with these options would use. Imported only when it runs. */
import { resolveCommandLine } from '../core/resolve.js';
import { printable } from '../core/printable.js';
import type { LayerCandidate } from '../backbone/contract.js';
import { openExtractor, optionAdvice, type ExtractorInfo } from '../pipeline/extractor.js';
import { EXIT } from './exit.js';
import { projectionMismatch, readProjection, type Projection } from '../pca/file.js';
import { identityOfExtractor } from '../pipeline/fit-pca.js';

/** `126 = 6 × (1 + 4 + 16)`: channels times the bins of each level. */
export function dimArithmetic(channels: number, levels: readonly number[]): string {
  const bins = levels.map((n) => n * n);
  const sum = bins.reduce((a, b) => a + b, 0);
  return `${channels * sum} = ${channels} × ${bins.length > 1 ? `(${bins.join(' + ')})` : String(bins[0])}`;
}

function summary(i: ExtractorInfo): Record<string, unknown> {
  return {
    engine: i.engine,
    ...(i.engineFallback ? { engineFallback: i.engineFallback } : {}),
    backend: i.backend,
    model: i.model,
    modelJson: i.modelJsonPath,
    modelSha256: i.modelSha256,
    modelFormat: i.format,
    inputRange: i.inputRange,
    inputRangeSource: i.inputRangeSource,
    ...(i.inputRangeHint ? { inputRangeHint: i.inputRangeHint } : {}),
    layer: i.layer,
    layerChosenBy: i.layerChosenBy,
    channels: i.channels,
    ...(i.mapSize ? { mapSize: i.mapSize } : {}),
    levels: i.levels,
    pool: i.pool,
    ...(i.pool === 'gem' ? { gemP: i.gemP } : {}),
    normalize: i.normalize,
    dim: i.dim,
    size: i.decode.size,
    maxSide: i.decode.maxSide,
  };
}

function textRows(i: ExtractorInfo): [string, string][] {
  const m = i.mapSize;
  const bins = i.levels.map((n) => n * n).reduce((a, b) => a + b, 0);
  return [
    ['engine', i.engine + (i.engineFallback ? ` (auto fell back to tfjs: ${i.engineFallback})` : '')],
    ['backend', i.backend],
    ['model', `${i.model} (${i.format} model)`],
    ['model.json', i.modelJsonPath],
    ['model sha256', i.modelSha256],
    ['input range', `[${i.inputRange.join(', ')}] (${i.inputRangeSource})`],
    ['layer', `${i.layer} (${i.layerChosenBy})`],
    ['channels', String(i.channels)],
    ...(m ? [['feature map', `${m.height} × ${m.width} at a ${m.input} × ${m.input} input`] as [string, string]] : []),
    ['levels', `${i.levels.join(',')} (${bins} ${bins === 1 ? 'bin' : 'bins'})`],
    ['pool', i.pool === 'gem' ? `gem (p = ${i.gemP})` : i.pool],
    ['normalize', i.normalize],
    ['descriptor length', dimArithmetic(i.channels, i.levels)],
    ['input size', i.decode.size === null ? 'native' : `shorter side ${i.decode.size}`],
  ];
}

function writeText(i: ExtractorInfo, layers: LayerCandidate[] | undefined, extra: [string, string][]): void {
  const rows = [...textRows(i), ...extra];
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
  if (!layers) return;
  process.stdout.write(`\ncandidate layers (${layers.length}):\n`);
  for (const l of layers) process.stdout.write(`  ${l.name}  ${l.kind}${l.shape ? `  [${l.shape.map((d) => d ?? '?').join(',')}]` : ''}\n`);
}

/** What `--pca FILE` adds: K, bytes per row, the variance kept, and whether it fits these descriptors. */
function projectionSummary(p: Projection, i: ExtractorInfo) {
  const mismatch = projectionMismatch(p.meta.descriptor, identityOfExtractor(i));
  return {
    file: p.source,
    sha256: p.sha256,
    dim: p.meta.dim,
    fittedOn: p.meta.descriptor,
    samples: p.meta.samples,
    pre: p.meta.pre,
    whiten: p.meta.whiten,
    varianceKept: p.meta.varianceKept,
    bytesPerRow: { float32: 4 * p.meta.dim, float16: 2 * p.meta.dim },
    bytesPerRowRaw: { float32: 4 * p.meta.descriptor.dim, float16: 2 * p.meta.descriptor.dim },
    appliesToTheseOptions: mismatch.length === 0,
    ...(mismatch.length > 0 ? { differences: mismatch } : {}),
    toolVersion: p.meta.toolVersion,
  };
}

function projectionRows(s: ReturnType<typeof projectionSummary>): [string, string][] {
  return [
    ['pca', `${s.file} (sha256 ${s.sha256.slice(0, 16)}…)`],
    ['pca K', `${s.dim} of ${s.fittedOn.dim} (${(s.fittedOn.dim / s.dim).toFixed(0)}× smaller)`],
    ['pca bytes per row', `${s.bytesPerRow.float32} float32, ${s.bytesPerRow.float16} float16 (raw: ${s.bytesPerRowRaw.float32}, ${s.bytesPerRowRaw.float16})`],
    ['pca variance kept', `${(100 * s.varianceKept).toFixed(1)} % of the fitting sample's (${s.samples} rows)`],
    ['pca transform', `pre ${s.pre}, ${s.whiten === null ? 'not whitened' : `whitened (alpha ${s.whiten})`}, then L2`],
    ['pca fitted for', `${s.fittedOn.model}, layer ${s.fittedOn.layer}, levels ${s.fittedOn.levels.join(',')}, pool ${s.fittedOn.pool}, normalize ${s.fittedOn.normalize}`],
    ['pca applies here', s.appliesToTheseOptions ? 'yes' : `no: ${s.differences!.join('; ')}`],
  ];
}

export async function infoCommand(raw: Record<string, unknown>): Promise<number> {
  const o = resolveCommandLine(raw, 'info');
  // Read first: a bad file is refused before the model loads.
  const projection = typeof o.pca === 'string' ? await readProjection(o.pca) : undefined;
  const extractor = await openExtractor({ ...o, pca: undefined });
  try {
    const i = extractor.info;
    const advice = optionAdvice(i, 'cli');
    for (const w of [...i.warnings, ...advice.warnings]) process.stderr.write(`spp-extract: warning: ${printable(w)}\n`);
    for (const h of advice.hints) process.stderr.write(`spp-extract: hint: ${printable(h)}\n`);
    const layers = o.layers ? extractor.backbone.candidateLayers() : undefined;
    const pca = projection ? projectionSummary(projection, i) : undefined;
    if (o.json) process.stdout.write(JSON.stringify({ ...summary(i), ...(pca ? { pca } : {}), ...(layers ? { layers } : {}) }, null, 2) + '\n');
    else writeText(i, layers, pca ? projectionRows(pca) : []);
  } finally {
    await extractor.dispose();
  }
  return EXIT.ok;
}
