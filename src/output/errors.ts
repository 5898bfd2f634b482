/** What the system said, in words, with the code for searching: "no space left on device (ENOSPC)". */
const ERRNO_TEXT: Record<string, string> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EIO: 'input/output error',
  EROFS: 'read-only file system',
  EFBIG: 'file too large',
  EPIPE: 'broken pipe',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOTDIR: 'a part of the path is not a folder',
  ENOENT: 'no such file or folder',
  EISDIR: 'is a folder',
  EEXIST: 'already exists',
  EMFILE: 'too many open files',
  ENXIO: 'no reader on the other end',
  ELOOP: 'too many symbolic links',
  ENAMETOOLONG: 'name too long',
};

/** Output failures after which going on makes no sense (the next write fails the same way). */
export const FATAL_OUTPUT_CODES: ReadonlySet<string> = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EROFS', 'EFBIG', 'EPIPE']);

export function systemReason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  if (code && ERRNO_TEXT[code]) return `${ERRNO_TEXT[code]} (${code})`;
  // Node's own text ("ENOSPC: …, write '/x/.y.partial'") names our temp file: keep only the reason.
  const text = String(e?.message ?? err).replace(/, \w+ '[^']*'( -> '[^']*')?$/, '').replace(/^\w+: /, '');
  return code ? `${text} (${code})` : text;
}

/**
 * An output could not be written. The message names what the user typed for `-o`, never the
 * hidden temp name, and says how to go on.
 */
export class OutputError extends Error {
  readonly code?: string;
  constructor(readonly target: string, action: string, cause: unknown, hint = '') {
    super(`-o ${target}: ${action}: ${systemReason(cause)}${hint ? `; ${hint}` : ''}`);
    this.name = 'OutputError';
    this.code = (cause as NodeJS.ErrnoException)?.code;
  }
}

/** A refusal about the output (exists, foreign, locked …): one line, nothing touched. */
export class OutputRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OutputRefused';
  }
}
