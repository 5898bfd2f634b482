/**
 * Issue 17 item 5: each input is opened once and only that descriptor is read. The attacks swap
 * the path (rename over it, a symlink flipped to /dev/zero or a FIFO) between the tool's steps, or
 * change the file's length while it is read; each must give the original image or a failure, never
 * a hang, an unbounded read or a mix of two files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs, { appendFileSync, existsSync, readdirSync, renameSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import sharp from 'sharp';
import { DecodeError, READ_WHOLE_MAX_BYTES, decodeFile, decodeImage, validateDecodeOptions, type DecodedImage } from '../../src/decode/decode.js';
import { tempDir } from '../helpers/tmp.js';

const LINUX = process.platform === 'linux';
const HAVE_MKFIFO = LINUX && spawnSync('mkfifo', ['--version']).status === 0;
const PROC_FD = LINUX && existsSync('/proc/self/fd');

/** A noise-free photo stand-in: a gradient PNG, `compressionLevel` 0 so its size is predictable. */
async function gradientPng(width: number, height: number, seed: number): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * seed + (i >> 7)) & 0xff;
  return sharp(raw, { raw: { width, height, channels: 3 } }).png({ compressionLevel: 0 }).toBuffer();
}

async function outcome(p: Promise<DecodedImage>): Promise<DecodedImage | DecodeError> {
  try {
    return await p;
  } catch (err) {
    assert.ok(err instanceof DecodeError, `expected DecodeError, got ${String(err)}`);
    return err;
  }
}

const same = (a: DecodedImage, b: DecodedImage) =>
  a.width === b.width && a.height === b.height && Buffer.from(a.data).equals(Buffer.from(b.data));

/**
 * Runs `body` with fs.promises.open and .stat wrapped: the first time either is called on `target`,
 * `afterFirst` runs once that call has returned. That is the moment a path-based tool would go back
 * to the path for a second look; a tool that reads its descriptor never does.
 */
async function withPathSwap<T>(target: string, afterFirst: () => void, body: () => Promise<T>): Promise<T> {
  const p = fs.promises as unknown as Record<'open' | 'stat', (...a: unknown[]) => Promise<unknown>>;
  const saved = { open: p.open, stat: p.stat };
  let fired = false;
  for (const name of ['open', 'stat'] as const) {
    p[name] = async (...args: unknown[]) => {
      const r = await saved[name].apply(fs.promises, args);
      if (!fired && args[0] === target) {
        fired = true;
        afterFirst();
      }
      return r;
    };
  }
  try {
    return await body();
  } finally {
    Object.assign(p, saved);
  }
}

/** Points `link` at `to`, atomically (a new symlink renamed over it), as the attacker's loop does. */
function flip(link: string, to: string): void {
  const tmp = `${link}.${process.pid}.tmp`;
  symlinkSync(to, tmp);
  renameSync(tmp, link);
}

test('open once: a symlink flipped to /dev/zero or a FIFO right after the first look still decodes the photo', { skip: LINUX ? false : 'needs /dev/zero' }, async () => {
  const dir = tempDir('spp-open-once-');
  const photo = path.join(dir, 'photo.png');
  writeFileSync(photo, await gradientPng(120, 80, 7));
  const expected = await decodeImage(photo);
  const fifo = path.join(dir, 'pipe');
  if (HAVE_MKFIFO) assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  for (const to of ['/dev/zero', ...(HAVE_MKFIFO ? [fifo] : [])]) {
    const link = path.join(dir, 'flip.png');
    flip(link, photo);
    // Before the fix: stat saw the photo, open then read /dev/zero until 2 GiB (or blocked on the FIFO forever).
    const got = await withPathSwap(link, () => flip(link, to), () => outcome(decodeImage(link)));
    assert.ok(!(got instanceof DecodeError), `${to}: ${String(got)}`);
    assert.ok(same(got, expected), `${to}: the photo's pixels`);
    // And the path as it is now: refused by what fstat says it is, at once.
    const now = await outcome(decodeImage(link, {}, 'flip.png'));
    assert.ok(now instanceof DecodeError);
    assert.equal(now.reason, 'unreadable');
    assert.equal(now.message, `flip.png: unreadable: not a regular file (${to === fifo ? 'a FIFO' : 'a character device'})`);
  }
});

