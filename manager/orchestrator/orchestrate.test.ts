// One orchestration pass beyond a single service: the task reaper (history of 5 per slot or
// node, only tasks that run nothing) and removed services (their tasks stop, and are deleted
// only once nothing of them runs); and a pass's changes to one task never conflict.
import t from 'tap';
import { node, replicated, service, task, view } from './fixtures.js';
import { TASK_HISTORY, orchestrate } from './orchestrate.js';

const nodes = [node('n1'), node('n2'), node('down', { state: 'down' })];

t.test(`history: ${TASK_HISTORY} tasks kept per slot, the oldest ended ones deleted`, async (t) => {
  const s = service('web', replicated(1));
  const old = Array.from({ length: 8 }, (_, i) => task(s, `h${i}`, { slot: 1, nodeId: 'n1', state: 'failed', desired: 'shutdown', version: 10 + i }));
  const current = task(s, 'now', { slot: 1, nodeId: 'n2', version: 100 });
  const d = orchestrate(view({ nodes, services: [s], tasks: [...old, current] }));
  t.same(d.deletes.map((x) => x.id), ['h0', 'h1', 'h2', 'h3'], '9 tasks in the slot: the 4 oldest go');
  t.same([d.creates, d.updates], [[], []]);
});

t.test('history: a task that may still hold containers is kept however old', async (t) => {
  const s = service('web', replicated(1));
  const tasks = [
    task(s, 'stopping', { slot: 1, nodeId: 'n1', state: 'running', desired: 'shutdown', version: 1 }), // its agent is stopping it
    task(s, 'lost', { slot: 1, nodeId: 'down', state: 'running', desired: 'shutdown', version: 2 }), // node down: runs nothing we can reach
    ...Array.from({ length: 5 }, (_, i) => task(s, `h${i}`, { slot: 1, nodeId: 'n1', state: 'failed', desired: 'shutdown', version: 10 + i })),
    task(s, 'now', { slot: 1, nodeId: 'n2', version: 100 }),
  ];
  const d = orchestrate(view({ nodes, services: [s], tasks }));
  t.same(d.deletes.map((x) => x.id).sort(), ['h0', 'lost']);
});

t.test('history per node for global services; an old ended task still marked running is reaped too', async (t) => {
  const g = service('g', { type: 'global' });
  const tasks = [
    task(g, 'stale', { nodeId: 'n1', state: 'failed', version: 1 }), // left wanted running by an interrupted write
    ...Array.from({ length: 5 }, (_, i) => task(g, `h${i}`, { nodeId: 'n1', state: 'failed', desired: 'shutdown', version: 10 + i })),
    task(g, 'now', { nodeId: 'n1', version: 100 }),
    task(g, 'other', { nodeId: 'n2', version: 101 }),
  ];
  const d = orchestrate(view({ nodes, services: [g], tasks }));
  t.same(d.deletes.map((x) => x.id), ['stale', 'h0'], '7 on n1: the 2 oldest go, though the oldest is still marked wanted');
});

t.test('a removed service: running tasks are asked to go, the rest deleted; deleted once stopped', async (t) => {
  const s = service('gone', replicated(4));
  const tasks = [
    task(s, 'run', { slot: 1, nodeId: 'n1' }),
    task(s, 'pend', { slot: 2, state: 'pending' }),
    task(s, 'fresh', { slot: 3, state: 'new' }),
    task(s, 'ended', { slot: 4, nodeId: 'n2', state: 'failed', desired: 'shutdown' }),
    task(s, 'lost', { slot: 4, nodeId: 'down', state: 'running' }),
  ];
  const d = orchestrate(view({ nodes, services: [], tasks }));
  t.same(d.deletes.map((x) => x.id).sort(), ['fresh', 'pend'], 'never placed: nothing runs, gone at once');
  t.same(Object.fromEntries(d.updates.map((u) => [u.task.id, u.desiredState])), { run: 'remove', ended: 'remove', lost: 'remove' }, 'the rest told to go first');
  t.same(d.creates, []);
  const next = orchestrate(view({ nodes, services: [], tasks: [
    task(s, 'run', { slot: 1, nodeId: 'n1', desired: 'remove' }),
    task(s, 'stopped', { slot: 2, nodeId: 'n1', state: 'shutdown', desired: 'remove' }),
    task(s, 'lost', { slot: 4, nodeId: 'down', state: 'running', desired: 'remove' }),
  ] }));
  t.same(next.deletes.map((x) => x.id).sort(), ['lost', 'stopped'], 'still running on a live node: kept until its agent reports it stopped');
  t.same(next.updates, []);
});

t.test('a pass changes each task at most once (two changes in one transaction would fail it)', async (t) => {
  const g = service('g', { type: 'global' });
  // Two live tasks on a drained node: the older is a duplicate and the node is drained.
  const tasks = [task(g, 'a', { nodeId: 'n1', version: 1 }), task(g, 'b', { nodeId: 'n1', version: 2 })];
  const d = orchestrate(view({ nodes: [node('n1', { availability: 'drain' })], services: [g], tasks }));
  const ids = d.updates.map((u) => u.task.id).sort();
  t.same(ids, ['a', 'b']);
  t.equal(new Set([...ids, ...d.deletes.map((x) => x.id)]).size, ids.length + d.deletes.length);
});

t.test('a stop-first update batch: the old task and its successor commit together; none for a slot let go', async (t) => {
  const s = service('web', replicated(2));
  const updating = { ...s, status: { ...s.status, update: { state: 'updating' as const, startedAt: 1 } } } as typeof s;
  // Tasks carry another template key than the service's: every slot is due for the update.
  const old = [1, 2, 3].map((slot) => {
    const x = task(s, `o${slot}`, { slot, nodeId: 'n1' });
    return { ...x, spec: { ...x.spec, templateKey: 'old' } };
  });
  const d = orchestrate(view({ nodes, services: [updating], tasks: old }));
  const batch = d.updates.filter((u) => u.successorId);
  t.equal(batch.length, 1, 'parallelism 1: one slot replaced');
  t.ok(d.creates.some((c) => c.id === batch[0]!.successorId), 'its successor is among the creates');
  t.equal(d.updates.find((u) => u.task.id === 'o3')?.desiredState, 'shutdown', 'slot 3 is let go by the scale-down');
  t.notOk(d.creates.some((c) => (c.spec as { slot: number }).slot === 3), 'and gets no updated task');
});
