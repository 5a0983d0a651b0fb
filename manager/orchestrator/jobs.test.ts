// The replicated-job orchestrator: runs until `completions` tasks completed, at most
// `maxConcurrent` at once; failed runs restarted per the policy in their slot; a run that may not
// restart frees its place; done when every slot has completed (or given up).
import t from 'tap';
import type { RestartPolicy, ServiceObject, TaskObject } from '../services/model.js';
import { node, service, task, view } from './fixtures.js';
import { jobProgress } from './jobs.js';
import { orchestrate } from './orchestrate.js';
import type { Decisions } from './view.js';

const nodes = [node('n1'), node('n2')];
const job = (completions: number, maxConcurrent: number, restart: Partial<RestartPolicy> = { condition: 'on-failure', delayMs: 0 }) =>
  service('j', { type: 'replicated-job', completions, maxConcurrent }, { restart });
const slotsOf = (d: Decisions) => d.creates.map((c) => (c.spec as { slot: number }).slot);
const decide = (s: ServiceObject, tasks: TaskObject[] = []) => orchestrate(view({ nodes, services: [s], tasks }));

t.test('starts at most max-concurrent runs', async (t) => {
  t.same(slotsOf(decide(job(5, 2))), [1, 2]);
  t.same(slotsOf(decide(job(2, 10))), [1, 2], 'never more than completions');
  t.same(slotsOf(decide(job(0, 1))), [], 'zero completions: nothing to run');
});

t.test('a completion makes room for the next run', async (t) => {
  const s = job(5, 2);
  const d = decide(s, [task(s, 'a', { slot: 1, nodeId: 'n1', state: 'complete' }), task(s, 'b', { slot: 2, nodeId: 'n2' })]);
  t.same(slotsOf(d), [3]);
  t.same(d.updates, []);
});

t.test('done when every slot completed: nothing more', async (t) => {
  const s = job(3, 2);
  const tasks = [1, 2, 3].map((i) => task(s, `t${i}`, { slot: i, nodeId: 'n1', state: 'complete' }));
  const d = decide(s, tasks);
  t.same([d.creates, d.updates, d.deletes], [[], [], []]);
  t.same(jobProgress(tasks, s.spec.task.restart), { completed: 3, active: 0, failed: 0 });
});

t.test('a failed run restarts in its slot per the policy', async (t) => {
  const s = job(3, 1);
  const d = decide(s, [task(s, 'a', { slot: 1, nodeId: 'n1', state: 'failed' })]);
  t.same(slotsOf(d), [1], 'slot 1 again, not slot 2');
  t.same(d.updates.map((u) => [u.task.id, u.desiredState]), [['a', 'shutdown']]);
  const later = decide(s, [task(s, 'a', { slot: 1, nodeId: 'n1', state: 'failed', desired: 'shutdown', version: 1 }), task(s, 'a2', { slot: 1, nodeId: 'n2', state: 'complete', version: 2 })]);
  t.same(slotsOf(later), [2], 'once slot 1 completed, slot 2 runs');
});

t.test('a run that may not restart frees its place; the job ends short', async (t) => {
  const s = job(3, 1, { condition: 'none' });
  const failed = task(s, 'a', { slot: 1, nodeId: 'n1', state: 'failed' });
  t.same(slotsOf(decide(s, [failed])), [2], 'slot 1 stays failed, slot 2 starts');
  const capped = job(3, 1, { condition: 'on-failure', maxAttempts: 1, delayMs: 0 });
  const used = task(capped, 'b', { slot: 1, nodeId: 'n1', state: 'failed', restarts: [5] });
  t.same(slotsOf(decide(capped, [used])), [2], 'attempts used up: the same');
  const end = [failed, task(s, 'b', { slot: 2, nodeId: 'n1', state: 'complete' }), task(s, 'c', { slot: 3, nodeId: 'n2', state: 'complete' })];
  t.same(decide(s, end).creates, [], 'every slot over: nothing more');
  t.same(jobProgress(end, s.spec.task.restart), { completed: 2, active: 0, failed: 1 });
});

t.test('a run waiting for its restart delay still holds its place', async (t) => {
  const s = job(3, 1, { condition: 'on-failure', delayMs: 60_000 });
  const d = orchestrate(view({ nodes, services: [s], tasks: [task(s, 'a', { slot: 1, nodeId: 'n1', state: 'failed', timestamps: { failed: 999_000 } })], now: 1_000_000 }));
  t.same(d.creates, []);
  t.equal(d.wakeAt, 1_059_000);
});

t.test('a run on a lost node is replaced; one on a drained node too', async (t) => {
  const s = job(4, 2);
  const d = orchestrate(view({ nodes: [node('n1', { state: 'down' }), node('n2', { availability: 'drain' })], services: [s], tasks: [task(s, 'a', { slot: 1, nodeId: 'n1' }), task(s, 'b', { slot: 2, nodeId: 'n2' })] }));
  t.same(slotsOf(d), [1, 2]);
  t.same(Object.fromEntries(d.updates.map((u) => [u.task.id, u.status?.state ?? u.desiredState])), { a: 'orphaned', b: 'shutdown' });
});
