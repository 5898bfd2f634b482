import { promises as fsp, type Dirent, type Stats } from 'node:fs';
import path from 'node:path';
import { getSystemErrorMap } from 'node:util';
import { pathOfBytes, type PathText } from '../core/path-text.js';
import { isTarPath, listTar, type TarMemberRef } from './tar.js';

/**
 * Extensions picked up when walking a directory (lowercase, with dot). Includes formats the bundled
 * sharp cannot decode (BMP, ICO, TGA, JPEG 2000, PNM, HEIC...) on purpose: such files then end as
 * recorded 'unsupported-format' failures instead of being skipped without a trace. Camera raw
 * formats (.dng, .cr2, .nef...) are left out: folders often hold RAW+JPEG pairs of the same shot.
 */
export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set([
  '.jpg', '.jpeg', '.jpe', '.jfif', '.mpo',
  '.png', '.apng',
  '.webp',
  '.gif',
  '.avif', '.avifs', '.heic', '.heif',
  '.tif', '.tiff',
  '.svg', '.svgz',
  '.jp2', '.j2k', '.jpf', '.jpx',
  '.jxl',
  '.bmp', '.dib',
  '.ppm', '.pgm', '.pbm', '.pnm', '.pam', '.pfm',
  '.tga', '.ico',
  '.exr', '.hdr', '.fits', '.fit',
]);

export interface ExpandOptions {
  /** Stream read for the '-' argument (default process.stdin). */
  stdin?: NodeJS.ReadableStream;
  /** stdin paths are NUL-separated (find -print0) instead of one per line. */
  nulSeparated?: boolean;
  /** Tar members' bytes are hashed while listed (--resume, --update: inputs/tar.ts). */
  hashMembers?: boolean;
  /** Extensions kept when walking directories (default IMAGE_EXTENSIONS). Lowercase with dot. */
  extensions?: ReadonlySet<string>;
  /** Tar members' refs say where their sample's `key.json` is (--keep-json; inputs/tar.ts). */
  keepJson?: boolean;
  /** @deprecated no longer called: a folder that cannot be read is now an entry with a `failure`. */
  onWarning?: (message: string) => void;
}

/** Why a walk could not look into an entry: the run records it as a failure without decoding it. */
export interface InputFailure {
  /** Tar members can also be 'truncated', 'corrupt' (the archive) or 'too-large' (inputs/tar.ts). */
  readonly reason: 'unreadable' | 'truncated' | 'corrupt' | 'too-large';
  /** What failed and the system's reason: "cannot read folder: permission denied (EACCES)". */
  readonly error: string;
}

export interface InputEntry extends PathText {
  /**
   * As given, or the given directory / glob base joined with the relative path; never made absolute.
   * A name that is not valid UTF-8 is escaped here and its bytes are in `pathBytes` (core/path-text.ts).
   */
  path: string;
  source: 'file' | 'directory' | 'glob' | 'stdin' | 'tar';
  /** A folder or entry of a walk that could not be read or stat'ed (never left out silently). */
  failure?: InputFailure;
  /** A member of a tar archive (path is `ARCHIVE#NAME`): where the run reads its bytes. */
  member?: TarMemberRef;
  /** --keep-json: a member the listing failed whose sample has a sidecar (inputs/tar.ts TarInput.sample). */
  sample?: TarMemberRef;
}

/**
 * The ordering rule for glob matches (and directory walks, which sort each folder's names by their
 * bytes: the same order for UTF-8 names outside U+E000..U+FFFF): compare the '/'-separated components
 * one by one, each by plain UTF-16 code-unit order (= byte order for ASCII names); a path that is a
 * prefix of another comes first. So 'a/b.jpg' < 'a.jpg' ('a' < 'a.jpg') and 'B.jpg' < 'a.jpg':
 * locale-independent and identical on every machine.
 */
