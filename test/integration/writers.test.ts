/**
 * The output writers on their own (no model, no CLI): NpyWriter, JsonlWriter and JsonWriter from
 * create through rows and failures to close, and an interrupted run taken up again through
 * prepareOutput / openWriter / findResumePoint. Expected bytes are built here from the records
 * (and checked by numpy where it is installed), not by the writers' own encoders.
 */
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, readdirSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { JsonWriter } from '../../src/output/json-writer.js';
import { JsonlWriter } from '../../src/output/jsonl-writer.js';
import { NpyWriter, openWriter, prepareOutput, type OutputWriter, type RunHeader } from '../../src/output/index.js';
import { sinkTuning } from '../../src/output/io.js';
import { parseNpyHeader } from '../../src/output/npy.js';
import { findResumePoint } from '../../src/output/resume.js';
import { readJsonl } from '../helpers/jsonl.js';
import { hasNumpy, runPython } from '../helpers/python.js';
import { tempDir } from '../helpers/tmp.js';

const DIM = 6;
const HEADER: RunHeader = {
  tool: 'spp-extract', engine: 'onnx', model: '/models/test', modelFormat: 'layers', layer: 'pw3', inputRange: [-1, 1],
  levels: [1, 2], pool: 'max', normalize: 'none', dim: DIM, channels: 2, dtype: 'float32', size: 224, maxSide: 4096,
  background: '#ffffff', failOn: 'error', inputs: 5,
};

/** Values exactly representable in float16 too, so the f16 file can be checked bit for bit. */
const VALUES = [0.5, -2, 1.25, 1024, 0.0009765625, -512, 3, 0.75, 6, -0.125, 100, 2.5];
const descriptor = (i: number) => Float32Array.from({ length: DIM }, (_, j) => VALUES[(i * 5 + j) % VALUES.length] * (i + 1));

type Rec =
  | { kind: 'row'; index: number; path: string; width: number; height: number; descriptor: Float32Array }
  | { kind: 'failure'; index: number; path: string; reason: string; error: string };

/** Five inputs: rows at 0, 1, 3, 4 and a failure at 2. */
const RECORDS: Rec[] = [0, 1, 2, 3, 4].map((index) =>
  index === 2
    ? { kind: 'failure', index, path: `in/${index}.txt`, reason: 'unsupported-format', error: `in/${index}.txt: unsupported-format: not an image` }
    : { kind: 'row', index, path: `in/${index}.jpg`, width: 40 + index, height: 30 + 2 * index, descriptor: descriptor(index) });
const ROWS = RECORDS.filter((r): r is Extract<Rec, { kind: 'row' }> => r.kind === 'row');
const ITEMS = RECORDS.map(({ index, path }) => ({ index, path }));
const COMPLETE = { rows: 4, failures: 1, complete: true };

async function feed(writer: OutputWriter, records: readonly Rec[]): Promise<void> {
  for (const r of records) {
    if (r.kind === 'row') await writer.row({ index: r.index, path: r.path, width: r.width, height: r.height, descriptor: r.descriptor });
    else await writer.failure({ index: r.index, path: r.path, reason: r.reason, error: r.error });
  }
}

const ls = (dir: string) => readdirSync(dir).sort();
const f32Bytes = (rows: readonly Float32Array[]) => Buffer.concat(rows.map((d) => Buffer.from(d.buffer, d.byteOffset, d.byteLength)));

/** IEEE half → number, written out from the format's definition. */
function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** The journal lines every format's journal holds for RECORDS (the .npy manifest numbers its rows). */
function journalRecords(withDescriptor: boolean) {
  let row = 0;
  return RECORDS.map((r) => {
    if (r.kind === 'failure') return { type: 'failure', index: r.index, path: r.path, reason: r.reason, error: r.error };
    const base = withDescriptor ? { type: 'row' } : { type: 'row', row: row++ };
    const rec = { ...base, index: r.index, path: r.path, width: r.width, height: r.height };
    return withDescriptor ? { ...rec, descriptor: Array.from(r.descriptor) } : rec;
  });
}

