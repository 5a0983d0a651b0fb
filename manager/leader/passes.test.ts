// The leader's passes (orchestrator, allocator, scheduler) run against a real in-memory object
// store, committing exactly the ops the leader commits (ops.ts, chunked as commit.ts does), with
// simulated agents reporting status. Checked: a failover (the same view decided again, or a
// pass whose commit was cut short by a leader's death) never leaves two live tasks in a slot
// and converges to the spec; and a seeded random sequence of node and task events keeps the
// invariant after every single commit. The agents are a stand-in for real agents: they only
// move task states the way an agent reports them, which is all these decisions read.
import t from 'tap';
import { allocate } from '../allocator/allocator.js';
import type { Availability, NodeObject } from '../control/model.js';
import { node, service } from '../orchestrator/fixtures.js';
import { orchestrate } from '../orchestrator/orchestrate.js';
import type { Decisions } from '../orchestrator/view.js';
import { schedule } from '../scheduler/scheduler.js';
import { isTerminal, statusAt, taskInput, type ServiceMode, type ServiceObject, type TaskObject } from '../services/model.js';
import { ObjectStore } from '../store/store.js';
import type { ObjectInput, TxnOp } from '../store/types.js';
import { chunkGroups } from './commit.js';
import { allocatorOps, orchestratorOps, schedulerOps } from './ops.js';
import { decidePass } from './pipeline.js';

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

class Cluster {
  readonly store = new ObjectStore();
  private index = 1;
  now = 1_000_000;
  private idSeq = 0;
  commits = 0;
  violations: string[] = [];

  constructor(private readonly chunk = 4) {}

  /** One transaction; a conflict (a decision on a stale view) leaves the store as it was. */
  txn(ops: TxnOp[]): boolean {
    const r = this.store.applyTxn(++this.index, ops);
    this.commits++;
    this.check();
    return r.ok;
  }

  put(o: ObjectInput): void {
    const cur = this.store.get(o.kind, o.id);
    if (!this.txn([{ op: cur ? 'update' : 'create', object: o }])) throw new Error(`could not write ${o.kind} ${o.id}`);
  }

  nodes(): NodeObject[] {
    return this.store.list('node') as NodeObject[];
  }

  tasks(): TaskObject[] {
    return this.store.list('task') as TaskObject[];
  }

  view(ids = () => `t${++this.idSeq}`) {
    return { now: this.now, nodes: this.nodes(), services: this.store.list('service') as ServiceObject[], tasks: this.tasks(), newId: ids };
  }

  /** Commits groups the way the leader does; `survive(i)` false drops chunk i (the leader died). */
  commit(groups: TxnOp[][], survive: (i: number) => boolean = () => true): number {
    let n = 0;
    chunkGroups(groups, this.chunk).forEach((c, i) => {
      if (survive(i)) n += this.txn(c) ? 1 : 0;
    });
    return n;
  }

  orchestrate(survive?: (i: number) => boolean): Decisions {
    const d = orchestrate(this.view());
    this.commit(orchestratorOps(d), survive);
    return d;
  }

  allocate(): number {
    return this.commit(allocatorOps(allocate(this.tasks()), this.now).map((op) => [op]));
  }

  schedule(): number {
    const s = schedule({ nodes: this.nodes(), tasks: this.tasks() });
    return this.commit(schedulerOps(s, this.now).map((op) => [op]));
  }

  /** One fused leader pass (pipeline.ts), as the leader runs it; `survive(i)` as in commit. */
  pass(survive?: (i: number) => boolean, ids?: () => string): ReturnType<typeof decidePass> {
    const p = decidePass(this.view(ids));
    this.commit(p.groups, survive);
    return p;
  }

  /** Fused passes and agents until nothing changes (as settle). */
  settlePasses(rounds = 60): void {
    for (let i = 0; i < rounds; i++) {
      this.now += 1000;
      const p = this.pass();
      const changed = p.groups.length + this.agents();
      if (changed === 0 && (p.orchestrator.wakeAt === undefined || p.orchestrator.wakeAt > this.now + 60_000)) return;
    }
    throw new Error('did not settle');
  }

