// The allocator's part of a placement, over a real in-memory object store with the ops the leader
// commits (network objects first, then each task with its node and addresses in one write):
// addresses from the node's subnet, never one a live task holds, reused once its task ended;
// ingress subnets on every node; a removed node's subnets released once free; clear refusals;
// and a seeded run of passes with leaders dying between the two writes, passes decided again on
// stale views, tasks ending and nodes leaving, checked after every commit: no address is ever
// held by two live tasks, and every address lies in its node's own subnet.
import t from 'tap';
import { node, replicated, service, task } from '../orchestrator/fixtures.js';
import type { NodeObject } from '../control/model.js';
import { schedulerOps } from '../leader/ops.js';
import type { NetworkObject } from '../networks/model.js';
import { schedule } from '../scheduler/scheduler.js';
import { statusAt, taskInput, type ServiceObject, type TaskObject } from '../services/model.js';
import { ObjectStore } from '../store/store.js';
import type { ObjectInput, TxnOp } from '../store/types.js';
import { contains, parseCidr, parseIp, overlaps } from './ipv4.js';
import { placeNetworks, withAddresses } from './placement.js';
import { holdsAddresses } from './snapshot.js';

function network(id: string, subnet: string, o: { internal?: boolean; name?: string; vni?: number } = {}): ObjectInput {
  return { kind: 'network', id, name: o.name ?? id, labels: {}, spec: { internal: !!o.internal }, status: { subnet, vni: o.vni ?? 4096, nodeSubnets: [], createdAt: 0 } };
}

function withAddr(n: NodeObject, addr: string): NodeObject {
  return { ...n, status: { ...n.status, addr: `${addr}:4242` } };
}

class Cluster {
  readonly store = new ObjectStore();
  private index = 1;
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

  nodes = () => this.store.list('node') as NodeObject[];
  tasks = () => this.store.list('task') as TaskObject[];
  networks = () => this.store.list('network') as NetworkObject[];
  services = () => this.store.list('service') as ServiceObject[];

  /**
   * One scheduler pass as the leader runs it; `crash` drops the task write (the leader died
   * after the network write); `meanwhile` runs between the decision and its commit (another
   * leader's pass: this one's view is stale by then).
   */
  pass(crash = false, meanwhile?: () => void): { assigned: number; refused: string[] } {
    const all = this.tasks();
    const placed = schedule({ nodes: this.nodes(), tasks: all });
    const net = placeNetworks({ networks: this.networks(), services: this.services(), nodes: this.nodes(), tasks: all }, placed.assign);
    meanwhile?.();
    if (!this.txn(net.networkOps)) return { assigned: 0, refused: [] };
    if (crash) return { assigned: 0, refused: [] };
    const s = withAddresses(placed, net);
    let assigned = 0;
    for (const op of schedulerOps(s, 0)) if (this.txn([op]) && op.op === 'update' && (op.object.spec as TaskObject['spec']).networks) assigned++;
    return { assigned, refused: net.refused.map((r) => r.reason) };
  }

  /** What must hold after every commit. */
  check(): void {
    const held = new Map<string, string>();
    const nets = new Map(this.networks().map((n) => [n.id, n]));
    for (const n of nets.values()) {
      const subs = n.status.nodeSubnets;
      for (let i = 0; i < subs.length; i++) for (let j = i + 1; j < subs.length; j++) if (overlaps(parseCidr(subs[i]!.subnet), parseCidr(subs[j]!.subnet))) this.violations.push(`network ${n.id}: node subnets ${subs[i]!.subnet} and ${subs[j]!.subnet} overlap`);
    }
    for (const x of this.tasks()) {
      if (!holdsAddresses(x)) continue;
      for (const a of x.spec.networks!) {
        const k = `${a.networkId}/${a.address}`;
        const other = held.get(k);
        if (other) this.violations.push(`${a.address} held by ${other} and ${x.id}`);
        held.set(k, x.id);
        const mine = nets.get(a.networkId)?.status.nodeSubnets.find((s) => s.nodeId === x.nodeId);
        if (!mine || !contains(parseCidr(mine.subnet), parseIp(a.address))) this.violations.push(`task ${x.id}'s ${a.address} is not in its node ${x.nodeId}'s subnet (${mine?.subnet ?? 'none'})`);
      }
    }
  }
}

function pendingTask(s: ServiceObject, id: string, slot: number): ObjectInput {
  const x = task(s, id, { slot, state: 'pending' });
  return { kind: 'task', id: x.id, name: x.name, labels: {}, serviceId: s.id, spec: x.spec, status: x.status };
}

