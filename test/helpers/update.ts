/** Image folders and output comparisons shared by the --update tests. */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { syntheticPixels } from './pixels.js';

export const manifestOf = (npy: string) => npy.replace(/\.npy$/, '.manifest.jsonl');

/** The files an output is made of. */
export const filesOf = (out: string) => (out.endsWith('.npy') ? [out, manifestOf(out)] : [out]);

/** A small PNG of deterministic noise: a distinct image (and SHA-256) per seed. */
export async function writeImage(path: string, seed: number): Promise<void> {
  const { data, width, height } = syntheticPixels(40, 30, seed);
  await sharp(Buffer.from(data), { raw: { width, height, channels: 3 } }).png().toFile(path);
}

/** DIR/images holding img-NNN.png for each seed. */
export async function imageFolder(dir: string, seeds: readonly number[]): Promise<string> {
  const images = join(dir, 'images');
  mkdirSync(images, { recursive: true });
  for (const s of seeds) await writeImage(join(images, `img-${String(s).padStart(3, '0')}.png`), s);
  return images;
}

/** Every file in the folder (temp and lock files included) with its bytes; the images and the model cache left out. */
export function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).filter((f) => f !== 'images' && f !== 'cache').map((f) => [f, readFileSync(join(dir, f)).toString('base64')]));
}

/** Both outputs' files (data and manifest) hold the same bytes. */
export function assertSameOutput(out: string, expected: string, what = 'a fresh run\'s'): void {
  const want = filesOf(expected);
  filesOf(out).forEach((f, i) => assert.deepEqual(readFileSync(f), readFileSync(want[i]!), `${f} differs from ${what}`));
}