test('open once: a symlink flipped between a photo, /dev/zero and a FIFO in a loop while it is decoded: the photo or a refusal, never a hang', { skip: LINUX ? false : 'needs /dev/zero' }, async () => {
  const dir = tempDir('spp-open-flip-');
  const photo = path.join(dir, 'photo.png');
  writeFileSync(photo, await gradientPng(64, 48, 3));
  const expected = await decodeImage(photo);
  const fifo = path.join(dir, 'pipe');
  const targets = [photo, '/dev/zero', ...(HAVE_MKFIFO && spawnSync('mkfifo', [fifo]).status === 0 ? [fifo] : [])];
  const link = path.join(dir, 'flip.png');
  flip(link, photo);
  // The attacker: another process renaming symlinks over the path as fast as it can.
  const script = `const fs=require('fs');const t=${JSON.stringify(targets)};const l=${JSON.stringify(link)};` +
    `for(let i=0;;i++){const tmp=l+'.x';try{fs.unlinkSync(tmp)}catch{}fs.symlinkSync(t[i%t.length],tmp);fs.renameSync(tmp,l);}`;
  const flipper = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
  const counts = { photo: 0, refused: 0 };
  try {
    for (let i = 0; i < 300; i++) {
      const got = await outcome(decodeImage(link, {}, 'flip.png'));
      if (got instanceof DecodeError) {
        // A missing moment cannot happen (rename is atomic); anything else read from the wrong file would show here.
        assert.match(got.message, /^flip\.png: unreadable: not a regular file \((a character device|a FIFO)\)$/);
        counts.refused++;
      } else {
        assert.ok(same(got, expected), `decode ${i}: the photo's pixels`);
        counts.photo++;
      }
    }
  } finally {
    flipper.kill();
  }
  assert.equal(counts.photo + counts.refused, 300);
});

test('open once: a file over 8 MiB replaced by rename between the header and the pixels decodes as the original', async () => {
  const dir = tempDir('spp-open-large-');
  const a = await gradientPng(1800, 1700, 5);
  const b = await gradientPng(1700, 1800, 11);
  assert.ok(a.length > READ_WHOLE_MAX_BYTES && b.length > READ_WHOLE_MAX_BYTES, 'both take the large-file route');
  const file = path.join(dir, 'big.png');
  const other = path.join(dir, 'other.png');
  const [expectA, expectB] = [await decodeImage(a), await decodeImage(b)];
  // sharp's CommonJS build is the one decode.ts runs: replace the file as soon as libvips has read a header.
  const Sharp = createRequire(import.meta.url)('sharp') as { prototype: { metadata: (...a: unknown[]) => Promise<unknown> } };
  const metadata = Sharp.prototype.metadata;
  let swaps = 0;
  Sharp.prototype.metadata = async function (this: unknown, ...args: unknown[]) {
    const r = await metadata.apply(this, args);
    if (existsSync(other)) {
      renameSync(other, file);
      swaps++;
    }
    return r;
  };
  try {
    for (const [first, second, expected] of [[a, b, expectA], [b, a, expectB]] as const) {
      writeFileSync(file, first);
      writeFileSync(other, second);
      const got = await outcome(decodeImage(file));
      // Before the fix: A's header, B's pixels resized to A's size (a row matching neither image).
      assert.ok(!(got instanceof DecodeError), String(got));
      assert.ok(same(got, expected), 'the pixels of the file that was opened');
    }
  } finally {
    Sharp.prototype.metadata = metadata;
  }
  assert.equal(swaps, 2, 'the file was replaced during each decode');
});

