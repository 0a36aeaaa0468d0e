import { spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import { expect, it } from 'vitest';
import { newWorkerId, workerGone } from '../../src/queue/worker.js';

it("a worker is gone when its process on this host ended, or when its pid is now this process's own (a restarted container)", () => {
  const self = newWorkerId();
  const sibling = newWorkerId(); // another instance in this same process (tests run several)
  const deadPid = spawnSync(process.execPath, ['-e', '0']).pid!;
  expect(workerGone(self, self)).toBe(false);
  expect(workerGone(sibling, self)).toBe(false);
  expect(workerGone(`${hostname()}:${deadPid}:abcdef`, self)).toBe(true);
  expect(workerGone(`${hostname()}:${process.pid}:abcdef`, self)).toBe(true);
  expect(workerGone(`${hostname()}:${process.ppid}:abcdef`, self)).toBe(false); // alive
  expect(workerGone(`other-host:${deadPid}:abcdef`, self)).toBe(false); // another host: its lease decides
});
