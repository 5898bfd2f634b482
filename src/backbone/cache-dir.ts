/** The model cache folder: where it is, creating it without looping, and a private fallback when it is unusable. */
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

export const CACHE_WARNING_KEY = 'model-cache-unwritable';

export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME && env.XDG_CACHE_HOME.trim() !== '' ? env.XDG_CACHE_HOME : join(homedir(), '.cache');
  return join(base, 'spp-extract');
}

export async function isFile(p: string): Promise<boolean> {
  return stat(p).then((s) => s.isFile(), () => false);
}

/** A failed file-system call (EACCES, EROFS, ENOTDIR, ENOSPC …), as opposed to a bug or a bad model. */
export function isFsError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && typeof (err as NodeJS.ErrnoException).syscall === 'string';
}

/**
 * mkdir -p, one level at a time. Node's own recursive mkdir never returns on /proc (mkdir there
 * fails with ENOENT although the parent exists, and it retries forever); this walks each missing
 * component once and throws the first error.
 */
export async function ensureDir(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let p = resolve(dir); ; p = dirname(p)) {
    const st = await stat(p).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (st) {
      if (!st.isDirectory()) throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${p}'`), { code: 'ENOTDIR', syscall: 'mkdir', path: p });
      break;
    }
    missing.push(p);
    if (dirname(p) === p) break;
  }
  for (const p of missing.reverse()) {
    await mkdir(p).catch(async (err: NodeJS.ErrnoException) => {
      // Another process made it in between.
      if (err.code === 'EEXIST' && (await stat(p)).isDirectory()) return;
      throw err;
    });
  }
}

export function cacheUnwritableWarning(cacheDir: string, err: unknown): string {
  const reason = (err instanceof Error ? err.message : String(err)).split('\n')[0];
  return (
    `model cache ${cacheDir} is not writable (${reason}); this run uses a temporary copy of the model ` +
    `(downloaded/converted again on every run); set --cache-dir DIR or XDG_CACHE_HOME to a writable folder`
  );
}

const privateDirs: string[] = [];

/** A fresh folder under the OS temp dir, removed when the process exits. */
export async function privateTempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `spp-extract-${process.pid}-`));
  if (privateDirs.length === 0) {
    process.once('exit', () => {
      for (const d of privateDirs) rmSync(d, { recursive: true, force: true });
    });
  }
  privateDirs.push(dir);
  return dir;
}

/** Removes temp files/folders in `dir` that a killed process left behind (older than an hour). */
export async function sweepStale(dir: string, isTemp: (name: string) => boolean, maxAgeMs = 3_600_000): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    if (!isTemp(name)) continue;
    const p = join(dir, name);
    const st = await stat(p).catch(() => undefined);
    if (st && Date.now() - st.mtimeMs > maxAgeMs) await rm(p, { recursive: true, force: true }).catch(() => undefined);
  }
}

