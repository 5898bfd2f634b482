/**
 * SIGINT / SIGTERM at every stage (issue 17, item 7): before the run loop and in merge a signal used
 * to kill the process outright (exit 143, no message, the lock left behind). Each stage is reached
 * for real and the signal sent once the test sees it (a lock file, a request, a temp file).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { npyHeader } from '../../src/output/npy.js';
import { runCli, signalWhen } from '../helpers/cli.js';
import { fixture } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

const MODEL = ['--model', fixture('tiny-layers'), '--engine', 'onnx', '--threads', '1'];
/** A regression would hang on a signal nobody handles differently; fail instead. */
const GUARD = { timeout: 120_000 };
const hidden = (dir: string) => readdirSync(dir).filter((f) => f.startsWith('.'));

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  test(`${sig} while the inputs are listed (stdin never ends): exit 130, one line, no lock and nothing written`, GUARD, async () => {
    const dir = tempDir('spp-sig-');
    const out = join(dir, 'x.npy');
    const r = await signalWhen(['-', '-o', out, ...MODEL], () => existsSync(join(dir, '.x.npy.lock')), sig);
    assert.equal(r.sent, 1);
    assert.equal(r.code, 130, r.stderr);
    assert.equal(r.stderr, `spp-extract: ${sig}: stopped before the run started; nothing written\n`);
    assert.deepEqual(readdirSync(dir), [], 'no lock, no temp file');
  });
}

test('SIGTERM while the model downloads: exit 130, one line, the lock released', GUARD, async (t) => {
  const dir = tempDir('spp-sig-');
  let asked = false;
  // Answers nothing: the run waits in its model load until the signal.
  const server = createServer(() => {
    asked = true;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/m/model.json`;
  const r = await signalWhen([fixture('images'), '-o', join(dir, 'x.jsonl'), '--model', url, '--engine', 'onnx'], () => asked, 'SIGTERM',
    { env: { XDG_CACHE_HOME: join(dir, 'cache') } });
  assert.equal(r.code, 130, r.stderr);
  assert.equal(r.stderr, 'spp-extract: SIGTERM: stopped before the run started; nothing written\n');
  assert.deepEqual(hidden(dir), [], 'no lock');
  assert.ok(!existsSync(join(dir, 'x.jsonl')));
});

test('a second SIGINT in the run loop exits at once with a line, releases the lock, and --resume finishes the run', GUARD, async () => {
  const dir = tempDir('spp-sig-');
  await Promise.all(Array.from({ length: 120 }, (_, i) =>
    sharp({ create: { width: 20 + (i % 9), height: 16, channels: 3, background: { r: i * 2, g: 50, b: 100 } } }).png().toFile(join(dir, `i${String(i).padStart(3, '0')}.png`))));
  const out = join(dir, 'out', 'x.npy');
  mkdirSync(join(dir, 'out'));
  const journal = join(dir, 'out', '.x.manifest.jsonl.partial');
  const r = await signalWhen([dir, '-o', out, ...MODEL, '--decode-ahead', '1'], () => existsSync(journal) && readFileSync(journal, 'utf8').split('\n').length > 6,
    'SIGINT', { again: /stopping after the current image/ });
  assert.equal(r.sent, 2, r.stderr);
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /SIGINT: stopping after the current image/);
  assert.match(r.stderr, /\nspp-extract: SIGINT: stopped at once; what is on disk is kept: finish with --resume\n$/);
  assert.ok(!existsSync(join(dir, 'out', '.x.npy.lock')), 'the lock is released');
  const resumed = await runCli([dir, '-o', out, ...MODEL, '--resume', '-q']);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.deepEqual(hidden(join(dir, 'out')), []);
});

/** Two complete shards of `n` rows each, made from the header of a real shard run so merge takes them. */
async function bigShards(dir: string, n: number): Promise<string[]> {
  const small = join(dir, 'small.npy');
  const made = await runCli([fixture('images'), '-o', small, ...MODEL, '--shard', '1/2', '-q']);
  assert.ok(made.code === 0 || made.code === 2, made.stderr);
  const head = JSON.parse(readFileSync(join(dir, 'small.manifest.jsonl'), 'utf8').split('\n')[0]) as { dim: number };
  return [1, 2].map((k) => {
    const lines = [JSON.stringify({ ...head, inputs: 2 * n, shard: { index: k, count: 2 } })];
    for (let row = 0; row < n; row++) lines.push(JSON.stringify({ type: 'row', row, index: (k - 1) * n + row, path: `/img/${k}-${row}.png`, width: 8, height: 8 }));
    lines.push(JSON.stringify({ type: 'summary', rows: n, failures: 0, complete: true }));
    const npy = join(dir, `b${k}.npy`);
    writeFileSync(join(dir, `b${k}.manifest.jsonl`), lines.join('\n') + '\n');
    writeFileSync(npy, Buffer.concat([npyHeader('<f4', [n, head.dim]), Buffer.alloc(n * head.dim * 4, 1)]));
    return npy;
  });
}

test('SIGTERM while merge writes: exit 130, one line, its temp files removed and the lock released', GUARD, async () => {
  const dir = tempDir('spp-sig-');
  const shards = await bigShards(dir, 20_000);
  const outDir = join(dir, 'merged');
  mkdirSync(outDir);
  const r = await signalWhen(['merge', ...shards, '-o', join(outDir, 'all.npy')], () => existsSync(join(outDir, '.all.manifest.jsonl.partial')), 'SIGTERM');
  assert.equal(r.code, 130, r.stderr);
  assert.equal(r.stderr, `spp-extract: SIGTERM: merge stopped; ${join(outDir, 'all.npy')} not written\n`);
  assert.deepEqual(readdirSync(outDir), [], 'no lock, no temp file, no output');
});

test('SIGTERM while a FIFO given as --boxes or -o waits for its other end: exit 130, one line, no lock (it used to hang)', GUARD, async () => {
  const dir = tempDir('spp-sig-');
  const fifo = (name: string) => {
    execFileSync('mkfifo', [join(dir, name)]);
    return join(dir, name);
  };
  const cases = [
    ['--boxes', fifo('boxes.jsonl'), '-o', join(dir, 'x.jsonl')],
    [fixture('images'), '-o', fifo('out.jsonl')],
  ];
  for (const args of cases) {
    // Whatever stage the signal meets (loading, or blocked in the FIFO's open), the outcome is the same.
    const t0 = Date.now();
    const r = await signalWhen([...args, ...MODEL], () => Date.now() - t0 > 1500, 'SIGTERM');
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /^spp-extract: SIGTERM: stopped[^\n]*\n$/);
    assert.deepEqual(hidden(dir), [], 'no lock');
  }
});
