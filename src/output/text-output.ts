/**
 * Complete .jsonl and .json outputs read back: checked line by line (an output holds every
 * descriptor, so only each record's fields and where its line lies are kept), then read again,
 * record by record, where a descriptor is needed. merge reads its shards so, and writes them through
 * the run's own writers (byte for byte what one run over all inputs writes); --update, the output
 * whose unchanged rows it keeps.
 */
import type { FileHandle } from 'node:fs/promises';
import { JOURNAL_MAX_LINE_BYTES, recordProblem, summaryProblem } from './journal.js';
import { NotRegularFile, openRegularFile, readExactly } from './regular-file.js';
import { systemReason } from './errors.js';
import type { RunHeader } from './records.js';
import { MAX_JSON_DEPTH, nestedTooDeep } from '../core/json-depth.js';

type RegionLine = { path_bytes?: string; key?: string; box_index?: number; box?: number[]; label?: string };
/** A record line of a shard (an .npy manifest's carries its row number), with the fields a merge copies. */
export type RowLine = { type: 'row'; row: number; index: number; path: string; width: number; height: number; sha256?: string } & RegionLine;
export type FailureLine = { type: 'failure'; index: number; path: string; reason: string; error: string; boxes?: number } & RegionLine;

export type TextFormat = 'jsonl' | 'json';

/** A record's fields (no descriptor) and where its JSON text lies in the shard. */
export interface TextRecord { line: RowLine | FailureLine; start: number; end: number }

export interface TextShard {
  path: string;
  format: TextFormat;
  header: RunHeader;
  /** In the shard's order; a .json shard lists its items, then its failures. */
  records: TextRecord[];
  rows: number;
  /** Open from the check to the copy, so the bytes copied are those of the file checked. */
  fh: FileHandle;
}

interface RawLine { text: string; start: number; end: number; number: number; newline: boolean }

/** The file's lines with their byte ranges (newline excluded); a line past the journal limit is refused. */
async function* rawLines(fh: FileHandle, path: string, who: string): AsyncGenerator<RawLine> {
  const pending: Buffer[] = [];
  let pendingBytes = 0;
  let offset = 0;
  let number = 0;
  for (;;) {
    const chunk = Buffer.allocUnsafe(1 << 20);
    const { bytesRead } = await fh.read(chunk, 0, chunk.length, null);
    if (bytesRead === 0) break;
    const data = chunk.subarray(0, bytesRead);
    let from = 0;
    for (let nl = data.indexOf(10); nl >= 0; nl = data.indexOf(10, from)) {
      const length = pendingBytes + nl - from;
      if (length > JOURNAL_MAX_LINE_BYTES) throw new Error(`${who}: ${path} line ${number + 1} is longer than any spp-extract writes`);
      const bytes = Buffer.concat([...pending, data.subarray(from, nl)], length);
      pending.length = 0;
      pendingBytes = 0;
      yield { text: bytes.toString('utf8'), start: offset, end: offset + length, number: ++number, newline: true };
      offset += length + 1;
      from = nl + 1;
    }
    if (from < data.length) {
      pendingBytes += data.length - from;
      if (pendingBytes > JOURNAL_MAX_LINE_BYTES) throw new Error(`${who}: ${path} line ${number + 1} is longer than any spp-extract writes`);
      pending.push(Buffer.from(data.subarray(from)));
    }
  }
  if (pendingBytes > 0) yield { text: Buffer.concat(pending).toString('utf8'), start: offset, end: offset + pendingBytes, number: number + 1, newline: false };
}

const seen = (text: string) => (text.length > 60 ? `${JSON.stringify(text.slice(0, 60))}…` : JSON.stringify(text));

/** A header's fields a merge relies on, checked: the problem, else undefined. */
export function headerProblem(header: RunHeader): string | undefined {
  const { dim, dtype, inputs } = header;
  if (Number.isSafeInteger(dim) && dim > 0 && (dtype === 'float32' || dtype === 'float16') && Number.isSafeInteger(inputs) && inputs >= 0) return undefined;
  return `the header's dim ${JSON.stringify(dim)}, dtype ${JSON.stringify(dtype)}, inputs ${JSON.stringify(inputs)} are not a positive width, float32 or float16, and a count`;
}

/** A row's descriptor as a run writes it: `dim` numbers, each a float32 value (the run writes float32 rows). */
function descriptorProblem(d: unknown, dim: number): string | undefined {
  if (!Array.isArray(d) || d.length !== dim) return `"descriptor" is not a list of ${dim} numbers`;
  for (const [k, v] of d.entries()) {
    if (v === null) return `"descriptor" value ${k} is null (NaN or ±Inf), which a run never writes`;
    if (typeof v !== 'number' || Math.fround(v) !== v) return `"descriptor" value ${k} is ${JSON.stringify(v)}, not a float32 value a run writes`;
  }
  return undefined;
}

