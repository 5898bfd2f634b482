/**
 * Helpers shared by the benchmark scripts (throughput.ts, memory.ts): where the real data is, how a
 * child process is timed and its peak RSS read, medians and plain-text tables. No timed assertions:
 * these scripts report numbers, they never fail on them.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root: this file runs as dist/scripts/bench/*.js. */
export const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
export const CLI = join(REPO, 'bin', 'spp-extract.cjs');

export function sharedDir(): string {
  return resolve(process.env.SPP_SHARED_DIR ?? join(REPO, '..', 'shared'));
}

/**
 * The benchmarks measure real photos and weights; without them a number would mean nothing, so we
 * say what is missing and exit 0 (a missing data folder is not a failure of the project).
 */
export function requirePaths(paths: string[], what: string): void {
  const missing = paths.filter((p) => !existsSync(p));
  if (missing.length === 0) return;
  console.log(`${what}: skipped, the real data is missing:\n${missing.map((p) => `  ${p}`).join('\n')}\n` +
    `Put the shared folder beside the repository (../shared) or set SPP_SHARED_DIR.`);
  process.exit(0);
}

/** The 500 labelled photos (../shared/images/labelled, as MANIFEST.tsv lists them); exits 0 when missing. */
export function labelledPhotos(): string[] {
  const dir = join(sharedDir(), 'images', 'labelled');
  requirePaths([join(dir, 'MANIFEST.tsv')], 'labelled photos');
  const lines = readFileSync(join(dir, 'MANIFEST.tsv'), 'utf8').split('\n').slice(1).filter(Boolean);
  return lines.map((line) => join(dir, line.split('\t')[0]!));
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function fmt(x: number, digits = 1): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '–';
}

/** Plain-text table: columns of numbers right-aligned, text left-aligned. */
export function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const numeric = header.map((_, i) => rows.every((r) => /^[\d.\s×%–-]*$/.test(r[i] ?? '')));
  const line = (r: string[]) => r.map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function machineLine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown cpu';
  const load = loadavg().map((l) => l.toFixed(2)).join(' ');
  return `node ${process.version}, ${availableParallelism()} cores (${cpu.trim()}), ${Math.round(totalmem() / 2 ** 30)} GiB, ` +
    `load average ${load}, ${new Date().toISOString()}`;
}

/** The command to reproduce this run, as typed from the repository root. */
export function reproduceLine(script: string, npmScript?: string): string {
  const args = process.argv.slice(2).map((a) => (/^[\w.,:/=@%+-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`));
  const envPart = process.env.SPP_SHARED_DIR ? `SPP_SHARED_DIR=${process.env.SPP_SHARED_DIR} ` : '';
  const direct = `${envPart}npx tsc -p tsconfig.json && node ${script}${args.length ? ` ${args.join(' ')}` : ''}`;
  // Scripts without an npm alias print the direct command only.
  if (npmScript === undefined) return direct;
  return `${envPart}npm run ${npmScript}${args.length ? ` -- ${args.join(' ')}` : ''}   (= ${direct})`;
}

export function makeTempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

// GNU time writes the child's ru_maxrss (KiB) and its user and system CPU seconds; present on most
// Linux machines. Without it we fall back to what the child reports itself (the CLI's `-v` summary,
// or a bench child's JSON line), and the child's CPU time is unknown.
const GNU_TIME = '/usr/bin/time';
export const HAVE_GNU_TIME = existsSync(GNU_TIME);

export interface ChildRun {
  code: number | null;
  wallMs: number;
  /** Peak RSS in KiB from GNU time; undefined without it (use the child's own report). */
  timeMaxRssKiB?: number;
  /** User + system CPU ms of the child (every thread), from GNU time (10 ms resolution); undefined without it. */
  cpuMs?: number;
  stdout: string;
  stderr: string;
}

/** GNU time's `%M %U %S` line (the file is removed); fields it lacks stay undefined. */
function readGnuTime(file: string): Pick<ChildRun, 'timeMaxRssKiB' | 'cpuMs'> {
  try {
    // GNU time may prefix "Command exited with non-zero status N"; the numbers are the last line.
    const last = readFileSync(file, 'utf8').trim().split('\n').at(-1) ?? '';
    const m = /^(\d+) ([\d.]+) ([\d.]+)$/.exec(last);
    return m ? { timeMaxRssKiB: Number(m[1]), cpuMs: 1000 * (Number(m[2]) + Number(m[3])) } : {};
  } catch {
    return {}; // no file: fall back to the child's report
  } finally {
    rmSync(file, { force: true });
  }
}

/**
 * Runs `node args…` as a child, with stdin from `input`, and measures its wall time (spawn to
 * exit, so process start-up and model loading count, as a user would see them), peak RSS and CPU time.
 */
export function runNode(args: string[], opts: { input?: string; cwd?: string; tmp: string; env?: NodeJS.ProcessEnv }): Promise<ChildRun> {
  const rssFile = join(opts.tmp, `rss-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}.txt`);
  const [cmd, argv] = HAVE_GNU_TIME
    ? [GNU_TIME, ['-f', '%M %U %S', '-o', rssFile, process.execPath, ...args]]
    : [process.execPath, args];
  return new Promise((resolvePromise, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, argv, { cwd: opts.cwd ?? REPO, stdio: ['pipe', 'pipe', 'pipe'], ...(opts.env ? { env: opts.env } : {}) });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code) => {
      const wallMs = performance.now() - t0;
      const timed = HAVE_GNU_TIME ? readGnuTime(rssFile) : {};
      resolvePromise({ code, wallMs, ...timed, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    child.stdin.on('error', () => undefined); // a child that exits early must not crash the bench
    child.stdin.end(opts.input ?? '');
  });
}

/** What `spp-extract -v` prints at the end: `… (48.2 img/s, peak RSS 312 MiB) → …`. */
export function parseCliSummary(stderr: string): { rows?: number; failed?: number; imgPerSec?: number; peakRssMiB?: number; engineLine?: string } {
  const done = /spp-extract: (?:done|interrupted[^:]*): (\d+) rows, (\d+) failed, .*?\(([\d.]+) img\/s(?:, peak RSS (\d+) MiB)?\)/.exec(stderr);
  const engineLine = /spp-extract: engine .*/.exec(stderr)?.[0];
  return {
    rows: done ? Number(done[1]) : undefined,
    failed: done ? Number(done[2]) : undefined,
    imgPerSec: done ? Number(done[3]) : undefined,
    peakRssMiB: done?.[4] !== undefined ? Number(done[4]) : undefined,
    engineLine,
  };
}

/** Peak RSS in MiB: GNU time's when there, else the fallback the caller parsed from the child. */
export function peakMiB(run: ChildRun, fallbackMiB?: number): number {
  if (run.timeMaxRssKiB !== undefined) return run.timeMaxRssKiB / 1024;
  return fallbackMiB ?? NaN;
}

export function rssMethod(): string {
  return HAVE_GNU_TIME
    ? 'peak RSS: GNU time %M (ru_maxrss) of each child process'
    : 'peak RSS: the child\'s own report (CLI -v summary / process.resourceUsage().maxRSS); /usr/bin/time not found';
}

/** Last lines of a failed child's stderr, for the error message. */
export function tail(s: string, lines = 8): string {
  return s.trim().split('\n').slice(-lines).join('\n');
}
