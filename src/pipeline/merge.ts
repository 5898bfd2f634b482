import { rm, type FileHandle } from 'node:fs/promises';
import { NPY_HEADER_BYTES, npyRowBytes } from '../output/npy.js';
import { rawHasNonFinite } from './finite.js';
import { pathExtrasOfLine, regionOfLine } from '../output/journal.js';
import { readExactly } from '../output/regular-file.js';
import { headerDifferences, identityFields, modelUnchecked, modelUncheckedWarning, NpyWriter, OutputError, outputTempFiles, resolveFormat, type OutputFormat, type OutputWriter, type RunHeader, type RunSummary } from '../output/index.js';
import { JsonlWriter } from '../output/jsonl-writer.js';
import { JsonWriter } from '../output/json-writer.js';
import { openShardData, readShard, type ShardFile } from '../output/npy-output.js';
import { descriptorOf, readJsonlShard, readJsonShard, type FailureLine, type RowLine, type TextFormat } from '../output/text-output.js';

export type { FailureLine, RowLine } from '../output/text-output.js';
export { openShardData, readShard, type ShardFile } from '../output/npy-output.js';

/** The format of the shards (all one) and of the output (the same): a merge never converts. */
function mergeFormat(shardPaths: readonly string[], target: string): OutputFormat {
  const formatOf = (p: string, what: string) => {
    try {
      return resolveFormat(p);
    } catch {
      throw new Error(`merge: cannot tell the format of ${what} ${p} from its extension: .npy, .jsonl or .json`);
    }
  };
  const formats = shardPaths.map((p) => formatOf(p, 'the shard'));
  const other = formats.findIndex((f) => f !== formats[0]);
  if (other >= 0) {
    throw new Error(`merge: ${shardPaths[0]} is .${formats[0]} but ${shardPaths[other]} is .${formats[other]}: the shards of one run share one format`);
  }
  const out = formatOf(target, '-o');
  if (out !== formats[0]) throw new Error(`merge: the shards are .${formats[0]}, so -o must be .${formats[0]} too, got ${target}`);
  return out;
}

/**
 * The shards' headers, checked against each other: the same options, shards k/n of one n, each
 * once, none missing. The merged output's header: theirs without `shard`.
 */
function mergedHeader(shards: readonly { path: string; header: RunHeader }[], warn: (message: string) => void): RunHeader {
  const { shard: _s0, ...base } = shards[0].header;
  const count = shards[0].header.shard?.count;
  const seen = new Set<number>();
  for (const s of shards) {
    const { shard, ...rest } = s.header;
    const diffs = headerDifferences(base as RunHeader, rest as RunHeader);
    if (diffs.length) throw new Error(`merge: ${s.path} was made with different options (${diffs.join('; ')})`);
    if (modelUnchecked(base as RunHeader, rest as RunHeader)) warn(modelUncheckedWarning(rest.modelSha256 === undefined ? s.path : shards[0].path));
    if (!shard) throw new Error(`merge: ${s.path} is not a --shard output (its header has no shard k/n)`);
    // An edited header (a count of 1e9, an index past it) would otherwise be trusted to size the work.
    if (!(Number.isSafeInteger(shard.count) && Number.isSafeInteger(shard.index) && shard.index >= 1 && shard.index <= shard.count)) {
      throw new Error(`merge: ${s.path}: the header's shard ${JSON.stringify(shard)} is not k/n with 1 ≤ k ≤ n (the file was edited)`);
    }
    if (shard.count !== count) throw new Error(`merge: ${s.path} is shard ${shard.index}/${shard.count}, but ${shards[0].path} is of ${count}`);
    if (seen.has(shard.index)) throw new Error(`merge: shard ${shard.index}/${count} given twice`);
    seen.add(shard.index);
  }
  const missingCount = (count ?? 0) - seen.size;
  if (missingCount > 0) {
    // The first few only: n comes from a file, and listing a million missing shards helps no one.
    const shown: string[] = [];
    for (let k = 1; shown.length < 10 && k <= (count ?? 0); k++) if (!seen.has(k)) shown.push(`${k}/${count}`);
    const more = missingCount > shown.length ? ` and ${missingCount - shown.length} more` : '';
    throw new Error(`merge: missing ${missingCount === 1 ? 'shard' : 'shards'} ${shown.join(', ')}${more}`);
  }
  return base as RunHeader;
}

/** One slot per input: its records (several in a region run), all from one shard, in their order; every input in one. */
function slotsOf<T>(total: number, shards: readonly { path: string; records: readonly T[] }[], lineOf: (rec: T) => RowLine | FailureLine): Slot<T>[] {
  // Every input has a record, so the records bound the count: an edited header's 4e9 inputs is refused, not allocated.
  const records = shards.reduce((n, s) => n + s.records.length, 0);
  if (total > records) throw new Error(`merge: the shards' headers count ${total} inputs, but the shards hold only ${records} records: some inputs are in no shard (a header was edited)`);
  const slots: Slot<T>[] = new Array(total);
  shards.forEach((s, shard) => {
    for (const rec of s.records) {
      const { index, path } = lineOf(rec);
      const slot = slots[index];
      if (!(index >= 0 && index < total) || (slot && slot.shard !== shard)) {
        throw new Error(`merge: input ${index} (${path}) appears twice or out of range`);
      }
      if (slot) slot.recs.push(rec);
      else slots[index] = { shard, recs: [rec] };
    }
  });
  const gap = Array.from(slots, (s) => s === undefined).indexOf(true);
  if (gap >= 0 || slots.length !== total) throw new Error(`merge: input ${gap} is in no shard`);
  return slots;
}