  /** What agents on ready nodes report: assigned tasks run (a job's then complete); tasks asked to stop stop. */
  agents(): number {
    const ready = new Set(this.nodes().filter((n) => n.status.state === 'ready').map((n) => n.id));
    const ops: TxnOp[][] = [];
    for (const x of this.tasks()) {
      if (!x.nodeId || !ready.has(x.nodeId) || isTerminal(x.status.state) || x.status.state === 'new' || x.status.state === 'pending') continue;
      const job = (this.store.get('service', x.serviceId ?? '') as ServiceObject | undefined)?.spec.mode.type.endsWith('job');
      const to = x.spec.desiredState !== 'running' ? 'shutdown' : x.status.state !== 'running' ? 'running' : job ? 'complete' : undefined;
      if (to) ops.push([{ op: 'update', object: taskInput(x, { status: statusAt(x, to, this.now) }), expectVersion: x.version }]);
    }
    return this.commit(ops);
  }

  fail(taskId: string): void {
    const x = this.store.get('task', taskId) as TaskObject;
    this.txn([{ op: 'update', object: taskInput(x, { status: statusAt(x, 'failed', this.now, 'exit 1') }), expectVersion: x.version }]);
  }

  setNode(id: string, patch: { state?: 'ready' | 'down'; availability?: Availability; labels?: Record<string, string> }): void {
    const n = this.store.get('node', id) as NodeObject;
    this.put({ kind: 'node', id, name: n.name, labels: patch.labels ?? n.labels, spec: { ...n.spec, ...(patch.availability ? { availability: patch.availability } : {}) }, status: { ...n.status, ...(patch.state ? { state: patch.state } : {}) } });
  }

  /** Passes until nothing changes (time moves 1 s per round, so restart delays run out). */
  settle(rounds = 60): void {
    for (let i = 0; i < rounds; i++) {
      this.now += 1000;
      const d = this.orchestrate();
      const changed = d.creates.length + d.updates.length + d.deletes.length + this.allocate() + this.schedule() + this.agents();
      if (changed === 0 && (d.wakeAt === undefined || d.wakeAt > this.now + 60_000)) return;
    }
    throw new Error('did not settle');
  }

  /** The invariant: at most one task wanted running and not ended per slot (or per node, global). */
  private check(): void {
    const live = new Map<string, string[]>();
    for (const x of this.tasks()) {
      if (x.spec.desiredState !== 'running' || isTerminal(x.status.state)) continue;
      const k = `${x.serviceId}/${x.spec.slot > 0 ? `slot ${x.spec.slot}` : `node ${x.nodeId}`}`;
      const l = live.get(k) ?? [];
      l.push(x.id);
      live.set(k, l);
    }
    for (const [k, ids] of live) if (ids.length > 1) this.violations.push(`after commit ${this.commits}: ${k} has ${ids.length} live tasks (${ids.join(', ')})`);
  }

  /** Running tasks wanted running, per service. */
  running(serviceId: string): TaskObject[] {
    return this.tasks().filter((x) => x.serviceId === serviceId && x.spec.desiredState === 'running' && x.status.state === 'running');
  }
}

function svcInput(s: ServiceObject): ObjectInput {
  return { kind: 'service', id: s.id, name: s.name, labels: s.labels, spec: s.spec, status: s.status };
}

function cluster(nodeCount: number, chunk = 4): Cluster {
  const c = new Cluster(chunk);
  for (let i = 1; i <= nodeCount; i++) {
    const n = node(`n${i}`, { labels: { zone: i % 2 ? 'a' : 'b' } });
    c.put({ kind: 'node', id: n.id, name: n.name, labels: n.labels, spec: n.spec, status: n.status });
  }
  return c;
}

t.test('failover: the same view decided by a new leader gives the same decisions', async (t) => {
  const c = cluster(4);
  const web = service('web', { type: 'replicated', replicas: 6 }, { restart: { delayMs: 0 } });
  c.put(svcInput(web));
  c.settle();
  c.setNode('n2', { state: 'down' });
  c.fail(c.running('web').find((x) => x.nodeId !== 'n2')!.id);
  const gen = () => {
    let n = 0;
    return () => `x${++n}`;
  };
  const d1 = orchestrate({ ...c.view(), newId: gen() });
  const d2 = orchestrate({ ...c.view(), newId: gen() });
  t.same(d2, d1);
  t.ok(d1.creates.length >= 2, 'something was decided (the down node\'s tasks, the failed one)');
});

