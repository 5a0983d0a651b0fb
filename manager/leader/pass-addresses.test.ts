// Task addresses in the fused leader pass (pipeline.ts), committed as the leader does: the node
// subnets (networkOps) first, then the tasks, each created or placed with its addresses in its one
// write. Seeded runs kill the leader between the two writes and in the middle of the task chunks,
// commit stale updates, scale, fail tasks and take nodes down and up, and a pass's write times out
// and commits late (the loop's gate, outcome-gate.ts): after every
// transaction no address is held twice, each is inside its node's subnet, and no placed task is
// without its addresses.
import t from 'tap';
import { contains, overlaps, parseCidr, parseIp } from '../allocator/ipv4.js';
import { holdsAddresses } from '../allocator/snapshot.js';
import type { NodeObject } from '../control/model.js';
import type { NetworkObject } from '../networks/model.js';
import { node, service } from '../orchestrator/fixtures.js';
import { isTerminal, statusAt, taskInput, type ServiceObject, type TaskObject } from '../services/model.js';
import { ObjectStore } from '../store/store.js';
import type { ObjectInput, TxnOp } from '../store/types.js';
import { chunkGroups } from './commit.js';
import { decidePass } from './pipeline.js';
import { OutcomeGate } from './outcome-gate.js';
import { UnknownOutcomeError } from '../raftnode/errors.js';

class Cluster {
  readonly store = new ObjectStore();
  private index = 1;
  private ids = 0;
  now = 1_000_000;
  violations: string[] = [];

  txn(ops: TxnOp[]): boolean {
    if (ops.length === 0) return true;
    const r = this.store.applyTxn(++this.index, ops);
    this.check();
    return r.ok;
  }

  put(o: ObjectInput): void {
    const cur = this.store.get(o.kind, o.id);
    if (!this.txn([{ op: cur ? 'update' : 'create', object: o }])) throw new Error(`could not write ${o.kind} ${o.id}`);
  }

  tasks = () => this.store.list('task') as TaskObject[];
  nodes = () => this.store.list('node') as NodeObject[];

  decide() {
    return decidePass({ now: this.now, nodes: this.nodes(), services: this.store.list('service') as ServiceObject[], tasks: this.tasks(), networks: this.store.list('network') as NetworkObject[], newId: () => `t${++this.ids}` });
  }

  /**
   * Commits a pass as components.ts does: the network ops, and the tasks only if they committed.
   * `dieAfterNetworks`: the leader dies between the two; `survive(i)`: chunk i of the tasks commits.
   */
  commit(p: ReturnType<typeof decidePass>, o: { dieAfterNetworks?: boolean; survive?: (i: number) => boolean } = {}): void {
    if (!this.txn(p.networkOps)) return;
    if (o.dieAfterNetworks) return;
    chunkGroups(p.groups, 4).forEach((c, i) => {
      if (o.survive?.(i) ?? true) this.txn(c);
    });
  }

  /** The agents: assigned tasks run; tasks asked to stop stop. */
  agents(): void {
    for (const x of this.tasks()) {
      if (!x.nodeId || isTerminal(x.status.state) || x.status.state === 'new' || x.status.state === 'pending') continue;
      const n = this.store.get('node', x.nodeId) as NodeObject;
      if (n.status.state !== 'ready') continue;
      const to = x.spec.desiredState !== 'running' ? 'shutdown' : x.status.state !== 'running' ? 'running' : undefined;
      if (to) this.txn([{ op: 'update', object: taskInput(x, { status: statusAt(x, to, this.now) }), expectVersion: x.version }]);
    }
  }

