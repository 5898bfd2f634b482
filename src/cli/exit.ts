/** Exit codes: docs/cli.md's table is the reference, and --help prints this copy of it. */
export const EXIT = { ok: 0, fatal: 1, someFailed: 2, interrupted: 130, brokenPipe: 141 } as const;

export const EXIT_MEANINGS: readonly (readonly [number, string])[] = [
  [EXIT.ok, 'every input became a row, and every byte is on disk'],
  [EXIT.fatal, 'fatal: bad option, inputs that name no images, model failed to load, output refused (exists, locked, not ours) or failed (disk full, I/O error: resumable)'],
  [EXIT.someFailed, 'finished, but some inputs failed (each recorded)'],
  [EXIT.interrupted, 'interrupted (Ctrl-C / SIGTERM): the rows done so far were written; finish with --resume'],
  [EXIT.brokenPipe, 'stdout closed by the reader (… -o - | head)'],
];
