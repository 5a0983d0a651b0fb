// A service's networking as the control API resolves it, over a real in-memory store: names to
// ids, the default network created on first use (in the service's own transaction), VIPs kept
// across updates and given per network, DNS round robin without VIPs, and every refusal with its
// reason (an unknown network, one named twice, too many, published ports on internal networks
// only, a port another service publishes); and the wire syntax of networks, modes and ports.
import t from 'tap';
import { replicated, service } from '../orchestrator/fixtures.js';
import type { ServiceSpec } from '../services/model.js';
import { ObjectStore } from '../store/store.js';
import type { ObjectInput, TxnOp } from '../store/types.js';
import type { NetworkObject } from './model.js';
import { NetworkError, networkingBatch, resolveServiceNetworking, withNetworkIds } from './resolve.js';
import { networkingFromWire, NetworkSpecError } from './wire.js';

let index = 1;
function apply(st: ObjectStore, ops: TxnOp[]): void {
  const r = st.applyTxn(++index, ops);
  if (!r.ok) throw new Error(r.conflict.message);
}

function net(id: string, name: string, subnet: string, vni: number, internal = false): ObjectInput {
  return { kind: 'network', id, name, labels: {}, spec: { internal }, status: { subnet, vni, nodeSubnets: [], createdAt: 0 } };
}

function spec(networks: string[] | undefined, endpoint?: ServiceSpec['endpoint']): ServiceSpec {
  const s = service('x', replicated(1)).spec;
  return { ...s, task: { ...s.task, ...(networks ? { networks } : {}) }, ...(endpoint ? { endpoint } : {}) };
}

let ids = 0;
const newId = () => `id${++ids}`;

function refused(t: { ok(v: unknown, m: string): void; match(a: string, b: RegExp, m: string): void; fail(m: string): void }, f: () => unknown, code: string, msg: RegExp, what: string): void {
  try {
    f();
    t.fail(`${what}: no error`);
  } catch (e) {
    t.ok(e instanceof NetworkError && e.code === code, `${what}: a NetworkError (${code})`);
    t.match((e as Error).message, msg, `  "${(e as Error).message}"`);
  }
}

t.test('no network named: the default network, created in the same transaction as the first service', async (t) => {
  const st = new ObjectStore();
  const r = resolveServiceNetworking(st, { serviceId: 's1', name: 'web', spec: spec(undefined), now: 5, newId });
  t.equal(r.ops.length, 1, 'one op: the default network');
  const o = (r.ops[0] as { object: ObjectInput }).object;
  t.same([o.kind, o.name, (o.status as NetworkObject['status']).subnet], ['network', 'default', '10.0.0.0/16']);
  t.same(r.spec.task.networks, [o.id], 'the service names it by id');
  t.same(r.vips, [{ networkId: o.id, address: '10.255.0.1' }], 'a VIP on it');
  apply(st, [...r.ops, { op: 'create', object: { kind: 'service', id: 's1', name: 'web', labels: {}, spec: r.spec, status: { createdAt: 0, updatedAt: 0, vips: r.vips } } }]);
  const r2 = resolveServiceNetworking(st, { serviceId: 's2', name: 'api', spec: spec([]), now: 6, newId });
  t.same(r2.ops, [], 'the second service finds it');
  t.same(r2.vips.map((v) => v.address), ['10.255.0.2'], 'and gets the next VIP');
});

