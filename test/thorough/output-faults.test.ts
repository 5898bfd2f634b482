/**
 * Fault injection, the SQLite way: for each output format, make the k-th open / write / fsync /
 * close / rename / folder-fsync of a small run fail (ENOSPC, EIO, or a short write followed by a
 * full disk), for every k. Each time: the exit code is non-zero, no final file claims a complete
 * run, and `--resume` once the fault is gone ends with the bytes of an uninterrupted run.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { nodeIo, sinkTuning, type OutputIo } from '../../src/output/io.js';
import { runMain } from '../helpers/main.js';
import { fixture } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

type Op = 'open' | 'write' | 'fsync' | 'close' | 'rename' | 'fsyncDir';
type Fault = 'ENOSPC' | 'EIO' | 'short';
const OPS: Op[] = ['open', 'write', 'fsync', 'close', 'rename', 'fsyncDir'];
const FORMATS = ['npy', 'jsonl', 'json'] as const;

const errno = (code: string) => Object.assign(new Error(`${code}: injected`), { code });

/** Counts every operation; fails the k-th of one kind. After a short write, the disk is full. */
function faultyIo(failOp?: Op, k = 0, fault: Fault = 'EIO'): { io: OutputIo; counts: Record<Op, number> } {
  const counts = Object.fromEntries(OPS.map((o) => [o, 0])) as Record<Op, number>;
  let diskFull = false;
  const hit = (op: Op) => ++counts[op] === k && op === failOp;
  const io: OutputIo = {
    open: async (path, flags) => {
      if (hit('open')) throw errno(fault === 'short' ? 'ENOSPC' : fault);
      return nodeIo.open(path, flags);
    },
    write: async (fh: FileHandle, buf, offset, length, position) => {
      if (diskFull) throw errno('ENOSPC');
      if (hit('write')) {
        if (fault !== 'short') throw errno(fault);
        diskFull = true;
        const half = Math.max(1, length >> 1);
        return nodeIo.write(fh, buf, offset, half, position);
      }
      return nodeIo.write(fh, buf, offset, length, position);
    },
    fsync: async (fh) => {
      if (hit('fsync')) throw errno(fault === 'short' ? 'EIO' : fault);
      return nodeIo.fsync(fh);
    },
    truncate: (fh, length) => nodeIo.truncate(fh, length),
    close: async (fh) => {
      const failing = hit('close');
      await nodeIo.close(fh);
      if (failing) throw errno(fault === 'short' ? 'EIO' : fault);
    },
    rename: async (from, to) => {
      if (hit('rename')) throw errno(fault === 'short' ? 'EIO' : fault);
      return nodeIo.rename(from, to);
    },
    fsyncDir: async (dir) => {
      if (hit('fsyncDir')) throw errno(fault === 'short' ? 'EIO' : fault);
      return nodeIo.fsyncDir(dir);
    },
  };
  return { io, counts };
}

let cacheDir = '';
let base: string[] = [];
const savedTuning = { ...sinkTuning };

/** main() in this process (the fixture's text file is a recorded failure each run). */
const run = (args: string[], io?: OutputIo) => runMain([...base, ...args], { io });

const outName = (format: string) => `out.${format}`;
const finalNames = (format: string) => (format === 'npy' ? ['out.npy', 'out.manifest.jsonl'] : [outName(format)]);

/** A final file that says the run is complete. */
function claimsComplete(dir: string, format: string): boolean {
  const marker = join(dir, format === 'npy' ? 'out.manifest.jsonl' : outName(format));
  if (!existsSync(marker)) return false;
  const text = readFileSync(marker, 'utf8');
  return format === 'json' ? /"complete":true\}\}\n$/.test(text) : /"type":"summary".*"complete":true/.test(text.trimEnd().split('\n').at(-1) ?? '');
}

const reference: Record<string, Record<string, Buffer>> = {};
const opCounts: Record<string, Record<Op, number>> = {};

before(async () => {
  cacheDir = tempDir('spp-faults-cache-');
  // The output layer is what is under test: tfjs-wasm loads the tiny model in-process in half the
  // time ONNX Runtime's worker takes, and --size 32 keeps each of the ~250 runs to a few ms of compute.
  base = [fixture('images'), '--model', fixture('tiny-layers'), '--engine', 'tfjs', '--backend', 'wasm', '--size', '32', '--cache-dir', cacheDir, '-q', '--decode-ahead', '1'];
  // One write per record, so every record is a fault point.
  sinkTuning.flushBytes = 1;
  for (const format of FORMATS) {
    const dir = tempDir('spp-faults-ref-');
    const { io, counts } = faultyIo();
    const r = await run(['-o', join(dir, outName(format))], io);
    assert.equal(r.code, 2, r.stderr); // the fixture's text file is a recorded failure
    reference[format] = Object.fromEntries(finalNames(format).map((n) => [n, readFileSync(join(dir, n))]));
    opCounts[format] = counts;
  }
});

