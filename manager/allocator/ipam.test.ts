// The allocator's IPAM decisions: subnets, node subnets, task addresses and VIPs over a
// snapshot; validation with clear errors; exhaustion; release and reuse; and a simulated leader
// failover (a new plan from the committed decisions) that never hands out an address twice.
import t from 'tap';
import { IpamError, IpamPlan, type Decision, type IpamSnapshot } from './ipam.js';

const empty = (): IpamSnapshot => ({ networks: [], taskAddresses: [], vips: [] });

/** What a store holds after committing `ds` on top of `s` (the lead's code does this through raft). */
function commit(s: IpamSnapshot, ds: Decision[]): IpamSnapshot {
  const n: IpamSnapshot = { config: s.config, networks: s.networks.map((x) => ({ ...x, nodeSubnets: [...x.nodeSubnets] })), taskAddresses: [...s.taskAddresses], vips: [...s.vips] };
  for (const d of ds) {
    switch (d.kind) {
      case 'network': n.networks.push({ id: d.networkId, name: d.networkId, subnet: d.subnet, vni: d.vni, nodeSubnets: [] }); break;
      case 'network-release': n.networks = n.networks.filter((x) => x.id !== d.networkId); break;
      case 'node-subnet': n.networks.find((x) => x.id === d.networkId)!.nodeSubnets.push({ nodeId: d.nodeId, subnet: d.subnet }); break;
      case 'node-subnet-release': { const x = n.networks.find((y) => y.id === d.networkId)!; x.nodeSubnets = x.nodeSubnets.filter((y) => y.nodeId !== d.nodeId); break; }
      case 'task-address': n.taskAddresses.push({ taskId: d.taskId, networkId: d.networkId, address: d.address }); break;
      case 'task-release': n.taskAddresses = n.taskAddresses.filter((x) => !(x.taskId === d.taskId && x.networkId === d.networkId)); break;
      case 'vip': n.vips.push({ serviceId: d.serviceId, networkId: d.networkId, address: d.address }); break;
      case 'vip-release': n.vips = n.vips.filter((x) => !(x.serviceId === d.serviceId && x.networkId === d.networkId)); break;
    }
  }
  return n;
}

interface Asserts { ok(v: unknown, m: string): void; equal(a: unknown, b: unknown, m: string): void; match(a: string, b: RegExp, m: string): void; fail(m: string): void }

function throwsIpam(t: Asserts, f: () => unknown, code: string, msg: RegExp, what: string): void {
  try {
    f();
    t.fail(`${what}: no error`);
  } catch (e) {
    t.ok(e instanceof IpamError, `${what}: an IpamError`);
    t.equal((e as IpamError).code, code, `  code ${code}`);
    t.match((e as Error).message, msg, `  "${(e as Error).message}"`);
  }
}

t.test('networks get /16s from the pool, VNIs from 4096; node subnets are /24s; tasks start at .2', async (t) => {
  const p = new IpamPlan(empty());
  t.same(p.createNetwork({ id: 'a', name: 'a' }), { subnet: '10.0.0.0/16', vni: 4096 });
  t.same(p.createNetwork({ id: 'b', name: 'b', subnet: '10.7.0.0/16' }), { subnet: '10.7.0.0/16', vni: 4097 });
  t.same(p.createNetwork({ id: 'c', name: 'c' }), { subnet: '10.1.0.0/16', vni: 4098 }, 'the next free /16');
  t.equal(p.nodeSubnet('a', 'n1'), '10.0.0.0/24');
  t.equal(p.nodeSubnet('a', 'n2'), '10.0.1.0/24');
  t.equal(p.nodeSubnet('a', 'n1'), '10.0.0.0/24', 'asking again gives the same');
  t.equal(p.taskAddress('a', 'n2', 't1'), '10.0.1.2', '.0 (VXLAN endpoint) and .1 (gateway) are skipped');
  t.equal(p.taskAddress('a', 'n2', 't2'), '10.0.1.3');
  t.equal(p.taskAddress('a', 'n2', 't1'), '10.0.1.2', 'a task keeps its address');
  t.equal(p.taskAddress('b', 'n3', 't1'), '10.7.0.2', 'and gets one per network (its node gets a subnet there)');
  t.equal(p.vip('s1', 'a'), '10.255.0.1', 'VIPs from their own range');
  t.equal(p.vip('s1', 'b'), '10.255.0.2', 'one per network of the service');
  t.equal(p.vip('s1', 'a'), '10.255.0.1');
  t.equal(p.decisions().length, 11, 'every new allocation is a decision to commit (repeats are not)');
});

