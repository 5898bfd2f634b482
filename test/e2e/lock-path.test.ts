/**
 * Odd files at the lock path (issue 17, item 8): a FIFO there hung the run forever (a blocking read
 * on the main thread), a directory was renamed aside and then failed with a raw EISDIR, a dangling
 * link gave "another run is starting on it" forever. Each is refused with one line naming the lock
 * path and what is there, and left as it was. The CLI runs in a child process: a hang is killed.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, readdirSync, symlinkSync, writeFileSync, type Stats } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli } from '../helpers/cli.js';
import { fixture } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

const MODEL = ['--model', fixture('tiny-layers'), '--engine', 'onnx', '--threads', '1'];

type Case = { label: string; what: string; is(st: Stats): boolean; make(lock: string, dir: string): void | Promise<void> };

const cases: Case[] = [
  { label: 'a FIFO', what: 'a FIFO', is: (st) => st.isFIFO(), make: (lock) => execFileSync('mkfifo', [lock]) },
  { label: 'a directory', what: 'a directory', is: (st) => st.isDirectory(), make: (lock) => mkdirSync(lock) },
  {
    label: 'a dangling symbolic link', what: 'a symbolic link', is: (st) => st.isSymbolicLink(),
    make: (lock, dir) => symlinkSync(join(dir, 'nowhere'), lock),
  },
  {
    label: 'a symbolic link to a regular file', what: 'a symbolic link', is: (st) => st.isSymbolicLink(),
    make: (lock, dir) => {
      // It holds a dead holder: still not a lock of ours, never followed.
      writeFileSync(join(dir, 'elsewhere'), JSON.stringify({ pid: 999999, host: 'gone', started: 'then' }));
      symlinkSync(join(dir, 'elsewhere'), lock);
    },
  },
  {
    label: 'a socket', what: 'a socket', is: (st) => st.isSocket(),
    make: (lock) => new Promise<void>((resolve) => {
      // Not closed (that would remove the socket file), only unref'd so it does not hold the test.
      const server = createServer().listen(lock, () => resolve());
      server.unref();
    }),
  },
];

for (const c of cases) {
  test(`${c.label} at the lock path: refused with one line naming it, left as it was`, { timeout: 120_000 }, async () => {
    const dir = tempDir('spp-lockpath-');
    const lock = join(dir, '.x.npy.lock');
    await c.make(lock, dir);
    const before = readdirSync(dir).sort();
    const r = await runCli([fixture('images'), '-o', join(dir, 'x.npy'), ...MODEL], { killAfterMs: 60_000 });
    assert.equal(r.signal, null, `killed: it hung (${r.stderr})`);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr, `spp-extract: error: -o ${join(dir, 'x.npy')}: the lock path ${lock} is ${c.what}, not a lock file; remove it, then run again\n`);
    assert.deepEqual(readdirSync(dir).sort(), before, 'nothing renamed, nothing written');
    assert.ok(c.is(lstatSync(lock)), `still ${c.what}`);
  });
}
