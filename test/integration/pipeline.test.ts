/**
 * The pipeline on its own: runExtraction with a stand-in Extractor (known descriptors, chosen
 * completion order, chosen failures) and a writer that records its calls; and createExtractor's
 * extract() against the backbone's feature map pooled by spatialPyramidPool directly.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { DecodeError, decodeImage, validateDecodeOptions, workingSize, type DecodedImage } from '../../src/decode/decode.js';
import type { FailureRecord, OutputWriter, RowRecord, RunSummary } from '../../src/output/records.js';
import { createExtractor, type Extractor } from '../../src/pipeline/extractor.js';
import { IN_BACKBONE, prefetchDecodes, runExtraction, type RunProgress, type WorkItem } from '../../src/pipeline/run.js';
import { normalizeDescriptor, spatialPyramidPool } from '../../src/spp/spp.js';
import { fixture } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

const DECODE = validateDecodeOptions({});

/** The fixture images (one is a text file), a path that does not exist, then the images again. */
const FILES = ['nested/blue-alpha-40x90.png', 'nested/gray-100x70.webp', 'noise-100x70.jpg', 'not-an-image.jpg', 'red-64x48.png']
  .map((f) => fixture('images', f));
const ITEMS: WorkItem[] = [...FILES, fixture('images', 'missing.png'), ...FILES].map((path, index) => ({ index, path }));

/** A descriptor that identifies the pixels it was given: width, height, a checksum (exact in float32). */
function describePixels(img: { data: Uint8Array; width: number; height: number }): Float32Array {
  let sum = 0;
  for (let i = 0; i < img.data.length; i++) sum = (sum + img.data[i] * ((i % 7) + 1)) % 16777213;
  return Float32Array.of(img.width, img.height, sum);
}

type Expected =
  | { type: 'row'; index: number; path: string; width: number; height: number; descriptor: Float32Array }
  | { type: 'failure'; index: number; path: string; reason: string };

/** What each item must become, from decoding it here with the same options. */
async function expectedFor(items: readonly WorkItem[]): Promise<Expected[]> {
  const out: Expected[] = [];
  for (const { index, path } of items) {
    try {
      const img = await decodeImage(path, DECODE, path);
      out.push({ type: 'row', index, path, width: img.originalWidth, height: img.originalHeight, descriptor: describePixels(img) });
    } catch (err) {
      assert.ok(err instanceof DecodeError, String(err));
      out.push({ type: 'failure', index, path, reason: err.reason });
    }
  }
  return out;
}

interface FakeOptions {
  /** Milliseconds the n-th extractPixels call takes. */
  delay?: (call: number) => number;
  /** Makes the backbone fail on these pixels. */
  fails?: (img: DecodedImage) => boolean;
}

/** An Extractor with no model: extractPixels answers describePixels after a chosen delay. */
function fakeExtractor(o: FakeOptions = {}) {
  let calls = 0;
  const completed: number[] = [];
  const extractor = {
    info: { decode: DECODE },
    extractPixels: async (img: DecodedImage) => {
      const call = calls++;
      const ms = o.delay?.(call) ?? 0;
      if (ms > 0) await sleep(ms);
      completed.push(call);
      if (o.fails?.(img)) throw new Error('injected backbone failure');
      return describePixels(img);
    },
  } as unknown as Extractor;
  return { extractor, completed, calls: () => calls };
}

type Event = { type: 'row'; rec: RowRecord } | { type: 'failure'; rec: FailureRecord } | { type: 'close'; summary: RunSummary };

/** A writer that records every call; `onRecord` sees each row/failure as it arrives. */
function recordingWriter(onRecord?: (count: number) => void) {
  const events: Event[] = [];
  let records = 0;
  const writer: OutputWriter = {
    paths: ['(memory)'],
    row: async (rec) => {
      events.push({ type: 'row', rec: { ...rec, descriptor: Float32Array.from(rec.descriptor) } });
      onRecord?.(++records);
    },
    failure: async (rec) => {
      events.push({ type: 'failure', rec });
      onRecord?.(++records);
    },
    close: async (summary) => void events.push({ type: 'close', summary }),
    abandon: async () => undefined,
  };
  return { writer, events };
}

