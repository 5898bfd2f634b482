import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, readdirSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { runCli } from '../helpers/cli.js';
import { runMain } from '../helpers/main.js';
import { nodeIo } from '../../src/output/io.js';
import { fixture } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * merge and --resume check what they read instead of trusting it: every attack below edits a
 * shard or a journal by hand and must be refused (exit 1) naming the file, the line and what was
 * expected, leaving no output behind. fixtures/images: 5 inputs, the 4th a failure.
 */
const MODEL = ['--model', fixture('tiny-layers'), '--engine', 'onnx', '--threads', '1'];
// Relative to fixtures/ (the runs' working folder): which shard an input lands in hashes its path, so
// the split must not depend on where the checkout lives. This one puts inputs 0-3 in shard 1, 4 in shard 2.
const IMAGES = 'images';
const runImages = (args: string[]) => runCli(args, { cwd: fixture() });
const DIM = 126;
let shardDir = '';
let refNpy = '';
let refJsonl = '';

before(async () => {
  shardDir = tempDir('spp-verify-');
  const runs = await Promise.all([
    runImages([IMAGES, '-o', join(shardDir, 's-{shard}.npy'), ...MODEL, '--shard', '1/2', '-q']),
    runImages([IMAGES, '-o', join(shardDir, 's-{shard}.npy'), ...MODEL, '--shard', '2/2', '-q']),
    runImages([IMAGES, '-o', join(shardDir, 'ref.npy'), ...MODEL, '-q']),
    runImages([IMAGES, '-o', join(shardDir, 'ref.jsonl'), ...MODEL, '-q']),
  ]);
  for (const r of runs) assert.ok(r.code === 0 || r.code === 2, r.stderr);
  refNpy = join(shardDir, 'ref.npy');
  refJsonl = join(shardDir, 'ref.jsonl');
});

/** A fresh copy of both shards, `edit` applied; merges them and checks nothing was written. */
async function mergeEdited(edit: (dir: string) => void): Promise<{ code: number; stderr: string }> {
  const dir = tempDir('spp-verify-');
  for (const f of ['s-1.npy', 's-1.manifest.jsonl', 's-2.npy', 's-2.manifest.jsonl']) copyFileSync(join(shardDir, f), join(dir, f));
  edit(dir);
  const r = await runMain(['merge', join(dir, 's-1.npy'), join(dir, 's-2.npy'), '-o', join(dir, 'all.npy')]);
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes('all.')), [], 'a refused merge leaves no output, no temp file');
  return r;
}

const editLine = (path: string, n: number, f: (line: string) => string) => {
  const lines = readFileSync(path, 'utf8').split('\n');
  lines[n - 1] = f(lines[n - 1]);
  writeFileSync(path, lines.join('\n'));
};
/** Rewrites the .npy header's dict text in place (same length: the data stays where it was). */
const editHeader = (path: string, from: string, to: string) => {
  const buf = readFileSync(path);
  const text = buf.subarray(0, 128).toString('latin1');
  assert.ok(text.includes(from), `${from} in ${text}`);
  const next = text.replace(from, to.padEnd(from.length, ' '));
  assert.equal(next.length, 128);
  buf.write(next, 0, 'latin1');
  writeFileSync(path, buf);
};

test('merge: the unedited shards still merge byte for byte (control)', async () => {
  const dir = tempDir('spp-verify-');
  const r = await runMain(['merge', join(shardDir, 's-2.npy'), join(shardDir, 's-1.npy'), '-o', join(dir, 'all.npy')]);
  assert.equal(r.code, 2, r.stderr);
  assert.ok(readFileSync(join(dir, 'all.npy')).equals(readFileSync(refNpy)));
});

test('merge: a write that fails after the shards were checked leaves no temp file behind (a merge is not resumable)', async () => {
  const dir = tempDir('spp-verify-');
  const io = { ...nodeIo, write: async () => { throw Object.assign(new Error('i/o error'), { code: 'EIO' }); } };
  const r = await runMain(['merge', join(shardDir, 's-1.npy'), join(shardDir, 's-2.npy'), '-o', join(dir, 'all.npy')], { io });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /input\/output error \(EIO\); nothing was kept: run the merge again/);
  assert.doesNotMatch(r.stderr, /--resume/);
  assert.deepEqual(readdirSync(dir), []);
});

