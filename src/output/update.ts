/**
 * --update: reads a complete output (final names only, never its temp files) as the base the new
 * output reuses rows from. Nothing here writes: the new output is a fresh run's files, written
 * under temp names and renamed over this one at the end.
 */
import { lstat } from 'node:fs/promises';
import { OutputRefused } from './errors.js';
import { partialPath } from './file-sink.js';
import { readJournal, recordProblem, summaryProblem, type JournalLine } from './journal.js';
import { manifestPathFor } from './manifest.js';
import { NPY_HEADER_BYTES, npyDtypeOf, npyLayoutProblem, npyRowBytes, parseNpyHeader } from './npy.js';
import type { OutputFormat, RunHeader } from './records.js';
import { openRegularFile, readExactly } from './regular-file.js';

type RegularFile = Awaited<ReturnType<typeof openRegularFile>>;
import { headerDifferences } from './resume.js';

/** One record of the stored output: where its row lies (an .npy row number, or the item's JSON text). */
export interface StoredRecord {
  index: number;
  path: string;
  path_bytes?: string;
  failed: boolean;
  sha256?: string;
  width: number;
  height: number;
  /** .npy: the row number. */
  row: number;
  /** .jsonl / .json: the record's JSON text, [start, end) bytes of the file. */
  start: number;
  end: number;
}

export interface UpdateBase {
  /** By recordKey. */
  readonly records: ReadonlyMap<string, StoredRecord>;
  /** A stored row as the output holds it: .npy bytes in its dtype. */
  rowBytes(rec: StoredRecord): Promise<Uint8Array>;
  /** A stored row's descriptor (.jsonl / .json): the float32 values it was written from. */
  rowValues(rec: StoredRecord): Promise<Float32Array>;
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
  const diffs = headerDifferences({ ...(before as RunHeader), inputs: 0 }, { ...header, inputs: 0 });
  if (diffs.length > 0) throw refused(`${target} was made with different options (${diffs.join('; ')}); use --force to start over`);
}

/** Collects records, checked as resume checks them; a row without a content identity cannot be reused safely. */
class Collector {
  readonly records = new Map<string, StoredRecord>();
  rows = 0;
  failures = 0;
  complete = false;

  constructor(private readonly file: string, private readonly target: string, private readonly expect: (rows: number) => { row?: number; dim?: number }) {}

  add(line: JournalLine, number: number, start: number, end: number): void {
    if (this.complete) throw refused(`${this.file} line ${number}: a record after the summary; the output was edited`);
    if (line.type === 'summary') {
      const problem = summaryProblem(line, this.rows, this.failures);
      if (problem) throw refused(`${this.file} line ${number}: ${problem}; the output was edited`);
      this.complete = line.complete === true;
      return;
    }
    const problem = recordProblem(line, this.expect(this.rows));
    if (problem) throw refused(`${this.file} line ${number}: ${problem}; the output was edited`);
    if (line.type !== 'row' && line.type !== 'failure') return;
    if (line.box_index !== undefined) throw refused(`${this.target} holds region rows (--boxes / --grid): --update with regions is not supported yet`);
    const failed = line.type === 'failure';
    if (!failed && line.sha256 === undefined) {
      throw refused(`${this.target} records no content identity for '${line.path}' (written before outputs recorded it): rebuild it once with --force`);
    }
    const row = failed ? -1 : this.rows;
    this.records.set(recordKey(line), {
      index: line.index, path: line.path, ...(line.path_bytes !== undefined ? { path_bytes: line.path_bytes } : {}), failed,
      ...(failed ? {} : { sha256: line.sha256 }), width: failed ? 0 : line.width, height: failed ? 0 : line.height, row, start, end,
    });
    if (failed) this.failures++;
    else this.rows++;
  }

  done(): void {
    if (!this.complete) throw refused(`${this.target} is not complete (no summary saying so): finish it with --resume first, or start over with --force`);
  }
}

/** Reads a stored output; refuses one that is missing, incomplete, edited, or made with other options. */
export async function readUpdateBase(path: string, target: string, format: OutputFormat, header: RunHeader): Promise<UpdateBase> {
  switch (format) {
    case 'npy':
      return readNpyBase(path, target, header);
    case 'jsonl':
      return readJsonlBase(path, target, header);
    case 'json':
      return readJsonBase(path, target, header);
  }
}

async function readNpyBase(path: string, target: string, header: RunHeader): Promise<UpdateBase> {
  const manifest = manifestPathFor(path);
  await finalFile(path, target);
  await finalFile(manifest, target);
  const c = new Collector(manifest, target, (rows) => ({ row: rows }));
  let sawHeader = false;
  await readJournal(manifest, ({ line, number, end }) => {
    if (!sawHeader) {
      checkHeader(line, manifest, target, header);
      sawHeader = true;
      return;
    }
    c.add(line, number, 0, end);
  });
  if (!sawHeader) throw refused(`${manifest} is empty`);
  c.done();
  const data = await openRegularFile(path);
  try {
    const head = Buffer.alloc(NPY_HEADER_BYTES);
    if (data.size < NPY_HEADER_BYTES) throw refused(`${path} is shorter than an .npy header`);
    await readExactly(data.fh, path, head, NPY_HEADER_BYTES, 0);
    const problem = npyLayoutProblem(head, npyDtypeOf(header.dtype), header.dim);
    const rowBytes = npyRowBytes(header);
    if (problem) throw refused(`${path}: ${problem}`);
    if (parseNpyHeader(head).shape[0] !== c.rows || data.size !== NPY_HEADER_BYTES + c.rows * rowBytes) {
      throw refused(`${path} holds ${data.size} bytes, its manifest lists ${c.rows} rows; the output was edited`);
    }
  } catch (err) {
    await data.fh.close();
    throw err;
  }
  const rowBytes = npyRowBytes(header);
  return {
    records: c.records,
    rowBytes: async (rec) => {
      const buf = Buffer.allocUnsafe(rowBytes);
      await readExactly(data.fh, path, buf, rowBytes, NPY_HEADER_BYTES + rec.row * rowBytes);
      return buf;
    },
    rowValues: () => Promise.reject(new Error('an .npy row is copied as bytes')),
    close: () => data.fh.close(),
  };
}

