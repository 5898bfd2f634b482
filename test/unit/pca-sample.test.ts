import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { gaussian } from '../../src/pca/linalg.js';
import { sampleKey, selectSample } from '../../src/pca/sample.js';

const sha = (s: string) => createHash('sha256').update(Buffer.from(s, 'utf8')).digest('hex');
const paths = Array.from({ length: 500 }, (_, i) => `photos/${i % 7 === 0 ? 'ünï/' : ''}img-${String(i).padStart(4, '0')}.jpg`);
const id = (p: string) => p;

function shuffled<T>(a: readonly T[], seed: number): T[] {
  const g = gaussian(seed);
  const out = [...a];
  for (let i = out.length - 1; i > 0; i--) {
    const u = 0.5 + 0.5 * Math.tanh(g()); // any map of the normal draws to [0, 1) will do
    const j = Math.min(i, Math.floor(u * (i + 1)));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Reference: sort by SHA-256 of the UTF-8 key (hex order = byte order), take `limit`. */
const lowestHashes = (keys: readonly string[], limit: number) => [...keys].sort((a, b) => (sha(a) < sha(b) ? -1 : sha(a) > sha(b) ? 1 : 0)).slice(0, limit);

describe('selectSample', () => {
  it('returns min(limit, n) entries: the lowest SHA-256 of the key, in hash order', () => {
    for (const limit of [0, 1, 37, 499, 500, 10_000]) {
      const got = selectSample(paths, limit, id);
      assert.equal(got.length, Math.min(limit, paths.length), `limit ${limit}`);
      assert.deepEqual(got, lowestHashes(paths, limit), `limit ${limit}`);
      const hashes = got.map(sha);
      for (let i = 1; i < hashes.length; i++) assert.ok(hashes[i - 1] < hashes[i], `hash order at ${i}`);
    }
  });

  it('does not depend on the input order', () => {
    const want = selectSample(paths, 50, id);
    for (const seed of [1, 2, 3]) {
      const order = shuffled(paths, seed);
      assert.notDeepEqual(order, paths);
      assert.deepEqual(selectSample(order, 50, id), want, `shuffle ${seed}`);
    }
    assert.deepEqual(selectSample([...paths].reverse(), 50, id), want);
  });

  it('hashes the key keyOf gives, not the entry: objects keyed by path#box', () => {
    const entries = paths.slice(0, 60).flatMap((path) => [0, 1].map((box) => ({ path, box })));
    const got = selectSample(entries, 20, (e) => sampleKey(e.path, e.box));
    assert.deepEqual(got.map((e) => `${e.path}#${e.box}`), lowestHashes(entries.map((e) => `${e.path}#${e.box}`), 20));
    assert.equal(sampleKey('a/b.jpg'), 'a/b.jpg');
    assert.equal(sampleKey('a/b.jpg', 3), 'a/b.jpg#3');
  });

  it('the sample of a subset (one --shard): the full sample\'s members in it are a prefix of its own sample', () => {
    // What holds: selectSample(S, limit) is the `limit` lowest hashes of S, whatever S is. So for a
    // subset S ⊆ U (one shard's paths), sample(U) ∩ S, in hash order, is always a PREFIX of
    // sample(S): anything in S below U's cut-off is below S's too. It is all of sample(S) exactly
    // when that prefix already has min(limit, |S|) members (e.g. limit ≥ |U|); otherwise sample(S)
    // continues with paths of S that U's sample left out. Checked for every shard of 4:
    const limit = 60;
    const full = selectSample(paths, limit, id);
    for (let shard = 0; shard < 4; shard++) {
      const subset = paths.filter((_, i) => i % 4 === shard);
      const own = selectSample(subset, limit, id);
      assert.deepEqual(own, lowestHashes(subset, limit), `shard ${shard}: its own lowest ${limit}`);
      const restricted = full.filter((p) => subset.includes(p));
      assert.ok(restricted.length < limit, 'the shard holds only part of the full sample');
      assert.deepEqual(own.slice(0, restricted.length), restricted, `shard ${shard}: full sample ∩ shard is a prefix of the shard's sample`);
      // With the limit at the shard's share of the full sample, they are equal.
      assert.deepEqual(selectSample(subset, restricted.length, id), restricted, `shard ${shard}: equal at limit ${restricted.length}`);
    }
    // limit ≥ |U|: every subset's sample is exactly the full sample's members in it.
    const everything = selectSample(paths, paths.length, id);
    const subset = paths.filter((_, i) => i % 3 === 1);
    assert.deepEqual(selectSample(subset, paths.length, id), everything.filter((p) => subset.includes(p)));
  });

  it('the sample of a union is the lowest-hash `limit` of the union of the parts\' samples', () => {
    // Merging shards: each shard's own sample (same limit) holds every union-sample member from that
    // shard, so sampling the concatenated shard samples gives the union's sample.
    const limit = 45;
    const shards = [0, 1, 2].map((s) => paths.filter((_, i) => i % 3 === s));
    const merged = selectSample(shards.flatMap((s) => selectSample(s, limit, id)), limit, id);
    assert.deepEqual(merged, selectSample(paths, limit, id));
  });

  it('a key listed twice counts twice, ties kept in input order', () => {
    const entries = [{ p: 'b', n: 1 }, { p: 'a', n: 2 }, { p: 'b', n: 3 }];
    const got = selectSample(entries, 3, (e) => e.p);
    const bFirst = sha('b') < sha('a');
    assert.deepEqual(got.map((e) => e.n), bFirst ? [1, 3, 2] : [2, 1, 3]);
  });
});