t.test('names and ids resolve; VIPs kept across an update, one per network; dnsrr has none', async (t) => {
  const st = new ObjectStore();
  apply(st, [{ op: 'create', object: net('n-front', 'front', '10.1.0.0/16', 4097) }, { op: 'create', object: net('n-back', 'back', '10.2.0.0/16', 4098) }]);
  const r = resolveServiceNetworking(st, { serviceId: 's1', name: 'web', spec: spec(['front', 'n-back']), now: 1, newId });
  t.same(r.spec.task.networks, ['n-front', 'n-back'], 'in the order given');
  t.same(r.vips, [{ networkId: 'n-front', address: '10.255.0.1' }, { networkId: 'n-back', address: '10.255.0.2' }]);
  const svc = service('s1', replicated(1), { name: 'web' });
  apply(st, [{ op: 'create', object: { ...svc, spec: r.spec, status: { createdAt: 0, updatedAt: 0, vips: r.vips } } }]);
  const cur = st.get('service', 's1') as typeof svc;
  const u = resolveServiceNetworking(st, { serviceId: 's1', name: 'web', spec: spec(['n-back']), current: cur, now: 2, newId });
  t.same(u.vips, [{ networkId: 'n-back', address: '10.255.0.2' }], 'the VIP on the network it keeps stays; the other goes');
  const d = resolveServiceNetworking(st, { serviceId: 's1', name: 'web', spec: spec(['front'], { mode: 'dnsrr', ports: [] }), current: cur, now: 3, newId });
  t.same(d.vips, [], 'DNS round robin: no VIP');
});

