/**
 * Which inputs a fit uses: the `limit` whose keys hash lowest (SHA-256 of the key's UTF-8). A path's
 * place in the sample depends on nothing but the path, so listing order, `--shard` and where the
 * inputs came from (folder, glob, stdin) cannot change the sample; the fit reads the sample in hash
 * order, so its rows, and the projection's bytes, do not depend on listing order either.
 */
import { createHash } from 'node:crypto';

/** The sampling key of an input: its path as the output records it; a region row adds `#box`. */
export const sampleKey = (path: string, box?: number): string => (box === undefined ? path : `${path}#${box}`);

const hashOf = (key: string) => createHash('sha256').update(key, 'utf8').digest('hex');

/** The chosen entries (at most `limit`), in hash order; a path listed twice counts twice (ties by position). */
export function selectSample<T>(entries: readonly T[], limit: number, keyOf: (e: T) => string): T[] {
  const keyed = entries.map((entry, position) => ({ entry, hash: hashOf(keyOf(entry)), position }));
  keyed.sort((a, b) => (a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : a.position - b.position));
  return keyed.slice(0, limit).map((k) => k.entry);
}
