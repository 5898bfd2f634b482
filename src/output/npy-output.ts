/**
 * A complete .npy output read back (its manifest checked line by line, its data file against the
 * manifest): merge reads its shards so, fit-pca its .npy inputs, and --update the output whose
 * unchanged rows it keeps. The .jsonl / .json counterpart: text-output.ts.
 */
import type { FileHandle } from 'node:fs/promises';
import { systemReason } from './errors.js';
import { NotAJournal, readJournalLines, recordProblem, summaryProblem } from './journal.js';
import { manifestPathFor } from './manifest.js';
import { NPY_HEADER_BYTES, npyDtypeOf, npyLayoutProblem } from './npy.js';
import type { RunHeader } from './records.js';
import { NotRegularFile, openRegularFile, readExactly } from './regular-file.js';
import { headerProblem, type FailureLine, type RowLine } from './text-output.js';

type Line = { type: string; [k: string]: unknown };

export interface ShardFile {
  path: string; manifest: string; header: RunHeader; records: (RowLine | FailureLine)[]; rows: number;
  /** Where each record's line lies in the manifest: [start, end) bytes, newline excluded. */
  spans: { start: number; end: number }[];
}

/**
 * A shard's manifest, checked line by line: a header, then rows numbered 0, 1, 2 … in order and
 * failures, each with the fields a merge copies, then a summary that agrees with them. Anything
 * else is refused naming the manifest and the line.
 */
export async function readShard(path: string, who = 'merge'): Promise<ShardFile> {
  const manifest = manifestPathFor(path);
  const read = await readJournalLines(manifest).catch((err) => {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`${who}: ${path} has no manifest ${manifest}`);
    if (err instanceof NotAJournal || err instanceof NotRegularFile) throw new Error(`${who}: ${err.message}`);
    throw new Error(`${who}: cannot read ${manifest}: ${systemReason(err)}`);
  });
  const [head, ...rest] = read.entries.map((e, i) => ({ line: e.line as Line, number: e.number, start: read.entries[i - 1]?.end ?? 0, end: e.end - 1 }));
  if (head?.line.type !== 'header' || head.line.tool !== 'spp-extract') {
    throw new Error(`${who}: ${manifest} is not an spp-extract journal: it does not start with a header`);
  }
  // A whole line that does not parse is no kill's doing: --resume would refuse it too.
  if (read.whole) throw new Error(`${who}: ${manifest} line ${read.torn} is not a line spp-extract writes (not JSON, or nested too deep): the manifest was edited or damaged`);
  const summary = rest.pop();
  if (summary?.line.type !== 'summary' || summary.line.complete !== true || read.torn !== undefined) {
    const torn = read.torn !== undefined ? ` (line ${read.torn} is torn or not JSON)` : '';
    throw new Error(`${who}: ${path} is incomplete${torn}; finish it with --resume first`);
  }
  const { type: _t, ...header } = head.line;
  const bad = headerProblem(header as unknown as RunHeader);
  if (bad) throw new Error(`${who}: ${manifest} line 1: ${bad}`);
  let rows = 0;
  let failures = 0;
  for (const { line, number } of rest) {
    const problem = recordProblem(line, { row: rows });
    if (problem) throw new Error(`${who}: ${manifest} line ${number}: ${problem}`);
    if (line.type === 'row') rows++;
    else failures++;
  }
  const problem = summaryProblem(summary.line, rows, failures);
  if (problem) throw new Error(`${who}: ${manifest} line ${summary.number}: ${problem}`);
  return { path, manifest, header: header as unknown as RunHeader, records: rest.map((e) => e.line) as (RowLine | FailureLine)[], rows, spans: rest.map(({ start, end }) => ({ start, end })) };
}

/**
 * Opens a shard's .npy and checks it against its manifest: our v1.0 header with the run's dtype,
 * C order, shape (rows, dim), and exactly that many bytes. The handle is kept for the copy, so
 * the bytes copied are those of the file checked.
 */
export async function openShardData(s: ShardFile, rowBytes: number, who = 'merge'): Promise<FileHandle> {
  const { fh, size } = await openRegularFile(s.path).catch((err) => {
    if (err instanceof NotRegularFile) throw new Error(`${who}: ${err.message}`);
    throw new Error(`${who}: cannot open ${s.path}: ${systemReason(err)}`);
  });
  try {
    const expected = NPY_HEADER_BYTES + s.rows * rowBytes;
    if (size < NPY_HEADER_BYTES) throw new Error(`${who}: ${s.path} holds ${size} bytes, less than a .npy header`);
    const head = Buffer.alloc(NPY_HEADER_BYTES);
    await readExactly(fh, s.path, head, NPY_HEADER_BYTES, 0);
    const problem = npyLayoutProblem(head, npyDtypeOf(s.header.dtype), s.header.dim, s.rows);
    if (problem) throw new Error(`${who}: ${s.path}: ${problem} (its manifest ${s.manifest} lists ${s.rows} rows)`);
    if (size !== expected) {
      throw new Error(`${who}: ${s.path} holds ${size} bytes, expected ${expected} (${s.rows} rows of ${rowBytes} bytes after the header)`);
    }
    return fh;
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
}