after(() => Object.assign(sinkTuning, savedTuning));

for (const format of FORMATS) {
  test(`fault injection (${format}): every k-th open/write/fsync/close/rename/folder-fsync failing ends resumable and byte-identical`, async (t) => {
    const counts = opCounts[format];
    assert.ok(counts.write >= 6 && counts.rename >= 1 && counts.fsync >= 1, `a run has fault points: ${JSON.stringify(counts)}`);
    let cases = 0;
    for (const op of OPS) {
      const faults: Fault[] = op === 'write' ? ['ENOSPC', 'EIO', 'short'] : op === 'open' ? ['ENOSPC', 'EIO'] : ['EIO'];
      for (let k = 1; k <= counts[op]; k++) {
        for (const fault of faults) {
          const label = `${format} ${op} #${k} ${fault}`;
          const dir = tempDir('spp-faults-');
          const out = join(dir, outName(format));
          const failed = await run(['-o', out], faultyIo(op, k, fault).io);
          assert.equal(failed.code, 1, `${label}: exit ${failed.code}: ${failed.stderr}`);
          const errorLine = failed.stderr.split('\n').find((l) => l.startsWith('spp-extract: error:')) ?? '';
          assert.match(errorLine, new RegExp(`-o ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*(no space left on device|input/output error)`), label);
          assert.doesNotMatch(errorLine, /\.partial/, `${label}: names -o, not the temp file`);
          assert.equal(claimsComplete(dir, format), false, `${label}: nothing claims complete`);
          const resumed = await run(['-o', out, '--resume']);
          assert.equal(resumed.code, 2, `${label}: resume: ${resumed.stderr}`);
          for (const [name, bytes] of Object.entries(reference[format])) {
            assert.ok(readFileSync(join(dir, name)).equals(bytes), `${label}: ${name} byte-identical after --resume`);
          }
          assert.deepEqual(readdirSync(dir).sort(), finalNames(format).sort(), `${label}: no temp, journal or lock left`);
          cases++;
        }
      }
    }
    t.diagnostic(`${format}: ${cases} injected faults, all resumable and byte-identical (${JSON.stringify(counts)})`);
  });
}

test('fault injection with rows sharing a write buffer (.npy, 700-byte chunks): every write failing ends resumable and byte-identical', async (t) => {
  // The default tuning writes one record per write; here several rows and manifest lines are
  // gathered in one chunk, so a failed write loses buffered records the journal must not vouch for.
  const saved = sinkTuning.flushBytes;
  sinkTuning.flushBytes = 700;
  try {
    const { io, counts } = faultyIo();
    const dir0 = tempDir('spp-faults-chunk-');
    const clean = await run(['-o', join(dir0, 'out.npy')], io);
    assert.equal(clean.code, 2, clean.stderr);
    assert.ok(counts.write >= 3 && counts.write < opCounts.npy.write, `rows share writes: ${counts.write} vs ${opCounts.npy.write}`);
    for (let k = 1; k <= counts.write; k++) {
      for (const fault of ['ENOSPC', 'short'] as const) {
        const label = `chunked write #${k} ${fault}`;
        const dir = tempDir('spp-faults-chunk-');
        const out = join(dir, 'out.npy');
        const failed = await run(['-o', out], faultyIo('write', k, fault).io);
        assert.equal(failed.code, 1, `${label}: ${failed.stderr}`);
        assert.equal(claimsComplete(dir, 'npy'), false, label);
        const resumed = await run(['-o', out, '--resume']);
        assert.equal(resumed.code, 2, `${label}: resume: ${resumed.stderr}`);
        for (const [name, bytes] of Object.entries(reference.npy)) assert.ok(readFileSync(join(dir, name)).equals(bytes), `${label}: ${name}`);
        assert.deepEqual(readdirSync(dir).sort(), finalNames('npy').sort(), `${label}: nothing left over`);
      }
    }
    t.diagnostic(`${counts.write} chunked writes, each failed twice, all resumable and byte-identical`);
  } finally {
    sinkTuning.flushBytes = saved;
  }
});
