/**
 * --update: which inputs keep their stored row (same path, same content identity), which are
 * described again, and a writer that puts the kept rows back between the new ones in input order,
 * so the result is the output a fresh run over the current inputs writes.
 */
import { contentIdentity } from '../decode/decode.js';
import { withSidecar } from '../core/json-identity.js';
import { NpyWriter, recordKey, type OutputWriter, type StoredRecord, type UpdateBase } from '../output/index.js';
import { recordRef, type WorkItem } from '../inputs/shard.js';

/** `done`: inputs an interrupted --update had already written to the temp files this run continues. */
export interface UpdateCounts { reused: number; added: number; redone: number; dropped: number; done?: number }

export interface UpdatePlan {
  /** Inputs to describe: new ones, changed ones, and ones that failed before (tried again). */
  extract: WorkItem[];
  /** Inputs whose stored row is kept, in input order. */
  reuse: { item: WorkItem; stored: StoredRecord }[];
  counts: UpdateCounts;
  /** Nothing to describe, drop or renumber, the same input count: the stored output is what a fresh run would write. */
  upToDate: boolean;
}

/** Files hashed at once while planning (reads only; the disk, not the CPU, sets the pace). */
const HASHING_AT_ONCE = 8;

const keyOf = (item: WorkItem) => recordKey({ path: item.path, ...(item.pathBytes ? { path_bytes: item.pathBytes.toString('base64') } : {}) });

const identityKey = (path: string | Buffer) => (typeof path === 'string' ? `p:${path}` : `b:${path.toString('base64')}`);

/**
 * Starts hashing every file input now, HASHING_AT_ONCE at a time, so that the hashing runs while
 * the model loads and the stored output is read; the returned identity (for planUpdate) waits for
 * an input's hash, or hashes it then if the pool has not reached it yet.
 */
export function hashAhead(
  items: readonly WorkItem[], identity: (path: string | Buffer) => Promise<string | undefined> = contentIdentity,
): (path: string | Buffer) => Promise<string | undefined> {
  const started = new Map<string, Promise<string | undefined>>();
  const start = (path: string | Buffer) => {
    const key = identityKey(path);
    let p = started.get(key);
    if (!p) started.set(key, (p = identity(path)));
    return p;
  };
  const files = items.filter((it) => !it.member && !it.failure);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < files.length; i = next++) await start(files[i]!.pathBytes ?? files[i]!.path);
  };
  for (let w = 0; w < HASHING_AT_ONCE; w++) void worker();
  return start;
}

/**
 * Compares every input of this run (of its shard, with --shard) with its stored record; a stored
 * row is reused only when the file's bytes hash the same and, with --keep-json, a tar member's
 * sidecar gives the `json` its record holds (compared by identity: core/json-identity.ts).
 * `inputs`: the full input list's length. `done`: the identity (withSidecar) of each input an
 * interrupted --update already wrote (undefined where it failed); they are planned no further,
 * but a file changed since makes the plan 'stale'.
 */
export async function planUpdate(
  items: readonly WorkItem[], inputs: number, base: UpdateBase, done: readonly (string | undefined)[] = [],
  identity: (path: string | Buffer) => Promise<string | undefined> = contentIdentity,
): Promise<UpdatePlan | 'stale'> {
  const stored = items.map((item) => base.records.get(keyOf(item)));
  const hashes: (string | undefined)[] = new Array(items.length);
  const from = done.length;
  const needed = (i: number) => (i < from ? done[i] !== undefined : stored[i] !== undefined && !stored[i]!.failed && !items[i]!.failure);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) {
      if (!needed(i)) continue;
      // A tar member is no file: its hash was taken from its bytes while the archive was listed.
      const { member } = items[i]!;
      hashes[i] = member ? withSidecar(member.sha256, member.jsonSha256) : await identity(items[i]!.pathBytes ?? items[i]!.path);
    }
  };
  await Promise.all(Array.from({ length: HASHING_AT_ONCE }, worker));
  for (let i = 0; i < from; i++) if (hashes[i] !== done[i]) return 'stale';
  const plan: UpdatePlan = { extract: [], reuse: [], counts: { reused: 0, added: 0, redone: 0, dropped: 0, ...(from > 0 ? { done: from } : {}) }, upToDate: false };
  let renumbered = false;
  items.forEach((item, i) => {
    if (i < from) return;
    const s = stored[i];
    if (s && hashes[i] !== undefined && hashes[i] === withSidecar(s.sha256, s.jsonSha256)) {
      plan.reuse.push({ item, stored: s });
      plan.counts.reused++;
      renumbered ||= s.index !== item.index;
      return;
    }
    plan.extract.push(item);
    if (s) plan.counts.redone++;
    else plan.counts.added++;
  });
  // Per key: the stored copies no input of this run matches (an input may be listed several times).
  const matched = new Map<StoredRecord, number>();
  for (const s of stored) if (s) matched.set(s, (matched.get(s) ?? 0) + 1);
  for (const s of base.records.values()) plan.counts.dropped += Math.max(0, (s.copies ?? 1) - (matched.get(s) ?? 0));
  // A shard's header counts every input: files added to other shards change it too.
  plan.upToDate = from === 0 && plan.extract.length === 0 && plan.counts.dropped === 0 && !renumbered && base.header.inputs === inputs;
  return plan;
}

/**
 * Wraps the new output's writer: before each record of a described input, the kept rows of the
 * inputs before it; at a complete close, the kept rows after the last one. An .npy row is copied
 * as its bytes; a text row as the float32 values its numbers were written from (the same text).
 */
export function reusingWriter(writer: OutputWriter, plan: UpdatePlan, base: UpdateBase): OutputWriter {
  let next = 0;
  const putBack = async (before: number) => {
    for (; next < plan.reuse.length && plan.reuse[next]!.item.index < before; next++) {
      const { item, stored } = plan.reuse[next]!;
      // Its `json` (--keep-json) is the stored one: the plan kept it only where the sidecar gives the same.
      const json = stored.jsonSha256 !== undefined ? await base.rowJson(stored) : undefined;
      const rec = { ...recordRef(item), ...(json ? { json } : {}), width: stored.width, height: stored.height, sha256: stored.sha256! };
      if (writer instanceof NpyWriter) await writer.rawRow(rec, await base.rowBytes(stored));
      else await writer.row({ ...rec, descriptor: await base.rowValues(stored) });
    }
  };
  return {
    paths: writer.paths,
    async row(rec) {
      await putBack(rec.index);
      await writer.row(rec);
    },
    async failure(rec) {
      await putBack(rec.index);
      await writer.failure(rec);
    },
    async close(summary) {
      if (summary.complete) await putBack(Infinity);
      await writer.close(summary);
    },
    abandon: () => writer.abandon(),
  };
}