export function comparePaths(a: string, b: string): number {
  const A = a.split('/');
  const B = b.split('/');
  const n = Math.min(A.length, B.length);
  for (let i = 0; i < n; i++) {
    const x = A[i]!;
    const y = B[i]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return A.length - B.length;
}

const GLOB_CHARS = /[*?[{]/;
// Characters that make a path segment a pattern for tinyglobby (picomatch), incl. extglob.
const PATTERN_SEGMENT = /[*?[\]{}()!+@]/;

async function statOrUndefined(p: string | Buffer): Promise<Stats | undefined> {
  try {
    return await fsp.stat(p);
  } catch {
    return undefined;
  }
}

/** A path named on the command line that is not there (ENOENT, ENOTDIR), or undefined; a dangling link says so. */
async function missingWhy(p: string): Promise<string | undefined> {
  try {
    await fsp.stat(p);
    return undefined;
  } catch (err) {
    if (!isGone(err)) return undefined; // there but unreadable (EACCES, ELOOP…): the decoder records why
    const link = await fsp.lstat(p).then((st) => st.isSymbolicLink(), () => false);
    return link ? `'${p}' (a link to a path that does not exist)` : `'${p}'`;
  }
}

/**
 * A named input that is not there: a typo, found before anything is written (a run over a typo would
 * leave an output that the corrected run then has to --force over).
 */
export class MissingInputError extends Error {
  constructor(readonly missing: readonly string[]) {
    super(`no such file or folder: ${missing.join(', ')}; inputs named on the command line must exist (nothing written)`);
    this.name = 'MissingInputError';
  }
}

/** NUL bytes on stdin without -0: a `find -print0` list read as lines would be one long path. */
export class NulSeparatedError extends Error {
  constructor() {
    super('the paths on stdin contain NUL bytes: use -0 for a NUL-separated list (find … -print0 | spp-extract -0 - -o …)');
    this.name = 'NulSeparatedError';
  }
}

/*
 * The walk works on "binary strings" (latin1: one char per byte) so names that are not UTF-8 keep
 * their bytes, while path.join and the sorting still see '/' and '.' as themselves.
 */
const binOf = (text: string) => Buffer.from(text, 'utf8').toString('latin1');
const bytesOf = (bin: string) => Buffer.from(bin, 'latin1');
const entryOf = (bin: string, failure?: InputFailure): InputEntry =>
  ({ ...pathOfBytes(bytesOf(bin)), source: 'directory', ...(failure ? { failure } : {}) });
/** libuv's words for the error, with its code: "permission denied (EACCES)". */
function systemText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const text = typeof e.errno === 'number' ? getSystemErrorMap().get(e.errno)?.[1] : undefined;
  return text && e.code ? `${text} (${e.code})` : String(e.message ?? err);
}
const unreadable = (what: string, err: unknown): InputFailure => ({ reason: 'unreadable', error: `${what}: ${systemText(err)}` });
/** Gone between the listing and the look: removed since, or a dangling link. */
const isGone = (err: unknown) => ['ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '');

/**
 * Depth-first walk with each directory's entries sorted by their bytes. Iterative (explicit
 * stack). Hidden entries skipped. Symlinks are followed; a directory already visited in this walk
 * (same dev:ino) is not entered again, which stops symlink loops. A dangling symlink with an image
 * extension is kept so the decoder records it as missing. Nothing is left out silently: a folder
 * that cannot be read, or an entry that cannot be stat'ed (EACCES, ELOOP, ENAMETOOLONG past
 * PATH_MAX …), becomes an entry with a `failure`, where the walk would have been; only an entry
 * removed since it was listed is skipped.
 */
async function walkDirectory(root: string, rootStats: Stats, exts: ReadonlySet<string>, maxDepth = Infinity): Promise<InputEntry[]> {
  const out: InputEntry[] = [];
  const visited = new Set<string>();
  type Item = { kind: 'dir'; bin: string; stats: Stats; depth: number } | { kind: 'entry'; entry: InputEntry };
  const stack: Item[] = [{ kind: 'dir', bin: binOf(root), stats: rootStats, depth: 0 }];

  while (stack.length > 0) {
    const item = stack.pop()!;
    if (item.kind === 'entry') {
      out.push(item.entry);
      continue;
    }
    const id = `${item.stats.dev}:${item.stats.ino}`;
    if (visited.has(id)) continue;
    visited.add(id);

    let listed: Dirent[];
    try {
      // Names as bytes: a name that is not UTF-8 would otherwise come back with U+FFFD in it.
      listed = (await fsp.readdir(bytesOf(item.bin), { withFileTypes: true, encoding: 'buffer' })) as unknown as Dirent[];
    } catch (err) {
      if (!isGone(err)) out.push(entryOf(item.bin, unreadable('cannot read folder', err)));
      continue;
    }
    const entries = listed.map((e) => ({ e, name: (e.name as unknown as Buffer).toString('latin1') }));
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const children: Item[] = [];
    for (const { e, name } of entries) {
      if (name.startsWith('.')) continue;
      const p = path.join(item.bin, name);
      const wanted = exts.has(path.extname(name).toLowerCase());
      if (e.isFile()) {
        if (wanted) children.push({ kind: 'entry', entry: entryOf(p) });
        continue;
      }
      if (e.isFIFO() || e.isSocket() || e.isCharacterDevice() || e.isBlockDevice()) continue;
      // A folder, a symlink, or a file system that reports no type: ask stat (follows links).
      let st: Stats;
      try {
        st = await fsp.stat(bytesOf(p));
      } catch (err) {
        if (!isGone(err)) children.push({ kind: 'entry', entry: entryOf(p, unreadable('cannot stat', err)) });
        else if (wanted && e.isSymbolicLink()) children.push({ kind: 'entry', entry: entryOf(p) });
        continue;
      }
      if (st.isDirectory()) {
        if (item.depth < maxDepth) children.push({ kind: 'dir', bin: p, stats: st, depth: item.depth + 1 });
      }
      else if (st.isFile() && wanted) children.push({ kind: 'entry', entry: entryOf(p) });
    }
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!);
  }
  return out;
}

/** Splits a glob into its literal leading directories and the pattern part. */
function splitGlob(pattern: string): { base: string; rest: string } {
  const segs = pattern.split('/');
  let i = 0;
  while (i < segs.length - 1 && !PATTERN_SEGMENT.test(segs[i]!)) i++;
  const base = segs.slice(0, i).join('/');
  // An absolute pattern has '' as first segment: keep its root.
  return { base: base === '' && pattern.startsWith('/') ? '/' : base, rest: segs.slice(i).join('/') };
}

async function expandGlob(pattern: string): Promise<string[]> {
  const { base, rest } = splitGlob(pattern);
  // Crawl from the literal base so results keep the user's prefix ('../x/', '/data/', './').
  // tinyglobby (~20 ms to import) only when a glob is given.
  const { glob } = await import('tinyglobby');
  const matches = await glob(rest, {
    cwd: base === '' ? process.cwd() : base,
    onlyFiles: true,
    dot: false,
    followSymbolicLinks: true,
    expandDirectories: false,
  });
  const joined = matches.map((m) => (base === '' ? m : base === '/' ? `/${m}` : `${base}/${m}`));
  return joined.sort(comparePaths);
}

/** Paths on stdin as bytes (split on the byte, never decoded lossily): one a line, or NUL-separated. */
async function readStdinPaths(stream: NodeJS.ReadableStream, nul: boolean): Promise<PathText[]> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer | string>) {
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
  }
  const data = Buffer.concat(chunks);
  // No path holds a NUL byte: with one there, the list is NUL-separated.
  if (!nul && data.includes(0)) throw new NulSeparatedError();
  const out: PathText[] = [];
  for (let start = 0; start < data.length;) {
    const sep = data.indexOf(nul ? 0 : 10, start);
    const end = sep < 0 ? data.length : sep;
    const cr = !nul && end > start && data[end - 1] === 13 ? 1 : 0;
    if (end - cr > start) out.push(pathOfBytes(Buffer.from(data.subarray(start, end - cr))));
    start = end + 1;
  }
  return out;
}

