/**
 * Issue 17, items 4 and 10 through the CLI: file names that are not UTF-8 are read and recorded
 * losslessly (path escape + path_bytes) in every output, --resume and merge; control characters in
 * names never reach the terminal raw; a walk never loses what it cannot read (exit 2, recorded).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BIN, runCli } from '../helpers/cli.js';
import { readJsonl } from '../helpers/jsonl.js';
import { fixture } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

const MODEL = ['--model', fixture('tiny-layers'), '--engine', 'onnx', '--threads', '1'];
const TINY = [...MODEL, '--cache-dir', tempDir('spp-names-cache-')];
const PHOTO = fixture('images', 'noise-100x70.jpg');
const raw = (s: string) => Buffer.from(s, 'latin1');
const ESC_NAME = 'x\x1b]0;owned\x07\x1b[2J.jpg';

/** A folder `imgs` with names that are not UTF-8 (one a folder), a UTF-8 one, and a non-image named with ESC and BEL. */
function namesFolder(): { dir: string; images: string } {
  const dir = tempDir('spp-names-');
  const images = join(dir, 'imgs');
  mkdirSync(images);
  mkdirSync(Buffer.concat([raw(images), raw('/sub\xff')]));
  for (const name of ['bad\xff\xfe.jpg', 'caf\xe9.jpg', 'sub\xff/in.jpg', 'ok.jpg']) copyFileSync(PHOTO, Buffer.concat([raw(images), raw('/'), raw(name)]));
  writeFileSync(join(images, ESC_NAME), 'not an image');
  return { dir, images };
}

/** Relative path bytes (latin1 text) of each record: from path_bytes when there, else the UTF-8 path. */
function recordBytes(recs: { path: string; path_bytes?: string }[], images: string): string[] {
  return recs.map((r) => (r.path_bytes !== undefined ? Buffer.from(r.path_bytes, 'base64') : Buffer.from(r.path)).toString('latin1').slice(images.length + 1));
}

const ORDER = ['bad\xff\xfe.jpg', 'caf\xe9.jpg', 'ok.jpg', 'sub\xff/in.jpg', ESC_NAME];

test('names that are not UTF-8 become rows (were "missing"); path_bytes gives the exact bytes back in .npy, .jsonl and .json', async () => {
  const { dir, images } = namesFolder();
  for (const out of ['f.npy', 'f.jsonl', 'f.json']) {
    const r = await runCli([images, '-o', join(dir, out), ...TINY]);
    assert.equal(r.code, 2, r.stderr); // the ESC file is not an image
    const recs = out === 'f.json'
      ? (() => { const j = JSON.parse(readFileSync(join(dir, out), 'utf8')); return [...j.items, ...j.failures].sort((a, b) => a.index - b.index); })()
      : readJsonl(join(dir, out === 'f.npy' ? 'f.manifest.jsonl' : out)).filter((l) => l.type === 'row' || l.type === 'failure');
    assert.deepEqual(recordBytes(recs, images), ORDER, out);
    assert.deepEqual(recs.map((x) => x.type ?? (x.reason ? 'failure' : 'row')).slice(0, 4), ['row', 'row', 'row', 'row'], out);
    assert.equal(recs[0].path, `${images}/bad\\xff\\xfe.jpg`, 'the documented escape');
    assert.equal(recs[1].path, `${images}/caf\\xe9.jpg`);
    assert.equal(recs[2].path_bytes, undefined, 'a UTF-8 name has no path_bytes');
    assert.equal(recs[4].path, join(images, ESC_NAME), 'JSON escapes ESC and BEL itself: the path is the name');
  }
  const text = readFileSync(join(dir, 'f.jsonl'), 'utf8');
  assert.ok(!/[\x1b\x07]/.test(text), 'no raw ESC or BEL in JSON records');
});

