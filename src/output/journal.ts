import { createReadStream } from 'node:fs';
import { pathFields, regionFields, type FailureRecord, type RunHeader, type RunSummary } from './records.js';

/**
 * The journal is JSONL, one event a line, in input order: a `header` with the run's options, then
 * a `row` or a `failure` for each input, then a `summary`. The .npy manifest is one (rows carry
 * their row number), a .jsonl output is one (rows carry their descriptor), and a .json output is
 * assembled from one. Because every line is whole or torn, a journal is always resumable.
 */
export type JournalLine =
  | ({ type: 'header' } & RunHeader)
  | { type: 'row'; row?: number; index: number; path: string; path_bytes?: string; box_index?: number; box?: number[]; label?: string; width: number; height: number; descriptor?: number[] }
  | { type: 'failure'; index: number; path: string; path_bytes?: string; box_index?: number; box?: number[]; label?: string; boxes?: number; reason: string; error: string }
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

/** A journal line's path bytes, back as a Buffer (merge copies them on). */
export function pathBytesOfLine(line: { path_bytes?: string }): { pathBytes?: Buffer } {
  return typeof line.path_bytes === 'string' ? { pathBytes: Buffer.from(line.path_bytes, 'base64') } : {};
}

/** A journal line's region, back as a RegionRef (merge copies it on). */
export function regionOfLine(line: { box_index?: number; box?: number[]; label?: string }): FailureRecord['region'] {
  if (line.box_index === undefined) return undefined;
  return { boxIndex: line.box_index, box: line.box ?? [], ...(line.label !== undefined ? { label: line.label } : {}) };
}

export function summaryLine(summary: RunSummary): string {
  return JSON.stringify({ type: 'summary', ...summary }) + '\n';
}

export interface JournalEntry { line: JournalLine; /** Byte offset just after this line. */ end: number }

/**
 * Streams a journal's complete lines (bounded memory: a .jsonl journal holds every descriptor).
 * A torn or unparsable line ends it: what follows was never acknowledged.
 */
export async function readJournal(
  path: string,
  onLine: (entry: JournalEntry) => boolean | void | Promise<boolean | void>,
): Promise<void> {
  let carry: Buffer = Buffer.alloc(0);
  let offset = 0;
  const stream = createReadStream(path, { highWaterMark: 1 << 20 });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let buf = carry.length ? Buffer.concat([carry, chunk]) : chunk;
      let start = 0;
      for (let nl = buf.indexOf(10, start); nl >= 0; nl = buf.indexOf(10, start)) {
        let line: JournalLine;
        try {
          line = JSON.parse(buf.toString('utf8', start, nl)) as JournalLine;
        } catch {
          return;
        }
        offset += nl + 1 - start;
        if (line === null || typeof line !== 'object' || (await onLine({ line, end: offset })) === false) return;
        start = nl + 1;
      }
      buf = buf.subarray(start);
      carry = Buffer.from(buf);
    }
  } finally {
    stream.destroy();
  }
}

/** The whole journal in memory: for manifests (no descriptors), whose size is small. */
export async function readJournalLines(path: string): Promise<JournalEntry[]> {
  const out: JournalEntry[] = [];
  await readJournal(path, (e) => void out.push(e));
  return out;
}
