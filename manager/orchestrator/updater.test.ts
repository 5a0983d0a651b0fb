// The updater's decisions over views of the store: batches of `parallelism`, the next batch only
// once every new task has run (and been ready) for the monitor period and the delay passed;
// start-first keeps the old task until the new one is ready; the failure ratio with pause and
// rollback (the previous revision's spec, as a new revision); completion; and a new leader
// deciding from the same store decides the same (nothing repeated, nothing skipped).
import t from 'tap';
import { templateKey, type ServiceObject, type TaskObject, type UpdateConfig } from '../services/model.js';
import { idGen, node, replicated, service, task, view } from './fixtures.js';
import { orchestrate } from './orchestrate.js';

const NOW = 1_000_000;
const nodes = [node('n1'), node('n2')];

/** A replicated service whose template just changed (an update started at `startedAt`). */
function updating(cfg: Partial<UpdateConfig>, startedAt = NOW - 10_000): { s: ServiceObject; old: ServiceObject } {
  const old = service('svc', replicated(4));
  const s: ServiceObject = {
    ...old,
    version: 2,
    spec: {
      ...old.spec,
      task: { ...old.spec.task, main: { name: 'main', image: 'busybox:2' } },
      update: { parallelism: 2, delayMs: 0, order: 'stop-first', failureAction: 'pause', monitorMs: 5000, maxFailureRatio: 0, ...cfg },
    },
    status: {
      createdAt: 0,
      updatedAt: startedAt,
      revision: 2,
      revisions: [
        { revision: 1, spec: old.spec, at: 0, change: 'created' },
        { revision: 2, spec: { ...old.spec, task: { ...old.spec.task, main: { name: 'main', image: 'busybox:2' } } }, at: startedAt, change: 'image' },
      ],
      update: { state: 'updating', startedAt, message: 'updating' },
    },
  };
  return { s, old };
}

/** A task on the old or the new template. */
function t4(s: ServiceObject, old: ServiceObject, id: string, slot: number, o: { fresh?: boolean; state?: TaskObject['status']['state']; ranAt?: number; ready?: boolean; desired?: 'running' | 'shutdown'; createdAt?: number } = {}): TaskObject {
  const x = task(o.fresh ? s : old, id, { slot, nodeId: slot % 2 ? 'n1' : 'n2', state: o.state ?? 'running', desired: o.desired, timestamps: { new: o.createdAt ?? (o.fresh ? NOW - 9000 : 0), ...(o.ranAt !== undefined ? { running: o.ranAt } : {}) } });
  x.spec = { ...x.spec, templateKey: templateKey((o.fresh ? s : old).spec.task) };
  if (o.ready !== undefined) x.status = { ...x.status, ready: o.ready };
  return x;
}

t.test('the first batch: parallelism 2, stop-first', async (t) => {
  const { s, old } = updating({});
  const tasks = [1, 2, 3, 4].map((i) => t4(s, old, `o${i}`, i));
  const d = orchestrate(view({ now: NOW, nodes, services: [s], tasks, newId: idGen() }));
  const fresh = d.creates.filter((c) => c.serviceId === 'svc');
  t.same(fresh.map((c) => (c.spec as TaskObject['spec']).slot).sort(), [1, 2], 'slots 1 and 2 get new tasks');
  t.ok(fresh.every((c) => (c.spec as TaskObject['spec']).templateKey === templateKey(s.spec.task)), 'on the new template');
  t.same(d.updates.filter((u) => u.desiredState === 'shutdown').map((u) => u.task.id).sort(), ['o1', 'o2'], 'their old tasks stop (stop-first)');
  // Deciding again from the same store (a new leader) gives the same decisions.
  const again = orchestrate(view({ now: NOW, nodes, services: [s], tasks, newId: idGen() }));
  t.same(again.creates.map((c) => [c.id, (c.spec as TaskObject['spec']).slot]), d.creates.map((c) => [c.id, (c.spec as TaskObject['spec']).slot]), 'a new leader decides the same');
});

t.test('the next batch waits for the monitor period, then the delay', async (t) => {
  const { s, old } = updating({ delayMs: 3000 });
  const running = (ranAt: number, ready = true) => [
    t4(s, old, 'o1', 1, { desired: 'shutdown', state: 'shutdown' }), t4(s, old, 'n1', 1, { fresh: true, ranAt, ready }),
    t4(s, old, 'o2', 2, { desired: 'shutdown', state: 'shutdown' }), t4(s, old, 'n2', 2, { fresh: true, ranAt, ready }),
    t4(s, old, 'o3', 3), t4(s, old, 'o4', 4),
  ];
  let d = orchestrate(view({ now: NOW, nodes, services: [s], tasks: running(NOW - 1000) }));
  t.same(d.creates, [], 'within the monitor period: no new batch');
  t.equal(d.wakeAt, NOW - 1000 + 5000, 'it asks to be woken when the monitor period ends');
  d = orchestrate(view({ now: NOW, nodes, services: [s], tasks: running(NOW - 7000) }));
  t.same(d.creates, [], 'monitor passed 2 s ago, delay is 3 s: still waiting');
  t.equal(d.wakeAt, NOW - 7000 + 5000 + 3000, 'until the delay runs out');
  d = orchestrate(view({ now: NOW, nodes, services: [s], tasks: running(NOW - 9000) }));
  t.same(d.creates.map((c) => (c.spec as TaskObject['spec']).slot).sort(), [3, 4], 'then slots 3 and 4');
  d = orchestrate(view({ now: NOW, nodes, services: [s], tasks: running(NOW - 60_000, false) }));
  t.same(d.creates, [], 'a new task that is not ready holds the update however long it runs');
});