/** Runs `body` with the first FileHandle opened on `target` changed by `change` right after its first fstat. */
async function withChangeAfterFstat<T>(target: string, change: () => void, body: () => Promise<T>): Promise<T> {
  const p = fs.promises as unknown as { open: (...a: unknown[]) => Promise<FileHandle> };
  const open = p.open;
  p.open = async (...args: unknown[]) => {
    const fh = await open.apply(fs.promises, args);
    if (args[0] !== target) return fh;
    const stat = fh.stat.bind(fh);
    let done = false;
    fh.stat = (async (...a: Parameters<FileHandle['stat']>) => {
      const st = await stat(...a);
      if (!done) {
        done = true;
        change();
      }
      return st;
    }) as FileHandle['stat'];
    return fh;
  };
  try {
    return await body();
  } finally {
    p.open = open;
  }
}

test('a file that grows, shrinks or is rewritten between fstat and the read fails "changed while being read"', async () => {
  const dir = tempDir('spp-open-change-');
  const file = path.join(dir, 'img.png');
  const png = await gradientPng(50, 40, 9);
  const cases: [string, () => void][] = [
    ['grew', () => appendFileSync(file, Buffer.alloc(100))],
    ['shrank', () => truncateSync(file, Math.floor(png.length / 2))],
    // Same size, other bytes: only the modification time tells.
    ['rewritten', () => {
      writeFileSync(file, Buffer.from(png).reverse());
      fs.utimesSync(file, new Date(), new Date(Date.now() + 5000));
    }],
  ];
  for (const [what, change] of cases) {
    writeFileSync(file, png);
    const got = await withChangeAfterFstat(file, change, () => outcome(decodeImage(file, {}, 'img.png')));
    assert.ok(got instanceof DecodeError, `${what}: must fail, got a row`);
    assert.equal(got.reason, 'unreadable', what);
    assert.match(got.message, /^img\.png: unreadable: changed while being read \(/, what);
  }
});

test('decodeFile takes a Buffer path and names the file by its label', async () => {
  const dir = tempDir('spp-open-buf-');
  const file = path.join(dir, 'x.png');
  writeFileSync(file, await gradientPng(30, 20, 13));
  const o = validateDecodeOptions({});
  const img = await decodeFile(Buffer.from(file), o, 'x.png');
  assert.ok(same(img, await decodeImage(file)));
  const missing = await outcome(decodeFile(Buffer.from(path.join(dir, 'nope.png')), o, 'nope.png'));
  assert.ok(missing instanceof DecodeError);
  assert.equal(missing.message, 'nope.png: missing: no such file');
});

test('no descriptor is left open after a batch of inputs that fail at every step, or succeed', { skip: PROC_FD ? false : 'needs /proc/self/fd' }, async () => {
  const dir = tempDir('spp-open-fds-');
  const w = (name: string, bytes: Buffer | string) => {
    writeFileSync(path.join(dir, name), bytes);
    return path.join(dir, name);
  };
  const png = await gradientPng(40, 30, 3);
  const big = await gradientPng(1800, 1700, 5);
  const inputs = [
    w('ok.png', png),
    w('big.png', big),
    w('empty.png', ''),
    w('text.png', 'not an image'),
    w('cut.png', png.subarray(0, png.length >> 1)),
    w('big-text.png', Buffer.alloc(READ_WHOLE_MAX_BYTES + 10, 0x41)),
    w('big-cut.png', big.subarray(0, big.length - 4096)),
    path.join(dir, 'missing.png'),
    dir,
    '/dev/zero',
  ];
  if (HAVE_MKFIFO && spawnSync('mkfifo', [path.join(dir, 'pipe')]).status === 0) inputs.push(path.join(dir, 'pipe'));
  // Warm-up: whatever sharp or libuv open once for good is open before the count.
  for (const f of inputs) await outcome(decodeImage(f));
  const before = readdirSync('/proc/self/fd').length;
  for (let round = 0; round < 3; round++) for (const f of inputs) await outcome(decodeImage(f));
  const results = await Promise.all(inputs.map((f) => outcome(decodeImage(f))));
  assert.equal(results.filter((r) => !(r instanceof DecodeError)).length, 2, 'ok.png and big.png decode');
  assert.equal(readdirSync('/proc/self/fd').length, before, 'descriptors open before and after');
});