function addrs(c: Cluster): Map<string, string> {
  return new Map(c.tasks().filter((x) => x.spec.networks).map((x) => [x.id, x.spec.networks!.map((a) => a.address).join(',')]));
}

t.test('placed tasks get addresses from their node\'s subnet, in the same write as their node', async (t) => {
  const c = new Cluster();
  c.put(network('n1', '10.0.0.0/16'));
  for (const [i, id] of ['a', 'b'].entries()) c.put(withAddr(node(id), `10.99.0.${11 + i}`));
  const s = service('web', replicated(4));
  s.spec.task.networks = ['n1'];
  c.put(s);
  for (let i = 1; i <= 4; i++) c.put(pendingTask(s, `t${i}`, i));
  const r = c.pass();
  t.equal(r.assigned, 4, 'all four placed, each with its address');
  const n1 = c.store.get('network', 'n1') as NetworkObject;
  t.same(n1.status.nodeSubnets.map((x) => x.subnet).sort(), ['10.0.0.0/24', '10.0.1.0/24'], 'each node got a /24 of the network');
  const a = addrs(c);
  t.same([...a.values()].sort(), ['10.0.0.2', '10.0.0.3', '10.0.1.2', '10.0.1.3'], 'from .2 up in each node subnet');
  for (const x of c.tasks()) t.equal(x.status.state, 'assigned', `${x.id} assigned with ${x.spec.networks?.[0]?.address}`);
  t.same(c.violations, []);
});

t.test('a live task\'s address is never given again; an ended task\'s is', async (t) => {
  const c = new Cluster();
  c.put(network('n1', '10.0.0.0/16'));
  c.put(withAddr(node('a'), '10.99.0.11'));
  const s = service('web', replicated(3));
  s.spec.task.networks = ['n1'];
  c.put(s);
  c.put(pendingTask(s, 't1', 1));
  c.pass();
  t.equal(addrs(c).get('t1'), '10.0.0.2');
  c.put(pendingTask(s, 't2', 2));
  c.pass();
  t.equal(addrs(c).get('t2'), '10.0.0.3', 'not t1\'s');
  const t1 = c.store.get('task', 't1') as TaskObject;
  c.put(taskInput(t1, { status: statusAt(t1, 'failed', 1) }));
  c.put(pendingTask(s, 't3', 3));
  c.pass();
  t.equal(addrs(c).get('t3'), '10.0.0.2', 'the failed task released it');
  t.same(c.violations, []);
});

t.test('ingress ports: every node that is not down gets a subnet of the service\'s first non-internal network', async (t) => {
  const c = new Cluster();
  c.put(network('in', '10.5.0.0/16', { internal: true, vni: 4097 }));
  c.put(network('pub', '10.6.0.0/16', { vni: 4098 }));
  c.put(network('hostnet', '10.7.0.0/16', { vni: 4099 }));
  c.put(withAddr(node('a'), '10.99.0.11'));
  c.put(withAddr(node('b'), '10.99.0.12'));
  c.put(withAddr(node('gone', { state: 'down' }), '10.99.0.13'));
  const s = service('web', replicated(0));
  s.spec.task.networks = ['in', 'pub'];
  s.spec.endpoint = { mode: 'vip', ports: [{ protocol: 'tcp', targetPort: 80, publishedPort: 8080, mode: 'ingress' }] };
  c.put(s);
  const h = service('hp', replicated(0));
  h.spec.task.networks = ['hostnet'];
  h.spec.endpoint = { mode: 'vip', ports: [{ protocol: 'tcp', targetPort: 80, publishedPort: 8081, mode: 'host' }] };
  c.put(h);
  c.pass();
  const subs = (id: string) => (c.store.get('network', id) as NetworkObject).status.nodeSubnets.map((x) => x.nodeId).sort();
  t.same(subs('pub'), ['a', 'b'], 'both nodes that are up, on the first network that is not internal');
  t.same(subs('in'), [], 'none on the internal one');
  t.same(subs('hostnet'), [], 'host-mode ports need no subnet where no task runs');
  c.put(withAddr(node('c'), '10.99.0.14'));
  c.pass();
  t.same(subs('pub'), ['a', 'b', 'c'], 'a node that joins gets one too');
  t.same(c.violations, []);
});

