/**
 * The output guarantees against the real thing: a full tmpfs, /dev/full, FIFOs, devices,
 * symlinks, files spp-extract did not write, and two runs racing for one output.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import sharp from 'sharp';
import { BIN, runCli } from '../helpers/cli.js';
import { parseJsonl } from '../helpers/jsonl.js';
import { fixture } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = () => tempDir('spp-real-');
let cacheDir = '';
let model: string[] = [];
const IMAGES = fixture('images');
let manyImages = '';
/** Enough rows to overflow the 100 KiB tmpfs below (80 × 2040-byte rows at levels 1,2,4,8, plus the manifest). */
const N_MANY = 80;

before(async () => {
  cacheDir = tmp();
  model = ['--model', fixture('tiny-layers'), '--engine', 'onnx', '--threads', '1', '--cache-dir', cacheDir];
  manyImages = tmp();
  for (let i = 0; i < N_MANY; i++) {
    await sharp({ create: { width: 40 + (i % 13), height: 30 + (i % 7), channels: 3, background: { r: i, g: (i * 7) % 256, b: 90 } } })
      .png().toFile(join(manyImages, `m-${String(i).padStart(3, '0')}.png`));
  }
});

const isRoot = () => process.getuid?.() === 0;

test('a full disk (real tmpfs): exit 1 naming -o and "no space left on device", nothing complete; after space is freed --resume ends byte-identical', async (t) => {
  if (!isRoot()) return t.skip('needs root to mount a small tmpfs');
  const mnt = tmp();
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=100k', 'tmpfs', mnt]);
  if (mounted.status !== 0) return t.skip(`cannot mount tmpfs here: ${String(mounted.stderr).trim()}`);
  try {
    const args = [manyImages, ...model, '--levels', '1,2,4,8', '-q'];
    const refDir = tmp();
    assert.equal((await runCli([...args, '-o', join(refDir, 'f.npy')])).code, 0);
    const out = join(mnt, 'f.npy');
    const full = await runCli([...args, '-o', out]);
    assert.equal(full.code, 1, full.stderr);
    assert.match(full.stderr, new RegExp(`^spp-extract: error: -o ${out}: .*no space left on device \\(ENOSPC\\)`, 'm'));
    assert.doesNotMatch(full.stderr, /\.partial|\n\s+at /, 'names -o, no stack trace');
    assert.ok(!existsSync(join(mnt, 'f.manifest.jsonl')), 'no final manifest claims complete');
    assert.equal(spawnSync('mount', ['-o', 'remount,size=4m', mnt]).status, 0);
    const resumed = await runCli([...args, '-o', out, '--resume']);
    assert.equal(resumed.code, 0, resumed.stderr);
    for (const f of ['f.npy', 'f.manifest.jsonl']) {
      assert.ok(readFileSync(join(mnt, f)).equals(readFileSync(join(refDir, f))), `${f} byte-identical`);
    }
    assert.deepEqual(readdirSync(mnt).sort(), ['f.manifest.jsonl', 'f.npy']);
  } finally {
    spawnSync('umount', [mnt]);
  }
});

test('stdout: /dev/full is one line and exit 1 (no stack trace); a closed pipe is a quiet 141; /dev/stdout means -o -', () => {
  const full = spawnSync('sh', ['-c', `"${process.execPath}" "${BIN}" "${IMAGES}" ${model.join(' ')} -q -o - > /dev/full`], { encoding: 'utf8' });
  assert.equal(full.status, 1, full.stderr);
  const lines = full.stderr.trim().split('\n').filter((l) => !l.includes('failed: '));
  assert.deepEqual(lines, ['spp-extract: error: -o -: cannot write to stdout: no space left on device (ENOSPC)']);
  const pipe = spawnSync('bash', ['-c', `"${process.execPath}" "${BIN}" "${IMAGES}" ${model.join(' ')} -q -o - | head -c 10 > /dev/null; echo "\${PIPESTATUS[0]}"`], { encoding: 'utf8' });
  assert.match(pipe.stdout.trim(), /^(141|2)$/, 'quiet 141 (or 2 when all was written before head closed)');
  assert.doesNotMatch(pipe.stderr, /error|\n\s+at /, pipe.stderr);
  const viaName = spawnSync(process.execPath, [BIN, IMAGES, ...model, '-q', '-o', '/dev/stdout'], { encoding: 'utf8' });
  assert.equal(viaName.status, 2, viaName.stderr);
  const records = parseJsonl(viaName.stdout);
  assert.deepEqual(records.map((r) => r.type), ['header', 'row', 'row', 'row', 'failure', 'row', 'summary']);
});

