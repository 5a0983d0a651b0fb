// The scheduler's decision: filters (ready, availability, CPU and memory reservations against the
// node's reported capacity, constraints), spread (fewest of the service, then fewest overall;
// preferences over label values level by level), global tasks checked on their own node, and
// the reason an operator reads when a task fits nowhere.
import t from 'tap';
import type { NodeObject } from '../control/model.js';
import { node, replicated, service, task, type NodeOpts, type ServiceOpts } from '../orchestrator/fixtures.js';
import type { ServiceObject, TaskObject } from '../services/model.js';
import { describe, schedule } from './scheduler.js';

const MiB = 1024 * 1024;

/** `n` pending tasks of `s` in slots 1..n. */
function pending(s: ServiceObject, n: number, first = 1): TaskObject[] {
  return Array.from({ length: n }, (_, i) => task(s, `${s.id}-p${first + i}`, { slot: first + i, state: 'pending' }));
}

/** Where each task went: node id -> count. */
function spreadOf(r: ReturnType<typeof schedule>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of r.assign) out[a.nodeId] = (out[a.nodeId] ?? 0) + 1;
  return out;
}

t.test('filters, one node at a time: only a ready, active node that meets the constraints takes the task', async (t) => {
  const rows: { name: string; node: NodeOpts; svc?: ServiceOpts; reason?: string }[] = [
    { name: 'ready and active', node: {} },
    { name: 'down', node: { state: 'down' }, reason: 'no suitable node (1 node down)' },
    { name: 'not ready yet', node: { state: 'unknown' }, reason: 'no suitable node (1 node not ready)' },
    { name: 'drained', node: { availability: 'drain' }, reason: 'no suitable node (1 node drained)' },
    { name: 'paused', node: { availability: 'pause' }, reason: 'no suitable node (1 node paused)' },
    { name: 'memory fits exactly', node: { mem: 512 * MiB, cpu: 1000 }, svc: { reservations: { memoryBytes: 512 * MiB } } },
    { name: 'too little memory', node: { mem: 256 * MiB, cpu: 1000 }, svc: { reservations: { memoryBytes: 512 * MiB } }, reason: 'no suitable node (insufficient memory on 1 node)' },
    { name: 'too little CPU', node: { mem: 256 * MiB, cpu: 500 }, svc: { reservations: { cpuMillis: 1000 } }, reason: 'no suitable node (insufficient CPU on 1 node)' },
    { name: 'no description: capacity unknown, not limited', node: {}, svc: { reservations: { cpuMillis: 64_000, memoryBytes: 1024 * 1024 * MiB } } },
    { name: 'node.labels.zone==eu holds', node: { labels: { zone: 'eu' } }, svc: { constraints: ['node.labels.zone==eu'] } },
    { name: 'node.labels.zone==eu on another zone', node: { labels: { zone: 'us' } }, svc: { constraints: ['node.labels.zone==eu'] }, reason: 'no suitable node (constraint node.labels.zone==eu not met on 1 node)' },
    { name: 'node.labels.zone==eu without the label', node: {}, svc: { constraints: ['node.labels.zone==eu'] }, reason: 'no suitable node (constraint node.labels.zone==eu not met on 1 node)' },
    { name: 'node.labels.zone!=eu without the label holds', node: {}, svc: { constraints: ['node.labels.zone!=eu'] } },
    { name: 'node.labels.zone!=eu on eu', node: { labels: { zone: 'eu' } }, svc: { constraints: ['node.labels.zone!=eu'] }, reason: 'no suitable node (constraint node.labels.zone!=eu not met on 1 node)' },
    { name: 'node.role==manager on a manager', node: { role: 'manager' }, svc: { constraints: ['node.role==manager'] } },
    { name: 'node.role==manager on a worker', node: {}, svc: { constraints: ['node.role==manager'] }, reason: 'no suitable node (constraint node.role==manager not met on 1 node)' },
    { name: 'node.role!=manager on a worker', node: {}, svc: { constraints: ['node.role!=manager'] } },
    { name: 'node.hostname==h1', node: { hostname: 'h1' }, svc: { constraints: ['node.hostname==h1'] } },
    { name: 'node.hostname!=h1 on h1', node: { hostname: 'h1' }, svc: { constraints: ['node.hostname!=h1'] }, reason: 'no suitable node (constraint node.hostname!=h1 not met on 1 node)' },
    { name: 'node.id==n1', node: {}, svc: { constraints: ['node.id==n1'] } },
    { name: 'node.id==n2 on n1', node: {}, svc: { constraints: ['node.id==n2'] }, reason: 'no suitable node (constraint node.id==n2 not met on 1 node)' },
    { name: 'every constraint must hold', node: { labels: { zone: 'eu', disk: 'hdd' } }, svc: { constraints: ['node.labels.zone==eu', 'node.labels.disk==ssd'] }, reason: 'no suitable node (constraint node.labels.disk==ssd not met on 1 node)' },
  ];
  for (const r of rows) {
    const s = service('s', replicated(1), r.svc);
    const got = schedule({ nodes: [node('n1', r.node)], tasks: pending(s, 1) });
    if (r.reason) {
      t.same(got.assign, [], `${r.name}: not placed`);
      t.equal(got.unplaceable[0]?.reason, r.reason, `${r.name}: the reason`);
    } else {
      t.same(got.assign.map((a) => a.nodeId), ['n1'], `${r.name}: placed`);
      t.same(got.unplaceable, [], `${r.name}: nothing left`);
    }
  }
});

