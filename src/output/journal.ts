import { nestedTooDeep } from '../core/json-depth.js';
import { openRegularFile } from './regular-file.js';
import { pathFields, regionFields, type FailureRecord, type RunHeader, type RunSummary, type SidecarJson } from './records.js';

/**
 * The journal is JSONL, one event a line, in input order: a `header` with the run's options, then
 * a `row` or a `failure` for each input, then a `summary`. The .npy manifest is one (rows carry
 * their row number), a .jsonl output is one (rows carry their descriptor), and a .json output is
 * assembled from one. Because every line is whole or torn, a journal is always resumable.
 */
export type JournalLine =
  | ({ type: 'header' } & RunHeader)
  | { type: 'row'; row?: number; index: number; path: string; path_bytes?: string; key?: string; json?: SidecarJson; box_index?: number; box?: number[]; label?: string; width: number; height: number; sha256?: string; descriptor?: number[] }
  | { type: 'failure'; index: number; path: string; path_bytes?: string; key?: string; json?: SidecarJson; box_index?: number; box?: number[]; label?: string; boxes?: number; reason: string; error: string }
  | ({ type: 'summary' } & RunSummary);

/** Where one writer's lines go: a file sink, or stdout. */
export interface LineSink {
  append(text: string): Promise<void>;
}

export function headerLine(header: RunHeader): string {
  return JSON.stringify({ type: 'header', ...header }) + '\n';
}

/** A failure's fields in the order every output writes them. */
export function failureFields(rec: FailureRecord): Record<string, unknown> {
  const boxes = rec.boxes !== undefined ? { boxes: rec.boxes } : {};
  return { index: rec.index, ...pathFields(rec), ...regionFields(rec.region), ...boxes, reason: rec.reason, error: rec.error };
}

export function failureLine(rec: FailureRecord): string {
  return JSON.stringify({ type: 'failure', ...failureFields(rec) }) + '\n';
}

/** What a journal line records beside its path, as a record takes it (merge copies them on): its path bytes as a Buffer, its key and sidecar. */
export function pathExtrasOfLine(line: { path_bytes?: string; key?: unknown; json?: unknown }): { pathBytes?: Buffer; key?: string; json?: SidecarJson } {
  // A tar member's WebDataset key and sidecar (--keep-json) travel with its path (merge keeps them).
  return {
    ...(typeof line.path_bytes === 'string' ? { pathBytes: Buffer.from(line.path_bytes, 'base64') } : {}), ...(typeof line.key === 'string' ? { key: line.key } : {}),
    ...(isJsonObject(line.json) ? { json: line.json } : {}),
  };
}

const isJsonObject = (v: unknown): v is SidecarJson => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A journal line's region, back as a RegionRef (merge copies it on). */
export function regionOfLine(line: { box_index?: number; box?: number[]; label?: string }): FailureRecord['region'] {
  if (line.box_index === undefined) return undefined;
  return { boxIndex: line.box_index, box: line.box ?? [], ...(line.label !== undefined ? { label: line.label } : {}) };
}

export function summaryLine(summary: RunSummary): string {
  return JSON.stringify({ type: 'summary', ...summary }) + '\n';
}

export interface JournalEntry {
  line: JournalLine;
  /** Byte offset just after this line. */
  end: number;
  /** 1-based line number, for messages. */
  number: number;
}

/** Where reading stopped: after `lines` whole lines (`end` bytes); `torn` is the number of an unparsable or unfinished line that ended it. */
export interface JournalEnd {
  lines: number;
  end: number;
  torn?: number;
  /** The `torn` line ends in a newline: not cut off by a kill but written whole (or edited) and unparsable. */
  whole?: boolean;
}

/** Longest line a journal may hold: a .jsonl line holds one descriptor (a few MiB at most), so far above any real one. */
export const JOURNAL_MAX_LINE_BYTES = 64 * 1024 * 1024;

/** `maxLineBytes` lowers the limit (tests); `chunkBytes` is the read size. */
export interface ReadJournalOptions { maxLineBytes?: number; chunkBytes?: number }

/** A file read as a journal that cannot be one (a line longer than any we write). */
export class NotAJournal extends Error {
  constructor(readonly path: string, why: string) {
    super(`${path} is not an spp-extract journal: ${why}`);
    this.name = 'NotAJournal';
  }
}

const sizeText = (n: number) => (n % (1 << 20) === 0 ? `${n / (1 << 20)} MiB` : `${n} bytes`);

/**
 * Streams a journal's complete lines (bounded memory: a .jsonl journal holds every descriptor).
 * A torn or unparsable line ends it: what follows was never acknowledged. Only a regular file is
 * read (a FIFO or device is refused, never waited on); a line longer than the limit is refused
 * before it is gathered. Linear time: a long line's pieces are kept in a list and joined once, and
 * each byte is searched for the newline once.
 */