describe('NpyWriter', () => {
  it('create → rows and a failure → close: a [4, D] float32 .npy and its manifest, temp names until close', async () => {
    const dir = tempDir('spp-writers-');
    const path = join(dir, 'out.npy');
    const w = await NpyWriter.create(path, HEADER);
    assert.deepEqual(w.paths, [path, join(dir, 'out.manifest.jsonl')]);
    await feed(w, RECORDS);
    assert.deepEqual(ls(dir), ['.out.manifest.jsonl.partial', '.out.npy.partial'], 'nothing under a final name before close');
    await w.close(COMPLETE);
    assert.deepEqual(ls(dir), ['out.manifest.jsonl', 'out.npy']);

    const bytes = readFileSync(path);
    const head = parseNpyHeader(bytes);
    assert.deepEqual(head.shape, [4, DIM]);
    assert.equal(head.dtype, '<f4');
    assert.equal(head.headerBytes % 64, 0);
    assert.ok(bytes.subarray(head.headerBytes).equals(f32Bytes(ROWS.map((r) => r.descriptor))), 'the rows, in order, as little-endian float32');
    assert.deepEqual(readJsonl(join(dir, 'out.manifest.jsonl')), [
      { type: 'header', ...HEADER }, ...journalRecords(false), { type: 'summary', ...COMPLETE },
    ]);
    if (hasNumpy()) {
      const loaded = JSON.parse(runPython('import numpy as np, json, sys; a = np.load(sys.argv[1]); print(json.dumps([list(a.shape), str(a.dtype), a.tolist()]))', [path]));
      assert.deepEqual(loaded, [[4, DIM], 'float32', ROWS.map((r) => Array.from(r.descriptor))]);
    }
  });

  it('float16: <f2 bits that decode to the rows (values exact in half precision)', async () => {
    const dir = tempDir('spp-writers-');
    const path = join(dir, 'half.npy');
    const w = await NpyWriter.create(path, { ...HEADER, dtype: 'float16' });
    await feed(w, RECORDS);
    await w.close(COMPLETE);
    const bytes = readFileSync(path);
    const head = parseNpyHeader(bytes);
    assert.deepEqual([head.dtype, head.shape], ['<f2', [4, DIM]]);
    assert.equal(bytes.length, head.headerBytes + 4 * DIM * 2);
    const got = Array.from({ length: 4 * DIM }, (_, i) => halfToNumber(bytes.readUInt16LE(head.headerBytes + 2 * i)));
    assert.deepEqual(got, ROWS.flatMap((r) => Array.from(r.descriptor)));
  });

  it('a descriptor of the wrong length is refused, naming the input', async () => {
    const dir = tempDir('spp-writers-');
    const w = await NpyWriter.create(join(dir, 'x.npy'), HEADER);
    await assert.rejects(w.row({ index: 0, path: 'in/short.jpg', width: 1, height: 1, descriptor: new Float32Array(DIM - 1) }),
      /descriptor of in\/short\.jpg has length 5, expected 6/);
    await w.abandon();
  });
});

describe('JsonlWriter', () => {
  it('toFile: header, one line per input with the descriptor, summary; renamed into place at close', async () => {
    const dir = tempDir('spp-writers-');
    const path = join(dir, 'out.jsonl');
    const w = await JsonlWriter.toFile(path, HEADER);
    await feed(w, RECORDS);
    assert.deepEqual(ls(dir), ['.out.jsonl.partial']);
    await w.close(COMPLETE);
    assert.deepEqual(ls(dir), ['out.jsonl']);
    const lines = readJsonl(path);
    assert.deepEqual(lines, [{ type: 'header', ...HEADER }, ...journalRecords(true), { type: 'summary', ...COMPLETE }]);
    // float32 → JSON number → float32 is exact.
    const rows = readJsonl(path).filter((l) => l.type === 'row');
    rows.forEach((l, i) => assert.ok(Float32Array.from(l.descriptor).every((v, j) => Object.is(v, ROWS[i].descriptor[j]))));
  });

  it('toStream writes the same bytes to a stream (stdout) as toFile to a file', async () => {
    const dir = tempDir('spp-writers-');
    const file = await JsonlWriter.toFile(join(dir, 'f.jsonl'), HEADER);
    await feed(file, RECORDS);
    await file.close(COMPLETE);
    const stream = new PassThrough();
    const chunks: Buffer[] = [];
    stream.on('data', (c) => chunks.push(c));
    const w = await JsonlWriter.toStream(stream, HEADER);
    assert.deepEqual(w.paths, ['stdout']);
    await feed(w, RECORDS);
    await w.close(COMPLETE);
    assert.ok(Buffer.concat(chunks).equals(readFileSync(join(dir, 'f.jsonl'))));
  });
});

