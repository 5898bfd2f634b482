/**
 * `--boxes FILE`: which images to read and which boxes of each to describe. Two formats, told apart
 * by the first non-blank line:
 *
 *   JSONL  {"path": "a.jpg", "boxes": [[x0, y0, x1, y1], ...], "labels": ["cat", ...]}   one image a line
 *   CSV    path,x0,y0,x1,y1[,label]   (that header first; then one box a record; RFC 4180: quoted
 *          fields may hold commas, "" and line breaks; numbers are plain decimals)
 *
 * Lines naming the same path are grouped, in order of first appearance. Relative paths resolve
 * against the file's folder (the working directory for stdin). Coordinates are kept as given (the
 * output records them so); a box whose values are not finite numbers (an empty CSV field, null),
 * or that is empty or inverted, is that box's failure at run time, not an error here. A file whose
 * structure is wrong (a line that is not an object, "boxes" flat or holding objects or lists of
 * another length, a wrong field count) is an error naming the file, the line and the value seen. Parsing is pure (parseBoxes); readBoxesFile adds the I/O.
 */
import { readFile, stat } from 'node:fs/promises';
import { unblockFifoAtInterrupt } from '../core/interrupt-cleanup.js';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { BoxFormat } from '../core/options.js';
import { MAX_JSON_DEPTH, nestedTooDeep } from '../core/json-depth.js';

/** One box as the file gives it: numbers in the file's box format, and an optional label. */
export interface GivenBox {
  readonly values: readonly number[];
  readonly label?: string;
}

export interface BoxedImage {
  /** As resolved (absolute when the file named it relative to its folder). */
  readonly path: string;
  readonly boxes: readonly GivenBox[];
}

/** A boxes file that cannot be read: names the file and line. */
export class BoxesFileError extends Error {
  constructor(file: string, line: number | undefined, why: string) {
    super(`--boxes ${file}${line === undefined ? '' : `:${line}`}: ${why}`);
    this.name = 'BoxesFileError';
  }
}

/**
 * A number written as text: plain decimal, optional sign, fraction and exponent ("-1.5e3", ".5", "7.").
 * Not what Number() also takes: hex (0x10), binary, octal, Infinity, blanks around it, an empty field.
 */
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** Box values as the file has them: numbers (JSON) or decimal text (CSV); anything else becomes NaN (that box's failure). */
function toNumbers(v: readonly unknown[]): number[] {
  return v.map((x) => (typeof x === 'number' ? x : typeof x === 'string' && DECIMAL.test(x) ? Number(x) : NaN));
}

/** A value as the file has it, for a message: JSON, cut short when long. */
function seen(v: unknown): string {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}

const BOX_SHAPE = '[x0, y0, x1, y1] (or [x, y, w, h] with --box-format xywh)';

/**
 * What is wrong with the shape of a JSONL line's "boxes" (undefined when each box is a list of four
 * values): a flat list, objects, lists of another length. A value that is not a number (null, text
 * that is no plain decimal) is not a shape problem: that box's failure at run time, as in a CSV.
 */
function boxesShapeProblem(boxes: readonly unknown[]): string | undefined {
  if (boxes.length > 0 && boxes.every((b) => typeof b === 'number' || typeof b === 'string')) {
    return `"boxes" is ${seen(boxes)}, a flat list: it is a list of boxes, each ${BOX_SHAPE}${boxes.length === 4 ? `: write [${seen(boxes)}] for one box` : ''}`;
  }
  for (const [k, b] of boxes.entries()) {
    if (!Array.isArray(b)) {
      const what = b !== null && typeof b === 'object' ? 'an object' : b === null ? 'null' : `a ${typeof b}`;
      return `box ${k} is ${seen(b)} (${what}); each box is a list of 4 numbers ${BOX_SHAPE}`;
    }
    if (b.length !== 4) return `box ${k} is ${seen(b)}: ${b.length} value${b.length === 1 ? '' : 's'}, a box has 4 ${BOX_SHAPE}`;
    const odd = b.findIndex((x) => x !== null && typeof x !== 'number' && typeof x !== 'string');
    if (odd >= 0) return `box ${k} is ${seen(b)}: value ${odd} is ${seen(b[odd])}, not a number`;
  }
  return undefined;
}

class Collector {
  private readonly byPath = new Map<string, GivenBox[]>();
  constructor(private readonly base: string | undefined) {}

  add(path: string, box: GivenBox): void {
    const resolved = this.base === undefined || isAbsolute(path) ? path : resolve(this.base, path);
    let list = this.byPath.get(resolved);
    if (!list) this.byPath.set(resolved, (list = []));
    list.push(box);
  }

  /** An image line with no boxes still names the image (it becomes no rows, and no failures). */
  touch(path: string): void {
    const resolved = this.base === undefined || isAbsolute(path) ? path : resolve(this.base, path);
    if (!this.byPath.has(resolved)) this.byPath.set(resolved, []);
  }

  images(): BoxedImage[] {
    return [...this.byPath].map(([path, boxes]) => ({ path, boxes }));
  }
}

function parseJsonl(text: string, file: string, into: Collector): void {
  const lines = text.split('\n');
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '') continue;
    const at = i + 1;
    let rec: { path?: unknown; boxes?: unknown; labels?: unknown };
    try {
      rec = JSON.parse(line) as typeof rec;
    } catch {
      throw new BoxesFileError(file, at, `${seen(line)} is not a JSON object (JSONL: one {"path", "boxes"} object a line)`);
    }
    if (nestedTooDeep(rec)) throw new BoxesFileError(file, at, `lists or objects nested more than ${MAX_JSON_DEPTH} levels deep; a line is {"path", "boxes": [[x0, y0, x1, y1], …]}`);
    if (rec === null || typeof rec !== 'object' || Array.isArray(rec)) throw new BoxesFileError(file, at, `${seen(rec)} is not a JSON object (JSONL: one {"path", "boxes"} object a line)`);
    if (typeof rec.path !== 'string' || rec.path === '') throw new BoxesFileError(file, at, `"path" is ${rec.path === undefined ? 'missing' : seen(rec.path)}; it must be a non-empty string`);
    if (!Array.isArray(rec.boxes)) throw new BoxesFileError(file, at, `"boxes" is ${seen(rec.boxes)}; it must be a list of boxes, each ${BOX_SHAPE}`);
    const shape = boxesShapeProblem(rec.boxes);
    if (shape) throw new BoxesFileError(file, at, shape);
    const labels = rec.labels;
    if (labels !== undefined && !(Array.isArray(labels) && labels.length === rec.boxes.length && labels.every((l) => typeof l === 'string'))) {
      throw new BoxesFileError(file, at, `"labels" is ${seen(labels)}; it must be a list of ${rec.boxes.length} strings, one per box`);
    }
    into.touch(rec.path);
    rec.boxes.forEach((b, k) => into.add(rec.path as string, { values: toNumbers(b as unknown[]), ...(labels ? { label: labels[k] as string } : {}) }));
  }
}