export async function readJournal(
  path: string,
  onLine: (entry: JournalEntry) => boolean | void | Promise<boolean | void>,
  opts: ReadJournalOptions = {},
): Promise<JournalEnd> {
  const max = opts.maxLineBytes ?? JOURNAL_MAX_LINE_BYTES;
  const chunkBytes = opts.chunkBytes ?? 1 << 20;
  const tooLong = (n: number) => new NotAJournal(path, `line ${n} is longer than ${sizeText(max)}`);
  const { fh } = await openRegularFile(path);
  const pending: Buffer[] = [];
  let pendingBytes = 0;
  let offset = 0;
  let number = 0;
  try {
    for (;;) {
      // A fresh buffer each time: the pieces of a long line are kept without copying.
      const chunk = Buffer.allocUnsafe(chunkBytes);
      const { bytesRead } = await fh.read(chunk, 0, chunkBytes, null);
      if (bytesRead === 0) break;
      const data = chunk.subarray(0, bytesRead);
      let start = 0;
      for (let nl = data.indexOf(10); nl >= 0; nl = data.indexOf(10, start)) {
        const length = pendingBytes + nl - start;
        if (length > max) throw tooLong(number + 1);
        const bytes = pending.length ? Buffer.concat([...pending, data.subarray(start, nl)], length) : data.subarray(start, nl);
        pending.length = 0;
        pendingBytes = 0;
        number++;
        let line: JournalLine;
        try {
          line = JSON.parse(bytes.toString('utf8')) as JournalLine;
        } catch {
          return { lines: number - 1, end: offset, torn: number, whole: true };
        }
        // Nested past any line a run writes: unusable as a non-JSON line is (showing or comparing it would overflow the stack).
        if (line === null || typeof line !== 'object' || nestedTooDeep(line)) return { lines: number - 1, end: offset, torn: number, whole: true };
        offset += length + 1;
        if ((await onLine({ line, end: offset, number })) === false) return { lines: number, end: offset };
        start = nl + 1;
      }
      if (start < data.length) {
        pendingBytes += data.length - start;
        if (pendingBytes > max) throw tooLong(number + 1);
        pending.push(data.subarray(start));
      }
    }
    return { lines: number, end: offset, ...(pendingBytes > 0 ? { torn: number + 1 } : {}) };
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** The whole journal in memory: for manifests (no descriptors), whose size is small. */
export async function readJournalLines(path: string, opts: ReadJournalOptions = {}): Promise<{ entries: JournalEntry[] } & JournalEnd> {
  const entries: JournalEntry[] = [];
  const end = await readJournal(path, (e) => void entries.push(e), opts);
  return { entries, ...end };
}

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const shown = (v: unknown) => (v === undefined ? 'missing' : JSON.stringify(v).slice(0, 40));

/**
 * What is wrong with a `row` or `failure` line's fields (undefined when nothing): an edited or
 * foreign journal is refused, not trusted. `row`: the row number an .npy manifest's line must
 * carry (the count of rows before it); `dim`: the descriptor length a .jsonl/.json row must have.
 * Fields it does not know are left alone.
 */
/** A summary line whose counts disagree with the records before it: the problem, else undefined. */
export function summaryProblem(summary: object, rows: number, failures: number): string | undefined {
  const said = summary as { rows?: unknown; failures?: unknown };
  if (said.rows === rows && said.failures === failures) return undefined;
  return `the summary says ${JSON.stringify(said.rows)} rows, ${JSON.stringify(said.failures)} failures; the lines before it list ${rows} rows, ${failures} failures`;
}

export function recordProblem(record: object, expect: { row?: number; dim?: number } = {}): string | undefined {
  const line = record as Record<string, unknown>;
  const bad = (field: string, want: string) => `"${field}" is ${shown(line[field])}, expected ${want}`;
  if (line.type !== 'row' && line.type !== 'failure') return bad('type', '"row" or "failure"');
  if (!isCount(line.index)) return bad('index', 'a non-negative integer');
  if (typeof line.path !== 'string') return bad('path', 'a string');
  if (line.path_bytes !== undefined && !(typeof line.path_bytes === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(line.path_bytes))) {
    return bad('path_bytes', 'base64 text');
  }
  if (line.key !== undefined && typeof line.key !== 'string') return bad('key', 'a string');
  if (line.json !== undefined && !isJsonObject(line.json)) return bad('json', 'an object');
  if (line.box_index !== undefined && !isCount(line.box_index)) return bad('box_index', 'a non-negative integer');
  if (line.box !== undefined && !(Array.isArray(line.box) && line.box.every((v) => typeof v === 'number'))) return bad('box', 'a list of numbers');
  if (line.label !== undefined && typeof line.label !== 'string') return bad('label', 'a string');
  if (line.type === 'failure') {
    if (typeof line.reason !== 'string') return bad('reason', 'a string');
    if (typeof line.error !== 'string') return bad('error', 'a string');
    if (line.boxes !== undefined && !isCount(line.boxes)) return bad('boxes', 'a non-negative integer');
    return undefined;
  }
  if (!isCount(line.width)) return bad('width', 'a non-negative integer');
  if (!isCount(line.height)) return bad('height', 'a non-negative integer');
  if (line.sha256 !== undefined && !(typeof line.sha256 === 'string' && /^[0-9a-f]{64}$/.test(line.sha256))) return bad('sha256', 'a SHA-256 in hex');
  if (expect.row !== undefined && line.row !== expect.row) return bad('row', `${expect.row} (the rows before it)`);
  if (expect.dim !== undefined) {
    const d = line.descriptor;
    // null: a non-finite value, as older runs wrote it.
    if (!Array.isArray(d) || d.length !== expect.dim || !d.every((v) => typeof v === 'number' || v === null)) {
      return `"descriptor" is not a list of ${expect.dim} numbers`;
    }
  }
  return undefined;
}
