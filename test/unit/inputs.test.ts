import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { IMAGE_EXTENSIONS, MissingInputError, NulSeparatedError, comparePaths, expandInputs, type InputEntry } from '../../src/inputs/expand.js';
import { tempDir } from '../helpers/tmp.js';

async function tree(files: string[]): Promise<string> {
  const root = tempDir('spp-inputs-');
  for (const f of files) {
    await fsp.mkdir(path.dirname(path.join(root, f)), { recursive: true });
    await fsp.writeFile(path.join(root, f), 'x');
  }
  return root;
}

const paths = (entries: InputEntry[]) => entries.map((e) => e.path);

/** Runs fn with cwd = dir so relative arguments and results can be checked as the user sees them. */
async function inDir<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const old = process.cwd();
  process.chdir(dir);
  try {
    return await fn();
  } finally {
    process.chdir(old);
  }
}

test('IMAGE_EXTENSIONS: lowercase with dot, common formats present', () => {
  for (const e of ['.jpg', '.jpeg', '.png', '.webp', '.gif', '.avif', '.heic', '.tif', '.tiff', '.svg', '.bmp']) {
    assert.ok(IMAGE_EXTENSIONS.has(e), e);
  }
  for (const e of IMAGE_EXTENSIONS) assert.match(e, /^\.[a-z0-9]+$/);
  assert.ok(!IMAGE_EXTENSIONS.has('.txt') && !IMAGE_EXTENSIONS.has('.json'));
});

test('comparePaths: component-wise code-unit order', () => {
  const sorted = ['a.jpg', 'a/b.jpg', 'B.jpg', 'a/a/z.jpg', 'a-b.jpg', 'é.jpg', 'a/b', '10.jpg', '9.jpg'].sort(comparePaths);
  assert.deepEqual(sorted, ['10.jpg', '9.jpg', 'B.jpg', 'a/a/z.jpg', 'a/b', 'a/b.jpg', 'a-b.jpg', 'a.jpg', 'é.jpg']);
  assert.equal(comparePaths('x/y', 'x/y'), 0);
});