/**
 * One CSV record from `pos` (RFC 4180): fields split by commas, a quoted field may hold commas, ""
 * for a quote and line breaks; the record ends at a line break outside quotes (CRLF or LF) or the
 * end. Undefined for an unterminated quote or text after a closing quote.
 */
function csvRecord(text: string, pos: number): { fields: string[]; next: number } | undefined {
  const fields: string[] = [];
  const stop = /[,\n]/g;
  let i = pos;
  for (;;) {
    if (text[i] === '"') {
      let value = '';
      i++;
      for (;;) {
        const q = text.indexOf('"', i);
        if (q < 0) return undefined; // unterminated quote
        value += text.slice(i, q);
        i = q + 1;
        if (text[i] !== '"') break;
        value += '"';
        i++;
      }
      fields.push(value);
      if (text[i] === ',') {
        i++;
        continue;
      }
      const end = text.startsWith('\r\n', i) ? i + 2 : text[i] === '\n' || i === text.length ? i + 1 : -1;
      return end < 0 ? undefined : { fields, next: end };
    }
    stop.lastIndex = i;
    const at = stop.exec(text)?.index ?? text.length;
    if (text[at] === ',') {
      fields.push(text.slice(i, at));
      i = at + 1;
      continue;
    }
    fields.push(text.slice(i, at).replace(/\r$/, ''));
    return { fields, next: at + 1 };
  }
}

/** One CSV line's fields (RFC 4180 quotes); undefined when it is not one whole record. */
export function csvFields(line: string): string[] | undefined {
  const r = csvRecord(line, 0);
  return r && r.next >= line.length ? r.fields : undefined;
}

const CSV_HEADER = ['path', 'x0', 'y0', 'x1', 'y1'];

