/**
 * --update: reads a complete output (final names only, never its temp files) as the base the new
 * output reuses rows from. Nothing here writes: the new output is a fresh run's files, written
 * under temp names and renamed over this one at the end.
 */
import { lstat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { sidecarIdentity } from '../core/json-identity.js';
import { OutputRefused } from './errors.js';
import { partialPath } from './file-sink.js';
import type { JournalLine } from './journal.js';
import { manifestPathFor } from './manifest.js';
import { NPY_HEADER_BYTES, npyRowBytes } from './npy.js';
import { openShardData, readShard } from './npy-output.js';
import type { OutputFormat, RunHeader, SidecarJson } from './records.js';
import { openRegularFile, readExactly } from './regular-file.js';
import { headerDifferences } from './resume.js';
import { readJsonShard, readJsonlShard, type TextShard } from './text-output.js';

/** One record of the stored output: where its row lies (an .npy row number, or the item's JSON text). */
export interface StoredRecord {
  index: number;
  path: string;
  path_bytes?: string;
  failed: boolean;
  sha256?: string;
  /** --keep-json: the identity of its `json` (core/json-identity.ts), read back only for a row kept; undefined: none. */
  jsonSha256?: string;
  width: number;
  height: number;
  /** .npy: the row number. */
  row: number;
  /** The record's JSON text, [start, end) bytes of the file (.jsonl / .json) or of the manifest (.npy). */
  start: number;
  end: number;
  /** How many records of the output have its key (an input listed more than once; this is the last); undefined: 1. */
  copies?: number;
}

export interface UpdateBase {
  /** The stored output's header (checked against this run's, whatever the input count). */
  readonly header: RunHeader;
  /** By recordKey. */
  readonly records: ReadonlyMap<string, StoredRecord>;
  /** A stored row as the output holds it: .npy bytes in its dtype. */
  rowBytes(rec: StoredRecord): Promise<Uint8Array>;
  /** A stored row's descriptor (.jsonl / .json): the float32 values it was written from. */
  rowValues(rec: StoredRecord): Promise<Float32Array>;
  /** A stored record's `json` (--keep-json), read back from where its text lies. */
  rowJson(rec: StoredRecord): Promise<SidecarJson | undefined>;
  close(): Promise<void>;
}

/** The key an input and its stored record share: its path's bytes where they are not UTF-8, else its path. */
export function recordKey(r: { path: string; path_bytes?: string }): string {
  return r.path_bytes !== undefined ? `b:${r.path_bytes}` : `p:${r.path}`;
}

const refused = (why: string) => new OutputRefused(`--update: ${why}`);

/** The output's final files, or why there is nothing complete to update. */
async function finalFile(path: string, target: string): Promise<void> {
  const st = await lstat(path).catch(() => undefined);
  if (st?.isFile() || st?.isSymbolicLink()) return;
  if (st) throw refused(`${path} is not a regular file`);
  const temp = await lstat(partialPath(path)).catch(() => undefined);
  if (temp) throw refused(`${target} is not complete (an interrupted run left ${partialPath(path)}): finish it with --resume first, or start over with --force`);
  throw refused(`${target} does not exist: nothing to update (run without --update)`);
}

/** Before the model loads: refuses an -o that has no complete output under its final names to update. */
export async function checkUpdatable(path: string, target: string, format: OutputFormat): Promise<void> {
  await finalFile(path, target);
  if (format === 'npy') await finalFile(manifestPathFor(path), target);
}

/** The stored header against this run's: the same options and model, whatever the input count. */
function checkHeader(line: JournalLine, file: string, target: string, header: RunHeader): void {
  if (line.type !== 'header' || line.tool !== 'spp-extract') throw refused(`${file} does not start with an spp-extract header; not an output --update can read`);
  const { type: _t, ...before } = line;
  // Each shard updates its own output: another K/N (or none) is another output, said plainly.
  const shardOf = (h: RunHeader) => (h.shard ? `--shard ${h.shard.index}/${h.shard.count}` : 'no --shard');
  if (shardOf(before as RunHeader) !== shardOf(header)) {
    throw refused(`${target} was made with ${shardOf(before as RunHeader)}, this run has ${shardOf(header)}: each shard updates its own output; give the --shard it was made with`);
  }
  const diffs = headerDifferences({ ...(before as RunHeader), inputs: 0 }, { ...header, inputs: 0 });
  if (diffs.length > 0) throw refused(`${target} was made with different options (${diffs.join('; ')}); use --force to start over`);
}

/** The stored records by key (already checked by the reader); a row --update cannot reuse safely is refused. */
class Collector {
  readonly records = new Map<string, StoredRecord>();
  rows = 0;

  constructor(private readonly target: string) {}

  /** A checked record, kept by its key; one --update cannot reuse safely is refused. */
  keep(line: Extract<JournalLine, { type: 'row' | 'failure' }>, start: number, end: number): void {
    if (line.box_index !== undefined) throw refused(`${this.target} holds region rows (--boxes / --grid): --update with regions is not supported yet`);
    const failed = line.type === 'failure';
    if (!failed && line.sha256 === undefined) {
      throw refused(`${this.target} records no content identity for '${line.path}' (written before outputs recorded it): rebuild it once with --force`);
    }
    const row = failed ? -1 : this.rows;
    const json = sidecarIdentity(line.json);
    const key = recordKey(line);
    this.records.set(key, {
      index: line.index, path: line.path, ...(line.path_bytes !== undefined ? { path_bytes: line.path_bytes } : {}), failed,
      ...(failed ? {} : { sha256: line.sha256 }), ...(json !== undefined ? { jsonSha256: json } : {}), width: failed ? 0 : line.width, height: failed ? 0 : line.height, row, start, end, copies: (this.records.get(key)?.copies ?? 0) + 1,
    });
    if (!failed) this.rows++;
  }
}

/** Reads a stored output; refuses one that is missing, incomplete, edited, or made with other options. */
export async function readUpdateBase(path: string, target: string, format: OutputFormat, header: RunHeader): Promise<UpdateBase> {
  await checkUpdatable(path, target, format);
  switch (format) {
    case 'npy':
      return readNpyBase(path, target, header);
    case 'jsonl':
    case 'json':
      return readTextBase(path, target, format, header);
  }
}

/** How much of an .npy output one read brings (tests make it a few rows). */
export const updateTuning = { readAheadBytes: 4 * 2 ** 20 };

/** An .npy output and its manifest, read and checked as merge reads a shard (npy-output.ts). */
async function readNpyBase(path: string, target: string, header: RunHeader): Promise<UpdateBase> {
  const stored = await readShard(path, '--update');
  checkHeader({ type: 'header', ...stored.header } as JournalLine, stored.manifest, target, header);
  const c = new Collector(target);
  stored.records.forEach((line, i) => c.keep(line as Extract<JournalLine, { type: 'row' | 'failure' }>, stored.spans[i]!.start, stored.spans[i]!.end));
  const rowBytes = npyRowBytes(header);
  const fh = await openShardData(stored, rowBytes, '--update');
  // Kept rows are asked for in row order: one read brings the next readAheadBytes of them.
  const perRead = Math.max(1, Math.floor(updateTuning.readAheadBytes / rowBytes));
  let block: { first: number; count: number; bytes: Buffer } | undefined;
  // Opened only when a kept row has a `json` to read back (--keep-json).
  let manifest: Promise<FileHandle> | undefined;
  return {
    header: stored.header,
    records: c.records,
    rowBytes: async (rec) => {
      if (!block || rec.row < block.first || rec.row >= block.first + block.count) {
        const count = Math.min(perRead, c.rows - rec.row);
        const bytes = Buffer.allocUnsafe(count * rowBytes);
        await readExactly(fh, path, bytes, bytes.length, NPY_HEADER_BYTES + rec.row * rowBytes);
        block = { first: rec.row, count, bytes };
      }
      const at = (rec.row - block.first) * rowBytes;
      return block.bytes.subarray(at, at + rowBytes);
    },
    rowValues: () => Promise.reject(new Error('an .npy row is copied as bytes')),
    rowJson: async (rec) => {
      manifest ??= openRegularFile(stored.manifest).then((m) => m.fh);
      return (await recordAt(await manifest, stored.manifest, rec)).json;
    },
    close: async () => {
      await fh.close();
      await (await manifest?.catch(() => undefined))?.close();
    },
  };
}

/**
 * A .jsonl or .json output, read and checked as merge reads a shard (text-output.ts); its records'
 * descriptors are read back, by where their text lies, only for the rows kept.
 */
async function readTextBase(path: string, target: string, format: 'jsonl' | 'json', header: RunHeader): Promise<UpdateBase> {
  const shard: TextShard = await (format === 'jsonl' ? readJsonlShard : readJsonShard)(path, '--update');
  try {
    checkHeader({ type: 'header', ...shard.header } as JournalLine, path, target, header);
    const c = new Collector(target);
    for (const { line, start, end } of shard.records) c.keep(line as Extract<JournalLine, { type: 'row' | 'failure' }>, start, end);
    // A kept row's json and descriptor come from one read of its text.
    let last: { rec: StoredRecord; line: Promise<StoredLine> } | undefined;
    const lineOf = (rec: StoredRecord) => {
      if (last?.rec !== rec) last = { rec, line: recordAt(shard.fh, path, rec) };
      return last.line;
    };
    return {
      header: shard.header,
      records: c.records,
      rowBytes: () => Promise.reject(new Error('a text row is read as values')),
      rowValues: async (rec) => Float32Array.from((await lineOf(rec)).descriptor ?? []),
      rowJson: async (rec) => (await lineOf(rec)).json,
      close: () => shard.fh.close(),
    };
  } catch (err) {
    await shard.fh.close().catch(() => undefined);
    throw err;
  }
}

type StoredLine = { path: string; descriptor?: number[]; json?: SidecarJson };

/** A stored record read again where the reading found it: the same record (its path), or the file changed since. */
async function recordAt(fh: FileHandle, file: string, rec: StoredRecord): Promise<StoredLine> {
  const buf = Buffer.allocUnsafe(rec.end - rec.start);
  await readExactly(fh, file, buf, buf.length, rec.start);
  let line: StoredLine | undefined;
  try {
    line = JSON.parse(buf.toString('utf8')) as StoredLine;
  } catch {
    // Left undefined: said below.
  }
  if (line?.path !== rec.path) throw refused(`${file} changed while it was being updated (the record of '${rec.path}' is not where it was)`);
  return line;
}