  check(): void {
    const nets = new Map((this.store.list('network') as NetworkObject[]).map((n) => [n.id, n]));
    for (const n of nets.values()) {
      const subs = n.status.nodeSubnets;
      for (let i = 0; i < subs.length; i++) for (let j = i + 1; j < subs.length; j++) if (overlaps(parseCidr(subs[i]!.subnet), parseCidr(subs[j]!.subnet))) this.violations.push(`network ${n.id}: node subnets ${subs[i]!.subnet} and ${subs[j]!.subnet} overlap`);
    }
    const held = new Map<string, string>();
    for (const x of this.tasks()) {
      if (x.nodeId && !isTerminal(x.status.state) && !x.spec.networks?.length) this.violations.push(`task ${x.id} is placed on ${x.nodeId} (${x.status.state}) without addresses`);
      if (!holdsAddresses(x)) continue;
      for (const a of x.spec.networks!) {
        const k = `${a.networkId}/${a.address}`;
        const other = held.get(k);
        if (other) this.violations.push(`${a.address} held by ${other} and ${x.id}`);
        held.set(k, x.id);
        const mine = nets.get(a.networkId)?.status.nodeSubnets.find((s) => s.nodeId === x.nodeId);
        if (!mine || !contains(parseCidr(mine.subnet), parseIp(a.address))) this.violations.push(`task ${x.id}'s ${a.address} is not in its node ${x.nodeId}'s subnet (${mine?.subnet ?? 'none'}) committed before it`);
      }
    }
  }
}

function network(id: string, subnet: string, vni: number): ObjectInput {
  return { kind: 'network', id, name: id, labels: {}, spec: { internal: false }, status: { subnet, vni, nodeSubnets: [], createdAt: 0 } };
}

function setup(nodeCount: number, replicas: number): { c: Cluster; web: ServiceObject } {
  const c = new Cluster();
  c.put(network('n1', '10.0.0.0/16', 4096));
  c.put(network('n2', '10.1.0.0/16', 4097));
  for (let i = 1; i <= nodeCount; i++) {
    const n = node(`node${i}`);
    c.put({ kind: 'node', id: n.id, name: n.name, labels: n.labels, spec: n.spec, status: { ...n.status, addr: `10.99.0.${10 + i}:4242` } });
  }
  const web = service('web', { type: 'replicated', replicas }, { restart: { delayMs: 0 } });
  web.spec.task.networks = ['n1', 'n2'];
  web.spec.endpoint = { mode: 'vip', ports: [{ protocol: 'tcp', targetPort: 80, publishedPort: 80, mode: 'ingress' }] };
  c.put({ kind: 'service', id: web.id, name: web.name, labels: web.labels, spec: web.spec, status: web.status });
  return { c, web };
}

t.test('a new service\'s tasks are created assigned with their addresses, the node subnets written first', async (t) => {
  const { c } = setup(3, 6);
  const p = c.decide();
  const ops = p.groups.flat();
  t.equal(ops.length, 6, 'one op per task');
  const created = ops.map((op) => (op as { object: ObjectInput }).object as unknown as TaskObject);
  t.ok(ops.every((op) => op.op === 'create') && created.every((x) => x.status.state === 'assigned' && x.spec.networks?.length === 2), 'each created assigned, with an address on both networks');
  t.equal(p.networkOps.length, 2, 'one write per network');
  const subnets = p.networkOps.map((op) => ((op as { object: ObjectInput }).object.status as NetworkObject['status']).nodeSubnets.length);
  t.same(subnets, [3, 3], 'every node gets a subnet of the ingress network (and of n2, where its tasks are)');
  c.commit(p);
  t.same(c.violations, []);
  t.equal(c.tasks().filter(holdsAddresses).length, 6);
  t.same(c.decide().groups, [], 'the next pass has nothing to do');
  t.same(c.decide().networkOps, [], 'nor any subnet to write');
});

// The fused pass creates a task with its addresses, and a create carries no version to check: a
// pass whose proposal timed out but commits after the loop's next pass decided without it would
// give that pass's new tasks the same addresses. The leader's loop waits (outcome-gate.ts) until
// such a write has applied or is gone before deciding again. The raft here is a stand-in that
// keeps what raft guarantees and the test needs: a timed-out entry stays in the log, and entries
// apply in log order (a later proposal applies only after it).
class StandInRaft {
  private log: TxnOp[][] = [];
  timeOutNext = false;
  constructor(private readonly c: Cluster) {}
  propose(ops: TxnOp[]): Promise<never> {
    if (this.timeOutNext) {
      this.timeOutNext = false;
      this.log.push(ops);
      return Promise.reject(new UnknownOutcomeError('stand-in: not applied within 10000 ms'));
    }
    for (const e of this.log.splice(0)) this.c.txn(e);
    return this.c.txn(ops) ? Promise.resolve({ ok: true } as never) : Promise.reject(new Error('stand-in: the transaction conflicted'));
  }
}

