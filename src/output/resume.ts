import { lstat, open } from 'node:fs/promises';
import { basename } from 'node:path';
import { NPY_HEADER_BYTES, npyDtypeOf, npyLayoutProblem, npyRowBytes, parseNpyHeader } from './npy.js';
import { OutputError, OutputRefused } from './errors.js';
import { partialPath } from './file-sink.js';
import { outputIo } from './io.js';
import { NotAJournal, readJournal, recordProblem, summaryProblem, type JournalEntry, type JournalLine } from './journal.js';
import { jsonJournalPath } from './json-writer.js';
import { manifestPathFor } from './manifest.js';
import type { OutputFormat, RunHeader } from './records.js';
import { NotRegularFile, openRegularFile, readExactly } from './regular-file.js';
import { flagOfHeaderField } from '../core/options.js';
import { sidecarIdentity, withSidecar } from '../core/json-identity.js';

/**
 * One input as the run sees it: its position in the full input list and its path; in a region run,
 * how many records (rows and box failures) it makes when it does not fail as a whole (default 1).
 */
export interface ResumeItem {
  index: number; path: string; pathBytes?: Buffer; records?: number;
  /** Its bytes' SHA-256 where the listing knows it (tar members): a row that records another was of other bytes. */
  sha256?: string;
}

export type ResumeOutcome =
  | { kind: 'fresh' }
  | { kind: 'complete'; rows: number; failures: number }
  | { kind: 'resume'; startAt: number; rows: number; failures: number; journalBytes: number; dataBytes: number };

/**
 * Header fields that must match for rows of two runs to be interchangeable, each named by its
 * flag where it has one (`--levels: [1,2,4] before, [6,3,2,1] now`). A header written before the
 * model's format was renamed `modelFormat` (it said `format`) is read as the new one, so such
 * runs still resume and merge.
 */
export function headerDifferences(a: RunHeader, b: RunHeader): string[] {
  const [x, y] = [currentHeader(a), currentHeader(b)];
  const keys = new Set([...Object.keys(x), ...Object.keys(y)]);
  // An output from before headers recorded the model's content cannot be checked for it (modelUnchecked).
  if (modelUnchecked(a, b)) keys.delete('modelSha256');
  // Provenance: a resume or merge under another version of a library is still the same run.
  keys.delete('versions');
  // Outputs from before 0.2 do not say where their relative paths start.
  if (a.relativeTo === undefined || b.relativeTo === undefined) keys.delete('relativeTo');
  return [...keys]
    .filter((k) => JSON.stringify(x[k]) !== JSON.stringify(y[k]))
    .map((k) => `${FIELD_NAMES[k] ?? flagOfHeaderField(k) ?? k}: ${JSON.stringify(x[k])} before, ${JSON.stringify(y[k])} now`);
}

/** Header fields no option sets, named for what they are. */
const FIELD_NAMES: Record<string, string> = {
  modelSha256: 'the model\'s content (SHA-256 of its files; same --model, another model)',
  relativeTo: 'the folder relative paths start from (the working folder: run it from the same folder)',
};

/** One of the two headers predates the model's content identity: the model cannot be compared. */
export function modelUnchecked(a: RunHeader, b: RunHeader): boolean {
  return (a.modelSha256 === undefined) !== (b.modelSha256 === undefined);
}

/** The warning a resume or merge gives when it cannot compare the models. */
export const modelUncheckedWarning = (file: string) =>
  `${file} was written before outputs recorded the model's content: cannot check that its rows come from the same model file`;

function currentHeader(h: RunHeader): Record<string, unknown> {
  const { format, ...rest } = h as RunHeader & { format?: unknown };
  const current: Record<string, unknown> = format !== undefined && rest.modelFormat === undefined ? { ...rest, modelFormat: format } : { ...h };
  // A projection is the same by its content (SHA-256), wherever each run read it from.
  if (h.pca) current.pca = { ...h.pca, source: undefined };
  return current;
}

interface Located { path: string; temp: boolean }

/**
 * The interrupted run's temp file if there is one, else the final file; only regular files count.
 * `tempsOnly` (--update): the final file is the output being updated, never this run's.
 */
async function locate(finalPath: string, target: string, tempsOnly = false): Promise<Located | undefined> {
  const where: [string, boolean][] = [[partialPath(finalPath), true], ...(tempsOnly ? [] : [[finalPath, false] as [string, boolean]])];
  for (const [path, temp] of where) {
    const st = await lstat(path).catch(() => undefined);
    if (!st) continue;
    if (!st.isFile()) throw new OutputRefused(`-o ${target}: ${path} is not a regular file; refusing to resume into it`);
    return { path, temp };
  }
  return undefined;
}