test('a FIFO gets .jsonl/.json streamed into it (never replaced, even with --force); .npy into it is refused; /dev/null works', async () => {
  const dir = tmp();
  const file = join(dir, 'file.json');
  assert.equal((await runCli([IMAGES, ...model, '-q', '-o', file])).code, 2);
  for (const [name, extra] of [['pipe.jsonl', []], ['pipe', ['--force']], ['pipe.json', []]] as const) {
    const fifo = join(dir, name);
    if (!existsSync(fifo)) execFileSync('mkfifo', [fifo]);
    const reader = spawn('cat', [fifo]);
    let got = '';
    reader.stdout.on('data', (d) => (got += d));
    const closed = new Promise((r) => reader.on('close', r));
    const r = await runCli([IMAGES, ...model, '-q', '-o', fifo, ...extra]);
    await closed;
    assert.equal(r.code, 2, `${name}: ${r.stderr}`);
    assert.ok(lstatSync(fifo).isFIFO(), `${name} is still a FIFO`);
    if (name === 'pipe.json') assert.equal(got, readFileSync(file, 'utf8'), 'the same bytes as a .json file');
    else assert.equal(got.trim().split('\n').length, 7, `${name}: header, 5 records, summary`);
  }
  const npy = join(dir, 'pipe.npy');
  execFileSync('mkfifo', [npy]);
  const refused = await runCli([IMAGES, ...model, '-q', '-o', npy]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /-o .*pipe\.npy: \.npy needs a regular file it can seek in, not a FIFO/);
  const devnull = await runCli([IMAGES, ...model, '-q', '-o', '/dev/null']);
  assert.equal(devnull.code, 2, devnull.stderr);
});

test('a symlink named by -o is written through to its target and stays a symlink; -o under a file is a clear error', async () => {
  const dir = tmp();
  mkdirSync(join(dir, 'real'));
  const link = join(dir, 'link.npy');
  symlinkSync(join('real', 'target.npy'), link); // dangling: the target is created
  const first = await runCli([IMAGES, ...model, '-q', '-o', link]);
  assert.equal(first.code, 2, first.stderr);
  assert.ok(lstatSync(link).isSymbolicLink());
  assert.equal(readlinkSync(link), join('real', 'target.npy'));
  assert.ok(existsSync(join(dir, 'real', 'target.npy')) && existsSync(join(dir, 'real', 'target.manifest.jsonl')));
  const forced = await runCli([IMAGES, ...model, '-q', '-o', link, '--force', '--levels', '1']);
  assert.equal(forced.code, 2, forced.stderr);
  assert.ok(lstatSync(link).isSymbolicLink(), '--force wrote through, the link is still a link');
  writeFileSync(join(dir, 'x.npy'), 'a file');
  const under = await runCli([IMAGES, ...model, '-q', '-o', join(dir, 'x.npy', 'y.npy')]);
  assert.equal(under.code, 1);
  assert.match(under.stderr, /^spp-extract: error: -o .*x\.npy\/y\.npy: '.*x\.npy' is not a folder$/m);
});