t.test('start-first: the old task runs until its successor is ready', async (t) => {
  const { s, old } = updating({ order: 'start-first', parallelism: 1 });
  let tasks = [1, 2, 3, 4].map((i) => t4(s, old, `o${i}`, i));
  const d = orchestrate(view({ now: NOW, nodes, services: [s], tasks }));
  const fresh = d.creates.filter((c) => c.serviceId === 'svc');
  t.equal(fresh.length, 1, 'one new task');
  t.equal((fresh[0]!.spec as TaskObject['spec']).replaces, 'o1', 'replacing o1');
  t.notOk(d.updates.some((u) => u.task.id === 'o1'), 'o1 is not stopped yet');
  const n1 = { ...t4(s, old, 'n1', 1, { fresh: true, state: 'starting' }), spec: { ...t4(s, old, 'n1', 1, { fresh: true }).spec, replaces: 'o1' } };
  tasks = [tasks[0]!, n1, ...tasks.slice(1)];
  const starting = orchestrate(view({ now: NOW, nodes, services: [s], tasks }));
  t.notOk(starting.updates.some((u) => u.task.id === 'o1'), 'while the new one starts, the old keeps running (the orchestrator leaves it too)');
  const ready = { ...n1, status: { ...n1.status, state: 'running' as const, timestamps: { ...n1.status.timestamps, running: NOW - 100 }, ready: true } };
  const done = orchestrate(view({ now: NOW, nodes, services: [s], tasks: [tasks[0]!, ready, ...tasks.slice(2)] }));
  t.equal(done.updates.find((u) => u.task.id === 'o1')?.desiredState, 'shutdown', 'once the new one is ready, the old one stops');
});

t.test('failures: pause, or roll back to the previous revision', async (t) => {
  const failedTasks = (s: ServiceObject, old: ServiceObject) => [
    t4(s, old, 'o1', 1, { desired: 'shutdown', state: 'shutdown' }), t4(s, old, 'n1', 1, { fresh: true, state: 'failed' }),
    t4(s, old, 'o2', 2, { desired: 'shutdown', state: 'shutdown' }), t4(s, old, 'n2', 2, { fresh: true, ranAt: NOW - 1000 }),
    t4(s, old, 'o3', 3), t4(s, old, 'o4', 4),
  ];
  const p = updating({ failureAction: 'pause' });
  let d = orchestrate(view({ now: NOW, nodes, services: [p.s], tasks: failedTasks(p.s, p.old) }));
  const paused = d.services.find((c) => c.service.id === 'svc');
  t.equal(paused?.status.update?.state, 'paused', 'paused');
  t.match(paused?.status.update?.message, /update paused: 1 of 2 updated task\(s\) failed, above the maximum failure ratio 0/);
  t.same(d.creates.filter((c) => (c.spec as TaskObject['spec']).templateKey === templateKey(p.s.spec.task) && (c.spec as TaskObject['spec']).slot > 2), [], 'no further batch');

  const tolerant = updating({ failureAction: 'pause', maxFailureRatio: 0.5 });
  d = orchestrate(view({ now: NOW, nodes, services: [tolerant.s], tasks: failedTasks(tolerant.s, tolerant.old) }));
  t.notOk(d.services.some((c) => c.status.update?.state === 'paused'), 'within the failure ratio (1 of 4 slots <= 0.5): no pause');

  const r = updating({ failureAction: 'rollback' });
  d = orchestrate(view({ now: NOW, nodes, services: [r.s], tasks: failedTasks(r.s, r.old) }));
  const rb = d.services.find((c) => c.service.id === 'svc')!;
  t.same(rb.spec, r.s.status.revisions![0]!.spec, 'the previous revision\'s spec comes back');
  t.equal(rb.status.update?.state, 'rollback_started');
  t.equal(rb.status.revision, 3, 'as a new revision');
  t.match(rb.status.revisions!.at(-1)!.change, /automatic rollback to revision 1/);
});

t.test('completion: every slot on the new template and settled', async (t) => {
  const { s, old } = updating({});
  const tasks = [1, 2, 3, 4].map((i) => t4(s, old, `n${i}`, i, { fresh: true, ranAt: NOW - 6000 }));
  const d = orchestrate(view({ now: NOW, nodes, services: [s], tasks }));
  const c = d.services.find((x) => x.service.id === 'svc');
  t.equal(c?.status.update?.state, 'completed');
  t.equal(c?.status.update?.completedAt, NOW);
  t.same(d.creates, [], 'nothing more to do');
  const notYet = orchestrate(view({ now: NOW, nodes, services: [s], tasks: tasks.map((x, i) => (i === 3 ? t4(s, old, 'n4', 4, { fresh: true, ranAt: NOW - 1000 }) : x)) }));
  t.notOk(notYet.services.some((x) => x.status.update?.state === 'completed'), 'not while one is within its monitor period');
});
