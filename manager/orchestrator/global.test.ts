// The global orchestrator: one task per eligible node, following nodes as they join, are
// drained, paused, go down or are removed, and as their labels change against the service's
// constraints; global jobs run once to completion on each node.
import t from 'tap';
import type { NodeObject } from '../control/model.js';
import type { ServiceObject, TaskObject } from '../services/model.js';
import { node, service, task, view } from './fixtures.js';
import { orchestrate } from './orchestrate.js';
import type { Decisions } from './view.js';

const g = service('g', { type: 'global' });
const onNodes = (d: Decisions) => d.creates.map((c) => c.nodeId).sort();
const stopped = (d: Decisions) => d.updates.filter((u) => u.desiredState === 'shutdown').map((u) => u.task.id).sort();
const decide = (nodes: NodeObject[], tasks: TaskObject[] = [], s: ServiceObject = g, now = 1_000_000) => orchestrate(view({ nodes, services: [s], tasks, now }));
const on = (n: string, o: Parameters<typeof task>[2] = {}) => task(g, `g-${n}`, { nodeId: n, ...o });

t.test('one task per eligible node, created on that node', async (t) => {
  const nodes = [node('n1'), node('n2'), node('n3', { state: 'down' }), node('n4', { availability: 'drain' }), node('n5', { availability: 'pause' }), node('n6', { state: 'unknown' })];
  const d = decide(nodes);
  t.same(onNodes(d), ['n1', 'n2', 'n6'], 'not on a down, drained or paused node');
  for (const c of d.creates) t.match(c.spec, { slot: 0, desiredState: 'running' });
  t.same([d.updates, d.deletes], [[], []]);
});

t.test('follows a node joining', async (t) => {
  const d = decide([node('n1'), node('n2'), node('n3')], [on('n1'), on('n2')]);
  t.same(onNodes(d), ['n3']);
  t.same(d.updates, []);
});

t.test('a drained node\'s task stops and is not replaced elsewhere', async (t) => {
  const d = decide([node('n1'), node('n2', { availability: 'drain', hostname: 'h2' })], [on('n1'), on('n2')]);
  t.same(stopped(d), ['g-n2']);
  t.match(d.updates[0]!.why, /node h2 is drained/);
  t.same(d.creates, []);
  const back = decide([node('n1'), node('n2')], [on('n1'), on('n2', { state: 'shutdown', desired: 'shutdown' })]);
  t.same(onNodes(back), ['n2'], 'made active again: a new task there');
});

t.test('labels changing against the constraints', async (t) => {
  const eu = service('g', { type: 'global' }, { constraints: ['node.labels.zone==eu'] });
  const tasks = [task(eu, 'a', { nodeId: 'n1' }), task(eu, 'b', { nodeId: 'n2' })];
  const d = decide([node('n1', { labels: { zone: 'eu' } }), node('n2', { labels: { zone: 'us' }, hostname: 'h2' }), node('n3', { labels: { zone: 'eu' } }), node('n4')], tasks, eu);
  t.same(stopped(d), ['b'], 'n2 no longer matches');
  t.match(d.updates[0]!.why, /node h2 no longer meets the constraints/);
  t.same(onNodes(d), ['n3'], 'n3 matches now; n4 has no zone label');
});

t.test('pause creates nothing new and leaves the running task alone', async (t) => {
  const d = decide([node('n1', { availability: 'pause' })], [on('n1')]);
  t.same([d.creates, d.updates], [[], []]);
  const fresh = decide([node('n1', { availability: 'pause' })]);
  t.same(fresh.creates, []);
});

t.test('a down node is left alone: its task is not stopped nor replaced', async (t) => {
  const d = decide([node('n1', { state: 'down' }), node('n2')], [on('n1'), on('n2')]);
  t.same([d.creates, d.updates, d.deletes], [[], [], []]);
});

t.test('a removed node\'s task is stopped, and deleted once let go', async (t) => {
  const d = decide([node('n2')], [on('n1'), on('n2')]);
  t.same(stopped(d), ['g-n1']);
  t.match(d.updates[0]!.why, /node n1 was removed/);
  const later = decide([node('n2')], [on('n1', { desired: 'shutdown' }), on('n2')]);
  t.same(later.deletes.map((x) => x.id), ['g-n1'], 'nothing will run there again: no history kept');
});

t.test('duplicates on a node: only the newest keeps running', async (t) => {
  const d = decide([node('n1')], [task(g, 'old', { nodeId: 'n1', version: 5 }), task(g, 'new', { nodeId: 'n1', version: 6 })]);
  t.same(stopped(d), ['old']);
  t.same(d.creates, []);
});

t.test('a failed global task restarts on its node per the policy', async (t) => {
  const s = service('g', { type: 'global' }, { restart: { delayMs: 1000 } });
  const failed = task(s, 'f', { nodeId: 'n1', state: 'failed', timestamps: { failed: 500_000 } });
  const early = decide([node('n1')], [failed], s, 500_500);
  t.same(early.creates, []);
  t.equal(early.wakeAt, 501_000);
  const due = decide([node('n1')], [failed], s, 501_000);
  t.same(onNodes(due), ['n1']);
  t.same(stopped(due), ['f']);
  t.equal(due.updates[0]!.successorId, due.creates[0]!.id);
  const none = service('g', { type: 'global' }, { restart: { condition: 'none' } });
  t.same(decide([node('n1')], [task(none, 'f', { nodeId: 'n1', state: 'failed' })], none).creates, [], 'condition none: stays down');
});

t.test('global job: once per node to completion; failures per policy; a new node gets its run', async (t) => {
  const j = service('j', { type: 'global-job' }, { restart: { condition: 'on-failure', delayMs: 0 } });
  const d = decide([node('n1'), node('n2'), node('n3')], [task(j, 'a', { nodeId: 'n1', state: 'complete' }), task(j, 'b', { nodeId: 'n2', state: 'failed' })], j);
  t.same(onNodes(d), ['n2', 'n3'], 'n1 is done; n2 runs again; n3 is new');
  const done = decide([node('n1'), node('n2')], [task(j, 'a', { nodeId: 'n1', state: 'complete' }), task(j, 'b', { nodeId: 'n2', state: 'complete' })], j);
  t.same([done.creates, done.updates], [[], []], 'complete everywhere: nothing more');
  const any = service('j', { type: 'global-job' }, { restart: { condition: 'any', delayMs: 0 } });
  t.same(decide([node('n1')], [task(any, 'a', { nodeId: 'n1', state: 'complete' })], any).creates, [], 'a completed job task is never restarted, even with condition any');
});