const foreign = (target: string, path: string, why: string) =>
  new OutputRefused(`-o ${target}: ${basename(path)} ${why}: not a run spp-extract can resume; left untouched (use --force to replace it, or another -o)`);

/** What the journal says, checked line by line against the options and the input list. */
interface JournalState { startAt: number; rows: number; failures: number; journalBytes: number; complete: boolean; sawHeader: boolean }

/** The records of the input being read: committed to the state once all of them are there; `sha256` of a whole image's row (core/json-identity.ts withSidecar). */
interface OpenItem { lines: number; rows: number; failures: number; sha256?: string }

/** How the walk runs for --update: temp files only, and the content identity of each input done (withSidecar; undefined: it failed). */
interface UpdateWalk { tempsOnly: boolean; identities?: (string | undefined)[] }

/**
 * Reads the journal up to the last input whose records are all there (a region run writes several
 * per image; a kill can leave an image half written, which is then done again) and, for .npy, whose
 * rows all reached the data file (`rowsOnDisk`). Every record is checked, not trusted: its fields,
 * and in a manifest (`numbered`) its row number against the rows before it; in a .jsonl/.json
 * journal, its descriptor's length.
 */
async function walkJournal(
  path: string, target: string, header: RunHeader, items: readonly ResumeItem[], warn: Warn, rowsOnDisk = Infinity, numbered = false,
  identities?: (string | undefined)[],
): Promise<JournalState> {
  const s: JournalState = { startAt: 0, rows: 0, failures: 0, journalBytes: 0, complete: false, sawHeader: false };
  let open: OpenItem = { lines: 0, rows: 0, failures: 0 };
  const read = await readJournal(path, ({ line, end, number }: JournalEntry) => {
    if (!s.sawHeader) return checkHeader(line, path, target, header, s, end, warn);
    if (line.type === 'summary') {
      s.complete = line.complete === true && s.startAt === items.length && open.lines === 0;
      const problem = s.complete ? summaryProblem(line, s.rows, s.failures) : undefined;
      if (problem) throw edited(path, number, problem);
      return false;
    }
    const problem = recordProblem(line, numbered ? { row: s.rows + open.rows } : { dim: header.dim });
    if (problem) throw edited(path, number, problem);
    if (line.type !== 'row' && line.type !== 'failure') return false;
    const expected = items[s.startAt];
    // By bytes: a name that is not UTF-8 is its escape in `path` and its bytes in `path_bytes`.
    if (line.index !== expected?.index || line.path !== expected?.path || line.path_bytes !== expected.pathBytes?.toString('base64')) {
      const what = line.path === expected?.path && line.path_bytes === expected.pathBytes?.toString('base64')
        ? `'${line.path}' was input ${line.index} before and is input ${expected.index} now`
        : `input ${expected?.index ?? s.startAt} was '${line.path}' before and is '${expected?.path ?? '(none)'}' now`;
      throw new OutputRefused(`--resume: ${what}; the input list changed; use --force to start over`);
    }
    if (line.type === 'row' && expected.sha256 !== undefined && line.sha256 !== undefined && line.sha256 !== expected.sha256) {
      throw new OutputRefused(`--resume: ${expected.path} changed since the interrupted run (its SHA-256 differs); use --force to start over`);
    }
    if (line.type === 'row') {
      if (s.rows + open.rows >= rowsOnDisk) return false; // journalled, but its bytes never reached the disk
      open.rows++;
      // With its kept sidecar's identity (--keep-json): what --update compares (pipeline/update.ts).
      open.sha256 = withSidecar(line.sha256, sidecarIdentity(line.json));
    } else {
      open.failures++;
    }
    open.lines++;
    // An image that failed as a whole is one record, however many boxes it had.
    const whole = line.type === 'failure' && line.box_index === undefined;
    if (whole || open.lines === (expected.records ?? 1)) {
      s.rows += open.rows;
      s.failures += open.failures;
      s.startAt++;
      s.journalBytes = end;
      identities?.push(open.failures === 0 ? open.sha256 : undefined);
      open = { lines: 0, rows: 0, failures: 0 };
    }
  }).catch((err) => {
    if (err instanceof NotAJournal || err instanceof NotRegularFile) throw foreign(target, path, err.message.slice(err.path.length + 1));
    throw err;
  });
  // A kill cuts the last line short; a whole line that is not JSON was put there some other way.
  if (read.whole && read.torn !== undefined) throw edited(path, read.torn, 'the line is not JSON (whole, not cut off by a kill)');
  return s;
}

const edited = (path: string, line: number, problem: string) =>
  new OutputRefused(`--resume: ${path} line ${line}: ${problem}; the journal was edited or is not this run's; left untouched (use --force to start over)`);

