// The state-dir lock: a live holder keeps it; a holder that is gone, or dead but not yet reaped
// (a zombie: a SIGKILLed shoald whose reaper was busy made `lab start` refuse its own node), does not.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StateLock } from './state-lock.js';

const dir = mkdtempSync(join(tmpdir(), `shoal-state-lock-${process.pid}-`));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const stateOf = (pid: number) => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[0];
const startOf = (pid: number) => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19];

t.test('a live holder keeps the lock; a zombie holder does not', async (t) => {
  const child = spawn('sleep', ['600'], { stdio: 'ignore' });
  t.teardown(() => child.kill('SIGKILL'));
  const pid = child.pid!;
  writeFileSync(join(dir, 'shoald.lock'), `${pid} ${startOf(pid)}\n`);
  t.throws(() => StateLock.acquire(dir), /in use by another shoald \(pid \d+/, 'held by a live process: refused');
  // Killed but not reaped: node reaps its children only from its event loop, which this
  // synchronous wait keeps busy.
  process.kill(pid, 'SIGKILL');
  const end = Date.now() + 30_000;
  while (stateOf(pid) !== 'Z' && Date.now() < end) { /* wait for the kernel to end it */ }
  t.equal(stateOf(pid), 'Z', 'the holder is a zombie');
  const lock = StateLock.acquire(dir);
  t.match(readFileSync(join(dir, 'shoald.lock'), 'utf8'), new RegExp(`^${process.pid} `), 'taken over from the zombie');
  lock.release();
});