t.test('only pending tasks still wanted are placed', async (t) => {
  const s = service('s', replicated(3));
  const tasks = [
    task(s, 'a', { slot: 1, state: 'pending' }),
    task(s, 'b', { slot: 2, state: 'pending', desired: 'shutdown' }),
    task(s, 'c', { slot: 3, state: 'new' }),
  ];
  const got = schedule({ nodes: [node('n1')], tasks });
  t.same(got.assign.map((a) => a.task.id), ['a']);
});

t.test('reservations add up: placed tasks take room, ended and unplaced ones do not', async (t) => {
  const s = service('s', replicated(4), { reservations: { memoryBytes: 300 * MiB, cpuMillis: 100 } });
  const n1 = node('n1', { mem: 1000 * MiB, cpu: 4000 });
  const tasks = [
    task(s, 'run', { slot: 1, nodeId: 'n1', state: 'running' }),
    task(s, 'gone', { slot: 2, nodeId: 'n1', state: 'failed', desired: 'shutdown' }),
    task(s, 'stopping', { slot: 2, nodeId: 'n1', state: 'running', desired: 'shutdown' }), // still holds its room until it ends
    ...pending(s, 3, 3),
  ];
  const got = schedule({ nodes: [n1], tasks });
  // 1000 MiB: 2 held (run, stopping) = 600, room for one more of 300.
  t.equal(got.assign.length, 1, 'one more fits');
  t.equal(got.unplaceable.length, 2);
  t.equal(got.unplaceable[0]!.reason, 'no suitable node (insufficient memory on 1 node)');
});

t.test('tasks in one pass fill nodes as they are placed, and move on when one is full', async (t) => {
  const s = service('s', replicated(6), { reservations: { memoryBytes: 100 * MiB } });
  const nodes = [node('n1', { mem: 200 * MiB, cpu: 1000 }), node('n2', { mem: 1000 * MiB, cpu: 1000 })];
  const got = schedule({ nodes, tasks: pending(s, 6) });
  t.same(spreadOf(got), { n1: 2, n2: 4 }, 'n1 is full after 2');
});

t.test('spread: fewest tasks of the service first, then fewest overall, then the node id', async (t) => {
  const web = service('web', replicated(3));
  const other = service('other', replicated(5));
  const nodes = [node('n1'), node('n2'), node('n3')];
  const placed = [
    task(web, 'w1', { slot: 1, nodeId: 'n1' }),
    task(other, 'o1', { slot: 1, nodeId: 'n2' }),
    task(other, 'o2', { slot: 2, nodeId: 'n2' }),
    task(other, 'o3', { slot: 3, nodeId: 'n3' }),
  ];
  const got = schedule({ nodes, tasks: [...placed, ...pending(web, 1, 2)] });
  // n1 already has web; n2 and n3 have none of web; n3 has fewer tasks overall.
  t.same(got.assign.map((a) => a.nodeId), ['n3']);
  const got2 = schedule({ nodes, tasks: [...placed, ...pending(web, 5, 2)] });
  t.same(spreadOf(got2), { n1: 1, n2: 2, n3: 2 }, 'web ends 2/2/2 across the nodes');
  const ties = schedule({ nodes: [node('b'), node('a'), node('c')], tasks: pending(service('x', replicated(1)), 1) });
  t.same(ties.assign.map((a) => a.nodeId), ['a'], 'a full tie goes to the lowest node id');
});