/** A text output's record, read back: the float32 values its JSON numbers were written from. */
function textBase(file: RegularFile, path: string, records: ReadonlyMap<string, StoredRecord>): UpdateBase {
  return {
    records,
    rowBytes: () => Promise.reject(new Error('a text row is read as values')),
    rowValues: async (rec) => {
      const buf = Buffer.allocUnsafe(rec.end - rec.start);
      await readExactly(file.fh, path, buf, buf.length, rec.start);
      const { descriptor } = JSON.parse(buf.toString('utf8')) as { descriptor: number[] };
      return Float32Array.from(descriptor);
    },
    close: () => file.fh.close(),
  };
}

async function readJsonlBase(path: string, target: string, header: RunHeader): Promise<UpdateBase> {
  await finalFile(path, target);
  const c = new Collector(path, target, () => ({ dim: header.dim }));
  let sawHeader = false;
  let start = 0;
  await readJournal(path, ({ line, number, end }) => {
    if (!sawHeader) {
      checkHeader(line, path, target, header);
      sawHeader = true;
    } else {
      c.add(line, number, start, end - 1);
    }
    start = end;
  });
  if (!sawHeader) throw refused(`${path} does not start with an spp-extract header`);
  c.done();
  return textBase(await openRegularFile(path), path, c.records);
}

/**
 * A .json output as its writer lays it out (json-writer.ts): the header and `"items":[` on the
 * first line, one item a line, then `],"failures":[`, one failure a line, and `],"summary":{…}}`.
 */
async function readJsonBase(path: string, target: string, header: RunHeader): Promise<UpdateBase> {
  await finalFile(path, target);
  const c = new Collector(path, target, () => ({ dim: header.dim }));
  const notOurs = (n: number) => refused(`${path} line ${n} is not laid out as spp-extract writes .json; the output was edited`);
  let part: 'header' | 'items' | 'failures' | 'end' = 'header';
  let number = 0;
  await eachLine(path, (text, start) => {
    number++;
    const record = (type: 'row' | 'failure') => {
      const body = text.endsWith(',') ? text.slice(0, -1) : text;
      c.add({ type, ...parse(body, number) } as JournalLine, number, start, start + Buffer.byteLength(body));
    };
    const parse = (t: string, n: number): Record<string, unknown> => {
      try {
        return JSON.parse(t) as Record<string, unknown>;
      } catch {
        throw notOurs(n);
      }
    };
    const summaryAt = (t: string) => {
      if (!t.startsWith('],"summary":') || !t.endsWith('}')) throw notOurs(number);
      c.add({ type: 'summary', ...parse(t.slice('],"summary":'.length, -1), number) } as JournalLine, number, 0, 0);
      part = 'end';
    };
    if (part === 'header') {
      if (!text.endsWith(',"items":[')) throw notOurs(number);
      checkHeader({ type: 'header', ...parse(`${text.slice(0, -',"items":['.length)}}`, number) } as JournalLine, path, target, header);
      part = 'items';
    } else if (part === 'items') {
      if (text === '],"failures":[') part = 'failures';
      else if (text.startsWith('],"failures":[]')) summaryAt(text.slice('],"failures":['.length));
      else record('row');
    } else if (part === 'failures') {
      if (text.startsWith(']')) summaryAt(text);
      else record('failure');
    } else {
      throw notOurs(number);
    }
  });
  c.done();
  return textBase(await openRegularFile(path), path, c.records);
}

/** Each line of a file (without its newline) and its byte offset; bounded memory per line. */
async function eachLine(path: string, onLine: (text: string, start: number) => void): Promise<void> {
  const { fh } = await openRegularFile(path);
  try {
    const chunk = Buffer.allocUnsafe(1 << 20);
    let pending: Buffer[] = [];
    let lineStart = 0;
    let offset = 0;
    for (;;) {
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      const data = chunk.subarray(0, bytesRead);
      let from = 0;
      for (let nl = data.indexOf(10); nl >= 0; nl = data.indexOf(10, from)) {
        const bytes = Buffer.concat([...pending, data.subarray(from, nl)]);
        pending = [];
        onLine(bytes.toString('utf8'), lineStart);
        lineStart = offset + nl + 1;
        from = nl + 1;
      }
      if (from < data.length) pending.push(Buffer.from(data.subarray(from)));
      offset += bytesRead;
    }
    if (pending.length > 0) throw refused(`${path} does not end in a newline; the output was cut short or edited`);
  } finally {
    await fh.close();
  }
}
