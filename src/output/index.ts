import { lstat, rm } from 'node:fs/promises';
import { refuseOverlap, type ReadFile } from './overlap.js';
import { extname } from 'node:path';
import { OutputError, OutputRefused } from './errors.js';
import { UsageError } from '../core/invalid.js';
import { checkOption, findOption } from '../core/options.js';
import { partialPath } from './file-sink.js';
import { JsonWriter, jsonJournalPath } from './json-writer.js';
import { JsonlWriter } from './jsonl-writer.js';
import { acquireOutputLock, type OutputLock } from './lock.js';
import { manifestPathFor } from './manifest.js';
import { NpyWriter } from './npy-writer.js';
import { OUTPUT_FORMATS, type OutputFormat, type OutputWriter, type RunHeader } from './records.js';
import { findResumePoint, type ResumeItem, type ResumeOutcome } from './resume.js';
import { isStdoutName, resolveOutputTarget, type OutputTarget } from './target.js';

export * from './records.js';
export { OutputError, OutputRefused, systemReason } from './errors.js';
export { manifestPathFor } from './manifest.js';
export { partialPath } from './file-sink.js';
export { findUpdateContinuation, headerDifferences, modelUnchecked, modelUncheckedWarning, type UpdateContinuation } from './resume.js';
export { NpyWriter } from './npy-writer.js';

/** The format an extension names, if it names one. */
function formatOfExtension(output: string): OutputFormat | undefined {
  const ext = extname(output).toLowerCase().slice(1);
  if (ext === 'ndjson') return 'jsonl';
  return OUTPUT_FORMATS.includes(ext as OutputFormat) ? (ext as OutputFormat) : undefined;
}

/**
 * `-o -` is JSONL on stdout; otherwise the extension decides. --format is for names without a
 * known extension (a FIFO, `feats.out`); one that contradicts the extension is an error.
 */
export function resolveFormat(output: string, format?: string): OutputFormat {
  if (format !== undefined) {
    const chosen = checkOption(findOption('format'), format, 'cli') as OutputFormat;
    if (isStdoutName(output) && chosen !== 'jsonl') throw new UsageError(`--format ${chosen} cannot go to stdout (-o -); use jsonl`);
    const named = isStdoutName(output) ? undefined : formatOfExtension(output);
    if (named !== undefined && named !== chosen) {
      throw new UsageError(`--format ${chosen} contradicts -o ${output} (a .${extname(output).slice(1)} name is ${named}); drop --format or rename the output`);
    }
    return chosen;
  }
  if (isStdoutName(output)) return 'jsonl';
  const named = formatOfExtension(output);
  if (named) return named;
  throw new Error(`-o ${output}: cannot tell the format from the extension '${extname(output)}'; use .npy, .json, .jsonl or --format`);
}

const finalFiles = (path: string, format: OutputFormat) => (format === 'npy' ? [path, manifestPathFor(path)] : [path]);

/** Every file a run of this output writes: final names, temp names, the .json journal. */
export function outputFiles(path: string, format: OutputFormat): string[] {
  return [...finalFiles(path, format), ...outputTempFiles(path, format)];
}

/** The files a run writes before its renames: temp names and the .json journal. */
export function outputTempFiles(path: string, format: OutputFormat): string[] {
  return [...finalFiles(path, format).map(partialPath), ...(format === 'json' ? [jsonJournalPath(path)] : [])];
}

/** `-o` checked and, for a file, locked: nothing has been written or removed yet. */
export interface PreparedOutput {
  readonly target: OutputTarget;
  readonly format: OutputFormat;
  readonly lock?: OutputLock;
  /** Files an earlier run left (--force, --resume): replaced only once the new output exists. */
  readonly leftovers: readonly string[];
  /** Refuses, naming both, when an existing output file is one of these inputs. */
  refuseInputs(inputs: readonly ReadFile[]): Promise<void>;
  release(): void;
}

export type { ReadFile } from './overlap.js';

/**
 * Before the model loads: resolve `-o`, refuse an output that is one of `inputs` (files known up
 * front: a boxes file, shards), take its lock, and refuse what an earlier run left unless --resume
 * or --force. Nothing is removed here: with --force, what is left is replaced when the new output
 * is written (openWriter, and each writer's final renames), after every check has passed.
 */
export async function prepareOutput(
  output: string, o: { format?: string; resume?: boolean; force?: boolean; inputs?: readonly ReadFile[]; canResume?: boolean },
): Promise<PreparedOutput> {
  const target = await resolveOutputTarget(output);
  // `-o /dev/null` or a FIFO without an extension: the streaming format.
  const format = target.kind === 'device' && o.format === undefined && !OUTPUT_FORMATS.includes(extname(output).slice(1).toLowerCase() as OutputFormat)
    ? 'jsonl'
    : resolveFormat(output, o.format);
  if (target.kind !== 'file') {
    if (o.resume) throw new OutputRefused(`--resume needs a file for -o, got ${target.kind === 'stdout' ? 'stdout' : `a ${target.what}`}`);
    if (format === 'npy') {
      const what = target.kind === 'stdout' ? 'stdout' : `a ${target.what}`;
      throw new OutputRefused(`-o ${output}: .npy needs a regular file it can seek in, not ${what}; write .jsonl or .json there, or .npy to a file`);
    }
    return { target, format, leftovers: [], refuseInputs: async () => undefined, release: () => undefined };
  }
  const files = outputFiles(target.path, format);
  const refuseInputs = (inputs: readonly ReadFile[]) => refuseOverlap(files, output, inputs);
  await refuseInputs(o.inputs ?? []);
  const lock = acquireOutputLock(target.path, output);
  try {
    const leftovers = await findLeftovers(files, output, o.resume === true || o.force === true, o.canResume !== false);
    return { target, format, lock, leftovers, refuseInputs, release: () => lock.release() };
  } catch (err) {
    lock.release();
    throw err;
  }
}

