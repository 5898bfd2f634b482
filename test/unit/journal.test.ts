import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { openSync, closeSync, writeFileSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { JOURNAL_MAX_LINE_BYTES, NotAJournal, readJournal, readJournalLines, recordProblem, type JournalEntry } from '../../src/output/journal.js';
import { NotRegularFile, readExactly } from '../../src/output/regular-file.js';
import { tempDir } from '../helpers/tmp.js';

const MiB = 1 << 20;

test('readJournal: lines split across reads of every size come back whole, with their end offsets and 1-based numbers', async () => {
  const dir = tempDir('spp-journal-');
  const lines = [{ type: 'header', tool: 'spp-extract' }, { type: 'row', n: 'x'.repeat(50) }, { type: 'failure' }, { type: 'summary' }];
  const text = lines.map((l) => JSON.stringify(l) + '\n').join('');
  const path = join(dir, 'j.jsonl');
  writeFileSync(path, text + '{"type":"row","ro'); // a torn last line
  for (const chunkBytes of [1, 2, 7, 64, MiB]) {
    const { entries, ...end } = await readJournalLines(path, { chunkBytes });
    assert.deepEqual(entries.map((e) => e.line), lines, `chunk ${chunkBytes}`);
    assert.deepEqual(entries.map((e) => e.number), [1, 2, 3, 4]);
    assert.equal(entries.at(-1)!.end, Buffer.byteLength(text));
    assert.deepEqual(end, { lines: 4, end: Buffer.byteLength(text), torn: 5 });
  }
  // An unparsable line in the middle ends the read there; the callback can stop it too.
  writeFileSync(path, `${JSON.stringify(lines[0])}\nnot json\n${JSON.stringify(lines[1])}\n`);
  const seen: JournalEntry[] = [];
  assert.deepEqual(await readJournal(path, (e) => void seen.push(e), { chunkBytes: 3 }), { lines: 1, end: Buffer.byteLength(JSON.stringify(lines[0])) + 1, torn: 2, whole: true });
  assert.equal(seen.length, 1);
  writeFileSync(path, text);
  assert.deepEqual(await readJournal(path, () => false), { lines: 1, end: Buffer.byteLength(JSON.stringify(lines[0])) + 1 });
});

test('readJournal: a 20 MB file without a newline is refused as not ours once a line passes the limit (1 MiB here)', async () => {
  assert.equal(JOURNAL_MAX_LINE_BYTES, 64 * MiB);
  const dir = tempDir('spp-journal-');
  const path = join(dir, 'big.jsonl');
  const fd = openSync(path, 'w');
  const block = Buffer.alloc(MiB, 0x61);
  for (let i = 0; i < 20; i++) writeSync(fd, block);
  closeSync(fd);
  let lines = 0;
  await assert.rejects(readJournal(path, () => void lines++, { maxLineBytes: MiB }), (err: Error) => {
    assert.ok(err instanceof NotAJournal);
    assert.equal(err.message, `${path} is not an spp-extract journal: line 1 is longer than 1 MiB`);
    return true;
  });
  assert.equal(lines, 0);
  // A long line after good ones: named by its number, also when its end is in the same read.
  writeFileSync(path, '{"type":"header"}\n' + 'b'.repeat(MiB + 1) + '\n');
  await assert.rejects(readJournal(path, () => undefined, { maxLineBytes: MiB }), /line 2 is longer than 1 MiB/);
  await assert.rejects(readJournal(path, () => undefined, { maxLineBytes: MiB, chunkBytes: 4 * MiB }), /line 2 is longer than 1 MiB/);
  // Exactly at the limit is still read.
  writeFileSync(path, JSON.stringify({ s: 'c'.repeat(MiB - 8) }) + '\n');
  assert.equal((await readJournalLines(path, { maxLineBytes: MiB })).entries.length, 1);
});

test('readJournal: only regular files: a symlink to /dev/zero, a FIFO (never waited on) and a folder are refused naming them', { timeout: 30_000 }, async () => {
  const dir = tempDir('spp-journal-');
  const zero = join(dir, 'zero.manifest.jsonl');
  execFileSync('ln', ['-s', '/dev/zero', zero]);
  const fifo = join(dir, 'fifo.jsonl');
  execFileSync('mkfifo', [fifo]);
  for (const [path, what] of [[zero, 'a character device'], [fifo, 'a FIFO'], [dir, 'a directory']]) {
    await assert.rejects(readJournal(path, () => undefined), (err: Error) => {
      assert.ok(err instanceof NotRegularFile, String(err));
      assert.equal(err.message, `${path} is not a regular file (${what}); refusing to read it`);
      return true;
    });
  }
});

test('readExactly: a short read is an error naming the file, not zeros', async () => {
  const dir = tempDir('spp-journal-');
  const path = join(dir, 'short.npy');
  writeFileSync(path, Buffer.alloc(100, 1));
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(128);
    await assert.rejects(readExactly(fh, path, buf, 128, 0), new RegExp(`^Error: ${path}: short read: 100 of 128 bytes at offset 0`));
    await readExactly(fh, path, buf, 50, 50);
    assert.equal(buf[49], 1);
  } finally {
    await fh.close();
  }
});

test('recordProblem: the fields a merge or resume relies on, checked; unknown fields left alone', () => {
  const row = { type: 'row', row: 2, index: 5, path: 'a.jpg', width: 3, height: 4, path_bytes: 'YQ==' };
  assert.equal(recordProblem(row, { row: 2 }), undefined);
  assert.equal(recordProblem(row, { row: 3 }), '"row" is 2, expected 3 (the rows before it)');
  assert.equal(recordProblem({ ...row, row: undefined }, { row: 2 }), '"row" is missing, expected 2 (the rows before it)');
  assert.equal(recordProblem({ ...row, index: -1 }), '"index" is -1, expected a non-negative integer');
  assert.equal(recordProblem({ ...row, path: 7 }), '"path" is 7, expected a string');
  assert.equal(recordProblem({ ...row, width: 'x' }), '"width" is "x", expected a non-negative integer');
  assert.equal(recordProblem({ ...row, box: [1, 'a'] }), '"box" is [1,"a"], expected a list of numbers');
  assert.equal(recordProblem({ ...row, descriptor: [1, null, 2] }, { dim: 3 }), undefined);
  assert.equal(recordProblem({ ...row, descriptor: [1, 2] }, { dim: 3 }), '"descriptor" is not a list of 3 numbers');
  const failure = { type: 'failure', index: 1, path: 'b.jpg', reason: 'corrupt', error: 'x' };
  assert.equal(recordProblem(failure, { row: 9 }), undefined, 'a failure has no row number');
  assert.equal(recordProblem({ ...failure, error: undefined }), '"error" is missing, expected a string');
  assert.equal(recordProblem({ ...failure, boxes: 1.5 }), '"boxes" is 1.5, expected a non-negative integer');
  assert.equal(recordProblem({ type: 'header' }), '"type" is "header", expected "row" or "failure"');
});
