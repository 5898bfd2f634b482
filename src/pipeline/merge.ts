import { rm, type FileHandle } from 'node:fs/promises';
import { NPY_HEADER_BYTES, npyDtypeOf, npyLayoutProblem, npyRowBytes } from '../output/npy.js';
import { rawHasNonFinite } from './finite.js';
import { NotAJournal, pathBytesOfLine, readJournalLines, recordProblem, regionOfLine, summaryProblem } from '../output/journal.js';
import { NotRegularFile, openRegularFile, readExactly } from '../output/regular-file.js';
import { headerDifferences, manifestPathFor, modelUnchecked, modelUncheckedWarning, NpyWriter, OutputError, partialPath, systemReason, type RunHeader, type RunSummary } from '../output/index.js';

type Line = { type: string; [k: string]: unknown };
type RegionLine = { path_bytes?: string; box_index?: number; box?: number[]; label?: string };
export type RowLine = { type: 'row'; row: number; index: number; path: string; width: number; height: number } & RegionLine;
export type FailureLine = { type: 'failure'; index: number; path: string; reason: string; error: string; boxes?: number } & RegionLine;

export interface ShardFile { path: string; manifest: string; header: RunHeader; records: (RowLine | FailureLine)[]; rows: number }

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
  const [head, ...rest] = read.entries.map((e) => ({ line: e.line as Line, number: e.number }));
  if (head?.line.type !== 'header' || head.line.tool !== 'spp-extract') {
    throw new Error(`${who}: ${manifest} is not an spp-extract journal: it does not start with a header`);
  }
  const summary = rest.pop();
  if (summary?.line.type !== 'summary' || summary.line.complete !== true || read.torn !== undefined) {
    const torn = read.torn !== undefined ? ` (line ${read.torn} is torn or not JSON)` : '';
    throw new Error(`${who}: ${path} is incomplete${torn}; finish it with --resume first`);
  }
  const { type: _t, ...header } = head.line;
  const { dim, dtype, inputs } = header as unknown as RunHeader;
  if (!(Number.isSafeInteger(dim) && dim > 0) || (dtype !== 'float32' && dtype !== 'float16') || !(Number.isSafeInteger(inputs) && inputs >= 0)) {
    throw new Error(`${who}: ${manifest} line 1: the header's dim ${JSON.stringify(dim)}, dtype ${JSON.stringify(dtype)}, inputs ${JSON.stringify(inputs)} ` +
      'are not a positive width, float32 or float16, and a count');
  }
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
  return { path, manifest, header: header as unknown as RunHeader, records: rest.map((e) => e.line) as (RowLine | FailureLine)[], rows };
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

/**
 * Merges shard outputs (`--shard k/n` runs) into the .npy + manifest a single run over all inputs
 * would have written, byte for byte: records are put back in input order and rows copied as bytes.
 */