test('--resume never touches a file spp-extract did not write (.npy, .jsonl, .json)', async () => {
  const dir = tmp();
  const npy = Buffer.concat([Buffer.from('\x93NUMPY\x01\x00v\x00', 'latin1'), Buffer.from("{'descr': '<f8', 'fortran_order': False, 'shape': (10,), }".padEnd(117) + '\n'), Buffer.alloc(80)]);
  const files: [string, Buffer][] = [
    ['mine.npy', npy],
    ['mine.jsonl', Buffer.from('{"id":1}\n{"id":2}\n')],
    ['mine.json', Buffer.from('{"mine":true}\n')],
  ];
  for (const [name, bytes] of files) {
    writeFileSync(join(dir, name), bytes);
    const r = await runCli([IMAGES, ...model, '-q', '-o', join(dir, name), '--resume']);
    assert.equal(r.code, 1, `${name}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`-o .*${name.replace('.', '\\.')}: .*not .*spp-extract.*left untouched|not an spp-extract`), name);
    assert.ok(readFileSync(join(dir, name)).equals(bytes), `${name} untouched`);
  }
  assert.deepEqual(readdirSync(dir).sort(), files.map(([n]) => n).sort(), 'nothing else created');
});

test('one writer per output: a second run (with or without --resume) is refused naming the holder; a dead holder\'s lock is taken over', async () => {
  const dir = tmp();
  const out = join(dir, 'x.npy');
  const lock = join(dir, '.x.npy.lock');
  // The first run takes its paths from stdin, so it holds the output for as long as we keep stdin open.
  const first = spawn(process.execPath, [BIN, '-', ...model, '-q', '-o', out], { stdio: ['pipe', 'ignore', 'ignore'] });
  const firstDone = new Promise<number | null>((r) => first.on('close', r));
  while (!existsSync(lock)) await new Promise((r) => setTimeout(r, 5));
  for (const extra of [[], ['--resume'], ['--force']]) {
    const second = await runCli([manyImages, ...model, '-q', '-o', out, ...extra]);
    assert.equal(second.code, 1, second.stderr);
    assert.match(second.stderr, new RegExp(`-o ${out}: in use by another spp-extract run \\(pid ${first.pid}, since `), extra.join(' '));
  }
  first.stdin!.end(readdirSync(manyImages).sort().map((f) => join(manyImages, f)).join('\n'));
  assert.equal(await firstDone, 0, 'the first run was not disturbed');
  assert.ok(!existsSync(lock), 'the lock is gone after the run');
  const refDir = tmp();
  await runCli([manyImages, ...model, '-q', '-o', join(refDir, 'x.npy')]);
  assert.ok(readFileSync(out).equals(readFileSync(join(refDir, 'x.npy'))), 'its output is whole');

  // A holder that died (kill -9, a requeued job) on this host: its lock is taken over.
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  writeFileSync(lock, JSON.stringify({ pid: Number(dead.stdout), host: hostname(), started: '2026-01-01T00:00:00.000Z' }));
  const taken = await runCli([IMAGES, ...model, '-q', '-o', join(dir, 'x.npy'), '--force']);
  assert.equal(taken.code, 2, taken.stderr);
  assert.ok(!existsSync(lock));
  // A live pid that is another process now (its start time differs): taken over.
  const me = { boot: readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(), pidns: readlinkSync('/proc/self/ns/pid') };
  writeFileSync(lock, JSON.stringify({ pid: process.pid, host: hostname(), started: '2026-01-01T00:00:00.000Z', ...me, pstart: '1' }));
  const reused = await runCli([IMAGES, ...model, '-q', '-o', join(dir, 'x.npy'), '--force']);
  assert.equal(reused.code, 2, reused.stderr);
  // On another host (or in another container) only its heartbeat tells: refused while fresh…
  const elsewhere = { pid: 1, host: 'node-elsewhere', started: '2026-01-01T00:00:00.000Z' };
  writeFileSync(lock, JSON.stringify(elsewhere));
  const other = await runCli([IMAGES, ...model, '-q', '-o', join(dir, 'x.npy'), '--force']);
  assert.equal(other.code, 1);
  assert.match(other.stderr, /in use by another spp-extract run \(pid 1 on host node-elsewhere, .*heartbeat stops for 2 minutes.*if that run is dead delete .*\.x\.npy\.lock/);
  // …taken over once the heartbeat is older than the lease.
  const old = new Date(Date.now() - 3 * 60_000);
  utimesSync(lock, old, old);
  const expired = await runCli([IMAGES, ...model, '-q', '-o', join(dir, 'x.npy'), '--force']);
  assert.equal(expired.code, 2, expired.stderr);
  // A requeued Slurm task takes over its own earlier attempt's lock at once, wherever that ran.
  writeFileSync(lock, JSON.stringify({ ...elsewhere, job: '4242', restart: 0 }));
  const requeued = await runCli([IMAGES, ...model, '-q', '-o', join(dir, 'x.npy'), '--force'], { env: { SLURM_JOB_ID: '4242', SLURM_RESTART_COUNT: '1' } });
  assert.equal(requeued.code, 2, requeued.stderr);
  assert.ok(!existsSync(lock));
});
