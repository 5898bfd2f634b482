import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './shared.js';

export const BIN = join(REPO_ROOT, 'bin', 'spp-extract.cjs');

export interface CliResult { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/** Runs bin/spp-extract.cjs (the installed command) as a user would (separate process, stdout/stderr captured). */
export function runCli(
  args: string[], opts: { stdin?: string | Buffer; cwd?: string; env?: NodeJS.ProcessEnv; killAfterMs?: number } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: opts.cwd ?? REPO_ROOT,
      env: { ...process.env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
      // A guard, not a timing: a run that hangs (a regression) is killed and fails its test.
      ...(opts.killAfterMs !== undefined ? { timeout: opts.killAfterMs, killSignal: 'SIGKILL' as const } : {}),
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
    child.stdin.end(opts.stdin ?? '');
  });
}

/**
 * Runs the CLI and sends `signal` once `journal` holds at least `afterRecords` records (lines past
 * the header). Not a timing: the trigger is the run's own progress on disk. The run must have more
 * inputs than `afterRecords` by a wide margin, so it is still going when the signal lands.
 */
export function runAndSignal(args: string[], journal: string, afterRecords: number, signal: NodeJS.Signals) {
  return new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; sent: boolean }>((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let sent = false;
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setInterval(() => {
      const lines = existsSync(journal) ? readFileSync(journal, 'utf8').split('\n').length - 2 : 0;
      if (lines >= afterRecords) {
        clearInterval(timer);
        sent = child.kill(signal);
      }
    }, 5);
    child.on('error', reject);
    child.on('close', (code, sig) => {
      clearInterval(timer);
      resolve({ code, signal: sig, stderr, sent });
    });
  });
}

/**
 * Runs the CLI with stdin held open (a `-` input list that never ends) and sends `signal` once
 * `ready()` holds (polled): a stage the test can see, such as the lock file, a temp file or a
 * request to a model server. Not a timing. `again` sends a second signal once stderr matches it.
 */
export function signalWhen(
  args: string[], ready: () => boolean, signal: NodeJS.Signals, opts: { cwd?: string; env?: NodeJS.ProcessEnv; again?: RegExp } = {},
) {
  return new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; sent: number }>((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: opts.cwd ?? REPO_ROOT, env: { ...process.env, ...opts.env }, stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    let sent = 0;
    child.stderr.on('data', (d) => {
      stderr += d;
      if (opts.again && sent === 1 && opts.again.test(stderr) && child.kill(signal)) sent++;
    });
    const timer = setInterval(() => {
      if (!ready()) return;
      clearInterval(timer);
      if (child.kill(signal)) sent++;
    }, 5);
    child.on('error', reject);
    child.on('close', (code, sig) => {
      clearInterval(timer);
      resolve({ code, signal: sig, stderr, sent });
    });
  });
}
