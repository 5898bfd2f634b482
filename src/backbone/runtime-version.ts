/**
 * The version of the model runtime an engine runs on, read from the package's own package.json:
 * reading it loads no runtime (ONNX Runtime lives in a worker thread; tfjs takes ~200 ms to import).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export const RUNTIME_PACKAGE = { onnx: 'onnxruntime-node', tfjs: '@tensorflow/tfjs' } as const;

const seen = new Map<string, string>();

/** `{ 'onnxruntime-node': '1.23.2' }`; 'unknown' where the package cannot be found. */
export function runtimeVersion(engine: keyof typeof RUNTIME_PACKAGE): Record<string, string> {
  const name = RUNTIME_PACKAGE[engine];
  if (!seen.has(name)) seen.set(name, packageVersion(name));
  return { [name]: seen.get(name)! };
}

function packageVersion(name: string): string {
  let entry: string;
  try {
    entry = createRequire(import.meta.url).resolve(name);
  } catch {
    return 'unknown';
  }
  // From the package's entry point up to the package.json that names it (its exports may hide ./package.json).
  for (let dir = dirname(entry); dir !== dirname(dir); dir = dirname(dir)) {
    const pkg = readJson(join(dir, 'package.json'));
    if (pkg?.name === name && typeof pkg.version === 'string') return pkg.version;
  }
  return 'unknown';
}

function readJson(path: string): { name?: unknown; version?: unknown } | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as { name?: unknown; version?: unknown };
  } catch {
    return undefined;
  }
}
