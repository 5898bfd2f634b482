/**
 * Too few file descriptors (`ulimit -n 20`): Node's own text names only the file it hit (often one
 * of our modules). The advice says which limit, its value, and how to raise it.
 */
import { readFileSync } from 'node:fs';

/** The soft limit on open files (Linux), when it can be read: reading it takes a descriptor too. */
function openFileLimit(limits: string): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync(limits, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** What to add to an EMFILE / ENFILE error's line; undefined for any other error. */
export function openFilesAdvice(err: unknown, limits = '/proc/self/limits'): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENFILE') return 'the system has too many files open (ENFILE); close some programs and run again';
  if (code !== 'EMFILE') return undefined;
  const limit = openFileLimit(limits);
  return `too many open files (EMFILE): raise the open-file limit (ulimit -n${limit !== undefined ? `, now ${limit}` : ''}) and run again`;
}