t.test('failover mid-commit: whatever part of a pass was committed, the next leader converges to exactly N', async (t) => {
  for (let cut = 0; cut <= 6; cut++) {
    const c = cluster(4, 2);
    const web = service('web', { type: 'replicated', replicas: 8 }, { restart: { delayMs: 0 } });
    c.put(svcInput(web));
    c.settle();
    // A node dies and a scale happens; the leader's pass commits only chunks < cut, then dies.
    c.setNode('n1', { state: 'down' });
    c.put(svcInput({ ...web, spec: { ...web.spec, mode: { type: 'replicated', replicas: 11 } } }));
    c.orchestrate((i) => i < cut);
    c.allocate();
    c.settle();
    t.same(c.violations, [], `cut after ${cut} chunk(s): never two live tasks in a slot`);
    const r = c.running('web');
    t.equal(r.length, 11, `cut ${cut}: 11 running`);
    t.same([...new Set(r.map((x) => x.spec.slot))].sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], `cut ${cut}: slots 1..11 once each`);
    t.notOk(r.some((x) => x.nodeId === 'n1'), `cut ${cut}: nothing counted running on the down node`);
  }
});

t.test('failover mid-commit never loses a slot\'s restart history (a task and its replacement commit together)', async (t) => {
  const c = cluster(2, 1);
  const web = service('web', { type: 'replicated', replicas: 1 }, { restart: { condition: 'any', delayMs: 0, maxAttempts: 1 } });
  c.put(svcInput(web));
  c.settle();
  c.fail(c.running('web')[0]!.id);
  c.now += 1000;
  // Chunks of one op: a pair that could be split would be; the leader dies after the first chunk.
  c.orchestrate((i) => i < 1);
  c.settle();
  t.equal(c.running('web').length, 1, 'restarted once');
  t.same(c.running('web')[0]!.spec.restarts.length, 1, 'the restart is counted');
  c.fail(c.running('web')[0]!.id);
  c.settle();
  t.equal(c.running('web').length, 0, 'the second failure uses up max attempts 1: the slot stays down');
  t.equal(c.tasks().length, 2, 'two tasks in the slot\'s history, no third');
  t.same(c.violations, []);
});

t.test('a pass decided twice and committed twice (a retried pass) creates nothing twice', async (t) => {
  const c = cluster(3);
  const web = service('web', { type: 'replicated', replicas: 5 });
  c.put(svcInput(web));
  const stale = c.view();
  c.commit(orchestratorOps(orchestrate(stale)));
  // The same decisions committed again (the leader retried a pass it thought failed): the
  // creates carry new ids, but the next passes stop the extra tasks in each slot.
  c.commit(orchestratorOps(orchestrate({ ...stale, newId: () => `again-${Math.random().toString(36).slice(2)}` })));
  t.ok(c.violations.length > 0, 'the double commit is visible as duplicates');
  c.violations = [];
  c.settle();
  t.equal(c.running('web').length, 5);
  const live = c.tasks().filter((x) => x.spec.desiredState === 'running' && !isTerminal(x.status.state));
  t.equal(live.length, 5, 'the duplicates were stopped');
});

const MODES: ServiceMode[] = [
  { type: 'replicated', replicas: 7 },
  { type: 'global' },
  { type: 'replicated-job', completions: 6, maxConcurrent: 2 },
];