/**
 * CLI arguments -> ordered input list, argument by argument:
 * - '-': paths from stdin (one per line, or NUL-separated), taken as explicit files (no extension filter);
 *   a `.tar` (`.tar.gz`, `.tgz`) regular file there is read as an archive. Allowed once, since stdin can only be read once.
 * - an existing directory: its image files (see IMAGE_EXTENSIONS / opts.extensions), recursively,
 *   in byte order of the relative paths, hidden entries skipped; folders and entries that cannot be
 *   read become entries with a `failure` (see walkDirectory).
 * - an existing path that is not a directory: kept, whatever its extension; a `.tar` (`.tar.gz`, `.tgz`)
 *   file, named or matched by a glob, is replaced by its image members (inputs/tar.ts).
 * - a missing path containing * ? [ or {: a glob (tinyglobby; files only, every match kept, hidden
 *   names only when the pattern spells the dot), in comparePaths order. No match throws: that is
 *   almost always a typo, and finding out after a long run is worse.
 * - any other missing path: MissingInputError, naming every one (a typo; nothing should be written).
 *   A path there but not readable (EACCES…) is kept as 'file': the decoder records why.
 *   Paths read from stdin are never checked here: one missing among many is that input's recorded
 *   'missing' failure, and the run goes on.
 * Duplicates are kept: output order is input order.
 */
