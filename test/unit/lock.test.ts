import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { LEASE_MS, acquireOutputLock, deadHolderReason, lockPathFor } from '../../src/output/lock.js';

const startOf = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
};

test('a lock holder is judged dead only when that is certain', () => {
  const here = { host: hostname(), boot: readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(), pidns: readlinkSync('/proc/self/ns/pid') };
  const me = { pid: process.pid, started: 'now', ...here };
  const parent = { pid: process.ppid, started: 'then', ...here, pstart: startOf(process.ppid) };
  assert.equal(deadHolderReason(parent, me, 0), undefined, 'a live process with its own start time is alive');
  assert.match(deadHolderReason({ ...parent, pstart: '1' }, me, 0)!, /another process/);
  assert.match(deadHolderReason({ ...parent, pid: process.pid }, me, 0)!, /this process/, 'a restarted container reusing the pid');
  assert.match(deadHolderReason({ ...parent, boot: 'other-boot' }, me, 0)!, /rebooted/);
  const otherNs = { ...parent, pidns: 'pid:[1]' };
  assert.equal(deadHolderReason(otherNs, me, LEASE_MS - 1000), undefined, 'another container: alive while its heartbeat is fresh');
  assert.match(deadHolderReason(otherNs, me, LEASE_MS + 1000)!, /no heartbeat/);
  const otherHost = { pid: 7, host: 'elsewhere', started: 'then' };
  assert.equal(deadHolderReason(otherHost, me, 1000), undefined);
  assert.match(deadHolderReason({ ...otherHost, job: '9', restart: 0 }, { ...me, job: '9', restart: 1 }, 0)!, /earlier attempt/);
  assert.equal(deadHolderReason({ ...otherHost, job: '9', restart: 1 }, { ...me, job: '9', restart: 1 }, 0), undefined, 'the same attempt is not stale');
});

test('an empty lock file (a process killed between create and write) is refused while fresh, taken over once old', () => {
  const out = join(mkdtempSync(join(tmpdir(), 'spp-lock-')), 'x.npy');
  const path = lockPathFor(out);
  writeFileSync(path, '');
  assert.throws(() => acquireOutputLock(out, 'x.npy'), /-o x\.npy: another spp-extract run is starting on it/);
  assert.equal(readFileSync(path, 'utf8'), '', 'a refusal leaves the lock as it was');
  const old = new Date(Date.now() - 60_000);
  utimesSync(path, old, old);
  const lock = acquireOutputLock(out, 'x.npy');
  assert.equal(JSON.parse(readFileSync(path, 'utf8')).pid, process.pid, 'taken over: the lock now names this process');
  assert.throws(() => acquireOutputLock(out, 'x.npy'), /already being written by this process/);
  lock.release();
  assert.ok(!existsSync(path), 'released');
});