/** The record's fields without its descriptor (what is kept in memory). */
function withoutDescriptor(line: Record<string, unknown>): RowLine | FailureLine {
  const { descriptor: _d, ...rest } = line;
  return rest as RowLine | FailureLine;
}

/** Opens a text shard as a regular file; a missing one or a FIFO is named. */
async function openShard(path: string, who: string): Promise<FileHandle> {
  const { fh } = await openRegularFile(path).catch((err) => {
    if (err instanceof NotRegularFile) throw new Error(`${who}: ${err.message}`);
    throw new Error(`${who}: cannot open ${path}: ${systemReason(err)}`);
  });
  return fh;
}

/** A value nested past what a run writes: refused before anything shows or compares it (both recurse). */
const deep = (at: string) => new Error(`${at}: lists or objects nested more than ${MAX_JSON_DEPTH} levels deep, which spp-extract never writes`);

const incomplete = (who: string, path: string, why = '') => new Error(`${who}: ${path} is incomplete${why}; finish it with --resume first`);

/**
 * A .jsonl shard, checked line by line as a .npy manifest is: a header, rows and failures with the
 * fields a merge copies (rows: `dim` float32 values), then a summary that agrees with them, and
 * nothing after it. The problem is named with the file, the line and the value seen.
 */
export async function readJsonlShard(path: string, who = 'merge'): Promise<TextShard> {
  const fh = await openShard(path, who);
  try {
    let header: RunHeader | undefined;
    const records: TextRecord[] = [];
    let rows = 0;
    let failures = 0;
    let done = false;
    for await (const raw of rawLines(fh, path, who)) {
      const at = `${who}: ${path} line ${raw.number}`;
      if (done) throw new Error(`${at}: ${seen(raw.text)} after the summary line`);
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(raw.text) as Record<string, unknown>;
        if (line === null || typeof line !== 'object' || Array.isArray(line)) throw new Error('not an object');
      } catch {
        if (header && !raw.newline) throw incomplete(who, path, ` (line ${raw.number} is torn)`);
        throw new Error(`${at}: ${seen(raw.text)} is not a JSON object (is ${path} an spp-extract .jsonl output?)`);
      }
      if (nestedTooDeep(line)) throw deep(at);
      if (!header) {
        if (line.type !== 'header' || line.tool !== 'spp-extract') throw new Error(`${who}: ${path} is not an spp-extract .jsonl output: it does not start with a header`);
        const { type: _t, ...fields } = line;
        header = fields as unknown as RunHeader;
        const problem = headerProblem(header);
        if (problem) throw new Error(`${at}: ${problem}`);
        continue;
      }
      if (line.type === 'summary') {
        if (line.complete !== true) throw incomplete(who, path);
        const problem = summaryProblem(line, rows, failures);
        if (problem) throw new Error(`${at}: ${problem}`);
        done = true;
        continue;
      }
      const problem = recordProblem(line, { dim: header.dim }) ?? (line.type === 'row' ? descriptorProblem(line.descriptor, header.dim) : undefined);
      if (problem) throw new Error(`${at}: ${problem}`);
      if (line.type === 'row') rows++;
      else failures++;
      records.push({ line: withoutDescriptor(line), start: raw.start, end: raw.end });
    }
    if (!header) throw new Error(`${who}: ${path} is not an spp-extract .jsonl output: it is empty`);
    if (!done) throw incomplete(who, path, ' (no summary line)');
    return { path, format: 'jsonl', header, records, rows, fh };
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
}

/** The fixed lines of a .json output (json-writer.ts writes exactly these). */
const ITEMS_OPEN = ',"items":[';
const FAILURES_OPEN = '],"failures":[';
const NO_FAILURES = '],"failures":[],"summary":';
const SUMMARY = '],"summary":';

/**
 * A .json shard, read in the layout a run writes it (one item or failure a line), so it is checked
 * without holding its descriptors: the header line, items (`dim` float32 values each), failures,
 * the summary, each record checked as a .jsonl one is. Anything else is named with its line.
 */