for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
  t.test(`seed ${seed}: random node and task events, random leader deaths mid-commit`, async (t) => {
    const rnd = prng(seed);
    const c = cluster(5, 3);
    const services = MODES.map((mode, i) => service(`s${i}`, mode, { restart: { condition: i === 2 ? 'on-failure' : 'any', delayMs: 0 }, constraints: i === 1 ? ['node.labels.zone!=c'] : [] }));
    for (const s of services) c.put(svcInput(s));
    let extra = 0;
    for (let step = 0; step < 40; step++) {
      const ids = c.nodes().map((n) => n.id);
      const pick = ids[Math.floor(rnd() * ids.length)]!;
      const r = rnd();
      if (r < 0.15) c.setNode(pick, { state: 'down' });
      else if (r < 0.3) c.setNode(pick, { state: 'ready', availability: 'active' });
      else if (r < 0.4) c.setNode(pick, { availability: 'drain' });
      else if (r < 0.45) c.setNode(pick, { availability: 'pause' });
      else if (r < 0.5) c.setNode(pick, { labels: { zone: rnd() < 0.5 ? 'c' : 'a' } });
      else if (r < 0.55) {
        const n = node(`x${++extra}`);
        c.put({ kind: 'node', id: n.id, name: n.name, labels: n.labels, spec: n.spec, status: n.status });
      } else if (r < 0.75) {
        const live = c.tasks().filter((x) => x.status.state === 'running' && x.spec.desiredState === 'running');
        if (live.length > 0) c.fail(live[Math.floor(rnd() * live.length)]!.id);
      } else if (r < 0.85) {
        const s = services[0]!;
        c.put(svcInput({ ...s, spec: { ...s.spec, mode: { type: 'replicated', replicas: Math.floor(rnd() * 12) } } }));
      }
      // One pass whose commit is cut short at a random chunk, then the usual passes.
      c.now += 1000;
      const cut = Math.floor(rnd() * 4);
      c.orchestrate((i) => i < cut);
      if (rnd() < 0.7) c.allocate();
      if (rnd() < 0.7) c.schedule();
      if (rnd() < 0.7) c.agents();
    }
    // Everything back up, then let it settle: the spec must hold.
    for (const n of c.nodes()) c.setNode(n.id, { state: 'ready', availability: 'active', labels: { zone: 'a' } });
    c.settle();
    t.same(c.violations, [], 'never two live tasks in a slot or on a node');
    const want = (c.store.get('service', 's0') as ServiceObject).spec.mode as { replicas: number };
    const slots = c.running('s0').map((x) => x.spec.slot).sort((a, b) => a - b);
    t.same(slots, Array.from({ length: want.replicas }, (_, i) => i + 1), `replicated: slots 1..${want.replicas} running once each`);
    t.same(c.running('s1').map((x) => x.nodeId).sort(), c.nodes().map((n) => n.id).sort(), 'global: one running on every node');
    const done = new Set(c.tasks().filter((x) => x.serviceId === 's2' && x.status.state === 'complete').map((x) => x.spec.slot));
    t.same([...done].sort(), [1, 2, 3, 4, 5, 6], 'job: each of its 6 slots completed');
    t.equal(c.tasks().filter((x) => x.serviceId === 's2' && x.status.state === 'complete').length, 6, 'job: each slot completed once');
  });
}

t.test('fused pass: a new service\'s tasks are created already assigned, one write per task', async (t) => {
  const c = cluster(4);
  const web = service('web', { type: 'replicated', replicas: 10 }, { spread: ['node.labels.zone'] });
  c.put(svcInput(web));
  const p = decidePass(c.view());
  const ops = p.groups.flat();
  t.equal(ops.length, 10, 'ten ops for ten tasks');
  t.ok(ops.every((op) => op.op === 'create'), 'all creates: allocation and placement folded into them');
  const created = ops.map((op) => (op as { object: ObjectInput }).object as unknown as TaskObject);
  t.ok(created.every((x) => x.status.state === 'assigned' && !!x.nodeId), 'each one assigned to a node');
  t.ok(created.every((x) => x.status.timestamps.new === c.now && x.status.timestamps.pending === c.now && x.status.timestamps.assigned === c.now), 'every state\'s time recorded');
  t.same(p.allocations.length, 10);
  t.same(p.schedule.assign.length, 10);
  c.commit(p.groups);
  const perNode = new Map<string, number>();
  for (const x of c.tasks()) perNode.set(x.nodeId!, (perNode.get(x.nodeId!) ?? 0) + 1);
  t.same([...perNode.values()].sort(), [2, 2, 3, 3], 'spread over the 4 nodes');
  const zone = new Map<string, number>();
  for (const x of c.tasks()) {
    const z = (c.store.get('node', x.nodeId!) as NodeObject).labels.zone!;
    zone.set(z, (zone.get(z) ?? 0) + 1);
  }
  t.same([...zone.values()], [5, 5], 'and over the zones');
  t.same(decidePass(c.view()).groups, [], 'the next pass has nothing to do');
});

