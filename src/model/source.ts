import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { DEFAULT_MODEL_ID, MODEL_REGISTRY, findRegistryEntry, modelJsonUrl, type RegistryEntry } from './registry.js';

/** Where a model's files are on disk once resolved, and what is known about it up front. */
export interface ResolvedModel {
  /** What the user asked for, for messages and output metadata. */
  readonly spec: string;
  readonly modelJsonPath: string;
  readonly registry?: RegistryEntry;
}

export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME && env.XDG_CACHE_HOME.trim() !== '' ? env.XDG_CACHE_HOME : join(homedir(), '.cache');
  return join(base, 'spp-extract');
}

async function isFile(p: string): Promise<boolean> {
  return stat(p).then((s) => s.isFile(), () => false);
}

interface ManifestGroup { paths: string[] }

/** Same rule as tfjs's http handler: weight paths are relative to model.json, query string kept. */
function weightUrl(modelUrl: string, path: string): string {
  const u = new URL(modelUrl);
  const base = new URL(path, `${u.origin}${u.pathname}`);
  base.search = u.search;
  return base.toString();
}

async function fetchBytes(url: string): Promise<Buffer> {
  const res = await fetch(url, { redirect: 'follow' });
  if (!res.ok) throw new Error(`HTTP ${res.status} ${res.statusText} for ${url}`);
  return Buffer.from(await res.arrayBuffer());
}

/** Downloads model.json and its weight shards into `dir` atomically (temp dir, then rename). */
async function downloadModel(url: string, dir: string): Promise<void> {
  const tmp = `${dir}.partial-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    const modelJson = await fetchBytes(url);
    const manifest = (JSON.parse(modelJson.toString('utf8')).weightsManifest ?? []) as ManifestGroup[];
    for (const path of manifest.flatMap((g) => g.paths)) {
      await writeFile(join(tmp, path), await fetchBytes(weightUrl(url, path)));
    }
    await writeFile(join(tmp, 'model.json'), modelJson);
    await writeFile(join(tmp, 'SOURCE_URL'), `${url}\n`);
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

function offlineHint(spec: string, url: string, err: unknown): Error {
  const cause = err instanceof Error ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err);
  return new Error(
    `--model ${spec}: could not download ${url} (${cause}). ` +
      `If this machine is offline, download the model elsewhere and pass --model /path/to/dir ` +
      `(a folder holding model.json and its weight shards).`,
  );
}

async function cachedDownload(spec: string, url: string, dir: string): Promise<string> {
  const modelJsonPath = join(dir, 'model.json');
  if (await isFile(modelJsonPath)) return modelJsonPath;
  await mkdir(dirname(dir), { recursive: true });
  try {
    await downloadModel(url, dir);
  } catch (err) {
    throw offlineHint(spec, url, err);
  }
  return modelJsonPath;
}

/**
 * Turns `--model` into a local model.json: a registry id (downloaded once into the cache), an
 * http(s) URL of a model.json (cached by URL hash), a directory holding model.json, or a
 * model.json path.
 */
export async function resolveModel(spec: string = DEFAULT_MODEL_ID, cacheDir = defaultCacheDir()): Promise<ResolvedModel> {
  const registry = findRegistryEntry(spec);
  if (registry) {
    const modelJsonPath = await cachedDownload(spec, modelJsonUrl(registry), join(cacheDir, registry.id));
    return { spec, modelJsonPath, registry };
  }
  if (/^https?:\/\//i.test(spec)) {
    const key = createHash('sha256').update(spec).digest('hex').slice(0, 16);
    const url = /\.json(\?|$)/.test(spec) ? spec : `${spec.replace(/\/$/, '')}/model.json`;
    return { spec, modelJsonPath: await cachedDownload(spec, url, join(cacheDir, `url-${key}`)) };
  }
  const path = resolve(spec);
  const st = await stat(path).catch(() => undefined);
  if (st?.isDirectory()) {
    const modelJsonPath = join(path, 'model.json');
    if (!(await isFile(modelJsonPath))) throw new Error(`--model ${spec}: directory has no model.json`);
    return { spec, modelJsonPath };
  }
  if (st?.isFile()) {
    // Cheap sanity check so a wrong file fails here rather than deep inside tfjs.
    const head = (await readFile(path, 'utf8').catch(() => '')).trimStart();
    if (!head.startsWith('{')) throw new Error(`--model ${spec}: not a TF.js model.json`);
    return { spec, modelJsonPath: path };
  }
  const known = MODEL_REGISTRY.map((e) => e.id).join(', ');
  throw new Error(`--model: '${spec}' is neither a known model (${known}) nor an existing path or URL`);
}