t.test('refusals name what is wrong and change nothing', async (t) => {
  const st = new ObjectStore();
  apply(st, [{ op: 'create', object: net('n-in', 'inside', '10.3.0.0/16', 4099, true) }, { op: 'create', object: net('n-front', 'front', '10.1.0.0/16', 4097) }]);
  const before = st.applied;
  refused(t, () => resolveServiceNetworking(st, { serviceId: 's', name: 'web', spec: spec(['nope']), now: 0, newId }), 'not-found', /no network "nope" \("shoal network ls" lists them/, 'unknown network');
  refused(t, () => resolveServiceNetworking(st, { serviceId: 's', name: 'web', spec: spec(['front', 'n-front']), now: 0, newId }), 'invalid', /network front is named twice/, 'the same network twice');
  refused(t, () => resolveServiceNetworking(st, { serviceId: 's', name: 'web', spec: spec(['a', 'b', 'c', 'd', 'e']), now: 0, newId }), 'invalid', /names 5 networks; a pod gets at most 4/, 'too many networks');
  refused(t, () => resolveServiceNetworking(st, { serviceId: 's', name: 'web', spec: spec(['inside'], { mode: 'vip', ports: [{ protocol: 'tcp', targetPort: 80, publishedPort: 80, mode: 'ingress' }] }), now: 0, newId }), 'invalid', /publishes ports but all its networks are internal/, 'ports on internal networks only');
  const ok = resolveServiceNetworking(st, { serviceId: 's1', name: 'web', spec: spec(['front'], { mode: 'vip', ports: [{ protocol: 'tcp', targetPort: 80, publishedPort: 8080, mode: 'ingress' }] }), now: 0, newId });
  apply(st, [{ op: 'create', object: { ...service('s1', replicated(1), { name: 'web' }), spec: ok.spec, status: { createdAt: 0, updatedAt: 0, vips: ok.vips } } }]);
  const mid = st.applied;
  refused(t, () => resolveServiceNetworking(st, { serviceId: 's2', name: 'api', spec: spec(['front'], { mode: 'vip', ports: [{ protocol: 'tcp', targetPort: 81, publishedPort: 8080, mode: 'host' }] }), now: 0, newId }), 'in-use', /port 8080\/tcp is already published by service web/, 'a port another service publishes');
  t.ok(resolveServiceNetworking(st, { serviceId: 's2', name: 'api', spec: spec(['front'], { mode: 'vip', ports: [{ protocol: 'udp', targetPort: 81, publishedPort: 8080, mode: 'ingress' }] }), now: 0, newId }), 'the same number over UDP is another port');
  t.ok(resolveServiceNetworking(st, { serviceId: 's1', name: 'web', spec: spec(['front'], { mode: 'vip', ports: [{ protocol: 'tcp', targetPort: 80, publishedPort: 8080, mode: 'ingress' }] }), current: st.get('service', 's1') as never, now: 0, newId }), 'a service keeps its own port across an update');
  t.equal(st.applied, mid, 'resolving writes nothing');
  t.ok(before < mid);
});

t.test('wire syntax: networks, endpoint mode and ports checked before anything is resolved', async (t) => {
  t.same(networkingFromWire({ networks: ['front'], endpoint_mode: '', ports: [{ published_port: 8080, target_port: 80 }] }), { networks: ['front'], endpoint: { mode: 'vip', ports: [{ protocol: 'tcp', targetPort: 80, publishedPort: 8080, mode: 'ingress' }] } }, 'defaults: vip, tcp, ingress');
  const bad: [object, RegExp][] = [
    [{ networks: ['has space'] }, /networks must be network names or ids/],
    [{ endpoint_mode: 'roundrobin' }, /endpoint mode "roundrobin" is not known: use vip or dnsrr/],
    [{ ports: [{ published_port: 0, target_port: 80 }] }, /ports\[0\] published port must be a port number from 1 to 65535, got 0/],
    [{ ports: [{ published_port: 8080, target_port: 70000 }] }, /ports\[0\] target port must be a port number from 1 to 65535/],
    [{ ports: [{ published_port: 8080, target_port: 80, protocol: 'sctp' }] }, /protocol "sctp" is not known: use tcp or udp/],
    [{ ports: [{ published_port: 8080, target_port: 80, publish_mode: 'mesh' }] }, /publish mode "mesh" is not known: use ingress or host/],
    [{ ports: [{ published_port: 8080, target_port: 80 }, { published_port: 8080, target_port: 81 }] }, /port 8080\/tcp is published twice by this service/],
  ];
  for (const [w, re] of bad) t.throws(() => networkingFromWire(w), { constructor: NetworkSpecError, message: re } as never, String(re));
});

t.test('one batch (an apply of a stack): one IPAM plan, the default network created once, ports checked among the batch', async (t) => {
  const st = new ObjectStore();
  const batch = networkingBatch(st);
  const a = resolveServiceNetworking(st, { serviceId: 'b1', name: 'a', spec: spec(undefined, { mode: 'vip', ports: [{ protocol: 'tcp', targetPort: 80, publishedPort: 8080, mode: 'ingress' }] }), now: 1, newId, batch });
  const b = resolveServiceNetworking(st, { serviceId: 'b2', name: 'b', spec: spec(undefined), now: 1, newId, batch });
  t.equal(a.ops.length, 1, 'the first service creates the default network');
  t.equal(b.ops.length, 0, 'the second joins it, not a second default network');
  t.same(b.spec.task.networks, a.spec.task.networks, 'both on the same network');
  t.not(a.vips[0]!.address, b.vips[0]!.address, `distinct VIPs (${a.vips[0]!.address}, ${b.vips[0]!.address})`);
  refused(t, () => resolveServiceNetworking(st, { serviceId: 'b3', name: 'c', spec: spec(undefined, { mode: 'vip', ports: [{ protocol: 'tcp', targetPort: 81, publishedPort: 8080, mode: 'ingress' }] }), now: 1, newId, batch }), 'in-use', /port 8080\/tcp is published by service a too/, 'a port another service of the batch publishes');
  // What an apply compares: names as ids, none as the default network once it exists.
  apply(st, a.ops);
  const d = st.getByName('network', 'default')!;
  apply(st, [{ op: 'create', object: net('n-back', 'backend', '10.50.0.0/16', 4200) }]);
  t.same(withNetworkIds(st, spec(undefined)).task.networks, [d.id], 'none named: the default network');
  t.same(withNetworkIds(st, spec(['backend'])).task.networks, ['n-back'], 'a name: its id');
  t.same(withNetworkIds(st, spec(['nope'])).task.networks, ['nope'], 'an unknown name left for the resolution to refuse');
});