t.test('fused pass: a task the orchestrator changes and the scheduler places gets one op, with the version it was decided from', async (t) => {
  const c = cluster(2);
  const web = service('web', { type: 'replicated', replicas: 3 }, { restart: { delayMs: 0 } });
  c.put(svcInput(web));
  c.now += 1000;
  // The orchestrator alone: tasks stay new (the old three-step path), then one is let go.
  c.commit(orchestratorOps(orchestrate(c.view())));
  c.put(svcInput({ ...web, spec: { ...web.spec, mode: { type: 'replicated', replicas: 2 } } }));
  const p = decidePass(c.view());
  const ops = p.groups.flat() as Extract<TxnOp, { op: 'update' }>[];
  t.equal(ops.length, 3, 'one op per task');
  const byId = new Map(c.tasks().map((x) => [x.id, x]));
  for (const op of ops) {
    t.equal(op.op, 'update');
    t.equal(op.expectVersion, byId.get(op.object.id)!.version, 'decided from the stored version');
  }
  const after = ops.map((op) => op.object as unknown as TaskObject);
  const stopped = after.filter((x) => x.spec.desiredState === 'shutdown');
  t.equal(stopped.length, 1, 'slot 3 let go');
  t.equal(stopped[0]!.status.state, 'shutdown', 'and, never placed, ended by the allocator in the same write');
  t.ok(after.filter((x) => x.spec.desiredState === 'running').every((x) => x.status.state === 'assigned' && x.nodeId), 'the others pending and assigned in the same write');
  c.commit(p.groups);
  t.same(c.violations, []);
});

t.test('fused pass: a task that fits nowhere is created pending with the reason, and placed once a node fits', async (t) => {
  const c = new Cluster();
  const n = node('small', { cpu: 1000, mem: 1 << 30 });
  c.put({ kind: 'node', id: n.id, name: n.name, labels: n.labels, spec: n.spec, status: n.status });
  const big = service('big', { type: 'replicated', replicas: 2 }, { reservations: { cpuMillis: 600 } });
  c.put(svcInput(big));
  c.pass();
  const states = c.tasks().map((x) => [x.status.state, x.status.message]).sort();
  t.same(states[0], ['assigned', 'assigned to a node']);
  t.same(states[1], ['pending', 'no suitable node (insufficient CPU on 1 node)']);
  t.same(decidePass(c.view()).groups, [], 'the reason is written once');
  const m = node('more', { cpu: 4000, mem: 1 << 30 });
  c.put({ kind: 'node', id: m.id, name: m.name, labels: m.labels, spec: m.spec, status: m.status });
  c.pass();
  t.same(c.tasks().map((x) => [x.status.state, x.nodeId]).sort(), [['assigned', 'more'], ['assigned', 'small']]);
});

t.test('fused pass: the same end state as the three stages committed one after another', async (t) => {
  for (const seed of [11, 12, 13]) {
    const rnd = prng(seed);
    const mk = () => {
      const c = cluster(5, 3);
      for (const [i, mode] of MODES.entries()) c.put(svcInput(service(`s${i}`, mode, { restart: { delayMs: 0 } })));
      return c;
    };
    const a = mk();
    const b = mk();
    let ib = 0;
    for (let step = 0; step < 15; step++) {
      const r = rnd();
      const pick = `n${1 + Math.floor(rnd() * 5)}`;
      for (const c of [a, b]) {
        if (r < 0.2) c.setNode(pick, { state: 'down' });
        else if (r < 0.4) c.setNode(pick, { state: 'ready', availability: 'active' });
        else if (r < 0.5) c.setNode(pick, { availability: 'drain' });
      }
      if (r >= 0.5 && r < 0.8) {
        const live = a.tasks().filter((x) => x.status.state === 'running').map((x) => x.spec.slot + '/' + x.serviceId + '/' + x.nodeId).sort();
        const k = live[Math.floor(rnd() * live.length)];
        for (const c of [a, b]) {
          const x = c.tasks().find((y) => y.status.state === 'running' && y.spec.slot + '/' + y.serviceId + '/' + y.nodeId === k);
          if (x) c.fail(x.id);
        }
      }
      a.now += 1000;
      b.now += 1000;
      a.orchestrate();
      a.allocate();
      a.schedule();
      a.agents();
      b.pass(undefined, () => `t${++ib}`);
      b.agents();
    }
    const shape = (c: Cluster) => c.tasks().filter((x) => !isTerminal(x.status.state) && x.spec.desiredState === 'running').map((x) => `${x.serviceId} ${x.spec.slot} ${x.nodeId} ${x.status.state}`).sort();
    t.same(shape(b), shape(a), `seed ${seed}: the same live tasks, slots, nodes and states`);
    t.same(a.violations, []);
    t.same(b.violations, []);
  }
});

