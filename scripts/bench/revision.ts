/**
 * An earlier revision of this repository's src/, built into a temporary folder, so a script can
 * load the old and the current code side by side in one process (decode.ts, identity.ts).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO } from './common.js';

/** The commit `rev` names, in full. */
export function resolveRevision(rev: string): string {
  return execFileSync('git', ['-C', REPO, 'rev-parse', '--verify', `${rev}^{commit}`], { encoding: 'utf8' }).trim();
}

/**
 * Builds src/ of `rev` (git archive + tsc, node_modules linked from this checkout) and returns the
 * folder that holds its dist/src. Kept between runs under the commit's name: a commit never changes.
 */
export function buildRevision(rev: string): string {
  const sha = resolveRevision(rev);
  const dir = join(tmpdir(), `spp-extract-rev-${sha.slice(0, 12)}`);
  const done = join(dir, '.built');
  if (existsSync(done)) return join(dir, 'dist', 'src');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const archive = execFileSync('git', ['-C', REPO, 'archive', '--format=tar', sha, 'src', 'tsconfig.json', 'package.json']);
  execFileSync('tar', ['-x', '-C', dir], { input: archive });
  symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'), 'dir');
  writeFileSync(join(dir, 'tsconfig.rev.json'), JSON.stringify({ extends: './tsconfig.json', include: ['src/**/*.ts'] }));
  execFileSync(process.execPath, [join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.rev.json'], { cwd: dir, stdio: 'inherit' });
  writeFileSync(done, `${sha}\n`);
  return join(dir, 'dist', 'src');
}

/** Imports a module of a built revision: `importFrom(dist, 'decode/decode.js')`. */
export async function importFrom<T>(distSrc: string, module: string): Promise<T> {
  return (await import(pathToFileURL(join(distSrc, module)).href)) as T;
}