t.test('spread preferences: even over the values of a label, level by level', async (t) => {
  const nodes = [
    node('a1', { labels: { zone: 'a', rack: '1' } }),
    node('a2', { labels: { zone: 'a', rack: '1' } }),
    node('a3', { labels: { zone: 'a', rack: '2' } }),
    node('b1', { labels: { zone: 'b', rack: '1' } }),
    node('x', {}),
  ];
  const byZone = (r: ReturnType<typeof schedule>) => {
    const z: Record<string, number> = {};
    for (const a of r.assign) {
      const k = nodes.find((n) => n.id === a.nodeId)!.labels.zone ?? '(none)';
      z[k] = (z[k] ?? 0) + 1;
    }
    return z;
  };
  const one = service('s', replicated(9), { spread: ['zone'] });
  const got = schedule({ nodes, tasks: pending(one, 9) });
  t.same(byZone(got), { a: 3, b: 3, '(none)': 3 }, 'nodes without the label form a group of their own');
  const two = service('s2', replicated(8), { spread: ['zone', 'rack'] });
  const nodes2 = nodes.filter((n) => n.id !== 'x');
  const got2 = schedule({ nodes: nodes2, tasks: pending(two, 8) });
  t.same(spreadOf(got2), { b1: 4, a3: 2, a1: 1, a2: 1 }, 'zone a gets half, split by rack: rack 1 (a1, a2) and rack 2 (a3) evenly');
  // Already-placed tasks count: zone a holds 2, so the next two go to b.
  const placed = [task(one, 'p1', { slot: 1, nodeId: 'a1' }), task(one, 'p2', { slot: 2, nodeId: 'a2' })];
  const got3 = schedule({ nodes: nodes2, tasks: [...placed, ...pending(one, 2, 3)] });
  t.same(got3.assign.map((a) => a.nodeId), ['b1', 'b1']);
});

t.test('global tasks come placed on their node: checked there, never moved', async (t) => {
  const g = service('g', { type: 'global' }, { reservations: { memoryBytes: 100 * MiB } });
  const nodes = [node('n1', { mem: 1000 * MiB, cpu: 1000 }), node('n2', { mem: 50 * MiB, cpu: 1000 }), node('n3', { availability: 'pause' })];
  const tasks = [
    task(g, 'g1', { nodeId: 'n1', state: 'pending' }),
    task(g, 'g2', { nodeId: 'n2', state: 'pending' }),
    task(g, 'g3', { nodeId: 'n3', state: 'pending' }),
    task(g, 'g4', { nodeId: 'gone', state: 'pending' }),
  ];
  const got = schedule({ nodes, tasks });
  t.same(got.assign.map((a) => [a.task.id, a.nodeId]), [['g1', 'n1']]);
  t.same(Object.fromEntries(got.unplaceable.map((u) => [u.task.id, u.reason])), {
    g2: 'node n2 cannot run it (insufficient memory)',
    g3: 'node n3 cannot run it (it is paused)',
    g4: 'its node gone is no longer in the cluster',
  });
});

t.test('the reason an operator reads: most common first, every refusal counted', async (t) => {
  const s = service('s', replicated(1), { reservations: { memoryBytes: 512 * MiB } });
  const nodes = [node('n1', { mem: 256 * MiB, cpu: 1000 }), node('n2', { availability: 'drain' }), node('n3', { mem: 100 * MiB, cpu: 1000 })];
  const got = schedule({ nodes, tasks: pending(s, 1) });
  t.equal(got.unplaceable[0]!.reason, 'no suitable node (insufficient memory on 2 nodes; 1 node drained)');
  t.equal(schedule({ nodes: [], tasks: pending(s, 1) }).unplaceable[0]!.reason, 'no suitable node (the cluster has no nodes)');
  t.equal(describe(new Map([['memory', 1], ['down', 1], ['node.labels.a==b', 1], ['drained', 3]])), 'no suitable node (3 nodes drained; 1 node down; insufficient memory on 1 node; constraint node.labels.a==b not met on 1 node)', 'ties in a fixed order');
  // Later tasks of a pass that filled the last node say so too.
  const s2 = service('s2', replicated(3), { reservations: { cpuMillis: 600 } });
  const got2 = schedule({ nodes: [node('n1', { cpu: 1000, mem: 1 }), node('n2', { cpu: 1000, mem: 1 })], tasks: pending(s2, 3) });
  t.equal(got2.assign.length, 2);
  t.equal(got2.unplaceable[0]!.reason, 'no suitable node (insufficient CPU on 2 nodes)');
});

t.test('a pass is deterministic: the same view gives the same placements', async (t) => {
  const s = service('s', replicated(50), { spread: ['zone'] });
  const nodes: NodeObject[] = Array.from({ length: 7 }, (_, i) => node(`n${i}`, { labels: { zone: `z${i % 3}` } }));
  const tasks = pending(s, 50);
  const a = schedule({ nodes, tasks }).assign.map((x) => `${x.task.id}@${x.nodeId}`);
  const b = schedule({ nodes: [...nodes].reverse(), tasks: [...tasks].reverse() }).assign.map((x) => `${x.task.id}@${x.nodeId}`);
  t.same(b, a, 'the order of the store lists does not matter');
});