/**
 * Merges shard outputs (`--shard k/n` runs) into what a single run over all inputs would have
 * written, byte for byte, in the shards' format (.npy + manifest, .jsonl or .json; -o the same):
 * records are put back in input order, rows copied as bytes (.npy) or as the values checked
 * (.jsonl, .json). Every shard is checked in full before anything is written; the output appears
 * only once complete (temp names, then renames), and a failed merge leaves nothing.
 */
export async function mergeShards(
  shardPaths: readonly string[], output: string, target = output, warn: (message: string) => void = () => undefined,
  /** Runs the final syncs and renames (the CLI holds signals back meanwhile). */
  commit: (close: () => Promise<void>) => Promise<void> = (close) => close(),
): Promise<RunSummary> {
  if (shardPaths.length === 0) throw new Error('merge: no shard outputs given');
  const format = mergeFormat(shardPaths, target);
  if (format !== 'npy') return mergeTextShards(shardPaths, format, output, target, warn, commit);
  const shards = await Promise.all(shardPaths.map((p) => readShard(p)));
  const header = mergedHeader(shards, warn);
  const slots = slotsOf(header.inputs, shards, (rec) => rec);

  const rowBytes = npyRowBytes(header);
  const handles: FileHandle[] = [];
  try {
    // Every shard checked before anything is written.
    for (const s of shards) handles.push(await openShardData(s, rowBytes));
    return await writeMerged(output, 'npy', commit, () => NpyWriter.create(output, header, target), (writer) => copyRecords(writer, slots, handles, shards, rowBytes));
  } finally {
    await Promise.all(handles.map((h) => h.close().catch(() => undefined)));
  }
}

/** .jsonl / .json shards: each read and checked in full (descriptors too), then the records copied in input order. */
async function mergeTextShards(
  shardPaths: readonly string[], format: TextFormat, output: string, target: string, warn: (message: string) => void,
  commit: (close: () => Promise<void>) => Promise<void>,
): Promise<RunSummary> {
  const read = format === 'jsonl' ? readJsonlShard : readJsonShard;
  const settled = await Promise.allSettled(shardPaths.map((p) => read(p)));
  const shards = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  try {
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const header = mergedHeader(shards, warn);
    const slots = slotsOf(header.inputs, shards, (rec) => rec.line);
    const open = (): Promise<OutputWriter> => (format === 'jsonl' ? JsonlWriter.toFile(output, header, target) : JsonWriter.create(output, header, target));
    return await writeMerged(output, format, commit, open, async (writer) => {
      let rows = 0;
      let failures = 0;
      for (const { shard, recs } of slots) {
        for (const rec of recs) {
          const line = rec.line;
          const region = regionOfLine(line);
          const ref = { index: line.index, path: line.path, ...pathExtrasOfLine(line), ...(region ? { region } : {}) };
          if (line.type === 'failure') {
            await writer.failure({ ...ref, reason: line.reason, error: line.error, ...(line.boxes !== undefined ? { boxes: line.boxes } : {}) });
            failures++;
          } else {
            await writer.row({ ...ref, width: line.width, height: line.height, ...identityFields(line), descriptor: await descriptorOf(shards[shard], rec) });
            rows++;
          }
        }
      }
      return { rows, failures, complete: true };
    });
  } finally {
    await Promise.all(shards.map((s) => s.fh.close().catch(() => undefined)));
  }
}

/** Writes the merged output under temp names and commits it; a failure leaves no file behind (a merge is redone, not resumed). */
async function writeMerged<W extends OutputWriter>(
  output: string, format: OutputFormat, commit: (close: () => Promise<void>) => Promise<void>,
  open: () => Promise<W>, fill: (writer: W) => Promise<RunSummary>,
): Promise<RunSummary> {
  let writer: W | undefined;
  try {
    writer = await open();
    const summary = await fill(writer);
    const done = writer;
    await commit(() => done.close(summary));
    return summary;
  } catch (err) {
    await writer?.abandon();
    await Promise.all(outputTempFiles(output, format).map((p) => rm(p, { force: true }).catch(() => undefined)));
    // Not "finish with --resume" (the CLI's advice for an OutputError): merge has nothing to resume.
    if (err instanceof OutputError) throw new Error(`merge: ${err.message}; nothing was kept: run the merge again once that is fixed`);
    throw err;
  }
}

interface Slot<T = RowLine | FailureLine> { shard: number; recs: T[] }

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
        await writer.failure({ index: rec.index, path: rec.path, ...pathExtrasOfLine(rec), reason: rec.reason, error: rec.error, ...(region ? { region } : {}), ...boxes });
        failures++;
        continue;
      }
      await readExactly(handles[shard], `merge: ${shards[shard].path}`, buf, rowBytes, NPY_HEADER_BYTES + rec.row * rowBytes);
      // A run without --allow-non-finite never writes NaN or ±Inf: such bytes were put there by hand or by damage.
      const { header } = shards[shard];
      if (!header.allowNonFinite && rawHasNonFinite(buf, header.dtype)) {
        throw new Error(`merge: ${shards[shard].path} row ${rec.row} (${rec.path}) holds NaN or ±Inf, which its run (no --allow-non-finite) never writes: the file was edited or damaged`);
      }
      await writer.rawRow({ index: rec.index, path: rec.path, ...pathExtrasOfLine(rec), width: rec.width, height: rec.height, ...identityFields(rec), ...(region ? { region } : {}) }, buf);
      rows++;
    }
  }
  return { rows, failures, complete: true };
}
