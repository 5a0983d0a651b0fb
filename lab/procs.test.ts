// startDetached in a real network namespace: a process that never reports ready is killed with
// everything it started (its process group) and the error says so; one that reports ready is
// returned running; one that dies during start-up is reported with its log.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { deleteNetns, pidsIn, procState } from './netns.js';
import { killGroup, startDetached, waitGone } from './procs.js';
import { run } from './sh.js';

const NS = `ndp${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), `shoal-procs-${process.pid}-`));
t.teardown(async () => {
  const left = pidsIn(NS);
  for (const p of left) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // gone
    }
  }
  await waitGone(left, 5000);
  deleteNetns(NS);
  rmSync(dir, { recursive: true, force: true });
});
deleteNetns(NS); // a leftover of a crashed run with the same pid
run(['ip', 'netns', 'add', NS]);
run(['ip', '-n', NS, 'link', 'set', 'lo', 'up']);

t.test('never ready: killed with its process group, and the error says so', async (t) => {
  const log = join(dir, 'slow.log');
  // A shell that starts a child of its own, then never prints the ready line.
  const err = await startDetached(NS, ['sh', '-c', 'sleep 300 & echo "child=$!"; exec sleep 301'], log, { ready: { pattern: /^READY$/m, timeoutMs: 1000, what: 'the slow one' } }).then(
    () => undefined,
    (e: Error) => e,
  );
  t.ok(err, 'startDetached gave up');
  t.match(err!.message, /^the slow one did not report ready within 1 s; killed it \(SIGKILL to process group \d+\) so it does not run half-started; last lines of .*slow\.log:\nchild=\d+/);
  const child = Number(/child=(\d+)/.exec(readFileSync(log, 'utf8'))![1]);
  t.ok(await waitGone([child], 5000), `its child (pid ${child}) is gone too`);
  t.same(pidsIn(NS), [], 'nothing runs in the namespace any more');
});

t.test('ready: returned running, in the namespace', async (t) => {
  const log = join(dir, 'ok.log');
  const p = await startDetached(NS, ['sh', '-c', 'echo READY; exec sleep 300'], log, { ready: { pattern: /^READY$/m, timeoutMs: 30_000 } });
  t.teardown(() => killGroup(p.pid));
  t.not(procState(p.pid), undefined, 'it runs');
  t.same(pidsIn(NS), [p.pid], 'in the namespace');
  t.ok(await killGroup(p.pid), 'killGroup stops it');
});

t.test('exits during start-up: the error carries its log', async (t) => {
  const log = join(dir, 'dies.log');
  const err = await startDetached(NS, ['sh', '-c', 'echo "no config here" >&2; sleep 0.3; exit 3'], log, { ready: { pattern: /^READY$/m, timeoutMs: 30_000, what: 'the broken one' } }).then(
    () => undefined,
    (e: Error) => e,
  );
  t.match(err?.message, /^the broken one exited during start-up; last lines of .*dies\.log:\nno config here/);
  t.same(pidsIn(NS), []);
});