t.test('bad subnets are refused with clear errors and change nothing', async (t) => {
  const p = new IpamPlan({ ...empty(), config: { reserved: ['10.99.0.0/24'] } });
  p.createNetwork({ id: 'a', name: 'front', subnet: '10.1.0.0/16' });
  const before = p.decisions().length;
  throwsIpam(t, () => p.createNetwork({ id: 'x', name: 'x', subnet: '10.1.128.0/17' }), 'overlap', /overlaps network front \(10\.1\.0\.0\/16\)/, 'overlapping subnets');
  throwsIpam(t, () => p.createNetwork({ id: 'x', name: 'x', subnet: '192.168.0.0/16' }), 'outside-pool', /outside the address pool 10\.0\.0\.0\/8/, 'a subnet outside the pool');
  throwsIpam(t, () => p.createNetwork({ id: 'x', name: 'x', subnet: '10.255.0.0/20' }), 'overlap', /overlaps the service VIP range/, 'a subnet over the VIP range');
  throwsIpam(t, () => p.createNetwork({ id: 'x', name: 'x', subnet: '10.99.0.0/16' }), 'overlap', /reserved range 10\.99\.0\.0\/24/, 'a subnet over a reserved range');
  throwsIpam(t, () => p.createNetwork({ id: 'x', name: 'x', subnet: '10.3.0.0/26' }), 'invalid', /smaller than one node's share/, 'a subnet smaller than a node subnet');
  throwsIpam(t, () => p.createNetwork({ id: 'x', name: 'x', subnet: '10.3.0.1/16' }), 'invalid', /host bits set/, 'a subnet with host bits');
  throwsIpam(t, () => p.createNetwork({ id: 'x', name: 'x', subnet: 'ten/8' }), 'invalid', /not an IPv4 address/, 'not a subnet at all');
  throwsIpam(t, () => p.createNetwork({ id: 'a', name: 'front' }), 'duplicate', /already has a subnet/, 'the same network twice');
  throwsIpam(t, () => p.taskAddress('nope', 'n1', 't1'), 'unknown-network', /unknown network nope/, 'an unknown network');
  t.equal(p.decisions().length, before, 'no decision was added by the refused calls');
});

t.test('exhausted ranges say so', async (t) => {
  const p = new IpamPlan({ ...empty(), config: { vipRange: '10.255.255.248/29' } });
  p.createNetwork({ id: 'small', name: 'small', subnet: '10.5.0.0/23' });
  p.nodeSubnet('small', 'n1');
  p.nodeSubnet('small', 'n2');
  throwsIpam(t, () => p.nodeSubnet('small', 'n3'), 'exhausted', /has no \/24 left for node n3: all 2 node subnets are taken/, 'node subnets');
  for (let i = 0; i < 253; i++) p.taskAddress('small', 'n1', `t${i}`);
  throwsIpam(t, () => p.taskAddress('small', 'n1', 'one-more'), 'exhausted', /10\.5\.0\.0\/24 of network small is full \(253 task addresses in use\)/, 'task addresses');
  for (let i = 0; i < 6; i++) p.vip(`s${i}`, 'small');
  throwsIpam(t, () => p.vip('s6', 'small'), 'exhausted', /VIP range 10\.255\.255\.248\/29 is full/, 'VIPs');
  const q = new IpamPlan({ ...empty(), config: { pool: '10.0.0.0/15', vipRange: '10.255.0.0/16' } });
  q.createNetwork({ id: 'a', name: 'a' });
  q.createNetwork({ id: 'b', name: 'b' });
  throwsIpam(t, () => q.createNetwork({ id: 'c', name: 'c' }), 'exhausted', /no \/16 is free in the address pool 10\.0\.0\.0\/15/, 'network subnets');
});

t.test('release and reuse; in-use networks and node subnets are kept', async (t) => {
  let s = empty();
  let p = new IpamPlan(s);
  p.createNetwork({ id: 'a', name: 'a' });
  const a1 = p.taskAddress('a', 'n1', 't1');
  p.taskAddress('a', 'n1', 't2');
  p.vip('s1', 'a');
  s = commit(s, p.decisions());
  p = new IpamPlan(s);
  throwsIpam(t, () => p.removeNetwork('a'), 'in-use', /network a is in use \(2 task address\(es\), 1 VIP\(s\)\)/, 'removing a network in use');
  throwsIpam(t, () => p.releaseNodeSubnet('a', 'n1'), 'in-use', /still holds 2 task address/, 'releasing a node subnet in use');
  p.releaseTask('t1');
  t.equal(p.taskAddress('a', 'n1', 't3'), a1, 'a released address is given again (only after its release is decided)');
  p.releaseTask('t2');
  p.releaseTask('t3');
  p.releaseService('s1');
  p.releaseNodeSubnet('a', 'n1');
  p.removeNetwork('a');
  s = commit(s, p.decisions());
  t.same(s, { config: undefined, networks: [], taskAddresses: [], vips: [] }, 'everything released');
});

t.test('a leader failover never hands out an address twice', async (t) => {
  // Leader 1 allocates a burst and commits part of it; it dies. Leader 2 plans from the store
  // (what was committed) and allocates the rest. Uncommitted decisions of leader 1 were never
  // dispatched, so only committed addresses count; none may repeat.
  let store = empty();
  const l1 = new IpamPlan(store);
  l1.createNetwork({ id: 'a', name: 'a' });
  store = commit(store, l1.decisions());
  const p1 = new IpamPlan(store);
  for (let i = 0; i < 40; i++) p1.taskAddress('a', `n${i % 3}`, `t${i}`);
  store = commit(store, p1.decisions().slice(0, 23)); // committed before the crash
  const p2 = new IpamPlan(store);
  for (let i = 0; i < 80; i++) p2.taskAddress('a', `n${i % 3}`, `t${i}`);
  store = commit(store, p2.decisions());
  const addrs = store.taskAddresses.map((x) => x.address);
  t.equal(store.taskAddresses.length, 80, 'every task has an address');
  t.equal(new Set(addrs).size, addrs.length, 'no address twice');
  t.equal(new Set(store.taskAddresses.map((x) => x.taskId)).size, 80, 'no task twice');
});
