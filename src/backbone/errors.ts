/**
 * How a backbone failure is told apart: the user's mistake (a model that is not there, a layer it
 * does not have, an option that does not apply) fails the same on every engine, so `--engine auto`
 * reports it instead of falling back to tfjs. Anything else — the converter meeting an op it does
 * not know (UnsupportedOpError), ONNX Runtime failing to load or run — is the ONNX path's own
 * failure, where tfjs may still work.
 */
import { InvalidParameterError, UsageError } from '../core/invalid.js';

/** A problem with what the user asked for: `option` is the flag it is about (`--model`, `--layer` …). */
export class ModelOptionError extends Error {
  constructor(readonly option: string, message: string) {
    super(message);
    this.name = 'ModelOptionError';
  }
}

/** The user's mistake, the same on every engine: never a reason to fall back. */
export function isUserError(err: unknown): boolean {
  return err instanceof ModelOptionError || err instanceof InvalidParameterError || err instanceof UsageError;
}
