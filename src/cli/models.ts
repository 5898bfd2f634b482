/**
 * `spp-extract models [list] | pull [ids…] | path <ids…>`: the registry, what is in the model cache,
 * and fetching ahead: on a login node with internet, `models pull` downloads and converts into the
 * cache that jobs on offline compute nodes then read. Imported only when it runs.
 */
import { UsageError } from '../core/invalid.js';
import { findOption } from '../core/options.js';
import { printable } from '../core/printable.js';
import { resolveCommandLine } from '../core/resolve.js';
import { formatBytes } from '../backbone/download.js';
import { isUserError } from '../backbone/errors.js';
import { DEFAULT_MODEL_ID, MODEL_REGISTRY, familyOf, type RegistryEntry } from '../backbone/registry.js';
import { cachedState, defaultCacheDir, downloadable, MODEL_MIRROR_ENV, pullModel, registrySources, type PullResult } from '../backbone/source.js';
import { EXIT } from './exit.js';

const ACTIONS = ['list', 'pull', 'path'] as const;

/** The default --model: $SPP_EXTRACT_MODEL when set, else the registry's. */
function defaultModel(): { id: string; from: string } {
  const env = findOption('model').env!;
  const v = process.env[env];
  return v !== undefined && v.trim() !== '' ? { id: v.trim(), from: env } : { id: DEFAULT_MODEL_ID, from: 'the registry' };
}

async function listRow(e: RegistryEntry, cacheDir: string, defaultId: string) {
  const state = await cachedState(downloadable(e.id, cacheDir)!.dir);
  const { urls, mirror } = registrySources(e);
  return {
    id: e.id,
    family: familyOf(e),
    alpha: e.alpha,
    inputRange: e.inputRange,
    default: e.id === defaultId,
    bytes: state.bytes ?? e.bytes ?? null,
    cached: state.complete,
    path: state.complete ? state.dir : null,
    ...(state.complete || state.problem === 'not downloaded' ? {} : { problem: state.problem }),
    sources: urls,
    ...(mirror ? { mirror } : {}),
    ...(e.sha256 ? { sha256: e.sha256 } : {}),
    embeddingNode: e.embeddingNode,
  };
}

async function list(cacheDir: string, json: boolean): Promise<number> {
  const def = defaultModel();
  const defaultId = MODEL_REGISTRY.find((e) => downloadable(def.id, cacheDir)?.registry === e)?.id ?? def.id;
  const rows = await Promise.all(MODEL_REGISTRY.map((e) => listRow(e, cacheDir, defaultId)));
  if (json) {
    const mirror = process.env[MODEL_MIRROR_ENV]?.trim() || undefined;
    process.stdout.write(JSON.stringify({ cacheDir, defaultModel: def.id, defaultFrom: def.from, ...(mirror ? { mirror } : {}), models: rows }, null, 2) + '\n');
    return EXIT.ok;
  }
  const table = [
    ['id', 'family', 'α', 'input range', 'size', 'cached', 'where'],
    ...rows.map((r) => [
      `${r.id}${r.default ? ' *' : ''}`,
      r.family,
      r.alpha.toFixed(2),
      `[${r.inputRange.join(', ')}]`,
      r.bytes === null ? '?' : formatBytes(r.bytes),
      r.cached ? 'yes' : r.problem ? 'damaged' : 'no',
      r.path ?? r.sources[0],
    ]),
  ];
  const widths = table[0].map((_, c) => Math.max(...table.map((row) => row[c].length)));
  for (const row of table) process.stdout.write(printable(row.map((v, c) => (c === row.length - 1 ? v : v.padEnd(widths[c]))).join('  ')) + '\n');
  process.stdout.write(`\n* default model (${def.from === 'the registry' ? 'the registry\'s' : `from ${def.from}`}); cache: ${printable(cacheDir)}`);
  process.stdout.write(process.env[MODEL_MIRROR_ENV]?.trim() ? `; mirror: ${printable(process.env[MODEL_MIRROR_ENV]!.trim())}\n` : '\n');
  return EXIT.ok;
}

/** The ONNX conversion a run would make, made now and cached; why not, when it fails (runs then fall back to tfjs). */
async function convert(spec: string, cacheDir: string): Promise<{ onnxPath: string; cacheHit: boolean } | { failed: string }> {
  const { loadOnnxBackbone } = await import('../backbone/onnx/backbone.js');
  try {
    const backbone = await loadOnnxBackbone({ model: spec, cacheDir, worker: false });
    await backbone.dispose();
    return { onnxPath: backbone.info.onnxPath, cacheHit: backbone.info.cacheHit };
  } catch (err) {
    if (isUserError(err)) throw err;
    return { failed: (err as Error).message.split('\n')[0] };
  }
}