export async function readJsonShard(path: string, who = 'merge'): Promise<TextShard> {
  const fh = await openShard(path, who);
  try {
    let header: RunHeader | undefined;
    const records: TextRecord[] = [];
    let rows = 0;
    let failures = 0;
    let section: 'items' | 'failures' | 'end' = 'items';
    let comma = false; // the record before ended with ',': another must follow
    const layout = (raw: RawLine, expected: string) =>
      new Error(`${who}: ${path} line ${raw.number}: ${seen(raw.text)} where the layout spp-extract writes has ${expected} (the file was edited, or is not a .json output of spp-extract)`);
    const summaryOf = (raw: RawLine, text: string) => {
      let s: Record<string, unknown>;
      try {
        s = JSON.parse(text.slice(0, -1)) as Record<string, unknown>;
      } catch {
        throw layout(raw, 'the summary');
      }
      if (!text.endsWith('}') || s === null || typeof s !== 'object') throw layout(raw, 'the summary');
      if (s.complete !== true) throw incomplete(who, path);
      const problem = summaryProblem(s, rows, failures);
      if (problem) throw new Error(`${who}: ${path} line ${raw.number}: ${problem}`);
    };
    for await (const raw of rawLines(fh, path, who)) {
      if (section === 'end') throw layout(raw, 'nothing after the summary');
      if (!header) {
        if (!raw.text.startsWith('{"tool":"spp-extract"') || !raw.text.endsWith(ITEMS_OPEN)) {
          throw new Error(`${who}: ${path} is not an spp-extract .json output: it does not start with its header`);
        }
        if (!raw.newline) throw incomplete(who, path, ' (it ends after its header)');
        try {
          header = JSON.parse(`${raw.text.slice(0, -ITEMS_OPEN.length)}}`) as RunHeader;
        } catch {
          throw layout(raw, 'the header, a JSON object');
        }
        if (nestedTooDeep(header)) throw deep(`${who}: ${path} line 1`);
        const problem = headerProblem(header);
        if (problem) throw new Error(`${who}: ${path} line 1: ${problem}`);
        continue;
      }
      if (!raw.newline) throw incomplete(who, path, ` (line ${raw.number} is cut short)`);
      const closes = section === 'items' ? raw.text === FAILURES_OPEN || raw.text.startsWith(NO_FAILURES) : raw.text.startsWith(SUMMARY);
      if (closes) {
        if (comma) throw layout(raw, `another ${section === 'items' ? 'item' : 'failure'} after a ','`);
        if (section === 'items' && raw.text === FAILURES_OPEN) {
          section = 'failures';
          continue;
        }
        summaryOf(raw, raw.text.slice(section === 'items' ? NO_FAILURES.length : SUMMARY.length));
        section = 'end';
        continue;
      }
      const before = records.at(-1);
      if (before && ((section === 'items') === (before.line.type === 'row')) && !comma) throw layout(raw, `',' after the line before`);
      comma = raw.text.endsWith(',');
      const text = comma ? raw.text.slice(0, -1) : raw.text;
      let fields: Record<string, unknown>;
      try {
        fields = JSON.parse(text) as Record<string, unknown>;
        if (fields === null || typeof fields !== 'object' || Array.isArray(fields)) throw new Error('not an object');
      } catch {
        throw layout(raw, section === 'items' ? 'an item, a JSON object' : 'a failure, a JSON object');
      }
      if (nestedTooDeep(fields)) throw deep(`${who}: ${path} line ${raw.number}`);
      const line = { type: section === 'items' ? 'row' : 'failure', ...fields };
      const problem = recordProblem(line, { dim: header.dim }) ?? (section === 'items' ? descriptorProblem(fields.descriptor, header.dim) : undefined);
      if (problem) throw new Error(`${who}: ${path} line ${raw.number}: ${problem}`);
      if (section === 'items') rows++;
      else failures++;
      records.push({ line: withoutDescriptor(line), start: raw.start, end: raw.start + Buffer.byteLength(text) });
    }
    if (!header) throw new Error(`${who}: ${path} is not an spp-extract .json output: it is empty`);
    if (section !== 'end') throw incomplete(who, path, ' (it ends before its summary)');
    return { path, format: 'json', header, records, rows, fh };
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
}

/** A record's descriptor, read again from its shard and checked to be the record checked before. */
export async function descriptorOf(shard: TextShard, rec: TextRecord, who = 'merge'): Promise<Float32Array> {
  const buf = Buffer.alloc(rec.end - rec.start);
  await readExactly(shard.fh, `${who}: ${shard.path}`, buf, buf.length, rec.start);
  let line: Record<string, unknown> | undefined;
  try {
    line = JSON.parse(buf.toString('utf8')) as Record<string, unknown>;
  } catch {
    line = undefined;
  }
  const d = line?.descriptor;
  if (!line || line.index !== rec.line.index || line.path !== rec.line.path || descriptorProblem(d, shard.header.dim)) {
    throw new Error(`${who}: ${shard.path} changed while it was merged (input ${rec.line.index} reads differently now)`);
  }
  return Float32Array.from(d as number[]);
}