type Warn = (message: string) => void;

function checkHeader(line: JournalLine, path: string, target: string, header: RunHeader, s: JournalState, end: number, warn: Warn): void {
  if (line.type !== 'header' || line.tool !== 'spp-extract') throw foreign(target, path, 'does not start with an spp-extract header');
  const { type: _type, ...before } = line;
  if (modelUnchecked(before as RunHeader, header)) warn(modelUncheckedWarning(target));
  const diffs = headerDifferences(before as RunHeader, header);
  if (diffs.length > 0) {
    throw new OutputRefused(`--resume: ${target} was made with different options (${diffs.join('; ')}); use --force to start over`);
  }
  s.sawHeader = true;
  s.journalBytes = end;
}

/** Puts final files back under their temp names, so the run goes on where a kill would have left it. */
async function backToTemp(target: string, files: Located[]): Promise<void> {
  for (const f of files) {
    if (f.temp) continue;
    await outputIo().rename(f.path, partialPath(f.path)).catch((err) => {
      throw new OutputError(target, `cannot reopen ${basename(f.path)}`, err);
    });
  }
}

/** What the .npy holds: whole rows on disk, the row count its header claims, its size. */
interface NpyOnDisk { rows: number; headerRows: number; size: number }

/**
 * Reads the data file's header: ours (v1.0, the run's dtype and width, C order) and claiming 0 rows
 * (a run in progress) or exactly the rows on disk (a finished one).
 */
async function npyRowsOnDisk(data: Located, target: string, header: RunHeader): Promise<NpyOnDisk> {
  const not = (why: string) => foreign(target, data.path, `is not an spp-extract .npy of ${header.dim} ${header.dtype} columns (${why})`);
  const { fh, size } = await openRegularFile(data.path).catch((err) => {
    throw err instanceof NotRegularFile ? foreign(target, data.path, err.message.slice(err.path.length + 1)) : err;
  });
  const head = Buffer.alloc(NPY_HEADER_BYTES);
  try {
    if (size < NPY_HEADER_BYTES) throw not(`${size} bytes, shorter than a header`);
    await readExactly(fh, data.path, head, NPY_HEADER_BYTES, 0);
  } finally {
    await fh.close();
  }
  const problem = npyLayoutProblem(head, npyDtypeOf(header.dtype), header.dim);
  if (problem) throw not(problem);
  const rows = Math.floor((size - NPY_HEADER_BYTES) / npyRowBytes(header));
  const headerRows = parseNpyHeader(head).shape[0];
  if (headerRows !== 0 && headerRows !== rows) throw not(`its header says ${headerRows} rows, ${rows} are on disk`);
  return { rows, headerRows, size };
}

/**
 * .npy: the manifest says which inputs are done, the .npy's length says how many rows really
 * reached the disk; the smaller wins and both files are cut back to that point.
 */
async function resumeNpy(path: string, target: string, header: RunHeader, items: readonly ResumeItem[], warn: Warn, update?: UpdateWalk): Promise<ResumeOutcome> {
  const data = await locate(path, target, update?.tempsOnly);
  const journal = await locate(manifestPathFor(path), target, update?.tempsOnly);
  if (!data && !journal) return { kind: 'fresh' };
  if (update && (!data || !journal)) return { kind: 'fresh' }; // killed between creating the two
  if (!journal) {
    if (data!.temp) return { kind: 'fresh' }; // killed between creating the two files
    throw foreign(target, data!.path, `has no manifest ${basename(manifestPathFor(path))}`);
  }
  if (!data) throw foreign(target, journal.path, `has no data file ${basename(path)} beside it`);
  // Options first: a changed --levels also changes the width, and that is the better message.
  const first = await walkJournal(journal.path, target, header, items, warn, 0, true);
  if (!first.sawHeader) {
    if (journal.temp) return { kind: 'fresh' }; // killed before the header reached the disk
    throw foreign(target, journal.path, 'is empty');
  }
  const disk = await npyRowsOnDisk(data, target, header);
  const s = await walkJournal(journal.path, target, header, items, () => undefined, disk.rows, true, update?.identities);
  const dataBytes = NPY_HEADER_BYTES + s.rows * npyRowBytes(header);
  if (s.complete && !data.temp && !journal.temp) {
    // "Already complete" is a promise about the data too: exactly the manifest's rows, header saying so.
    if (disk.headerRows !== s.rows || disk.size !== dataBytes) {
      throw foreign(target, data.path, `holds ${disk.size} bytes with a header of ${disk.headerRows} rows, but its manifest lists ${s.rows} rows`);
    }
    return { kind: 'complete', rows: s.rows, failures: s.failures };
  }
  await backToTemp(target, [data, journal]);
  return { kind: 'resume', ...s, dataBytes };
}

