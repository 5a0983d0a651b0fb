// What the dispatcher streams each node's agent for its network plugin, over a real in-memory
// store: a full view first (only the networks the node has a subnet of, their peers that are up,
// the services on them cut to those networks), then per batch only what changed: a readiness
// change is one service, a node marked down is its removal, a network the node leaves goes with
// its services; an unchanged task state sends nothing.
import t from 'tap';
import { node, replicated, service, task } from '../orchestrator/fixtures.js';
import type { NodeObject } from '../control/model.js';
import { taskInput, statusAt, type TaskObject } from '../services/model.js';
import { ObjectStore } from '../store/store.js';
import type { ObjectInput, TxnOp } from '../store/types.js';
import { NetworkViews, type NetworksMessage } from './network-view.js';

let index = 1;
function apply(st: ObjectStore, ops: TxnOp[]): void {
  const r = st.applyTxn(++index, ops);
  if (!r.ok) throw new Error(r.conflict.message);
}
const put = (st: ObjectStore, o: ObjectInput) => apply(st, [{ op: st.get(o.kind, o.id) ? 'update' : 'create', object: o }]);

function net(id: string, subnet: string, vni: number, nodeSubnets: [string, string][]): ObjectInput {
  return { kind: 'network', id, name: id, labels: {}, spec: { internal: false }, status: { subnet, vni, nodeSubnets: nodeSubnets.map(([nodeId, s]) => ({ nodeId, subnet: s })), createdAt: 0 } };
}

function withAddr(n: NodeObject, addr: string): NodeObject {
  return { ...n, status: { ...n.status, addr: `${addr}:4242` } };
}

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('a node sees its networks, their peers and the services on them; then only changes', async (t) => {
  const st = new ObjectStore();
  put(st, withAddr(node('a'), '10.99.0.11'));
  put(st, withAddr(node('b'), '10.99.0.12'));
  put(st, withAddr(node('c'), '10.99.0.13'));
  put(st, net('front', '10.1.0.0/16', 4097, [['a', '10.1.0.0/24'], ['b', '10.1.1.0/24']]));
  put(st, net('back', '10.2.0.0/16', 4098, [['b', '10.2.0.0/24'], ['c', '10.2.1.0/24']]));
  const web = service('web', replicated(2));
  web.spec.task.networks = ['front', 'back'];
  web.spec.endpoint = { mode: 'vip', ports: [{ protocol: 'tcp', targetPort: 80, publishedPort: 8080, mode: 'ingress' }] };
  web.status.vips = [{ networkId: 'front', address: '10.255.0.1' }, { networkId: 'back', address: '10.255.0.2' }];
  put(st, web);
  const db = service('db', replicated(1));
  db.spec.task.networks = ['back'];
  db.status.vips = [{ networkId: 'back', address: '10.255.0.3' }];
  put(st, db);
  const w1 = task(web, 'w1', { slot: 1, nodeId: 'a', state: 'running' });
  w1.spec.networks = [{ networkId: 'front', address: '10.1.0.2' }, { networkId: 'back', address: '10.2.5.2' }];
  const w2 = task(web, 'w2', { slot: 2, nodeId: 'b', state: 'starting' });
  w2.spec.networks = [{ networkId: 'front', address: '10.1.1.2' }, { networkId: 'back', address: '10.2.0.2' }];
  put(st, w1);
  put(st, w2);

  const views = new NetworkViews(st, 5);
  const got: NetworksMessage[] = [];
  const h = views.open('a', (m) => got.push(JSON.parse(JSON.stringify(m))));
  t.equal(got.length, 1);
  const full = got[0]!;
  t.equal(full.full, true, 'a full view first');
  t.equal(full.state.node_id, 'a');
  t.equal(full.state.vip_range, '10.255.0.0/16');
  t.same(full.state.networks.map((n) => n.id), ['front'], 'only the network it has a subnet of');
  t.same(full.state.nodes.map((n) => `${n.id}=${n.underlay_addr}`).sort(), ['a=10.99.0.11', 'b=10.99.0.12'], 'its peers on it (and itself), not c');
  t.same(full.state.services.map((s) => s.id), ['web'], 'db is on a network it does not have');
  const sv = full.state.services[0]!;
  t.same(sv.network_ids, ['front'], 'cut to its networks');
  t.same(sv.vips, [{ network_id: 'front', address: '10.255.0.1' }]);
  t.same(sv.ports, [{ protocol: 0, target_port: 80, published_port: 8080, mode: 0 }]);
  t.same(sv.backends.map((b) => [b.task_id, b.ready, b.addresses.map((x) => x.address).join(), b.name]), [['w1', true, '10.1.0.2', 'web.1'], ['w2', false, '10.1.1.2', 'web.2']], 'backends with their address here; a starting one is not ready');

  const w2b = st.get('task', 'w2') as TaskObject;
  put(st, taskInput(w2b, { status: statusAt(w2b, 'running', 1) }));
  await wait(60);
  t.equal(got.length, 2, 'one message for the batch');
  t.same([got[1]!.full, got[1]!.state.services.map((s) => s.id), got[1]!.state.networks, got[1]!.state.nodes], [false, ['web'], [], []], 'only the service changed');
  t.equal(got[1]!.state.services[0]!.backends.find((b) => b.task_id === 'w2')!.ready, true, 'w2 is ready now');

  const w1b = st.get('task', 'w1') as TaskObject;
  put(st, taskInput(w1b, { status: { ...w1b.status, message: 'still running' } }));
  await wait(60);
  t.equal(got.length, 2, 'a task change that changes nothing the plugin sees sends nothing');

  const w1c = st.get('task', 'w1') as TaskObject;
  put(st, taskInput(w1c, { status: { ...w1c.status, ready: false } }));
  await wait(60);
  t.equal(got.at(-1)!.state.services[0]!.backends.find((b) => b.task_id === 'w1')!.ready, false, 'a failing readiness probe makes it unready');

  const b = st.get('node', 'b') as NodeObject;
  put(st, { ...b, status: { ...b.status, state: 'down' } });
  await wait(60);
  t.same(got.at(-1)!.removed_nodes, ['b'], 'a node marked down is removed');

  const w2c = st.get('task', 'w2') as TaskObject;
  put(st, taskInput(w2c, { status: statusAt(w2c, 'orphaned', 2) }));
  await wait(60);
  t.same(got.at(-1)!.state.services[0]!.backends.map((x) => x.task_id), ['w1'], 'its task, given up, is no backend any more');

  put(st, net('front', '10.1.0.0/16', 4097, [['b', '10.1.1.0/24']]));
  await wait(60);
  t.same([got.at(-1)!.removed_networks, got.at(-1)!.removed_services], [['front'], ['web']], 'a network the node leaves goes, with the services it saw through it');
  h.close();
  views.stop();
});

t.test('services naming no network are on the default network', async (t) => {
  const st = new ObjectStore();
  put(st, withAddr(node('a'), '10.99.0.11'));
  put(st, { ...net('dflt', '10.0.0.0/16', 4096, [['a', '10.0.0.0/24']]), name: 'default' });
  put(st, service('old', replicated(1)));
  const views = new NetworkViews(st, 5);
  const got: NetworksMessage[] = [];
  views.open('a', (m) => got.push(m));
  t.same(got[0]!.state.services.map((s) => [s.id, s.network_ids]), [['old', ['dflt']]]);
  views.stop();
});
