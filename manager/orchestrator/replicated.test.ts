// The replicated orchestrator's decisions on hand-built views: scale up fills the lowest free
// slots, scale down lets go of slots not running first and then of the most crowded nodes, a
// task on a lost node is orphaned and replaced in its slot without counting a restart, a
// drained node's task is replaced, duplicates in a slot stop, and the restart policy.
import t from 'tap';
import type { ServiceObject, TaskObject } from '../services/model.js';
import { node, replicated, service, task, view } from './fixtures.js';
import { orchestrate } from './orchestrate.js';
import { scaleDownOrder } from './replicated.js';
import type { Decisions } from './view.js';

const nodes = [node('n1'), node('n2'), node('n3')];
const slotsOf = (d: Decisions) => d.creates.map((c) => (c.spec as { slot: number }).slot);
const updated = (d: Decisions) => Object.fromEntries(d.updates.map((u) => [u.task.id, u.desiredState]));

function running(s: ServiceObject, placement: Record<number, string>): TaskObject[] {
  return Object.entries(placement).map(([slot, n]) => task(s, `t${slot}`, { slot: Number(slot), nodeId: n }));
}

t.test('a new service gets a task per slot, 1..replicas, each new and unplaced', async (t) => {
  const s = service('web', replicated(4));
  const d = orchestrate(view({ nodes, services: [s] }));
  t.same(slotsOf(d), [1, 2, 3, 4]);
  for (const c of d.creates) {
    t.equal(c.serviceId, 'web');
    t.equal(c.nodeId, undefined);
    t.match(c.status, { state: 'new' });
    t.match(c.spec, { desiredState: 'running', serviceVersion: 1, restarts: [] });
  }
  t.same(d.updates, []);
  t.same(d.deletes, []);
});

t.test('steady state: nothing to do', async (t) => {
  const s = service('web', replicated(3));
  const d = orchestrate(view({ nodes, services: [s], tasks: running(s, { 1: 'n1', 2: 'n2', 3: 'n3' }) }));
  t.same([d.creates, d.updates, d.deletes], [[], [], []]);
  t.equal(d.wakeAt, undefined);
});

t.test('scale up fills the lowest free slots', async (t) => {
  const s = service('web', replicated(5));
  const tasks = [
    ...running(s, { 1: 'n1', 3: 'n2', 6: 'n3' }),
    // slot 2 was let go by an earlier scale-down: free again
    task(s, 'old2', { slot: 2, nodeId: 'n1', state: 'shutdown', desired: 'shutdown' }),
  ];
  const d = orchestrate(view({ nodes, services: [s], tasks }));
  t.same(slotsOf(d), [2, 4], 'slots 2 and 4, not 7 and 8');
});

t.test('scale down: slots not running go first, the least far along first', async (t) => {
  const s = service('web', replicated(3));
  const tasks = [
    ...running(s, { 1: 'n1', 2: 'n2', 3: 'n3' }),
    task(s, 't4', { slot: 4, state: 'pending' }),
    task(s, 't5', { slot: 5, nodeId: 'n1', state: 'starting' }),
    task(s, 't6', { slot: 6, nodeId: 'n2', state: 'failed' }), // ended, waiting for its restart
  ];
  const d = orchestrate(view({ nodes, services: [s], tasks }));
  t.same(updated(d), { t4: 'shutdown', t5: 'shutdown', t6: 'shutdown' });
  t.same(d.creates, [], 'and no restart of slot 6');
  const order = scaleDownOrder(tasks).map((x) => x.id);
  t.same(order.slice(0, 3), ['t6', 't4', 't5'], 'ended, then pending, then starting');
});

t.test('scale down: a slot on a lost or drained node goes first, and is not replaced', async (t) => {
  const s = service('web', replicated(2));
  const ns = [node('n1'), node('n2', { state: 'down' }), node('n3', { availability: 'drain' })];
  const tasks = running(s, { 1: 'n1', 2: 'n1', 3: 'n2', 4: 'n3' });
  const d = orchestrate(view({ nodes: ns, services: [s], tasks }));
  t.same(Object.fromEntries(d.updates.map((u) => [u.task.id, u.status?.state ?? u.desiredState])), { t3: 'orphaned', t4: 'shutdown' });
  t.same(d.creates, [], 'no replacement for a slot let go');
  t.equal(d.updates.find((u) => u.task.id === 't3')!.successorId, undefined);
});