/** Events in a comparable form (descriptor as a plain array, message left out). */
const simplified = (events: readonly Event[]) =>
  events.map((e) => (e.type === 'row'
    ? { type: 'row', index: e.rec.index, path: e.rec.path, width: e.rec.width, height: e.rec.height, descriptor: Array.from(e.rec.descriptor) }
    : e.type === 'failure' ? { type: 'failure', index: e.rec.index, path: e.rec.path, reason: e.rec.reason } : e));
const simplifiedExpected = (exp: readonly Expected[]) =>
  exp.map((e) => (e.type === 'row' ? { ...e, descriptor: Array.from(e.descriptor) } : e));

describe('runExtraction with a stand-in extractor and a recording writer', () => {
  let expected: Expected[] = [];
  before(async () => {
    expected = await expectedFor(ITEMS);
    assert.deepEqual(expected.map((e) => (e.type === 'row' ? 'row' : e.reason)),
      ['row', 'row', 'row', 'unsupported-format', 'row', 'missing', 'row', 'row', 'row', 'unsupported-format', 'row']);
  });

  it('every input becomes one row or one failure, in input order, though the backbone finishes them out of order', async () => {
    // Even calls are slow, odd ones instant: call k+1 finishes before call k.
    const fake = fakeExtractor({ delay: (call) => (call % 2 === 0 ? 30 : 0) });
    const { writer, events } = recordingWriter();
    const failures: [string, string, string][] = [];
    const progress: RunProgress[] = [];
    const summary = await runExtraction(ITEMS, fake.extractor, writer, {
      onFailure: (path, reason, message) => failures.push([path, reason, message]),
      onProgress: (p) => progress.push(p),
    });
    assert.ok(fake.completed.some((call, i) => i > 0 && call < fake.completed[i - 1]), `completions out of order: ${fake.completed}`);
    assert.deepEqual(simplified(events), simplifiedExpected(expected), 'the writer got the inputs in order with their own descriptors');
    assert.deepEqual(summary, { rows: 8, failures: 3, complete: true });
    assert.equal(fake.calls(), 8, 'the backbone saw only the decodable images');
    assert.deepEqual(failures.map(([p, r]) => [p, r]), expected.filter((e) => e.type === 'failure').map((e) => [e.path, (e as { reason: string }).reason]));
    for (const [p, r, message] of failures) assert.ok(message.startsWith(`${p}: ${r}: `) && !message.includes('\n'), message);
    const failed = events.filter((e): e is Extract<Event, { type: 'failure' }> => e.type === 'failure');
    assert.deepEqual(failed.map((e) => e.rec.error), failures.map(([, , m]) => m), 'the writer records the same messages');
    assert.deepEqual(progress.map((p) => p.done), ITEMS.map((_, i) => i + 1));
    assert.deepEqual({ ...progress.at(-1)!, elapsedMs: 0 }, { done: 11, total: 11, imagesDone: 8, rows: 8, failures: 3, elapsedMs: 0 });
    assert.ok(!events.some((e) => e.type === 'close'), 'closing is the caller\'s job');
  });

  it('the backbone is never left idle by the writer: IN_BACKBONE images stay handed to it while the oldest is written, never more', async () => {
    // Two sessions (engine-pool.ts) run two images at once; the one that finishes first must find a third queued.
    assert.ok(IN_BACKBONE >= 3, `IN_BACKBONE ${IN_BACKBONE}`);
    let running = 0;
    let most = 0;
    const extractor = {
      info: { decode: DECODE },
      extractPixels: async (img: DecodedImage) => {
        most = Math.max(most, ++running);
        await sleep(5);
        running--;
        return describePixels(img);
      },
    } as unknown as Extractor;
    // Decodable images only: a failed input never reaches the backbone.
    const rows = expected.filter((e) => e.type === 'row').map((e) => e.path);
    const items = [...rows, ...rows].map((path, index) => ({ index, path }));
    const { writer, events } = recordingWriter();
    await runExtraction(items, extractor, writer, { decodeAhead: 8 });
    assert.equal(most, IN_BACKBONE + 1, 'the next image is handed over before the oldest is awaited');
    assert.deepEqual(events.map((e) => (e as { rec: { index: number } }).rec.index), items.map((i) => i.index), 'rows in input order');
  });

  it('decodeAhead 1 and 8 give the same records', async () => {
    const runs = [];
    for (const decodeAhead of [1, 8]) {
      const { writer, events } = recordingWriter();
      await runExtraction(ITEMS, fakeExtractor({ delay: (call) => (call % 3 === 0 ? 10 : 0) }).extractor, writer, { decodeAhead });
      runs.push(simplified(events));
    }
    assert.deepEqual(runs[0], simplifiedExpected(expected));
    assert.deepEqual(runs[1], runs[0]);
  });

  it('decodes started before the run (prefetchDecodes: fewer than, as many as the inputs) give the same records as a run without', async () => {
    const paths = ITEMS.map((i) => i.path);
    for (const count of [3, 8, ITEMS.length]) {
      const { writer, events } = recordingWriter();
      const decoded = prefetchDecodes(paths.slice(0, count), DECODE);
      await runExtraction(ITEMS, fakeExtractor().extractor, writer, { decodeAhead: 4, prefetched: { at: 0, decoded } });
      assert.deepEqual(simplified(events), simplifiedExpected(expected), `${count} prefetched`);
    }
  });

  it('a prefetched decode is taken as the image of its slot, not decoded again', async () => {
    // Slots 0-2 all hold the decode of item 2 (noise-100x70.jpg): rows 0 and 1 must carry its pixels.
    const noise = ITEMS[2]!.path;
    const decoded = prefetchDecodes([noise, noise, noise], DECODE);
    const { writer, events } = recordingWriter();
    await runExtraction(ITEMS, fakeExtractor().extractor, writer, { decodeAhead: 2, prefetched: { at: 0, decoded } });
    const got = simplified(events);
    const want = simplifiedExpected(expected);
    const content = (e: (typeof got)[number]) => ({ ...e, index: 0, path: '' });
    for (const i of [0, 1]) assert.deepEqual(content(got[i]!), content(want[2]!), `row ${i} is the prefetched image`);
    assert.deepEqual(got.slice(2), want.slice(2), 'the rest decode as usual');
    assert.deepEqual(got.map((g) => (g as { path: string }).path), ITEMS.map((i) => i.path), 'paths and order are the items\'');
  });

  it('a backbone that throws on one image: that input is a "backbone" failure naming it, the rest go on', async () => {
    const red = (img: DecodedImage) => img.originalWidth === 64 && img.originalHeight === 48;
    const { writer, events } = recordingWriter();
    const summary = await runExtraction(ITEMS, fakeExtractor({ fails: red }).extractor, writer);
    assert.deepEqual(summary, { rows: 6, failures: 5, complete: true });
    const byIndex = new Map(events.map((e) => [(e as { rec: { index: number } }).rec.index, e]));
    for (const i of [4, 10]) {
      const e = byIndex.get(i)!;
      assert.equal(e.type, 'failure');
      const rec = (e as Extract<Event, { type: 'failure' }>).rec;
      assert.deepEqual([rec.path, rec.reason, rec.error], [ITEMS[i].path, 'backbone', `${ITEMS[i].path}: backbone failed: injected backbone failure`]);
    }
    assert.deepEqual(events.map((e) => (e as { rec: { index: number } }).rec.index), ITEMS.map((it) => it.index));
  });

  it('an abort stops early: what is written is a prefix of the inputs, and the summary says complete: false', async () => {
    const controller = new AbortController();
    const fake = fakeExtractor({ delay: () => 2 });
    const { writer, events } = recordingWriter((n) => n === 3 && controller.abort());
    const summary = await runExtraction(ITEMS, fake.extractor, writer, { signal: controller.signal });
    const written = events.map((e) => (e as { rec: { index: number } }).rec.index);
    assert.equal(summary.complete, false);
    assert.ok(written.length >= 3 && written.length < ITEMS.length, `${written.length} written`);
    assert.deepEqual(written, ITEMS.slice(0, written.length).map((it) => it.index), 'a prefix, in order');
    assert.equal(summary.rows + summary.failures, written.length);
    assert.deepEqual(simplified(events), simplifiedExpected(expected.slice(0, written.length)));

    const before = recordingWriter();
    const aborted = AbortSignal.abort();
    assert.deepEqual(await runExtraction(ITEMS, fakeExtractor().extractor, before.writer, { signal: aborted }), { rows: 0, failures: 0, complete: false });
    assert.deepEqual(before.events, []);
  });

  it('resume: startAt skips what is done; counts carry on from rowsBefore / failuresBefore', async () => {
    const { writer, events } = recordingWriter();
    const progress: RunProgress[] = [];
    const summary = await runExtraction(ITEMS, fakeExtractor().extractor, writer, {
      startAt: 6, rowsBefore: 5, failuresBefore: 1, onProgress: (p) => progress.push(p),
    });
    assert.deepEqual(simplified(events), simplifiedExpected(expected.slice(6)));
    assert.deepEqual(summary, { rows: 5 + 4, failures: 1 + 1, complete: true });
    assert.deepEqual({ ...progress.at(-1)!, elapsedMs: 0 }, { done: 5, total: 5, imagesDone: 4, rows: 9, failures: 2, elapsedMs: 0 });
  });

  it('no inputs: nothing written, complete', async () => {
    const { writer, events } = recordingWriter();
    assert.deepEqual(await runExtraction([], fakeExtractor().extractor, writer), { rows: 0, failures: 0, complete: true });
    assert.deepEqual(events, []);
  });
});