export async function mergeShards(
  shardPaths: readonly string[], output: string, target = output, warn: (message: string) => void = () => undefined,
  /** Runs the final syncs and renames (the CLI holds signals back meanwhile). */
  commit: (close: () => Promise<void>) => Promise<void> = (close) => close(),
): Promise<RunSummary> {
  if (shardPaths.length === 0) throw new Error('merge: no shard outputs given');
  const shards = await Promise.all(shardPaths.map((p) => readShard(p)));
  const { shard: _s0, ...base } = shards[0].header;
  const count = shards[0].header.shard?.count;
  const seen = new Set<number>();
  for (const s of shards) {
    const { shard, ...rest } = s.header;
    const diffs = headerDifferences(base as RunHeader, rest as RunHeader);
    if (diffs.length) throw new Error(`merge: ${s.path} was made with different options (${diffs.join('; ')})`);
    if (modelUnchecked(base as RunHeader, rest as RunHeader)) warn(modelUncheckedWarning(rest.modelSha256 === undefined ? s.path : shards[0].path));
    if (!shard) throw new Error(`merge: ${s.path} is not a --shard output (its header has no shard k/n)`);
    if (shard.count !== count) throw new Error(`merge: ${s.path} is shard ${shard.index}/${shard.count}, but ${shards[0].path} is of ${count}`);
    if (seen.has(shard.index)) throw new Error(`merge: shard ${shard.index}/${count} given twice`);
    seen.add(shard.index);
  }
  const missing = Array.from({ length: count ?? 0 }, (_, i) => i + 1).filter((k) => !seen.has(k));
  if (missing.length) throw new Error(`merge: missing ${missing.length === 1 ? 'shard' : 'shards'} ${missing.map((k) => `${k}/${count}`).join(', ')}`);

  const header = base as RunHeader;
  const total = header.inputs;
  // One slot per input: its records (several in a region run), all from one shard, in their order.
  const slots: Slot[] = new Array(total);
  shards.forEach((s, shard) => {
    for (const rec of s.records) {
      const slot = slots[rec.index];
      if (!(rec.index >= 0 && rec.index < total) || (slot && slot.shard !== shard)) {
        throw new Error(`merge: input ${rec.index} (${rec.path}) appears twice or out of range`);
      }
      if (slot) slot.recs.push(rec);
      else slots[rec.index] = { shard, recs: [rec] };
    }
  });
  const gap = Array.from(slots, (s) => s === undefined).indexOf(true);
  if (gap >= 0 || slots.length !== total) throw new Error(`merge: input ${gap} is in no shard`);

  const rowBytes = npyRowBytes(header);
  const handles: FileHandle[] = [];
  try {
    // Every shard checked before anything is written.
    for (const s of shards) handles.push(await openShardData(s, rowBytes));
    let writer: NpyWriter | undefined;
    try {
      writer = await NpyWriter.create(output, header, target);
      const summary = await copyRecords(writer, slots, handles, shards, rowBytes);
      const done = writer;
      await commit(() => done.close(summary));
      return summary;
    } catch (err) {
      // A merge is not resumable: leave no temp files behind (a rerun would find them).
      await writer?.abandon();
      await Promise.all([output, manifestPathFor(output)].map((p) => rm(partialPath(p), { force: true }).catch(() => undefined)));
      // Not "finish with --resume" (the CLI's advice for an OutputError): merge has nothing to resume.
      if (err instanceof OutputError) throw new Error(`merge: ${err.message}; nothing was kept: run the merge again once that is fixed`);
      throw err;
    }
  } finally {
    await Promise.all(handles.map((h) => h.close().catch(() => undefined)));
  }
}

interface Slot { shard: number; recs: (RowLine | FailureLine)[] }

/** Rows are copied as bytes from their shard, failures re-journalled, all in input order. */
async function copyRecords(writer: NpyWriter, slots: Slot[], handles: FileHandle[], shards: ShardFile[], rowBytes: number): Promise<RunSummary> {
  let rows = 0;
  let failures = 0;
  const buf = Buffer.alloc(rowBytes);
  for (const { shard, recs } of slots) {
    for (const rec of recs) {
      const region = regionOfLine(rec);
      if (rec.type === 'failure') {
        const boxes = rec.boxes !== undefined ? { boxes: rec.boxes } : {};
        await writer.failure({ index: rec.index, path: rec.path, ...pathBytesOfLine(rec), reason: rec.reason, error: rec.error, ...(region ? { region } : {}), ...boxes });
        failures++;
        continue;
      }
      await readExactly(handles[shard], `merge: ${shards[shard].path}`, buf, rowBytes, NPY_HEADER_BYTES + rec.row * rowBytes);
      // A run without --allow-non-finite never writes NaN or ±Inf: such bytes were put there by hand or by damage.
      const { header } = shards[shard];
      if (!header.allowNonFinite && rawHasNonFinite(buf, header.dtype)) {
        throw new Error(`merge: ${shards[shard].path} row ${rec.row} (${rec.path}) holds NaN or ±Inf, which its run (no --allow-non-finite) never writes: the file was edited or damaged`);
      }
      await writer.rawRow({ index: rec.index, path: rec.path, ...pathBytesOfLine(rec), width: rec.width, height: rec.height, ...(region ? { region } : {}) }, buf);
      rows++;
    }
  }
  return { rows, failures, complete: true };
}
