import { open, readFile, rename, stat } from 'node:fs/promises';
import { NPY_HEADER_BYTES, parseNpyHeader } from '../npy.js';
import { partialPath } from './file-sink.js';
import { manifestPathFor } from './manifest.js';
import type { RunHeader } from './records.js';
import type { WorkItem } from '../run.js';

/** Where an interrupted .npy run stands once its journal has been checked against the data file. */
export interface ResumePoint {
  /** Next input index to process. */
  startAt: number;
  rows: number;
  failures: number;
  /** Byte lengths to cut the temp files back to (their last consistent state). */
  npyBytes: number;
  manifestBytes: number;
}

export type ResumeOutcome =
  | { kind: 'fresh' }
  | { kind: 'complete'; rows: number; failures: number }
  | ({ kind: 'resume' } & ResumePoint);

type ManifestLine = { type: string; index?: number; path?: string; row?: number; complete?: boolean; rows?: number; failures?: number };

const exists = (p: string) => stat(p).then(() => true, () => false);

/** Header fields that must match for rows of two runs to be interchangeable. */
export function headerDifferences(a: RunHeader, b: RunHeader): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]) as Set<keyof RunHeader>;
  return [...keys]
    .filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]))
    .map((k) => `${k}: ${JSON.stringify(a[k])} before, ${JSON.stringify(b[k])} now`);
}

/**
 * Reads the manifest journal line by line; a torn last line (power cut mid-write) ends it.
 * Returns the parsed lines with the byte offset just after each.
 */
function parseJournal(text: string): { line: ManifestLine; end: number }[] {
  const out: { line: ManifestLine; end: number }[] = [];
  let pos = 0;
  while (pos < text.length) {
    const nl = text.indexOf('\n', pos);
    if (nl < 0) break;
    try {
      out.push({ line: JSON.parse(text.slice(pos, nl)) as ManifestLine, end: Buffer.byteLength(text.slice(0, nl + 1)) });
    } catch {
      break;
    }
    pos = nl + 1;
  }
  return out;
}

/**
 * Works out how much of an earlier run of the same output is done. Looks for the temp files of a
 * killed run first, then for final files an interrupted (Ctrl-C) run left with `complete: false`.
 * The manifest says which inputs are done; the .npy's length says how many rows really reached the
 * disk; the smaller of the two wins, and both files are cut back to that point.
 */
export async function findResumePoint(output: string, header: RunHeader, items: readonly WorkItem[]): Promise<ResumeOutcome> {
  const manifestFinal = manifestPathFor(output);
  let npyPath = partialPath(output);
  let manifestPath = partialPath(manifestFinal);
  if (!(await exists(npyPath)) || !(await exists(manifestPath))) {
    if (!(await exists(output)) || !(await exists(manifestFinal))) return { kind: 'fresh' };
    npyPath = output;
    manifestPath = manifestFinal;
  }
  const journal = parseJournal(await readFile(manifestPath, 'utf8'));
  // Killed before even the header reached the disk: nothing was done.
  if (journal.length === 0) return { kind: 'fresh' };
  const head = journal[0]?.line as (ManifestLine & RunHeader) | undefined;
  if (head?.type !== 'header') throw new Error(`--resume: ${manifestPath} has no header line; use --force to start over`);
  const { type: _type, ...before } = head;
  const diffs = headerDifferences(before as RunHeader, header);
  if (diffs.length > 0) {
    throw new Error(`--resume: ${output} was made with different options (${diffs.join('; ')}); use --force to start over`);
  }
  const summary = journal.at(-1)?.line;
  if (npyPath === output && summary?.type === 'summary' && summary.complete) {
    return { kind: 'complete', rows: summary.rows ?? 0, failures: summary.failures ?? 0 };
  }

  const npyHead = Buffer.alloc(NPY_HEADER_BYTES);
  const fh = await open(npyPath, 'r');
  const { size } = await fh.stat();
  await fh.read(npyHead, 0, NPY_HEADER_BYTES, 0).finally(() => fh.close());
  const parsed = parseNpyHeader(npyHead);
  const rowBytes = header.dim * (header.dtype === 'float16' ? 2 : 4);
  if (parsed.headerBytes !== NPY_HEADER_BYTES || parsed.shape[1] !== header.dim) {
    throw new Error(`--resume: ${npyPath} is not an spp-extract output of dimension ${header.dim}; use --force to start over`);
  }
  const rowsOnDisk = Math.floor((size - NPY_HEADER_BYTES) / rowBytes);

  let rows = 0;
  let failures = 0;
  let manifestBytes = journal[0].end;
  let startAt = 0;
  for (const { line, end } of journal.slice(1)) {
    if (line.type !== 'row' && line.type !== 'failure') break;
    const expected = items[startAt];
    if (line.index !== expected?.index || line.path !== expected?.path) {
      throw new Error(`--resume: input ${expected?.index ?? startAt} was '${line.path}' before and is '${expected?.path ?? '(none)'}' now; ` +
        'the input list changed; use --force to start over');
    }
    if (line.type === 'row') {
      if (rows >= rowsOnDisk) break; // journalled but its bytes never reached the disk
      rows++;
    } else {
      failures++;
    }
    startAt++;
    manifestBytes = end;
  }
  // Continue in the temp files whichever pair we found.
  if (npyPath === output) {
    await rename(output, partialPath(output));
    await rename(manifestFinal, partialPath(manifestFinal));
  }
  return { kind: 'resume', startAt, rows, failures, npyBytes: NPY_HEADER_BYTES + rows * rowBytes, manifestBytes };
}
