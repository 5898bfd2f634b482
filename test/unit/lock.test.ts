import assert from 'node:assert/strict';
import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { test } from 'node:test';
import { LEASE_MS, deadHolderReason } from '../../src/output/lock.js';

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