test('ESC and BEL in a name are escaped in every stderr message (failure lines, errors)', async () => {
  const { dir, images } = namesFolder();
  const r = await runCli([images, '-o', join(dir, 'f.npy'), ...TINY]);
  assert.equal(r.code, 2, r.stderr);
  assert.ok(!/[\x1b\x07]/.test(r.stderr), JSON.stringify(r.stderr));
  assert.match(r.stderr, /failed: .*x\\x1b\]0;owned\\x07\\x1b\[2J\.jpg: unsupported-format/);
  // An error naming the output: the same.
  const bad = await runCli([images, '-o', join(dir, 'out\x1b[2J\x07.txt'), ...TINY]);
  assert.equal(bad.code, 1);
  assert.ok(!/[\x1b\x07]/.test(bad.stderr), JSON.stringify(bad.stderr));
  assert.match(bad.stderr, /out\\x1b\[2J\\x07\.txt/);
  // Option errors: ours and commander's.
  for (const args of [['x', '-o', join(dir, 'a.npy'), '--levels', '\x07'], ['--bogus\x1b[2J']]) {
    const r2 = await runCli(args);
    assert.equal(r2.code, 1);
    assert.ok(!/[\x1b\x07]/.test(r2.stderr) && /\\x(07|1b)/.test(r2.stderr), JSON.stringify(r2.stderr));
  }
});

test('paths on stdin (- and -0) are taken as bytes, not decoded lossily', async () => {
  const { dir, images } = namesFolder();
  for (const [flag, sep] of [[[], '\n'], [['-0'], '\0']] as const) {
    const list = Buffer.concat(['caf\xe9.jpg', 'sub\xff/in.jpg'].map((n) => Buffer.concat([raw(images), raw('/'), raw(n), raw(sep)])));
    const r = await runCli(['-', ...flag, '-o', join(dir, 's.jsonl'), '--force', ...TINY], { stdin: list });
    assert.equal(r.code, 0, r.stderr);
    const recs = readJsonl(join(dir, 's.jsonl')).filter((l) => l.type === 'row');
    assert.deepEqual(recordBytes(recs, images), ['caf\xe9.jpg', 'sub\xff/in.jpg']);
  }
});

test('--resume compares inputs by their bytes; merge carries path_bytes over', async () => {
  const { dir, images } = namesFolder();
  const full = join(dir, 'full.jsonl');
  assert.equal((await runCli([images, '-o', full, ...TINY])).code, 2);
  const lines = readFileSync(full, 'utf8').split('\n');
  // Cut after the first two records, as a kill would (no summary): --resume finishes it, byte for byte.
  const cut = join(dir, 'cut.jsonl');
  writeFileSync(cut, lines.slice(0, 3).join('\n') + '\n');
  const resumed = await runCli([images, '-o', cut, '--resume', ...TINY]);
  assert.equal(resumed.code, 2, resumed.stderr);
  assert.match(resumed.stderr, /2 of 5 inputs already done/);
  assert.equal(readFileSync(cut, 'utf8'), readFileSync(full, 'utf8'));
  // The same escape, other bytes: a different input, refused.
  const edited = JSON.parse(lines[1]!);
  edited.path_bytes = Buffer.concat([raw(images), raw('/bad\xff\xfd.jpg')]).toString('base64');
  writeFileSync(cut, [lines[0], JSON.stringify(edited)].join('\n') + '\n');
  const refused = await runCli([images, '-o', cut, '--resume', ...TINY]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /input list changed/);

  const single = join(dir, 'one.npy');
  assert.equal((await runCli([images, '-o', single, ...TINY])).code, 2);
  const shards = [1, 2].map((k) => join(dir, `part-${k}.npy`));
  for (const [k, s] of shards.entries()) {
    const r = await runCli([images, '-o', s, ...TINY, '--shard', `${k + 1}/2`, '-q']);
    const failed = readJsonl(s.replace(/npy$/, 'manifest.jsonl')).some((l) => l.type === 'failure');
    assert.equal(r.code, failed ? 2 : 0, r.stderr);
  }
  const merged = join(dir, 'all.npy');
  const m = await runCli(['merge', ...shards, '-o', merged]);
  assert.equal(m.code, 2, m.stderr);
  assert.equal(readFileSync(join(dir, 'all.manifest.jsonl'), 'utf8'), readFileSync(join(dir, 'one.manifest.jsonl'), 'utf8'));
  assert.ok(readFileSync(merged).equals(readFileSync(single)));
});

/** The CLI as user nobody when this process is root (root reads a mode-0000 folder), else as this user. */
function runAsNobody(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const ids = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'], ...ids });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

test('a folder the walk cannot read, or a subfolder it cannot stat, is a recorded failure (exit 2), in input order', async () => {
  const dir = tempDir('spp-walk-');
  chmodSync(dir, 0o777); // mkdtemp makes it 0700; nobody writes the output and cache here
  const top = join(dir, 'top');
  for (const d of ['locked', 'shut/inner']) mkdirSync(join(top, d), { recursive: true });
  copyFileSync(PHOTO, join(top, 'a.jpg'));
  copyFileSync(PHOTO, join(top, 'locked', 'b.jpg'));
  copyFileSync(PHOTO, join(top, 'shut', 'inner', 'c.jpg'));
  chmodSync(join(top, 'locked'), 0o000);
  chmodSync(join(top, 'shut'), 0o644); // listable, not enterable: 'inner' cannot be stat'ed
  try {
    const r = await runAsNobody([top, '-o', join(dir, 'f.npy'), ...MODEL, '--cache-dir', join(dir, 'cache')]);
    assert.equal(r.code, 2, r.stderr);
    const recs = readJsonl(join(dir, 'f.manifest.jsonl')).filter((l) => l.type === 'row' || l.type === 'failure');
    assert.deepEqual(recs.map((l) => [l.type, l.path.slice(top.length + 1), l.reason, l.error?.slice(top.length + 1)]), [
      ['row', 'a.jpg', undefined, undefined],
      ['failure', 'locked', 'unreadable', 'locked: unreadable: cannot read folder: permission denied (EACCES)'],
      ['failure', 'shut/inner', 'unreadable', 'shut/inner: unreadable: cannot stat: permission denied (EACCES)'],
    ]);
    assert.match(r.stderr, /failed: .*locked: unreadable: cannot read folder/);
  } finally {
    chmodSync(join(top, 'locked'), 0o755);
    chmodSync(join(top, 'shut'), 0o755);
  }
});
