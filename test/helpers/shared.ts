import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** Repo root: tests run from dist/test, sources live two levels up. */
export const REPO_ROOT = resolve(new URL('../../..', import.meta.url).pathname);

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