t.test('scale down: then the nodes holding the most, one at a time, highest slot on ties', async (t) => {
  const s = service('web', replicated(4));
  // n1 holds slots 5,6,7; n2 holds 1,2,3; n3 holds 4. Taking the three highest slots would empty
  // n1; taking from the most crowded node each time leaves 1/2/1 or 2/1/1.
  const tasks = running(s, { 1: 'n2', 2: 'n2', 3: 'n2', 4: 'n3', 5: 'n1', 6: 'n1', 7: 'n1' });
  const d = orchestrate(view({ nodes, services: [s], tasks }));
  t.same(updated(d), { t7: 'shutdown', t3: 'shutdown', t6: 'shutdown' });
  const left: Record<string, number> = {};
  for (const x of tasks) if (!(x.id in updated(d))) left[x.nodeId!] = (left[x.nodeId!] ?? 0) + 1;
  t.same(left, { n1: 1, n2: 2, n3: 1 });
  const toZero = orchestrate(view({ nodes, services: [service('web', replicated(0))], tasks }));
  t.equal(toZero.updates.length, 7, 'scale to 0 stops every slot');
});

t.test('a task on a down or removed node is orphaned and replaced in its slot, its restarts not counted', async (t) => {
  const s = service('web', replicated(3));
  for (const [what, ns] of [
    ['down', [node('n1'), node('n2', { state: 'down', hostname: 'h2' }), node('n3')]],
    ['removed', [node('n1'), node('n3')]],
  ] as const) {
    const tasks = running(s, { 1: 'n1', 2: 'n2', 3: 'n3' });
    tasks[1] = task(s, 't2', { slot: 2, nodeId: 'n2', restarts: [111, 222] });
    const d = orchestrate(view({ nodes: [...ns], services: [s], tasks, now: 5_000_000 }));
    t.equal(d.updates.length, 1, `${what}: one task given up`);
    const u = d.updates[0]!;
    t.equal(u.task.id, 't2');
    t.equal(u.desiredState, 'shutdown');
    t.equal(u.status?.state, 'orphaned');
    t.equal(u.status?.timestamps?.orphaned, 5_000_000);
    t.match(u.status?.message, what === 'down' ? /node h2 is down/ : /node n2 was removed/);
    t.same(slotsOf(d), [2], `${what}: replaced in slot 2`);
    t.same((d.creates[0]!.spec as { restarts: number[] }).restarts, [111, 222], `${what}: the slot's restart history unchanged`);
    t.equal(u.successorId, d.creates[0]!.id, `${what}: committed with its replacement`);
    t.equal(d.creates[0]!.nodeId, undefined, `${what}: the scheduler places the replacement`);
  }
});

t.test('a task not yet placed on a lost node is the scheduler\'s (no orphan)', async (t) => {
  const s = service('web', replicated(1));
  const d = orchestrate(view({ nodes: [node('n1', { state: 'down' })], services: [s], tasks: [task(s, 'p', { slot: 1, state: 'pending' })] }));
  t.same([d.creates, d.updates], [[], []]);
});

t.test('a drained node\'s task is replaced in its slot; a paused node keeps its tasks', async (t) => {
  const s = service('web', replicated(2));
  const tasks = running(s, { 1: 'n1', 2: 'n2' });
  const d = orchestrate(view({ nodes: [node('n1', { availability: 'drain', hostname: 'h1' }), node('n2', { availability: 'pause' })], services: [s], tasks }));
  t.same(updated(d), { t1: 'shutdown' });
  t.match(d.updates[0]!.why, /node h1 is drained/);
  t.equal(d.updates[0]!.status, undefined, 'not orphaned: its agent stops it and reports');
  t.same(slotsOf(d), [1]);
});

