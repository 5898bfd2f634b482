import { promises as fsp, type Dirent, type Stats } from 'node:fs';
import path from 'node:path';

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
  /** Extensions kept when walking directories (default IMAGE_EXTENSIONS). Lowercase with dot. */
  extensions?: ReadonlySet<string>;
  /**
   * Called for a subdirectory that cannot be read during a walk, which is then skipped. Without it
   * such a directory throws: better to stop before processing than to lose files unnoticed.
   */
  onWarning?: (message: string) => void;
}

export interface InputEntry {
  /** As given, or the given directory / glob base joined with the relative path; never made absolute. */
  path: string;
  source: 'file' | 'directory' | 'glob' | 'stdin';
}

/**
 * The one ordering rule for directory walks and glob matches: compare the '/'-separated components
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

function byName(a: Dirent, b: Dirent): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

async function statOrUndefined(p: string): Promise<Stats | undefined> {
  try {
    return await fsp.stat(p);
  } catch {
    return undefined;
  }
}

/**
 * Depth-first walk with each directory's entries sorted by name, which yields exactly the
 * comparePaths order without a global sort. Iterative (explicit stack). Hidden entries skipped.
 * Symlinks are followed; a directory already visited in this walk (same dev:ino) is not entered
 * again, which stops symlink loops. A dangling symlink with an image extension is kept so the
 * decoder records it as missing.
 */
async function walkDirectory(root: string, exts: ReadonlySet<string>, opts: ExpandOptions): Promise<string[]> {
  const out: string[] = [];
  const visited = new Set<string>();
  type Item = { kind: 'dir'; path: string; stats: Stats } | { kind: 'file'; path: string };
  const rootStats = await fsp.stat(root);
  const stack: Item[] = [{ kind: 'dir', path: root, stats: rootStats }];

  while (stack.length > 0) {
    const item = stack.pop()!;
    if (item.kind === 'file') {
      out.push(item.path);
      continue;
    }
    const id = `${item.stats.dev}:${item.stats.ino}`;
    if (visited.has(id)) continue;
    visited.add(id);

    let entries: Dirent[];
    try {
      entries = await fsp.readdir(item.path, { withFileTypes: true });
    } catch (err) {
      const msg = `cannot read directory '${item.path}': ${(err as Error).message}`;
      if (!opts.onWarning) throw new Error(msg);
      opts.onWarning(msg);
      continue;
    }
    entries.sort(byName);
    const children: Item[] = [];
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const p = path.join(item.path, e.name);
      const wanted = exts.has(path.extname(e.name).toLowerCase());
      if (e.isFile()) {
        if (wanted) children.push({ kind: 'file', path: p });
      } else if (e.isDirectory()) {
        const st = await statOrUndefined(p); // undefined: removed since readdir
        if (st) children.push({ kind: 'dir', path: p, stats: st });
      } else if (e.isSymbolicLink() || !(e.isFIFO() || e.isSocket() || e.isCharacterDevice() || e.isBlockDevice())) {
        // Symlink, or a file system that reports no type: ask stat (follows links).
        const st = await statOrUndefined(p);
        if (st === undefined) {
          if (wanted && e.isSymbolicLink()) children.push({ kind: 'file', path: p });
        } else if (st.isDirectory()) {
          children.push({ kind: 'dir', path: p, stats: st });
        } else if (st.isFile() && wanted) {
          children.push({ kind: 'file', path: p });
        }
      }
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

async function readStdinPaths(stream: NodeJS.ReadableStream, nul: boolean): Promise<string[]> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer | string>) {
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  const parts = nul ? text.split('\0') : text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  return parts.filter((p) => p.length > 0);
}

/**
 * CLI arguments -> ordered input list, argument by argument:
 * - '-': paths from stdin (one per line, or NUL-separated), taken as explicit files (no extension filter).
 *   Allowed once, since stdin can only be read once.
 * - an existing directory: its image files (see IMAGE_EXTENSIONS / opts.extensions), recursively,
 *   in comparePaths order, hidden entries skipped.
 * - an existing path that is not a directory: kept, whatever its extension.
 * - a missing path containing * ? [ or {: a glob (tinyglobby; files only, every match kept, hidden
 *   names only when the pattern spells the dot), in comparePaths order. No match throws: that is
 *   almost always a typo, and finding out after a long run is worse.
 * - any other missing path: kept as 'file' so the decoder records it as 'missing' and the run goes on.
 * Duplicates are kept: output order is input order.
 */
export async function expandInputs(args: readonly string[], opts: ExpandOptions = {}): Promise<InputEntry[]> {
  const exts = opts.extensions ?? IMAGE_EXTENSIONS;
  const out: InputEntry[] = [];
  let stdinUsed = false;
  for (const arg of args) {
    if (arg === '-') {
      if (stdinUsed) throw new Error("'-' (read paths from stdin) can be given only once");
      stdinUsed = true;
      for (const p of await readStdinPaths(opts.stdin ?? process.stdin, opts.nulSeparated ?? false)) {
        out.push({ path: p, source: 'stdin' });
      }
      continue;
    }
    const st = await statOrUndefined(arg);
    if (st?.isDirectory()) {
      for (const p of await walkDirectory(arg, exts, opts)) out.push({ path: p, source: 'directory' });
    } else if (st === undefined && GLOB_CHARS.test(arg)) {
      for (const p of await globMatches(arg)) out.push({ path: p, source: 'glob' });
    } else {
      out.push({ path: arg, source: 'file' });
    }
  }
  return out;
}

/** A glob's matches in comparePaths order; none is an error (almost always a typo). */
async function globMatches(pattern: string): Promise<string[]> {
  const matches = await expandGlob(pattern);
  if (matches.length === 0) throw new Error(`no files match '${pattern}'`);
  return matches;
}

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