function pullLine(r: PullResult, converted: Awaited<ReturnType<typeof convert>>, bytes: number | undefined): string {
  const size = bytes === undefined ? '' : `, ${formatBytes(bytes)}`;
  const got = r.status === 'cached'
    ? `already cached in ${r.dir}${size}`
    : `downloaded into ${r.dir}${size}${r.source ? ` from ${r.source}` : ''}${r.replaced ? ` (the cached copy was replaced: ${r.replaced})` : ''}`;
  const onnx = 'failed' in converted
    ? `; not converted to ONNX (${converted.failed}): runs will try again, or fall back to tfjs`
    : `; ONNX ${converted.cacheHit ? 'already converted' : 'converted'}: ${converted.onnxPath}`;
  return `${r.spec}: ${got}${onnx}`;
}

async function pull(specs: string[], cacheDir: string, json: boolean): Promise<number> {
  const ids = specs.length > 0 ? specs : [defaultModel().id];
  let failed = 0;
  const results: object[] = [];
  for (const spec of ids) {
    try {
      const r = await pullModel(spec, cacheDir);
      const converted = await convert(spec, cacheDir);
      const bytes = (await cachedState(r.dir)).bytes;
      if (json) results.push({ ...r, bytes: bytes ?? null, onnx: 'failed' in converted ? null : converted.onnxPath, ...('failed' in converted ? { onnxFailed: converted.failed } : {}) });
      else process.stdout.write(printable(pullLine(r, converted, bytes)) + '\n');
      if ('failed' in converted) process.stderr.write(`spp-extract: warning: ${printable(`${spec}: converting to ONNX failed (${converted.failed})`)}\n`);
    } catch (err) {
      failed++;
      const message = (err as Error).message.split('\n')[0];
      if (json) results.push({ spec, error: message });
      process.stderr.write(`spp-extract: error: ${printable(message.startsWith(spec) || message.startsWith(`--model ${spec}`) ? message : `${spec}: ${message}`)}\n`);
    }
  }
  if (json) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
  return failed > 0 ? EXIT.fatal : EXIT.ok;
}

async function path(specs: string[], cacheDir: string, json: boolean): Promise<number> {
  if (specs.length === 0) throw new UsageError('models path needs a model id (see spp-extract models)');
  let failed = 0;
  const found: Record<string, string> = {};
  for (const spec of specs) {
    const w = downloadable(spec, cacheDir);
    if (!w) {
      failed++;
      process.stderr.write(`spp-extract: error: ${printable(`'${spec}' is neither a registry id (${MODEL_REGISTRY.map((e) => e.id).join(', ')}) nor an http(s) URL`)}\n`);
      continue;
    }
    const state = await cachedState(w.dir);
    if (!state.complete) {
      failed++;
      const why = state.problem === 'not downloaded' ? 'not downloaded' : `incomplete: ${state.problem}`;
      const id = w.registry?.id ?? spec;
      process.stderr.write(`spp-extract: error: ${printable(`${id} is not in the model cache ${cacheDir} (${why}): run \`spp-extract models pull ${id}\` first (with the same --cache-dir or XDG_CACHE_HOME)`)}\n`);
      continue;
    }
    if (json) found[spec] = state.dir;
    else process.stdout.write(`${printable(state.dir)}\n`);
  }
  if (json) process.stdout.write(JSON.stringify(found, null, 2) + '\n');
  return failed > 0 ? EXIT.fatal : EXIT.ok;
}

export async function modelsCommand(action: string | undefined, specs: string[], raw: Record<string, unknown>): Promise<number> {
  const o = resolveCommandLine(raw, 'models');
  const cacheDir = o.cacheDir ?? defaultCacheDir();
  const json = o.json === true;
  switch (action ?? 'list') {
    case 'list':
      if (specs.length > 0) throw new UsageError(`models list takes no model ids, got '${specs[0]}'`);
      return list(cacheDir, json);
    case 'pull':
      return pull(specs, cacheDir, json);
    case 'path':
      return path(specs, cacheDir, json);
    default:
      throw new UsageError(`models: unknown action '${action}' (expected one of ${ACTIONS.join(', ')})`);
  }
}