describe('createExtractor: extract() is the backbone\'s feature map pooled by spatialPyramidPool', () => {
  let extractor: Extractor;
  let l2: Extractor;
  const levels = [1, 2, 4];
  before(async () => {
    const cacheDir = tempDir('spp-pipeline-cache-');
    const common = { model: fixture('tiny-layers'), engine: 'onnx' as const, threads: 1, cacheDir, levels, pool: 'avg' as const };
    extractor = await createExtractor(common);
    l2 = await createExtractor({ ...common, normalize: 'l2' });
  });
  after(async () => {
    await extractor?.dispose();
    await l2?.dispose();
  });

  it('on a fixture photo, by path and by bytes; extractDetailed reports the sizes', async () => {
    const path = fixture('images', 'noise-100x70.jpg');
    const img = await decodeImage(path, extractor.info.decode);
    const map = await extractor.backbone.featureMap(img);
    const expected = spatialPyramidPool(map, levels, 'avg');
    assert.equal(expected.length, extractor.info.dim);
    assert.ok(expected.some((v) => v !== 0), 'a non-trivial descriptor');
    assert.deepEqual(await extractor.extract(path), expected);
    assert.deepEqual(await extractor.extract(readFileSync(path)), expected);
    assert.deepEqual(await extractor.extractPixels(img), expected);
    const detailed = await extractor.extractDetailed(path);
    assert.deepEqual(detailed.descriptor, expected);
    const input = workingSize(100, 70, DECODE);
    assert.deepEqual(
      [detailed.originalWidth, detailed.originalHeight, detailed.inputWidth, detailed.inputHeight, detailed.mapWidth, detailed.mapHeight],
      [100, 70, input.width, input.height, map.width, map.height],
    );
    assert.deepEqual([img.width, img.height], [input.width, input.height]);
  });

  it('normalize l2 divides the same descriptor by its L2 norm', async () => {
    const path = fixture('images', 'nested', 'blue-alpha-40x90.png');
    const raw = await extractor.extract(path);
    const got = await l2.extract(path);
    let ss = 0;
    for (const v of raw) ss += v * v;
    const norm = Math.sqrt(ss);
    assert.ok(norm > 0);
    for (let i = 0; i < raw.length; i++) assert.ok(Math.abs(got[i] - raw[i] / norm) <= 1e-7, `element ${i}: ${got[i]} vs ${raw[i] / norm}`);
    assert.deepEqual(normalizeDescriptor(Float32Array.from(raw), 'l2'), got);
  });
});
