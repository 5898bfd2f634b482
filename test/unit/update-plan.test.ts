/** planUpdate: which inputs keep their row, the shard's input count, and the inputs an interrupted update already did. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { recordKey, type RunHeader, type StoredRecord, type UpdateBase } from '../../src/output/index.js';
import { hashAhead, planUpdate, type UpdatePlan } from '../../src/pipeline/update.js';
import type { WorkItem } from '../../src/inputs/shard.js';

/** A stored output of these (index, path, sha256) rows, counting `inputs` inputs in all (a shard holds some of them). */
function base(rows: [number, string, string][], inputs: number): UpdateBase {
  const records = new Map<string, StoredRecord>(rows.map(([index, path, sha256], row) =>
    [recordKey({ path }), { index, path, failed: false, sha256, width: 1, height: 1, row, start: 0, end: 0 }]));
  const unused = () => Promise.reject(new Error('planning reads no row'));
  return { header: { inputs } as RunHeader, records, rowBytes: unused, rowValues: unused, rowJson: unused, close: async () => undefined };
}

const items = (...paths: [number, string][]): WorkItem[] => paths.map(([index, path]) => ({ index, path }));
/** The files' bytes as they are now: path → SHA-256. */
const files = (now: Record<string, string>) => async (path: string | Buffer) => now[String(path)];

test('a shard whose rows are all unchanged is up to date only when the full input count is too', async () => {
  const stored = base([[0, 'a', 'A'], [2, 'c', 'C']], 3);
  const now = files({ a: 'A', c: 'C' });
  const same = await planUpdate(items([0, 'a'], [2, 'c']), 3, stored, [], now) as UpdatePlan;
  assert.equal(same.upToDate, true);
  // A file added to another shard after these: no row moves, but the header's count does.
  const grown = await planUpdate(items([0, 'a'], [2, 'c']), 4, stored, [], now) as UpdatePlan;
  assert.equal(grown.upToDate, false);
  assert.deepEqual(grown.counts, { reused: 2, added: 0, redone: 0, dropped: 0 });
});

test('the inputs an interrupted update did are planned no further, unless one of them changed since', async () => {
  const stored = base([[0, 'a', 'A'], [1, 'b', 'B'], [2, 'gone', 'G']], 3);
  const list = items([0, 'a'], [1, 'new'], [2, 'b']);
  const now = files({ a: 'A', new: 'N', b: 'B' });
  // a and new were written before the cut (new's row records N); b is kept from the old output.
  const plan = await planUpdate(list, 3, stored, ['A', 'N'], now) as UpdatePlan;
  assert.deepEqual(plan.extract, []);
  assert.deepEqual(plan.reuse.map((r) => r.item.path), ['b']);
  assert.deepEqual(plan.counts, { done: 2, reused: 1, added: 0, redone: 0, dropped: 1 });
  assert.equal(plan.upToDate, false);
  // A failure before the cut has no SHA-256 to check: it stays done.
  assert.notEqual(await planUpdate(list, 3, stored, ['A', undefined], now), 'stale');
  // new was replaced since its row was written.
  assert.equal(await planUpdate(list, 3, stored, ['A', 'N'], files({ a: 'A', new: 'N2', b: 'B' })), 'stale');
});

test('hashAhead starts hashing every file input at once (the model loads meanwhile); planning then reads each hash once', async () => {
  const asked: string[] = [];
  const now = files({ a: 'A', b: 'B', c: 'C' });
  const counting = async (path: string | Buffer) => {
    asked.push(String(path));
    return now(path);
  };
  const list: WorkItem[] = [...items([0, 'a'], [1, 'b'], [2, 'c']), { index: 3, path: 'gone', failure: { reason: 'unreadable', error: 'cannot read folder' } }];
  const identity = hashAhead(list, counting);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual([...asked].sort(), ['a', 'b', 'c'], 'every readable input is hashed before planning asks (a failed input is not)');
  const plan = await planUpdate(list, 4, base([[0, 'a', 'A'], [1, 'b', 'old'], [2, 'c', 'C']], 4), [], identity) as UpdatePlan;
  assert.deepEqual(plan.reuse.map((r) => r.item.path), ['a', 'c']);
  assert.deepEqual(plan.extract.map((i) => i.path), ['b', 'gone']);
  assert.equal(asked.length, 3, 'no file is hashed twice');
});