export async function expandInputs(args: readonly string[], opts: ExpandOptions = {}): Promise<InputEntry[]> {
  const exts = opts.extensions ?? IMAGE_EXTENSIONS;
  const tar = { hash: opts.hashMembers === true, ...(opts.keepJson ? { keepJson: true } : {}) };
  const out: InputEntry[] = [];
  let stdinUsed = false;
  const missing: string[] = [];
  for (const arg of args) {
    if (arg === '-') {
      if (stdinUsed) throw new Error("'-' (read paths from stdin) can be given only once");
      stdinUsed = true;
      for (const p of await readStdinPaths(opts.stdin ?? process.stdin, opts.nulSeparated ?? false)) {
        // An archive listed on stdin (`find shards -name '*.tar' | spp-extract -`) is read as one, as when named.
        if (p.pathBytes === undefined && isTarPath(p.path) && (await statOrUndefined(p.path))?.isFile()) out.push(...(await listTar(p.path, exts, tar)));
        // Its members would be named ARCHIVE#NAME, which has no lossless form yet: said, not decoded as an image.
        else if (p.pathBytes !== undefined && isTarPath(p.path) && (await statOrUndefined(p.pathBytes))?.isFile()) {
          out.push({ ...p, source: 'stdin', failure: { reason: 'unreadable', error: 'an archive whose name is not UTF-8 is not read (rename it)' } });
        } else out.push({ ...p, source: 'stdin' });
      }
      continue;
    }
    const st = await statOrUndefined(arg);
    if (st?.isDirectory()) {
      out.push(...(await walkDirectory(arg, st, exts)));
    } else if (st === undefined && GLOB_CHARS.test(arg)) {
      // Folders the glob could not read are failures (after its matches), never a silent gap.
      const blind = await globBlindSpots(arg);
      const matches = blind.length > 0 ? await expandGlob(arg) : await globMatches(arg);
      for (const p of matches) out.push(...(isTarPath(p) ? await listTar(p, exts, tar) : [{ path: p, source: 'glob' as const }]));
      out.push(...blind);
    } else {
      const why = st === undefined ? await missingWhy(arg) : undefined;
      if (why !== undefined) missing.push(why);
      else if (isTarPath(arg) && st?.isFile()) out.push(...(await listTar(arg, exts, tar)));
      else out.push({ path: arg, source: 'file' });
    }
  }
  if (missing.length > 0) throw new MissingInputError(missing);
  return out;
}

/** A glob's matches in comparePaths order; none is an error (almost always a typo). */
async function globMatches(pattern: string): Promise<string[]> {
  const matches = await expandGlob(pattern);
  if (matches.length === 0) throw new Error(`no files match '${pattern}'`);
  return matches;
}

/**
 * The folders a glob could not look into (the glob library skips them without a word): the walk's
 * failure entries under the glob's base, down to the depth its pattern reaches (all with `**`), so
 * what they hold is never lost silently.
 */
async function globBlindSpots(pattern: string): Promise<InputEntry[]> {
  const { base, rest } = splitGlob(pattern);
  const segments = rest.split('/');
  const maxDepth = segments.some((s) => s.includes('**')) ? Infinity : segments.length - 1;
  const root = base === '' ? '.' : base;
  const st = await statOrUndefined(root);
  if (!st?.isDirectory()) return [];
  const walked = await walkDirectory(root, st, NO_EXTENSIONS, maxDepth);
  return walked.flatMap((e) => (e.failure
    ? [{ ...e, source: 'glob' as const, failure: { ...e.failure, error: e.failure.error.replace(': ', ` (it may hold matches of '${pattern}'): `) } }]
    : []));
}

/** A walk that keeps no files: only what it could not read. */
const NO_EXTENSIONS: ReadonlySet<string> = new Set();

/**
 * Arguments naming files (merge's shard outputs): a missing path with glob characters expands as
 * in expandInputs (sorted, no match is an error); anything else is kept as given.
 */
export async function expandFileGlobs(args: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const arg of args) {
    if (GLOB_CHARS.test(arg) && (await statOrUndefined(arg)) === undefined) out.push(...(await globMatches(arg)));
    else out.push(arg);
  }
  return out;
}