test('merge: a manifest row number that is not the next one (0 again, 999, missing, -1, 1.5, "1") is refused naming file and line', async () => {
  // Line 3 is shard 1's second row: "row":1.
  for (const [edit, found] of [
    ['"row":0', '0'], ['"row":999', '999'], ['', 'missing'], ['"row":-1', '-1'], ['"row":1.5', '1.5'], ['"row":"1"', '"1"'],
  ] as const) {
    const r = await mergeEdited((dir) => editLine(join(dir, 's-1.manifest.jsonl'), 3, (l) => {
      assert.match(l, /"row":1,/);
      return l.replace('"row":1,', edit ? `${edit},` : '');
    }));
    assert.equal(r.code, 1, `${edit}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`merge: .*s-1\\.manifest\\.jsonl line 3: "row" is ${found.replace('.', '\\.')}, expected 1`), edit);
  }
});

test('merge: a row line turned into a failure line, a record without a path, a lying summary, a bad header count: refused naming the line', async () => {
  const toFailure = await mergeEdited((dir) => editLine(join(dir, 's-1.manifest.jsonl'), 3, (l) => {
    const { index, path } = JSON.parse(l);
    return JSON.stringify({ type: 'failure', index, path, reason: 'corrupt', error: 'x' });
  }));
  assert.equal(toFailure.code, 1);
  assert.match(toFailure.stderr, /s-1\.manifest\.jsonl line 4: "row" is 2, expected 1/);
  const noPath = await mergeEdited((dir) => editLine(join(dir, 's-2.manifest.jsonl'), 2, (l) => l.replace(/"path":"[^"]*",/, '')));
  assert.match(noPath.stderr, /s-2\.manifest\.jsonl line 2: "path" is missing, expected a string/);
  const summary = await mergeEdited((dir) => editLine(join(dir, 's-1.manifest.jsonl'), 6, (l) => l.replace('"rows":3', '"rows":2')));
  assert.match(summary.stderr, /s-1\.manifest\.jsonl line 6: the summary says 2 rows, 1 failures; the lines before it list 3 rows, 1 failures/);
  const inputs = await mergeEdited((dir) => editLine(join(dir, 's-2.manifest.jsonl'), 1, (l) => l.replace('"inputs":5', '"inputs":-1')));
  assert.match(inputs.stderr, /s-2\.manifest\.jsonl line 1: the header's dim 126, dtype "float32", inputs -1 are not/);
});

test('merge: a shard .npy header that is garbage, <f2, shape (99, 3), fortran order, or a file of the wrong length is refused naming it', async () => {
  const cases: [string, (p: string) => void, RegExp][] = [
    ['garbage', (p) => { const b = readFileSync(p); b.fill(0x78, 0, 128); writeFileSync(p, b); }, /s-1\.npy: not a \.npy file: bad magic/],
    ['<f2', (p) => editHeader(p, "'<f4'", "'<f2'"), /s-1\.npy: dtype '<f2', expected '<f4'/],
    ['(99, 3)', (p) => editHeader(p, `(3, ${DIM})`, '(99, 3)'), /s-1\.npy: shape \(99, 3\), expected \(3, 126\)/],
    ['(2, D)', (p) => editHeader(p, `(3, ${DIM})`, `(2, ${DIM})`), /s-1\.npy: shape \(2, 126\), expected \(3, 126\)/],
    ['fortran', (p) => editHeader(p, 'False', 'True'), /s-1\.npy: fortran_order True, expected False/],
    ['longer', (p) => writeFileSync(p, Buffer.concat([readFileSync(p), Buffer.alloc(DIM * 4)])), /s-1\.npy holds 2144 bytes, expected 1640/],
    ['shorter', (p) => writeFileSync(p, readFileSync(p).subarray(0, 1000)), /s-1\.npy holds 1000 bytes, expected 1640/],
  ];
  for (const [name, edit, message] of cases) {
    const r = await mergeEdited((dir) => edit(join(dir, 's-1.npy')));
    assert.equal(r.code, 1, `${name}: ${r.stderr}`);
    assert.match(r.stderr, message, name);
  }
});

test('merge: a manifest that is a symlink to /dev/zero, or a FIFO, and a shard .npy that is a FIFO are refused naming them', { timeout: 60_000 }, async () => {
  const zero = await mergeEdited((dir) => {
    unlinkSync(join(dir, 's-2.manifest.jsonl'));
    symlinkSync('/dev/zero', join(dir, 's-2.manifest.jsonl'));
  });
  assert.equal(zero.code, 1);
  assert.match(zero.stderr, /s-2\.manifest\.jsonl is not a regular file \(a character device\)/);
  const fifo = await mergeEdited((dir) => {
    unlinkSync(join(dir, 's-1.manifest.jsonl'));
    execFileSync('mkfifo', [join(dir, 's-1.manifest.jsonl')]);
  });
  assert.match(fifo.stderr, /s-1\.manifest\.jsonl is not a regular file \(a FIFO\)/);
  const data = await mergeEdited((dir) => {
    unlinkSync(join(dir, 's-2.npy'));
    execFileSync('mkfifo', [join(dir, 's-2.npy')]);
  });
  assert.match(data.stderr, /s-2\.npy is not a regular file \(a FIFO\)/);
});

/**
 * A finished run made to look interrupted: both files back under their temp names, the summary and
 * the last row dropped from the journal (its bytes stay in the data file, as after a kill).
 */
function interrupted(format: 'npy' | 'jsonl'): { dir: string; out: string; journal: string } {
  const dir = tempDir('spp-verify-');
  const out = join(dir, `run.${format}`);
  if (format === 'npy') {
    copyFileSync(refNpy, join(dir, '.run.npy.partial'));
    copyFileSync(refNpy.replace(/\.npy$/, '.manifest.jsonl'), join(dir, '.run.manifest.jsonl.partial'));
  } else {
    copyFileSync(refJsonl, join(dir, '.run.jsonl.partial'));
  }
  const journal = join(dir, format === 'npy' ? '.run.manifest.jsonl.partial' : '.run.jsonl.partial');
  writeFileSync(journal, readFileSync(journal, 'utf8').split('\n').slice(0, -3).join('\n') + '\n');
  return { dir, out, journal };
}

test('--resume: a crafted interruption resumes byte-equal (control), a row line replaced by a failure line is refused naming the line', async () => {
  const ok = interrupted('npy');
  const resumed = await runImages([IMAGES, '-o', ok.out, ...MODEL, '--resume', '-q']);
  assert.equal(resumed.code, 2, resumed.stderr);
  assert.ok(readFileSync(ok.out).equals(readFileSync(refNpy)), 'the control resumes to the uninterrupted bytes');

  const bad = interrupted('npy');
  editLine(bad.journal, 3, (l) => {
    const { index, path } = JSON.parse(l);
    return JSON.stringify({ type: 'failure', index, path, reason: 'corrupt', error: 'x' });
  });
  const before = readFileSync(bad.journal);
  const r = await runImages([IMAGES, '-o', bad.out, ...MODEL, '--resume', '-q']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /--resume: .*\.run\.manifest\.jsonl\.partial line 4: "row" is 2, expected 1 \(the rows before it\); the journal was edited/);
  assert.ok(readFileSync(bad.journal).equals(before), 'the journal is left untouched');
  assert.ok(!existsSync(bad.out), 'nothing finished');
});

test('--resume: records of the wrong shape (index not an integer, a short descriptor, an unknown line type) are refused naming the line', async () => {
  const index = interrupted('npy');
  editLine(index.journal, 2, (l) => l.replace('"index":0', '"index":"0"'));
  const r1 = await runImages([IMAGES, '-o', index.out, ...MODEL, '--resume', '-q']);
  assert.equal(r1.code, 1, r1.stderr);
  assert.match(r1.stderr, /line 2: "index" is "0", expected a non-negative integer/);

  const descriptor = interrupted('jsonl');
  editLine(descriptor.journal, 3, (l) => l.replace(/"descriptor":\[[^\]]*\]/, '"descriptor":[1]'));
  const r2 = await runImages([IMAGES, '-o', descriptor.out, ...MODEL, '--resume', '-q']);
  assert.equal(r2.code, 1, r2.stderr);
  assert.match(r2.stderr, /\.run\.jsonl\.partial line 3: "descriptor" is not a list of 126 numbers/);

  const type = interrupted('jsonl');
  editLine(type.journal, 2, (l) => l.replace('"type":"row"', '"type":"header"'));
  const r3 = await runImages([IMAGES, '-o', type.out, ...MODEL, '--resume', '-q']);
  assert.equal(r3.code, 1, r3.stderr);
  assert.match(r3.stderr, /line 2: "type" is "header", expected "row" or "failure"/);
});

test('--resume: a .npy whose header claims a row count that is neither 0 (running) nor the rows on disk is refused', async () => {
  const run = interrupted('npy');
  editHeader(join(run.dir, '.run.npy.partial'), `(4, ${DIM})`, `(9, ${DIM})`);
  const r = await runImages([IMAGES, '-o', run.out, ...MODEL, '--resume', '-q']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /\.run\.npy\.partial is not an spp-extract \.npy of 126 float32 columns \(its header says 9 rows, 4 are on disk\)/);
  // A finished run whose data has a row more than its manifest is not "already complete".
  const dir = tempDir('spp-verify-');
  copyFileSync(refNpy, join(dir, 'run.npy'));
  copyFileSync(refNpy.replace(/\.npy$/, '.manifest.jsonl'), join(dir, 'run.manifest.jsonl'));
  editHeader(join(dir, 'run.npy'), `(4, ${DIM})`, `(5, ${DIM})`);
  writeFileSync(join(dir, 'run.npy'), Buffer.concat([readFileSync(join(dir, 'run.npy')), Buffer.alloc(DIM * 4)]));
  const done = await runImages([IMAGES, '-o', join(dir, 'run.npy'), ...MODEL, '--resume', '-q']);
  assert.equal(done.code, 1, done.stderr);
  assert.match(done.stderr, /run\.npy holds 2648 bytes with a header of 5 rows, but its manifest lists 4 rows/);
});

test('merge: NaN or ±Inf bytes in a shard whose run did not allow them are refused naming the shard and row', async () => {
  for (const [name, bits] of [['NaN', 0x7fc00000], ['+Inf', 0x7f800000], ['-Inf', 0xff800000]] as const) {
    const r = await mergeEdited((dir) => {
      const p = join(dir, 's-1.npy');
      const b = readFileSync(p);
      b.writeUInt32LE(bits, 128 + DIM * 4 + 8); // row 1, third value
      writeFileSync(p, b);
    });
    assert.equal(r.code, 1, `${name}: ${r.stderr}`);
    assert.match(r.stderr, /s-1\.npy row 1 \(.*\) holds NaN or ±Inf/, name);
  }
});

test('--resume: a whole line that is not JSON in the middle of a journal is refused naming it, not taken for a cut-off tail', async () => {
  for (const format of ['npy', 'jsonl'] as const) {
    const run = interrupted(format);
    editLine(run.journal, 2, () => '{garbage');
    const before = readFileSync(run.journal);
    const r = await runImages([IMAGES, '-o', run.out, ...MODEL, '--resume', '-q']);
    assert.equal(r.code, 1, `${format}: ${r.stderr}`);
    assert.match(r.stderr, /line 2: the line is not JSON \(whole, not cut off by a kill\)/, format);
    assert.ok(readFileSync(run.journal).equals(before), 'the journal is left untouched');
  }
  // A tail cut off by a kill (no newline after it) still resumes.
  const cut = interrupted('jsonl');
  writeFileSync(cut.journal, Buffer.concat([readFileSync(cut.journal), Buffer.from('{"type":"row","ind')]));
  const r = await runImages([IMAGES, '-o', cut.out, ...MODEL, '--resume', '-q']);
  assert.equal(r.code, 2, r.stderr);
  assert.ok(readFileSync(cut.out).equals(readFileSync(refJsonl)));
});