/** Line breaks in text[from, to): to number the lines of records that span several. */
function linesIn(text: string, from: number, to: number): number {
  let n = 0;
  for (let i = text.indexOf('\n', from); i >= 0 && i < to; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

function parseCsv(text: string, file: string, into: Collector): void {
  let header: string[] | undefined;
  let labelled = false;
  for (let pos = 0, line = 1; pos < text.length;) {
    const eol = text.indexOf('\n', pos);
    const lineEnd = eol < 0 ? text.length : eol;
    if (text.slice(pos, lineEnd).trim() === '') {
      [pos, line] = [lineEnd + 1, line + 1];
      continue;
    }
    const rec = csvRecord(text, pos);
    if (!header) {
      header = rec?.fields.map((f) => f.trim().toLowerCase());
      labelled = header?.length === 6 && header[5] === 'label';
      if (!header || !(header.length === 5 || labelled) || !CSV_HEADER.every((h, k) => header![k] === h)) {
        throw new BoxesFileError(file, line, 'a CSV boxes file starts with the header path,x0,y0,x1,y1[,label] (or use JSONL)');
      }
    } else {
      const f = rec?.fields;
      if (!f || f.length !== header.length) throw new BoxesFileError(file, line, `expected ${header.length} comma-separated fields (${header.join(',')})`);
      if (f[0] === '') throw new BoxesFileError(file, line, 'empty path');
      into.add(f[0], { values: toNumbers(f.slice(1, 5)), ...(labelled ? { label: f[5] } : {}) });
    }
    line += linesIn(text, pos, rec!.next);
    pos = rec!.next;
  }
}

/**
 * The images and boxes a boxes file names, in order of first appearance. `base`: the folder relative
 * paths resolve against (undefined keeps them as written). `file` names the source in errors.
 */
export function parseBoxes(text: string, file: string, base?: string): BoxedImage[] {
  const into = new Collector(base);
  const first = text.replace(/^\uFEFF/, '').trimStart();
  if (first === '') return [];
  if (first.startsWith('{')) parseJsonl(text.replace(/^\uFEFF/, ''), file, into);
  else parseCsv(text.replace(/^\uFEFF/, ''), file, into);
  return into.images();
}

const MAX_BOXES_BYTES = 2 ** 31 - 1;

/** Reads `--boxes FILE` (or `-`, stdin): relative paths against the file's folder, or the working directory for stdin. */
export async function readBoxesFile(file: string, stdin: NodeJS.ReadableStream = process.stdin): Promise<BoxedImage[]> {
  if (file === '-') {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of stdin as AsyncIterable<Buffer | string>) {
      const chunk = Buffer.isBuffer(c) ? c : Buffer.from(c);
      // As for a file (Node reads at most 2 GiB at once): a bound, not a crash when memory runs out.
      if ((size += chunk.byteLength) > MAX_BOXES_BYTES) throw new BoxesFileError('-', undefined, 'more than 2 GiB on stdin; split the boxes into several runs');
      chunks.push(chunk);
    }
    return parseBoxes(Buffer.concat(chunks).toString('utf8'), '-', process.cwd());
  }
  // A device (a link to /dev/zero) would be read until memory runs out: only files and FIFOs are boxes files.
  const st = await stat(file).catch(() => undefined);
  if (st && !st.isFile() && !st.isFIFO()) throw new BoxesFileError(file, undefined, 'is not a regular file or a FIFO');
  if (st && st.size > MAX_BOXES_BYTES) throw new BoxesFileError(file, undefined, 'is over 2 GiB; split the boxes into several runs');
  let text: string;
  // A FIFO (mkfifo, <(…)) is read as a file is; a signal while its writer has not come must not hang the exit.
  const forget = unblockFifoAtInterrupt(file, 'read');
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new BoxesFileError(file, undefined, `cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  } finally {
    forget();
  }
  return parseBoxes(text, file, dirname(resolve(file)));
}

/** Box values in the file's format → [x0, y0, x1, y1]; xywh adds width and height. Other lengths pass through (a failure later). */
export function toXyxy(values: readonly number[], format: BoxFormat): number[] {
  if (format === 'xyxy' || values.length !== 4) return [...values];
  const [x, y, w, h] = values;
  return [x, y, x + w, y + h];
}

/** What a region run describes in each image: the boxes a file gives, or an even grid. */
export type RegionPlan =
  | { readonly kind: 'boxes'; readonly boxes: readonly GivenBox[]; readonly format: BoxFormat }
  | { readonly kind: 'grid'; readonly rows: number; readonly cols: number; readonly full: boolean };

/** How many records (rows or box failures) an image makes under `plan`, unless it fails as a whole. */
export function recordsOf(plan: RegionPlan): number {
  return plan.kind === 'boxes' ? plan.boxes.length : plan.rows * plan.cols + (plan.full ? 1 : 0);
}