/** .jsonl: its own lines are the journal; a torn last line is cut. */
async function resumeJsonl(path: string, target: string, header: RunHeader, items: readonly ResumeItem[], warn: Warn, update?: UpdateWalk): Promise<ResumeOutcome> {
  const file = await locate(path, target, update?.tempsOnly);
  if (!file) return { kind: 'fresh' };
  const s = await walkJournal(file.path, target, header, items, warn, Infinity, false, update?.identities);
  if (!s.sawHeader) {
    if (file.temp) return { kind: 'fresh' };
    throw foreign(target, file.path, 'does not start with an spp-extract header');
  }
  if (s.complete && !file.temp) return { kind: 'complete', rows: s.rows, failures: s.failures };
  await backToTemp(target, [file]);
  return { kind: 'resume', ...s, dataBytes: s.journalBytes };
}

/** .json: resumes from its journal; a finished file without one is either complete or not ours. */
async function resumeJson(path: string, target: string, header: RunHeader, items: readonly ResumeItem[], warn: Warn, update?: UpdateWalk): Promise<ResumeOutcome> {
  const journal = jsonJournalPath(path);
  const st = await lstat(journal).catch(() => undefined);
  if (st?.isFile()) {
    const s = await walkJournal(journal, target, header, items, warn, Infinity, false, update?.identities);
    if (s.sawHeader) return { kind: 'resume', ...s, dataBytes: s.journalBytes };
  }
  if (update) return { kind: 'fresh' };
  const final = await lstat(path).catch(() => undefined);
  if (!final) return { kind: 'fresh' };
  if (!final.isFile()) throw new OutputRefused(`-o ${target}: is not a regular file; refusing to resume into it`);
  const [head, tail] = await readEnds(path, final.size);
  if (!head.startsWith('{"tool":"spp-extract"')) throw foreign(target, path, 'is not an spp-extract .json');
  const done = /"summary":\{"rows":(\d+),"failures":(\d+),"complete":true\}\}\n$/.exec(tail);
  if (done) {
    if (!head.startsWith(JSON.stringify(header).slice(0, -1))) {
      throw new OutputRefused(`--resume: ${target} was made with different options; use --force to start over`);
    }
    return { kind: 'complete', rows: Number(done[1]), failures: Number(done[2]) };
  }
  throw foreign(target, path, 'has no journal to resume from');
}

/** The first and last few KiB of a file, as text. */
async function readEnds(path: string, size: number): Promise<[string, string]> {
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(Math.min(size, 1 << 16));
    const tail = Buffer.alloc(Math.min(size, 256));
    await fh.read(head, 0, head.length, 0);
    await fh.read(tail, 0, tail.length, size - tail.length);
    return [head.toString('utf8'), tail.toString('utf8')];
  } finally {
    await fh.close();
  }
}

/** Works out how much of an earlier run of this output is done, for every format. */
export function findResumePoint(
  path: string, target: string, format: OutputFormat, header: RunHeader, items: readonly ResumeItem[], warn: Warn = () => undefined, update?: UpdateWalk,
): Promise<ResumeOutcome> {
  switch (format) {
    case 'npy':
      return resumeNpy(path, target, header, items, warn, update);
    case 'jsonl':
      return resumeJsonl(path, target, header, items, warn, update);
    case 'json':
      return resumeJson(path, target, header, items, warn, update);
  }
}

/** Where an interrupted --update's temp files stand: how far they go, with each done input's SHA-256 (undefined: it failed). */
export type UpdateContinuation =
  | { kind: 'fresh' }
  | { kind: 'stale' }
  | { kind: 'resume'; point: Extract<ResumeOutcome, { kind: 'resume' }>; identities: (string | undefined)[] };

/**
 * --update over the temp files an interrupted --update of this output left: they continue when they
 * are this run's (same header, the same inputs up to where they end); else they are stale (the
 * inputs or options changed since) and the run starts over. The final files, the output being
 * updated, are never read or moved here.
 */
export async function findUpdateContinuation(
  path: string, target: string, format: OutputFormat, header: RunHeader, items: readonly ResumeItem[],
): Promise<UpdateContinuation> {
  const identities: (string | undefined)[] = [];
  try {
    const point = await findResumePoint(path, target, format, header, items, () => undefined, { tempsOnly: true, identities });
    return point.kind === 'resume' ? { kind: 'resume', point, identities } : { kind: 'fresh' };
  } catch (err) {
    if (err instanceof OutputRefused) return { kind: 'stale' };
    throw err;
  }
}
