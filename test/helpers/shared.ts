// Tests never touch the user's $HOME or model cache, also when a file is run on its own.
import './private-home.js';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Repo root: the nearest folder above this file that holds package.json. Tests run compiled from
 * dist/test/<unit|integration|e2e>/, helpers from dist/test/helpers/; walking up works from both
 * and from wherever the checkout lives.
 */
function findRepoRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

export const REPO_ROOT = findRepoRoot(dirname(fileURLToPath(import.meta.url)));

/** ../shared (real weights and photos) or $SPP_SHARED_DIR; absent on a user's clone. */
export const SHARED_DIR = process.env.SPP_SHARED_DIR ?? resolve(REPO_ROOT, '..', 'shared');

export function sharedPath(...parts: string[]): string {
  return join(SHARED_DIR, ...parts);
}

/** Reason to skip, or undefined when the shared file/folder is there. */
export function missingShared(...parts: string[]): string | undefined {
  const p = sharedPath(...parts);
  return existsSync(p) ? undefined : `needs ${p} (real weights/images from ../shared; set SPP_SHARED_DIR)`;
}

export const fixture = (...parts: string[]) => join(REPO_ROOT, 'fixtures', ...parts);
