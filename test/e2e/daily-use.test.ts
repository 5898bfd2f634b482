/**
 * Issue 19, frictions 9 and 10 and provenance: what a newcomer saw on stderr (tfjs's banner, no
 * progress on a 0-column terminal, a silent second Ctrl-C), and what an output says about how it was
 * made (versions, the folder its relative paths start from).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli } from '../helpers/cli.js';
import { REPO_ROOT, fixture } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

const TINY = ['--model', fixture('tiny-layers'), '--threads', '1'];
const dist = (p: string) => JSON.stringify(join(REPO_ROOT, 'dist', 'src', p));
const requireHere = createRequire(import.meta.url);

test('--backend cpu: stderr has the run\'s own lines only, not tfjs\'s "Hi, looks like you are running TensorFlow.js in Node.js" banner', async () => {
  const r = await runCli([fixture('images'), '-o', join(tempDir(), 'x.jsonl'), ...TINY, '--engine', 'tfjs', '--backend', 'cpu']);
  assert.equal(r.code, 2, r.stderr);
  assert.doesNotMatch(r.stderr, /TensorFlow\.js|={10}/);
  for (const line of r.stderr.trim().split('\n')) assert.match(line, /^spp-extract: /, `a line that is not the tool's: ${line}`);
});

test('a terminal that reports 0 columns still gets progress, drawn as if 80 wide (it used to get none)', async () => {
  const script = `
    import { createReporter } from ${dist('cli/progress.js')};
    let out = '';
    const stream = { isTTY: true, columns: 0, write: (s) => ((out += s), true), cursorTo() {}, clearLine() {}, moveCursor() {}, on() {}, once() {}, removeListener() {}, off() {} };
    const r = await createReporter({ quiet: false, stream });
    r.start(3);
    for (let done = 1; done <= 3; done++) r.update({ done, total: 3, imagesDone: done, rows: done, failures: 0, elapsedMs: 200 * done });
    r.line('spp-extract: failed: a.png: truncated');
    r.stop();
    process.stdout.write(JSON.stringify(out));`;
  const { CI: _ci, ...env } = process.env;
  const r = await runNode(['--input-type=module', '-e', script], { ...env, TERM: 'xterm' });
  assert.equal(r.code, 0, r.stderr);
  const drawn = JSON.parse(r.stdout) as string;
  assert.match(drawn, /3\/3 images/);
  assert.match(drawn, /spp-extract: failed: a\.png: truncated\n/);
  // Counting lines as infinitely many would clear (ESC[2K / ESC[1A) without end.
  assert.ok(drawn.length < 4000, `${drawn.length} characters drawn for three updates`);
});

/** `node ARGS`; `onStderr` sees stderr so far each time more comes, and may send signals. */
function runNode(args: string[], env: NodeJS.ProcessEnv, onStderr?: (text: string, kill: (s: NodeJS.Signals) => void) => void) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => {
      stderr += d;
      onStderr?.(stderr, (s) => child.kill(s));
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('a second Ctrl-C while the first one waits for the engine to close: one more line, then exit 130 (it used to exit silently)', { timeout: 60_000 }, async () => {
  // An engine whose close never ends stands for ONNX Runtime finishing a long batch.
  const script = `
    import { installInterruptHandler, interruptNote } from ${dist('cli/interrupt.js')};
    import { closeAtInterrupt } from ${dist('core/interrupt-cleanup.js')};
    installInterruptHandler();
    interruptNote('stopped; what is on disk is kept: finish with --resume');
    closeAtInterrupt(() => new Promise(() => {}));
    setInterval(() => {}, 1000);
    process.stderr.write('ready\\n');`;
  let sent = 0;
  const r = await runNode(['--input-type=module', '-e', script], process.env, (text, kill) => {
    if ((sent === 0 && text.includes('ready\n')) || (sent === 1 && text.includes('spp-extract: SIGINT:'))) {
      sent++;
      kill('SIGINT');
    }
  });
  assert.equal(sent, 2, r.stderr);
  assert.equal(r.code, 130, r.stderr);
  assert.equal(r.stderr, 'ready\nspp-extract: SIGINT: stopped; what is on disk is kept: finish with --resume\n' +
    'spp-extract: SIGINT again: exiting without waiting; stopped; what is on disk is kept: finish with --resume\n');
});

/** The header of each output format: the .npy's manifest line, the JSONL's first line, the JSON's top level. */
function headerOf(path: string): Record<string, unknown> {
  const text = readFileSync(path.endsWith('.npy') ? path.replace(/\.npy$/, '.manifest.jsonl') : path, 'utf8');
  if (path.endsWith('.json')) {
    const { rows: _rows, failures: _f, summary: _s, ...header } = JSON.parse(text) as Record<string, unknown>;
    return header;
  }
  return JSON.parse(text.split('\n')[0]) as Record<string, unknown>;
}

test('every output records its provenance: tool, Node, sharp, libvips and ONNX Runtime versions, and the folder relative paths start from', async () => {
  const dir = tempDir();
  const pkg = (name: string) => (JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  const sharp = requireHere('sharp') as { versions: { vips: string } };
  const expected = {
    'spp-extract': (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version,
    node: process.versions.node,
    sharp: pkg('sharp'),
    libvips: sharp.versions.vips,
    'onnxruntime-node': pkg('onnxruntime-node'),
  };
  for (const ext of ['npy', 'jsonl', 'json']) {
    const out = join(dir, `rel.${ext}`);
    const r = await runCli(['fixtures/images', '-o', out, ...TINY, '--engine', 'onnx', '-q']);
    assert.equal(r.code, 2, r.stderr);
    const header = headerOf(out);
    assert.deepEqual(header.versions, expected, ext);
    assert.equal(header.relativeTo, REPO_ROOT, `${ext}: relative paths start at the working folder`);
  }
  // Every path absolute: nothing to say where they start.
  const abs = join(dir, 'abs.jsonl');
  assert.equal((await runCli([fixture('images'), '-o', abs, ...TINY, '-q'])).code, 2);
  assert.equal(headerOf(abs).relativeTo, undefined);
  // The tfjs engine names its runtime instead.
  const tf = join(dir, 'tf.jsonl');
  assert.equal((await runCli([fixture('images'), '-o', tf, ...TINY, '--engine', 'tfjs', '--backend', 'cpu', '-q'])).code, 2);
  const tfVersions = headerOf(tf).versions as Record<string, string>;
  assert.equal(tfVersions['@tensorflow/tfjs'], pkg('@tensorflow/tfjs'));
  assert.equal(tfVersions['onnxruntime-node'], undefined);
});

test('--resume: other library versions are provenance, not a different run; another working folder with relative paths is refused', async () => {
  const dir = tempDir();
  const out = join(dir, 'x.npy');
  assert.equal((await runCli(['fixtures/images', '-o', out, ...TINY, '-q'])).code, 2);
  const manifest = out.replace(/\.npy$/, '.manifest.jsonl');
  const lines = readFileSync(manifest, 'utf8').split('\n');
  const header = JSON.parse(lines[0]) as Record<string, unknown>;
  writeFileSync(manifest, [JSON.stringify({ ...header, versions: { ...(header.versions as object), sharp: '0.0.1', libvips: '1.0.0' } }), ...lines.slice(1)].join('\n'));
  const again = await runCli(['fixtures/images', '-o', out, ...TINY, '--resume']);
  assert.equal(again.code, 2, again.stderr);
  assert.doesNotMatch(again.stderr, /error/);
  // The same relative names from another folder are other files.
  const elsewhere = join(dir, 'elsewhere');
  mkdirSync(join(elsewhere, 'fixtures'), { recursive: true });
  cpSync(fixture('images'), join(elsewhere, 'fixtures', 'images'), { recursive: true });
  const moved = await runCli(['fixtures/images', '-o', out, ...TINY, '--resume'], { cwd: elsewhere });
  assert.equal(moved.code, 1, moved.stderr);
  assert.match(moved.stderr, /the folder relative paths start from/);
  assert.ok(moved.stderr.includes(JSON.stringify(REPO_ROOT)) && moved.stderr.includes(JSON.stringify(elsewhere)), moved.stderr);
});

test('the README\'s `npm link` line installs the command without npm\'s "install scripts not yet covered by allowScripts" warning', async () => {
  const line = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8').split('\n').map((l) => l.replace(/#.*/, '').trim()).find((l) => /^npm link\b/.test(l));
  assert.ok(line, 'README.md shows how to put spp-extract on the PATH with npm link');
  // A private global prefix: the user's own global folder is never touched.
  const prefix = tempDir();
  const r = await runShell(line, { ...process.env, NPM_CONFIG_PREFIX: prefix, npm_config_prefix: prefix, NPM_CONFIG_UPDATE_NOTIFIER: 'false' });
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stdout + r.stderr, /npm warn|allowScripts/i);
  const version = await runShell(`${join(prefix, 'bin', 'spp-extract')} --version`, process.env);
  assert.equal(version.stdout.trim(), (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version);
});

function runShell(command: string, env: NodeJS.ProcessEnv) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn('sh', ['-c', command], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
