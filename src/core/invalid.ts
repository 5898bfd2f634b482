/**
 * The one way an option is refused (after sharp's lib/is.js): the option's name — the flag on the
 * command line, the property in the library — what was expected, and what it got.
 */

/** A mistake in how the tool or the library was called (as opposed to a failure while running). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** One option with a value it cannot take. A UsageError, so the CLI can point at --help. */
export class InvalidParameterError extends UsageError {
  constructor(readonly option: string, readonly expected: string, readonly actual: unknown) {
    super(`${option} must be ${expected}, got ${show(actual)}`);
    this.name = 'InvalidParameterError';
  }
}

export function invalidParameterError(option: string, expected: string, actual: unknown): InvalidParameterError {
  return new InvalidParameterError(option, expected, actual);
}

/** A value as the user wrote it, quoted: strings as they are, number lists as `1,2`, objects as JSON. */
export function show(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  if (Array.isArray(v) && v.every((x) => typeof x === 'number')) return `'${v.join(',')}'`;
  if (typeof v === 'object' && v !== null) {
    try {
      return `'${JSON.stringify(v)}'`;
    } catch {
      return `'${String(v)}'`;
    }
  }
  return `'${String(v)}'`;
}

/** An options object holds a key the entry point does not take (a typo, or a key of another level). */
export class UnknownOptionError extends UsageError {
  constructor(readonly entry: string, readonly option: string, readonly suggestion: string) {
    super(`${entry}: unknown option '${option}'${suggestion ? `; ${suggestion}` : ''}`);
    this.name = 'UnknownOptionError';
  }
}

/** Refusal of two options given together (or one without the other): a UsageError, so the CLI points at --help. */
export class OptionConflictError extends UsageError {
  constructor(message: string) {
    super(message);
    this.name = 'OptionConflictError';
  }
}