/** What an earlier run left; refused unless `allowed` (--resume, --force). Only regular files (or links) are ever replaced. */
async function findLeftovers(files: readonly string[], output: string, allowed: boolean, canResume: boolean): Promise<string[]> {
  const found: string[] = [];
  for (const p of files) {
    const st = await lstat(p).catch(() => undefined);
    if (!st) continue;
    if (!st.isFile() && !st.isSymbolicLink()) throw new OutputRefused(`-o ${output}: ${p} is not a regular file; not touching it`);
    found.push(p);
  }
  if (found.length > 0 && !allowed) {
    // merge has no --resume: only --force is offered there.
    const how = canResume ? 'use --resume to finish an interrupted run or --force to overwrite' : 'use --force to overwrite';
    throw new OutputRefused(`-o ${output}: ${found.join(', ')} already ${found.length === 1 ? 'exists' : 'exist'}; ${how}`);
  }
  return found;
}

/**
 * A fresh run over leftovers (--force, every check passed): an earlier run's temp files go now, so
 * no temp name is a link written through; the final names are replaced by the new files' renames.
 */
async function removeStaleTemps(prepared: PreparedOutput): Promise<void> {
  if (prepared.target.kind !== 'file') return;
  const finals = new Set(finalFiles(prepared.target.path, prepared.format));
  for (const p of prepared.leftovers) {
    if (finals.has(p)) continue;
    await rm(p, { force: true }).catch((err) => {
      throw new OutputError(prepared.target.target, `cannot replace ${p}`, err);
    });
  }
}

/** Whether a finished output of an earlier run is there (under its final names): --force replaces it. */
export function replacesFinishedOutput(prepared: PreparedOutput): boolean {
  if (prepared.target.kind !== 'file') return false;
  const finals = new Set(finalFiles(prepared.target.path, prepared.format));
  return prepared.leftovers.some((p) => finals.has(p));
}

export type OpenedOutput =
  | { kind: 'complete'; rows: number; failures: number }
  | { kind: 'writer'; writer: OutputWriter; startAt: number; rows: number; failures: number };

/**
 * After the model loads (the header is known): a fresh writer, a resumed one, or "already complete".
 * `at`: where the temp files stand, already found (--update continuing an interrupted one).
 */
export async function openWriter(
  prepared: PreparedOutput, header: RunHeader, items: readonly ResumeItem[], resume: boolean, warn?: (message: string) => void, at?: ResumeOutcome,
): Promise<OpenedOutput> {
  const { target, format } = prepared;
  const fresh = { startAt: 0, rows: 0, failures: 0 };
  if (target.kind === 'stdout') return { kind: 'writer', writer: await JsonlWriter.toStream(process.stdout, header), ...fresh };
  if (target.kind === 'device') {
    const writer = format === 'json'
      ? await JsonWriter.toDevice(target.path, header, target.target)
      : await JsonlWriter.toDevice(target.path, header, target.target);
    return { kind: 'writer', writer, ...fresh };
  }
  const point = at ?? (resume ? await findResumePoint(target.path, target.target, format, header, items, warn) : { kind: 'fresh' as const });
  if (point.kind === 'complete') return point;
  if (point.kind === 'fresh') {
    await removeStaleTemps(prepared);
    return { kind: 'writer', writer: await createFileWriter(target.path, format, header, target.target), ...fresh };
  }
  const { startAt, rows, failures } = point;
  let writer: OutputWriter;
  switch (format) {
    case 'npy':
      writer = await NpyWriter.resume(target.path, header, { rows, dataBytes: point.dataBytes, journalBytes: point.journalBytes }, target.target);
      break;
    case 'jsonl':
      writer = await JsonlWriter.resume(target.path, point.journalBytes, target.target);
      break;
    case 'json':
      writer = await JsonWriter.resume(target.path, header, point.journalBytes, target.target);
      break;
  }
  return { kind: 'writer', writer, startAt, rows, failures };
}

function createFileWriter(path: string, format: OutputFormat, header: RunHeader, target: string): Promise<OutputWriter> {
  switch (format) {
    case 'npy':
      return NpyWriter.create(path, header, target);
    case 'json':
      return JsonWriter.create(path, header, target);
    case 'jsonl':
      return JsonlWriter.toFile(path, header, target);
  }
}
export { checkUpdatable, readUpdateBase, recordKey, updateTuning, type StoredRecord, type UpdateBase } from './update.js';
