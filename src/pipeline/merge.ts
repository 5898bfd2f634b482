import { open, stat, type FileHandle } from 'node:fs/promises';
import { NPY_HEADER_BYTES } from '../output/npy.js';
import { pathBytesOfLine, readJournalLines, regionOfLine } from '../output/journal.js';
import { headerDifferences, manifestPathFor, NpyWriter, type RunHeader, type RunSummary } from '../output/index.js';

type Line = { type: string; [k: string]: unknown };
type RegionLine = { path_bytes?: string; box_index?: number; box?: number[]; label?: string };
type RowLine = { type: 'row'; row: number; index: number; path: string; width: number; height: number } & RegionLine;
type FailureLine = { type: 'failure'; index: number; path: string; reason: string; error: string; boxes?: number } & RegionLine;

interface ShardFile { path: string; header: RunHeader; records: (RowLine | FailureLine)[] }

async function readShard(path: string): Promise<ShardFile> {
  const manifest = manifestPathFor(path);
  const lines = await readJournalLines(manifest).catch(() => {
    throw new Error(`merge: ${path} has no manifest ${manifest}`);
  });
  const [head, ...rest] = lines.map((e) => e.line as Line);
  const summary = rest.at(-1);
  if (head?.type !== 'header') throw new Error(`merge: ${manifest} has no header line`);
  if (summary?.type !== 'summary' || summary.complete !== true) {
    throw new Error(`merge: ${path} is incomplete; finish it with --resume first`);
  }
  const { type: _t, ...header } = head;
  return { path, header: header as unknown as RunHeader, records: rest.slice(0, -1) as (RowLine | FailureLine)[] };
}

/**
 * Merges shard outputs (`--shard k/n` runs) into the .npy + manifest a single run over all inputs
 * would have written, byte for byte: records are put back in input order and rows copied as bytes.
 */
export async function mergeShards(shardPaths: readonly string[], output: string, target = output): Promise<RunSummary> {
  if (shardPaths.length === 0) throw new Error('merge: no shard outputs given');
  const shards = await Promise.all(shardPaths.map(readShard));
  const { shard: _s0, ...base } = shards[0].header;
  const count = shards[0].header.shard?.count;
  const seen = new Set<number>();
  for (const s of shards) {
    const { shard, ...rest } = s.header;
    const diffs = headerDifferences(base as RunHeader, rest as RunHeader);
    if (diffs.length) throw new Error(`merge: ${s.path} was made with different options (${diffs.join('; ')})`);
    if (!shard || shard.count !== count) throw new Error(`merge: ${s.path} is not shard k/${count}`);
    if (seen.has(shard.index)) throw new Error(`merge: shard ${shard.index}/${count} given twice`);
    seen.add(shard.index);
  }
  const missing = Array.from({ length: count ?? 0 }, (_, i) => i + 1).filter((k) => !seen.has(k));
  if (missing.length) throw new Error(`merge: missing shard(s) ${missing.map((k) => `${k}/${count}`).join(', ')}`);

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

  const rowBytes = header.dim * (header.dtype === 'float16' ? 2 : 4);
  const handles = await Promise.all(shards.map((s) => open(s.path, 'r')));
  try {
    for (const s of shards) {
      const rows = s.records.filter((r) => r.type === 'row').length;
      const { size } = await stat(s.path);
      if (size !== NPY_HEADER_BYTES + rows * rowBytes) throw new Error(`merge: ${s.path} holds ${size} bytes, expected ${rows} rows`);
    }
    const writer = await NpyWriter.create(output, header, target);
    try {
      const summary = await copyRecords(writer, slots, handles, rowBytes);
      await writer.close(summary);
      return summary;
    } catch (err) {
      await writer.abandon();
      throw err;
    }
  } finally {
    await Promise.all(handles.map((h) => h.close()));
  }
}

interface Slot { shard: number; recs: (RowLine | FailureLine)[] }

/** Rows are copied as bytes from their shard, failures re-journalled, all in input order. */
async function copyRecords(writer: NpyWriter, slots: Slot[], handles: FileHandle[], rowBytes: number): Promise<RunSummary> {
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
      await handles[shard].read(buf, 0, rowBytes, NPY_HEADER_BYTES + rec.row * rowBytes);
      await writer.rawRow({ index: rec.index, path: rec.path, ...pathBytesOfLine(rec), width: rec.width, height: rec.height, ...(region ? { region } : {}) }, buf);
      rows++;
    }
  }
  return { rows, failures, complete: true };
}