t.test('fused pass: failover mid-commit converges to exactly N (cut at every chunk)', async (t) => {
  for (let cut = 0; cut <= 6; cut++) {
    const c = cluster(4, 2);
    const web = service('web', { type: 'replicated', replicas: 8 }, { restart: { delayMs: 0 } });
    c.put(svcInput(web));
    c.settlePasses();
    c.setNode('n1', { state: 'down' });
    c.put(svcInput({ ...web, spec: { ...web.spec, mode: { type: 'replicated', replicas: 11 } } }));
    c.pass((i) => i < cut);
    c.settlePasses();
    t.same(c.violations, [], `cut after ${cut} chunk(s): never two live tasks in a slot`);
    const r = c.running('web');
    t.same(r.map((x) => x.spec.slot).sort((x, y) => x - y), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], `cut ${cut}: slots 1..11 running once each`);
    t.notOk(r.some((x) => x.nodeId === 'n1'), `cut ${cut}: nothing on the down node`);
  }
});

for (const seed of [21, 22, 23, 24]) {
  t.test(`fused pass, seed ${seed}: random node and task events, random leader deaths mid-commit`, async (t) => {
    const rnd = prng(seed);
    const c = cluster(5, 3);
    const services = MODES.map((mode, i) => service(`s${i}`, mode, { restart: { condition: i === 2 ? 'on-failure' : 'any', delayMs: 0 }, constraints: i === 1 ? ['node.labels.zone!=c'] : [] }));
    for (const s of services) c.put(svcInput(s));
    for (let step = 0; step < 40; step++) {
      const ids = c.nodes().map((n) => n.id);
      const pick = ids[Math.floor(rnd() * ids.length)]!;
      const r = rnd();
      if (r < 0.15) c.setNode(pick, { state: 'down' });
      else if (r < 0.3) c.setNode(pick, { state: 'ready', availability: 'active' });
      else if (r < 0.4) c.setNode(pick, { availability: 'drain' });
      else if (r < 0.5) c.setNode(pick, { labels: { zone: rnd() < 0.5 ? 'c' : 'a' } });
      else if (r < 0.7) {
        const live = c.tasks().filter((x) => x.status.state === 'running' && x.spec.desiredState === 'running');
        if (live.length > 0) c.fail(live[Math.floor(rnd() * live.length)]!.id);
      } else if (r < 0.8) {
        const s = services[0]!;
        c.put(svcInput({ ...s, spec: { ...s.spec, mode: { type: 'replicated', replicas: Math.floor(rnd() * 12) } } }));
      }
      c.now += 1000;
      const cut = Math.floor(rnd() * 4);
      c.pass((i) => i < cut);
      if (rnd() < 0.7) c.agents();
    }
    for (const n of c.nodes()) c.setNode(n.id, { state: 'ready', availability: 'active', labels: { zone: 'a' } });
    c.settlePasses();
    t.same(c.violations, [], 'never two live tasks in a slot or on a node');
    const want = (c.store.get('service', 's0') as ServiceObject).spec.mode as { replicas: number };
    // Not necessarily slots 1..N: a scale-down lets pending slots go before running ones (as
    // SwarmKit does), so a running slot 5 can outlive slots 1..4.
    const slots = c.running('s0').map((x) => x.spec.slot);
    t.equal(slots.length, want.replicas, `replicated: ${want.replicas} running`);
    t.equal(new Set(slots).size, slots.length, `replicated: each slot once (${slots.sort((a, b) => a - b).join(', ')})`);
    t.same(c.running('s1').map((x) => x.nodeId).sort(), c.nodes().map((n) => n.id).sort(), 'global: one running on every node');
    const done = c.tasks().filter((x) => x.serviceId === 's2' && x.status.state === 'complete');
    t.same([...new Set(done.map((x) => x.spec.slot))].sort(), [1, 2, 3, 4, 5, 6], 'job: each slot completed');
    t.equal(done.length, 6, 'job: each slot completed once');
  });
}