describe('JsonWriter', () => {
  it('create → close: one JSON object (options, items, failures, summary); the journal removed once complete', async () => {
    const dir = tempDir('spp-writers-');
    const path = join(dir, 'out.json');
    const w = await JsonWriter.create(path, HEADER);
    await feed(w, RECORDS);
    assert.deepEqual(ls(dir), ['.out.json.journal.partial'], 'records go to the journal until close');
    await w.close(COMPLETE);
    assert.deepEqual(ls(dir), ['out.json']);
    const text = readFileSync(path, 'utf8');
    assert.ok(text.endsWith('\n'));
    assert.deepEqual(JSON.parse(text), {
      ...HEADER,
      items: ROWS.map((r) => ({ index: r.index, path: r.path, width: r.width, height: r.height, descriptor: Array.from(r.descriptor) })),
      failures: [{ index: 2, path: 'in/2.txt', reason: 'unsupported-format', error: 'in/2.txt: unsupported-format: not an image' }],
      summary: COMPLETE,
    });
  });

  it('a run closed incomplete (Ctrl-C) says so and keeps its journal for --resume', async () => {
    const dir = tempDir('spp-writers-');
    const path = join(dir, 'cut.json');
    const w = await JsonWriter.create(path, HEADER);
    await feed(w, RECORDS.slice(0, 2));
    await w.close({ rows: 2, failures: 0, complete: false });
    assert.deepEqual(ls(dir), ['.cut.json.journal.partial', 'cut.json']);
    const json = JSON.parse(readFileSync(path, 'utf8'));
    assert.deepEqual(json.summary, { rows: 2, failures: 0, complete: false });
    assert.equal(json.items.length, 2);
  });
});