t.test('a pass whose write timed out: the next pass decides only once that write has applied, so no address is given twice', async (t) => {
  const { c } = setup(2, 4);
  const raft = new StandInRaft(c);
  const gate = new OutcomeGate(raft);
  const first = c.decide();
  await gate.commit(first.networkOps);
  raft.timeOutNext = true;
  await t.rejects(gate.commit(first.groups), { name: 'CommitError', unknownOutcome: true }, 'the tasks\' write times out, still in the log');
  const addrsOf = (p: ReturnType<typeof decidePass>) => p.groups.flat().flatMap((op) => (op.op === 'create' ? ((op.object.spec as TaskObject['spec']).networks ?? []).map((x) => x.address) : []));
  const ungated = c.decide();
  t.ok(addrsOf(ungated).some((x) => addrsOf(first).includes(x)), 'deciding now would give the timed-out tasks\' addresses again (what the gate prevents)');
  await gate.settled();
  t.equal(c.tasks().length, 4, 'the timed-out write applied before the barrier');
  const next = c.decide();
  t.same(next.groups, [], 'the next pass sees its tasks: nothing to create');
  t.same(c.violations, []);
  await gate.settled();
  t.pass('settled at once when nothing failed');
});

t.test('seeded failovers: leaders die between the network write and the tasks and mid-chunks, stale passes, scaling, failures, nodes down and up: no address twice', async (t) => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    let a = seed;
    const rnd = () => {
      a = (a * 1103515245 + 12345) >>> 0;
      return a / 4294967296;
    };
    const { c, web } = setup(4, 8);
    for (let step = 0; step < 150; step++) {
      c.now += 1000;
      const x = rnd();
      if (x < 0.15) c.commit(c.decide(), { dieAfterNetworks: true });
      else if (x < 0.3) c.commit(c.decide(), { survive: () => rnd() < 0.5 }); // died part way through the chunks
      else if (x < 0.4) {
        // A new leader's pass decided before a write of the old one's applied: only its version-checked
        // updates can be stale (it creates from a view that holds every entry of earlier terms).
        const stale = c.decide();
        c.commit(c.decide(), { dieAfterNetworks: rnd() < 0.3 });
        c.commit({ ...stale, groups: stale.groups.filter((g) => g.every((op) => op.op !== 'create')) });
      } else if (x < 0.6) c.commit(c.decide());
      else if (x < 0.7) c.agents();
      else if (x < 0.8) {
        const s = c.store.get('service', web.id) as ServiceObject;
        const replicas = 2 + Math.floor(rnd() * 14);
        c.put({ kind: 'service', id: s.id, name: s.name, labels: s.labels, spec: { ...s.spec, mode: { type: 'replicated', replicas } }, status: s.status });
      } else if (x < 0.9) {
        const live = c.tasks().filter(holdsAddresses);
        const victim = live[Math.floor(rnd() * live.length)];
        if (victim) c.txn([{ op: 'update', object: taskInput(victim, { status: statusAt(victim, 'failed', c.now, 'exit 1') }), expectVersion: victim.version }]);
      } else {
        const n = c.nodes()[Math.floor(rnd() * 4)]!;
        c.put({ kind: 'node', id: n.id, name: n.name, labels: n.labels, spec: n.spec, status: { ...n.status, state: n.status.state === 'down' ? 'ready' : 'down' } });
      }
    }
    for (let i = 0; i < 10; i++) {
      c.now += 1000;
      c.commit(c.decide());
      c.agents();
    }
    const s = c.store.get('service', web.id) as ServiceObject;
    const want = s.spec.mode.type === 'replicated' ? s.spec.mode.replicas : 0;
    const running = c.tasks().filter((x) => x.status.state === 'running' && x.spec.desiredState === 'running');
    t.same(c.violations, [], `seed ${seed}: no address held twice, each in its node's committed subnet, none placed without (${running.length}/${want} running at the end)`);
    t.ok(running.length > 0, `seed ${seed}: tasks run at the end`);
  }
});