t.test('duplicates in a slot: only the newest keeps running', async (t) => {
  const s = service('web', replicated(2));
  const tasks = [
    task(s, 'a', { slot: 1, nodeId: 'n1', version: 10 }),
    task(s, 'b', { slot: 1, nodeId: 'n2', version: 20 }),
    task(s, 'c', { slot: 1, state: 'pending', version: 30 }),
    task(s, 'd', { slot: 2, nodeId: 'n3', version: 11 }),
  ];
  const d = orchestrate(view({ nodes, services: [s], tasks }));
  t.same(updated(d), { a: 'shutdown', b: 'shutdown' });
  t.same(d.creates, []);
});

t.test('restart policy on a failed task: after the delay, in its slot, the restart counted', async (t) => {
  const s = service('web', replicated(1), { restart: { condition: 'any', delayMs: 5000 } });
  const failed = task(s, 'f', { slot: 1, nodeId: 'n1', state: 'failed', timestamps: { running: 90_000, failed: 100_000 } });
  const early = orchestrate(view({ nodes, services: [s], tasks: [failed], now: 102_000 }));
  t.same([early.creates, early.updates], [[], []], 'nothing before the delay');
  t.equal(early.wakeAt, 105_000, 'but a wake-up when it runs out');
  const due = orchestrate(view({ nodes, services: [s], tasks: [failed], now: 105_000 }));
  t.same(updated(due), { f: 'shutdown' });
  t.same(slotsOf(due), [1]);
  t.same((due.creates[0]!.spec as { restarts: number[] }).restarts, [105_000]);
  t.equal(due.updates[0]!.successorId, due.creates[0]!.id);
});

t.test('restart policy: none leaves the slot down; on-failure skips a clean exit; max attempts give up', async (t) => {
  const rows = [
    { name: 'none', restart: { condition: 'none' as const }, state: 'failed' as const, restarts: [] as number[], want: 0 },
    { name: 'on-failure, exit 0', restart: { condition: 'on-failure' as const }, state: 'complete' as const, restarts: [], want: 0 },
    { name: 'on-failure, failed', restart: { condition: 'on-failure' as const, delayMs: 0 }, state: 'failed' as const, restarts: [], want: 1 },
    { name: 'any, exit 0', restart: { condition: 'any' as const, delayMs: 0 }, state: 'complete' as const, restarts: [], want: 1 },
    { name: 'max attempts used', restart: { maxAttempts: 2, delayMs: 0 }, state: 'failed' as const, restarts: [1, 2], want: 0 },
  ];
  for (const r of rows) {
    const s = service('web', replicated(1), { restart: r.restart });
    const d = orchestrate(view({ nodes, services: [s], tasks: [task(s, 'x', { slot: 1, nodeId: 'n1', state: r.state, restarts: r.restarts, timestamps: { [r.state]: 10 } })], now: 1_000_000 }));
    t.equal(d.creates.length, r.want, r.name);
    t.equal(d.wakeAt, undefined, `${r.name}: no wake-up`);
  }
});

t.test('a slot given up still counts as one of the replicas (the service shows it failed)', async (t) => {
  const s = service('web', replicated(2), { restart: { condition: 'none' } });
  const d = orchestrate(view({ nodes, services: [s], tasks: [task(s, 'x', { slot: 1, nodeId: 'n1', state: 'failed' }), task(s, 'y', { slot: 2, nodeId: 'n2' })] }));
  t.same(d.creates, []);
});

t.test('the same view decided twice gives the same decisions', async (t) => {
  const s = service('web', replicated(5), { restart: { delayMs: 0 } });
  const tasks = [
    task(s, 'a', { slot: 1, nodeId: 'n1' }),
    task(s, 'b', { slot: 2, nodeId: 'n2', state: 'failed' }),
    task(s, 'c', { slot: 3, nodeId: 'n3' }),
    task(s, 'd', { slot: 3, nodeId: 'n1', version: 99999 }),
  ];
  const ns = [node('n1'), node('n2'), node('n3', { state: 'down' })];
  const one = orchestrate(view({ nodes: ns, services: [s], tasks }));
  const two = orchestrate(view({ nodes: [...ns].reverse(), services: [s], tasks: [...tasks].reverse() }));
  t.same(two, one);
  t.ok(one.creates.length > 0 && one.updates.length > 0, 'and there was something to decide');
});