describe('resume through prepareOutput / openWriter / findResumePoint', () => {
  // One write per record, so an abandoned writer leaves every record it was given on disk.
  const saved = { ...sinkTuning };
  before(() => void (sinkTuning.flushBytes = 1));
  after(() => void Object.assign(sinkTuning, saved));

  const finals = (format: string) => (format === 'npy' ? ['out.manifest.jsonl', 'out.npy'] : [`out.${format}`]);

  async function uninterrupted(format: string): Promise<Map<string, Buffer>> {
    const dir = tempDir('spp-writers-ref-');
    const prepared = await prepareOutput(join(dir, `out.${format}`), {});
    try {
      const opened = await openWriter(prepared, HEADER, ITEMS, false);
      assert.equal(opened.kind, 'writer');
      if (opened.kind !== 'writer') return new Map();
      assert.equal(opened.startAt, 0);
      await feed(opened.writer, RECORDS);
      await opened.writer.close(COMPLETE);
    } finally {
      prepared.release();
    }
    assert.deepEqual(ls(dir), finals(format));
    return new Map(finals(format).map((n) => [n, readFileSync(join(dir, n))]));
  }

  for (const format of ['npy', 'jsonl', 'json'] as const) {
    it(`${format}: killed after 3 of 5 records (and a torn last line), resumed at input 3, ends byte-identical`, async () => {
      const reference = await uninterrupted(format);
      const dir = tempDir('spp-writers-');
      const out = join(dir, `out.${format}`);
      const first = await prepareOutput(out, {});
      const opened = await openWriter(first, HEADER, ITEMS, false);
      assert.equal(opened.kind, 'writer');
      if (opened.kind !== 'writer') return;
      await feed(opened.writer, RECORDS.slice(0, 3));
      await opened.writer.abandon(); // as a kill leaves it: temp files, no summary
      first.release();
      const journal = join(dir, format === 'npy' ? '.out.manifest.jsonl.partial' : format === 'json' ? '.out.json.journal.partial' : '.out.jsonl.partial');
      appendFileSync(journal, '{"type":"row","index":3,"pa');

      const refused = prepareOutput(out, {});
      await assert.rejects(refused, /already exist.*--resume.*--force/, 'leftovers are refused without resume');

      const point = await findResumePoint(out, out, format, HEADER, ITEMS);
      assert.equal(point.kind, 'resume');
      if (point.kind !== 'resume') return;
      assert.deepEqual([point.startAt, point.rows, point.failures], [3, 2, 1]);
      await assert.rejects(findResumePoint(out, out, format, { ...HEADER, pool: 'avg' }, ITEMS), /different options \(.*"max" before, "avg" now/);
      const moved = ITEMS.map((it) => (it.index === 1 ? { ...it, path: 'in/other.jpg' } : it));
      await assert.rejects(findResumePoint(out, out, format, HEADER, moved), /input 1 was 'in\/1\.jpg' before and is 'in\/other\.jpg' now/);

      const again = await prepareOutput(out, { resume: true });
      try {
        const resumed = await openWriter(again, HEADER, ITEMS, true);
        assert.equal(resumed.kind, 'writer');
        if (resumed.kind !== 'writer') return;
        assert.deepEqual([resumed.startAt, resumed.rows, resumed.failures], [3, 2, 1]);
        await feed(resumed.writer, RECORDS.slice(resumed.startAt));
        await resumed.writer.close(COMPLETE);
      } finally {
        again.release();
      }
      assert.deepEqual(ls(dir), finals(format), 'no temp file, journal or lock left');
      for (const [name, bytes] of reference) assert.ok(readFileSync(join(dir, name)).equals(bytes), `${name} equals the uninterrupted run`);

      const done = await prepareOutput(out, { resume: true });
      try {
        assert.deepEqual(await openWriter(done, HEADER, ITEMS, true), { kind: 'complete', rows: 4, failures: 1 });
      } finally {
        done.release();
      }
    });
  }

  it('npy: a data file shorter than its manifest (rows journalled, bytes lost): resumes from the rows really on disk', async () => {
    const reference = await uninterrupted('npy');
    const dir = tempDir('spp-writers-');
    const out = join(dir, 'out.npy');
    const w = await NpyWriter.create(out, HEADER);
    await feed(w, RECORDS.slice(0, 3)); // rows 0 and 1, the failure at 2
    await w.abandon();
    const data = join(dir, '.out.npy.partial');
    truncateSync(data, statSync(data).size - DIM * 4); // row 1's bytes never reached the disk
    const point = await findResumePoint(out, out, 'npy', HEADER, ITEMS);
    assert.equal(point.kind, 'resume');
    if (point.kind !== 'resume') return;
    assert.deepEqual([point.startAt, point.rows, point.failures], [1, 1, 0], 'the manifest is trusted only as far as the data goes');
    const prepared = await prepareOutput(out, { resume: true });
    try {
      const resumed = await openWriter(prepared, HEADER, ITEMS, true);
      assert.equal(resumed.kind, 'writer');
      if (resumed.kind !== 'writer') return;
      await feed(resumed.writer, RECORDS.slice(resumed.startAt));
      await resumed.writer.close(COMPLETE);
    } finally {
      prepared.release();
    }
    for (const [name, bytes] of reference) assert.ok(readFileSync(join(dir, name)).equals(bytes), `${name} equals the uninterrupted run`);
  });

  it('a file spp-extract did not write is refused, never resumed into', async () => {
    const dir = tempDir('spp-writers-');
    for (const [name, format] of [['a.jsonl', 'jsonl'], ['b.json', 'json']] as const) {
      writeFileSync(join(dir, name), '{"mine":true}\n');
      await assert.rejects(findResumePoint(join(dir, name), name, format, HEADER, ITEMS), /not a run spp-extract can resume; left untouched/);
      assert.equal(readFileSync(join(dir, name), 'utf8'), '{"mine":true}\n');
    }
  });
});