t.test('a removed node\'s subnets go back to the pool once no live task address is in them', async (t) => {
  const c = new Cluster();
  c.put(network('n1', '10.0.0.0/16'));
  c.put(withAddr(node('a'), '10.99.0.11'));
  const s = service('web', replicated(1));
  s.spec.task.networks = ['n1'];
  c.put(s);
  c.put(pendingTask(s, 't1', 1));
  c.pass();
  t.equal(c.txn([{ op: 'delete', kind: 'node', id: 'a' }]), true, 'node a removed');
  c.pass();
  t.same((c.store.get('network', 'n1') as NetworkObject).status.nodeSubnets.map((x) => x.nodeId), ['a'], 'kept while its task holds an address there');
  const t1 = c.store.get('task', 't1') as TaskObject;
  c.put(taskInput(t1, { status: statusAt(t1, 'orphaned', 1) }));
  c.pass();
  t.same((c.store.get('network', 'n1') as NetworkObject).status.nodeSubnets, [], 'released once the task was given up');
});

t.test('refusals: a network that is gone, no network at all, a full network; the default network for a template naming none', async (t) => {
  const c = new Cluster();
  c.put(network('small', '10.3.0.0/24'));
  c.put(withAddr(node('a'), '10.99.0.11'));
  c.put(withAddr(node('b'), '10.99.0.12'));
  const gone = service('gone', replicated(1));
  gone.spec.task.networks = ['nope'];
  c.put(gone);
  c.put(pendingTask(gone, 'g1', 1));
  const none = service('none', replicated(1));
  c.put(none);
  c.put(pendingTask(none, 'x1', 1));
  const small = service('small', replicated(2), { spread: [] });
  small.spec.task.networks = ['small'];
  c.put(small);
  c.put(pendingTask(small, 's1', 1));
  c.put(pendingTask(small, 's2', 2));
  const r = c.pass();
  const msg = (id: string) => (c.store.get('task', id) as TaskObject).status;
  t.equal(msg('g1').state, 'pending');
  t.match(msg('g1').message, /network nope no longer exists/, `gone: ${msg('g1').message}`);
  t.match(msg('x1').message, /names none and the default network does not exist/, `none: ${msg('x1').message}`);
  const placedSmall = c.tasks().filter((x) => x.serviceId === 'small' && x.status.state === 'assigned');
  t.equal(placedSmall.length, 1, 'a /24 network has one node subnet: one of the two placements gets it');
  t.match(r.refused.join('\n'), /small \(10\.3\.0\.0\/24\) has no \/24 left/, 'the other says why');
  c.put(network('dflt', '10.4.0.0/16', { name: 'default', vni: 4100 }));
  c.pass();
  t.equal((c.store.get('task', 'x1') as TaskObject).spec.networks?.[0]?.networkId, 'dflt', 'a template naming no network joins the default one once it exists');
  t.same(c.violations, []);
});

t.test('seeded failovers: leaders die between the network write and the task write, stale passes, tasks end, nodes leave: no address twice', async (t) => {
  for (const seed of [1, 2, 3, 4, 5]) {
    let a = seed;
    const rnd = () => {
      a = (a * 1103515245 + 12345) >>> 0;
      return a / 4294967296;
    };
    const c = new Cluster();
    c.put(network('n1', '10.0.0.0/16'));
    c.put(network('n2', '10.1.0.0/16', { vni: 4097 }));
    const nodes = ['a', 'b', 'c', 'd'];
    nodes.forEach((id, i) => c.put(withAddr(node(id), `10.99.0.${11 + i}`)));
    const s = service('web', replicated(0));
    s.spec.task.networks = ['n1', 'n2'];
    s.spec.endpoint = { mode: 'vip', ports: [{ protocol: 'tcp', targetPort: 80, publishedPort: 80, mode: 'ingress' }] };
    c.put(s);
    let n = 0;
    for (let step = 0; step < 120; step++) {
      const x = rnd();
      if (x < 0.35) for (let k = 0; k < 1 + Math.floor(rnd() * 6); k++) c.put(pendingTask(s, `t${++n}`, n));
      else if (x < 0.5) c.pass(true); // the leader died after committing the node subnets
      else if (x < 0.6) c.pass(false, () => c.pass(rnd() < 0.5)); // decided on a view another pass changed
      else if (x < 0.8) c.pass();
      else if (x < 0.92) {
        const live = c.tasks().filter(holdsAddresses);
        const victim = live[Math.floor(rnd() * live.length)];
        if (victim) c.put(taskInput(victim, { status: statusAt(victim, rnd() < 0.5 ? 'failed' : 'orphaned', step) }));
      } else {
        const id = nodes[Math.floor(rnd() * nodes.length)]!;
        const cur = c.store.get('node', id) as NodeObject | undefined;
        if (cur) c.put({ ...cur, status: { ...cur.status, state: cur.status.state === 'down' ? 'ready' : 'down' } });
      }
    }
    c.pass();
    t.same(c.violations, [], `seed ${seed}: no address held twice, every address in its node's subnet (${c.tasks().filter(holdsAddresses).length} live tasks with addresses)`);
  }
});