test('directory walk: recursive, extension filter (any case), hidden skipped, deterministic order', async () => {
  const root = await tree([
    'b.PNG',
    'a.jpg',
    'a/z.jpeg',
    'a/B.JPG',
    'a/deep/er/1.webp',
    'a-b/x.gif',
    'notes.txt',
    'model.json',
    'noext',
    '.hidden.jpg',
    '.cache/c.jpg',
    'a/.thumbs/t.jpg',
    'Z/q.tif',
    'photo.Jpeg',
  ]);
  try {
    const got = await inDir(root, () => expandInputs(['.']));
    assert.deepEqual(paths(got), ['Z/q.tif', 'a/B.JPG', 'a/deep/er/1.webp', 'a/z.jpeg', 'a-b/x.gif', 'a.jpg', 'b.PNG', 'photo.Jpeg']);
    assert.ok(got.every((e) => e.source === 'directory'));
    // Paths are the given directory joined with the relative path, not absolute.
    const given = await expandInputs([path.join(root, 'a')]);
    assert.deepEqual(paths(given), ['B.JPG', 'deep/er/1.webp', 'z.jpeg'].map((p) => path.join(root, 'a', p)));
    const rel = await inDir(path.dirname(root), () => expandInputs([`${path.basename(root)}/a/`]));
    assert.deepEqual(paths(rel), ['B.JPG', 'deep/er/1.webp', 'z.jpeg'].map((p) => `${path.basename(root)}/a/${p}`));
    // The walk order equals sorting the relative paths with comparePaths.
    const relPaths = paths(got);
    assert.deepEqual([...relPaths].sort(comparePaths), relPaths);
    // Custom extension set.
    const txt = await inDir(root, () => expandInputs(['.'], { extensions: new Set(['.txt']) }));
    assert.deepEqual(paths(txt), ['notes.txt']);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});

test('directory walk: symlinks followed, loops stopped, dangling image links kept', async () => {
  const root = await tree(['d/img.jpg', 'd/sub/deep.png', 'other/o.webp']);
  try {
    await fsp.symlink('..', path.join(root, 'd/sub/loop')); // sub/loop -> d: a cycle
    await fsp.symlink(path.join(root, 'other'), path.join(root, 'd/linked'));
    await fsp.symlink(path.join(root, 'other/o.webp'), path.join(root, 'd/alias.webp'));
    await fsp.symlink(path.join(root, 'gone.jpg'), path.join(root, 'd/dangling.jpg'));
    await fsp.symlink(path.join(root, 'gone-dir'), path.join(root, 'd/dangling-dir'));
    const got = await inDir(root, () => expandInputs(['d']));
    assert.deepEqual(paths(got), ['d/alias.webp', 'd/dangling.jpg', 'd/img.jpg', 'd/linked/o.webp', 'd/sub/deep.png']);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});

test('explicit files kept whatever the extension; duplicates kept', async () => {
  const root = await tree(['notes.txt', 'a.jpg', 'dir/b.png']);
  try {
    const got = await inDir(root, () => expandInputs(['notes.txt', 'a.jpg', 'dir', 'a.jpg']));
    assert.deepEqual(got, [
      { path: 'notes.txt', source: 'file' },
      { path: 'a.jpg', source: 'file' },
      { path: 'dir/b.png', source: 'directory' },
      { path: 'a.jpg', source: 'file' },
    ]);
    assert.deepEqual(await expandInputs([]), []);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});

test('a named input that does not exist is an error naming every one (a typo), a dangling link too; stdin lines are not checked', async () => {
  const root = await tree(['a.jpg', 'dir/b.png']);
  await fsp.symlink(path.join(root, 'gone.jpg'), path.join(root, 'dangling.jpg'));
  const stdin = () => Readable.from(['a.jpg\nnot-there.jpg\n']);
  const err = await inDir(root, () => expandInputs(['a.jpg', 'nodir', '-', 'dir', 'a.jpg/x.jpg', 'dangling.jpg'], { stdin: stdin() })).catch((e: Error) => e);
  assert.ok(err instanceof MissingInputError, String(err));
  assert.equal(err.message, "no such file or folder: 'nodir', 'a.jpg/x.jpg', 'dangling.jpg' (a link to a path that does not exist); " +
    'inputs named on the command line must exist (nothing written)');
  // One missing line of a long stdin list is that input's recorded failure, not the end of the run.
  assert.deepEqual(paths(await inDir(root, () => expandInputs(['-', 'dir'], { stdin: stdin() }))), ['a.jpg', 'not-there.jpg', 'dir/b.png']);
});

test('stdin with NUL bytes without -0: an error saying to use -0, not one long path', async () => {
  const list = Buffer.from('a.jpg\0b.jpg\0');
  await assert.rejects(expandInputs(['-'], { stdin: Readable.from([list]) }), (e: Error) => e instanceof NulSeparatedError && /contain NUL bytes: use -0/.test(e.message));
  assert.deepEqual(paths(await expandInputs(['-'], { stdin: Readable.from([list]), nulSeparated: true })), ['a.jpg', 'b.jpg']);
});

test('globs: expanded, sorted, every match kept, prefix kept as written', async () => {
  const root = await tree(['p/b.jpg', 'p/a.JPG', 'p/c.txt', 'p/sub/d.jpg', 'p/.e.jpg', 'q/f.jpg']);
  try {
    const got = await inDir(root, () => expandInputs(['p/*']));
    assert.deepEqual(paths(got), ['p/a.JPG', 'p/b.jpg', 'p/c.txt']); // no extension filter for globs
    assert.ok(got.every((e) => e.source === 'glob'));
    const deep = await inDir(root, () => expandInputs(['p/**/*.jpg', '{p,q}/f.jpg', 'q/?.jpg']));
    assert.deepEqual(paths(deep), ['p/b.jpg', 'p/sub/d.jpg', 'q/f.jpg', 'q/f.jpg']);
    const dotted = await inDir(path.join(root, 'p'), () => expandInputs(['../q/*.jpg', './*.jpg']));
    assert.deepEqual(paths(dotted), ['../q/f.jpg', './b.jpg']);
    const abs = await expandInputs([path.join(root, 'p', '*.jpg')]);
    assert.deepEqual(paths(abs), [path.join(root, 'p', 'b.jpg')]);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});

test('globs: a literal path with glob characters wins; no match throws naming the glob', async () => {
  const root = await tree(['weird[1].jpg', 'x/a.png']);
  try {
    const lit = await inDir(root, () => expandInputs(['weird[1].jpg']));
    assert.deepEqual(lit, [{ path: 'weird[1].jpg', source: 'file' }]);
    await assert.rejects(
      inDir(root, () => expandInputs(['x/*.jgp'])),
      (err: Error) => err.message === "no files match 'x/*.jgp'",
    );
    await assert.rejects(inDir(root, () => expandInputs(['nodir/*.jpg'])), /no files match 'nodir\/\*\.jpg'/);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});

test('stdin: newline mode trims \\r and skips empty lines; no extension filter', async () => {
  const stdin = Readable.from(['a.jpg\r\n', 'dir with space/b.png\n\n', 'notes.txt\n', 'c', '.jpg']);
  const root = await tree(['first.jpg', 'last.jpg']);
  const got = await inDir(root, () => expandInputs(['first.jpg', '-', 'last.jpg'], { stdin }));
  assert.deepEqual(got, [
    { path: 'first.jpg', source: 'file' },
    { path: 'a.jpg', source: 'stdin' },
    { path: 'dir with space/b.png', source: 'stdin' },
    { path: 'notes.txt', source: 'stdin' },
    { path: 'c.jpg', source: 'stdin' },
    { path: 'last.jpg', source: 'file' },
  ]);
});

test('stdin: NUL mode keeps newlines inside names', async () => {
  const stdin = Readable.from([Buffer.from('a.jpg\0line\nbreak.png\0'), Buffer.from('\0c.gif')]);
  const got = await expandInputs(['-'], { stdin, nulSeparated: true });
  assert.deepEqual(paths(got), ['a.jpg', 'line\nbreak.png', 'c.gif']);
});

test('stdin: given twice is an error', async () => {
  await assert.rejects(expandInputs(['-', '-'], { stdin: Readable.from(['a.jpg\n']) }), /only once/);
});

/**
 * Runs fn as user nobody when this process is root (root reads a mode-0000 folder), else as is;
 * the folders it walks must be reachable by that user.
 */
async function asNobody<T>(fn: () => Promise<T>): Promise<T> {
  if (process.getuid?.() !== 0) return fn();
  process.setegid!(65534);
  process.seteuid!(65534);
  try {
    return await fn();
  } finally {
    process.seteuid!(0);
    process.setegid!(0);
  }
}

test('walk: a folder it cannot read and a subfolder it cannot stat become failure entries in place, never dropped', async () => {
  const root = await tree(['a.jpg', 'locked/b.jpg', 'shut/inner/c.jpg', 'z.jpg']);
  await fsp.chmod(root, 0o755); // mkdtemp makes it 0700: nobody must reach it
  await fsp.chmod(path.join(root, 'locked'), 0o000);
  await fsp.chmod(path.join(root, 'shut'), 0o644); // listable, but nothing in it can be stat'ed
  try {
    const got = await asNobody(() => inDir(root, () => expandInputs(['.'])));
    assert.deepEqual(got, [
      { path: 'a.jpg', source: 'directory' },
      { path: 'locked', source: 'directory', failure: { reason: 'unreadable', error: 'cannot read folder: permission denied (EACCES)' } },
      { path: 'shut/inner', source: 'directory', failure: { reason: 'unreadable', error: 'cannot stat: permission denied (EACCES)' } },
      { path: 'z.jpg', source: 'directory' },
    ]);
    // The root itself unreadable: one failure entry for it.
    const rootFailed = await asNobody(() => expandInputs([path.join(root, 'locked')]));
    assert.deepEqual(rootFailed.map((e) => [e.path, e.failure?.error]), [[path.join(root, 'locked'), 'cannot read folder: permission denied (EACCES)']]);
  } finally {
    await fsp.chmod(path.join(root, 'locked'), 0o755);
    await fsp.chmod(path.join(root, 'shut'), 0o755);
    await fsp.rm(root, { recursive: true, force: true });
  }
});

test('walk: a subtree past PATH_MAX through a chain of symlinks is a failure entry (ENAMETOOLONG), not a silent end', async () => {
  // d0/L -> d1, d1/L -> d2, …: every folder is new (no loop), but the path grows 251 bytes a step.
  const root = tempDir('spp-inputs-');
  const long = 'L'.repeat(250);
  const depth = 20;
  for (let i = 0; i <= depth; i++) await fsp.mkdir(path.join(root, `d${i}`));
  for (let i = 0; i < depth; i++) await fsp.symlink(`../d${i + 1}`, path.join(root, `d${i}`, long));
  await fsp.writeFile(path.join(root, 'd0', 'a.jpg'), 'x');
  await fsp.writeFile(path.join(root, `d${depth}`, 'deep.jpg'), 'x');
  const got = await inDir(root, () => expandInputs(['d0']));
  assert.deepEqual(got.filter((e) => !e.failure).map((e) => e.path), ['d0/a.jpg']);
  const failed = got.filter((e) => e.failure);
  assert.equal(failed.length, 1, 'the walk says where it had to stop');
  assert.match(failed[0]!.failure!.error, /^cannot (stat|read folder): name too long \(ENAMETOOLONG\)$/);
  assert.ok(Buffer.byteLength(failed[0]!.path) > 4000, 'it stopped only past PATH_MAX');
  assert.ok(failed[0]!.path.startsWith(`d0/${long}/${long}/`));
});

test('walk: names that are not UTF-8 (folders too) keep their bytes; the path is the documented escape', async () => {
  const root = tempDir('spp-inputs-');
  const raw = (s: string) => Buffer.from(s, 'latin1');
  await fsp.mkdir(Buffer.concat([raw(root), raw('/d\xff')]));
  for (const name of ['bad\xff\xfe.jpg', 'caf\xe9.jpg', 'ok.jpg', 'back\\slash\xe9.jpg', 'd\xff/in.jpg']) {
    await fsp.writeFile(Buffer.concat([raw(root), raw('/'), raw(name)]), 'x');
  }
  // A valid UTF-8 name (é) in a folder whose name is not: the path is escaped, é kept as é.
  await fsp.writeFile(Buffer.concat([raw(root), raw('/d\xff/'), Buffer.from('é.png')]), 'x');
  const got = await inDir(root, () => expandInputs(['.']));
  assert.deepEqual(got.map((e) => e.path), ['back\\\\slash\\xe9.jpg', 'bad\\xff\\xfe.jpg', 'caf\\xe9.jpg', 'd\\xff/in.jpg', 'd\\xff/é.png', 'ok.jpg']);
  assert.deepEqual(got.map((e) => e.pathBytes?.toString('latin1')),
    ['back\\slash\xe9.jpg', 'bad\xff\xfe.jpg', 'caf\xe9.jpg', 'd\xff/in.jpg', 'd\xff/\xc3\xa9.png', undefined]);
  assert.ok(!('pathBytes' in got.at(-1)!), 'a UTF-8 name carries no bytes');
});

test('stdin: paths are split as bytes; a name that is not UTF-8 keeps its bytes (- and -0)', async () => {
  const bytes = Buffer.from('caf\xe9.jpg\r\nok.jpg\n', 'latin1');
  const lines = await expandInputs(['-'], { stdin: Readable.from([bytes]) });
  assert.deepEqual(lines, [
    { path: 'caf\\xe9.jpg', pathBytes: Buffer.from('caf\xe9.jpg', 'latin1'), source: 'stdin' },
    { path: 'ok.jpg', source: 'stdin' },
  ]);
  // A chunk boundary inside a UTF-8 sequence changes nothing: é split over two chunks.
  const utf8 = Buffer.concat([Buffer.from([0xc3]), Buffer.from([0xa9]), Buffer.from('.jpg\0x'), Buffer.from([0xff, 0])]);
  const nul = await expandInputs(['-'], { stdin: Readable.from([utf8.subarray(0, 1), utf8.subarray(1)]), nulSeparated: true });
  assert.deepEqual(nul.map((x) => [x.path, x.pathBytes?.toString('latin1')]), [['é.jpg', undefined], ['x\\xff', 'x\xff']]);
});

test('glob: a folder the glob cannot read is a failure entry after the matches, never a silent gap; out-of-reach depths are not', async () => {
  const root = await tree(['ok/a.jpg', 'locked/b.jpg', 'open/deep/locked2/c.jpg', 'z.jpg']);
  await fsp.chmod(root, 0o755);
  await fsp.chmod(path.join(root, 'locked'), 0o311); // enterable, not listable
  await fsp.chmod(path.join(root, 'open', 'deep', 'locked2'), 0o000);
  try {
    const one = await asNobody(() => inDir(root, () => expandInputs(['*/*.jpg'])));
    assert.deepEqual(one.map((e) => [e.path, e.source, e.failure?.error]), [
      ['ok/a.jpg', 'glob', undefined],
      ['locked', 'glob', "cannot read folder (it may hold matches of '*/*.jpg'): permission denied (EACCES)"],
    ], 'open/deep/locked2 is deeper than */*.jpg reaches');
    const all = await asNobody(() => inDir(root, () => expandInputs(['**/*.jpg'])));
    assert.deepEqual(all.filter((e) => e.failure).map((e) => e.path), ['locked', 'open/deep/locked2']);
    assert.deepEqual(all.filter((e) => !e.failure).map((e) => e.path), ['ok/a.jpg', 'z.jpg']);
    // Nothing readable matched, but a folder could not be looked into: a failure, not "no files match".
    const none = await asNobody(() => inDir(root, () => expandInputs(['locked/*.jpg'])));
    assert.deepEqual(none.map((e) => [e.path, e.failure?.reason]), [['locked', 'unreadable']]);
  } finally {
    await fsp.chmod(path.join(root, 'locked'), 0o755);
    await fsp.chmod(path.join(root, 'open', 'deep', 'locked2'), 0o755);
    await fsp.rm(root, { recursive: true, force: true });
  }
});
