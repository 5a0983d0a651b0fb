// The cluster view: full states and versioned deltas, and every kind of bad update refused with
// an error naming it.
import t from 'tap';
import type { ClusterState } from '../proto/network/types.js';
import { StateError, applyUpdate, emptyState } from './state.js';

const base = (): ClusterState => ({
  node_id: 'n1', vip_range: '10.255.0.0/16', dns_upstreams: [],
  nodes: [{ id: 'n1', underlay_addr: '10.99.0.11' }, { id: 'n2', underlay_addr: '10.99.0.12' }],
  networks: [{ id: 'a', name: 'a', vni: 4096, subnet: '10.1.0.0/16', internal: false, node_subnets: [{ node_id: 'n1', subnet: '10.1.1.0/24' }] }],
  services: [{ id: 's', name: 'web', endpoint_mode: 0, vips: [{ network_id: 'a', address: '10.255.0.2' }], network_ids: ['a'], ports: [], backends: [] }],
  attachments: [{ task_id: 't1', pod_namespace: 'shoal', pod_name: 't1', networks: [{ network_id: 'a', address: '10.1.1.2' }] }],
});

t.test('full, then deltas on the right version', async (t) => {
  let s = applyUpdate(emptyState(), 0, { full: true, version: 3, state: base() });
  t.equal(s.version, 3);
  s = applyUpdate(s.state, s.version, { base_version: 3, version: 4, state: { attachments: [{ task_id: 't2', pod_namespace: '', pod_name: '', networks: [{ network_id: 'a', address: '10.1.1.3' }] }] } as unknown as ClusterState, removed_nodes: ['n2'] });
  t.same(s.state.attachments.map((a) => a.task_id), ['t1', 't2'], 'delta upserts an attachment');
  t.same(s.state.nodes.map((n) => n.id), ['n1'], 'and removes a node');
  t.equal(s.state.node_id, 'n1', 'keeps the node id');
  s = applyUpdate(s.state, s.version, { base_version: 4, version: 5, removed_attachments: ['t1'], removed_services: ['s'] });
  t.same([s.state.attachments.map((a) => a.task_id), s.state.services], [['t2'], []], 'removes by id');
  t.throws(() => applyUpdate(s.state, s.version, { base_version: 4, version: 6 }), /holds version 5; send a full state/, 'a delta on another version');
  t.throws(() => applyUpdate(s.state, s.version, { base_version: 5, version: 5 }), /must be greater than its base/, 'a delta that does not move the version');
  t.throws(() => applyUpdate(s.state, s.version, { base_version: 5, version: 6, state: { node_id: 'n9' } as ClusterState }), /for node n9 but the plugin serves node n1/, 'a delta for another node');
  t.throws(() => applyUpdate(s.state, s.version, { full: true, version: 0, state: base() }), /version > 0/, 'a full state without a version');
});

t.test('bad states are refused, naming the problem', async (t) => {
  const cases: [string, (s: ClusterState) => void, RegExp][] = [
    ['no node id', (s) => { s.node_id = ''; }, /node_id is empty/],
    ['a bad id', (s) => { s.nodes[0]!.id = 'has space'; }, /node id "has space" is not valid/],
    ['a duplicate node', (s) => { s.nodes.push({ ...s.nodes[0]! }); }, /node n1 is listed twice/],
    ['a bad underlay', (s) => { s.nodes[0]!.underlay_addr = '10.99.0.300'; }, /underlay_addr.*each part 0-255/],
    ['a bad vip range', (s) => { s.vip_range = '10.255.0.1/16'; }, /vip_range.*host bits/],
    ['a VNI out of range', (s) => { s.networks[0]!.vni = 16777216; }, /vni 16777216 out of range/],
    ['a shared VNI', (s) => { s.networks.push({ ...s.networks[0]!, id: 'b', subnet: '10.2.0.0/16', node_subnets: [] }); }, /share vni 4096/],
    ['overlapping subnets', (s) => { s.networks.push({ ...s.networks[0]!, id: 'b', vni: 4097, subnet: '10.1.0.0/24', node_subnets: [] }); }, /overlaps network a/],
    ['a subnet over the VIP range', (s) => { s.networks[0]!.subnet = '10.255.0.0/24'; s.networks[0]!.node_subnets = []; s.attachments = []; }, /overlaps the vip_range/],
    ['a node subnet outside', (s) => { s.networks[0]!.node_subnets[0]!.subnet = '10.9.1.0/24'; }, /is not inside 10\.1\.0\.0\/16/],
    ['two node subnets overlapping', (s) => { s.networks[0]!.node_subnets.push({ node_id: 'n2', subnet: '10.1.1.0/25' }); }, /overlaps another node's/],
    ['a service name that is no DNS label', (s) => { s.services[0]!.name = 'web_1'; }, /not a DNS label/],
    ['two services of one name', (s) => { s.services.push({ ...s.services[0]!, id: 's2', name: 'WEB' }); }, /two services are named WEB/],
    ['a VIP outside the range', (s) => { s.services[0]!.vips[0]!.address = '10.254.0.2'; }, /outside vip_range/],
    ['a port out of range', (s) => { s.services[0]!.ports.push({ protocol: 0, target_port: 80, published_port: 70000, mode: 0 }); }, /published_port 70000 out of range/],
    ['an unknown protocol', (s) => { s.services[0]!.ports.push({ protocol: 7, target_port: 80, published_port: 80, mode: 0 }); }, /unknown protocol 7/],
    ['an attachment on no network', (s) => { s.attachments[0]!.networks = []; }, /names no network/],
    ['an attachment outside its network', (s) => { s.attachments[0]!.networks[0]!.address = '10.2.0.5'; }, /10\.2\.0\.5 is not in network a/],
    ['an attachment twice', (s) => { s.attachments.push({ ...s.attachments[0]! }); }, /listed twice/],
  ];
  for (const [what, mutate, msg] of cases) {
    const s = base();
    mutate(s);
    try {
      applyUpdate(emptyState(), 0, { full: true, version: 1, state: s });
      t.fail(`${what}: accepted`);
    } catch (e) {
      t.ok(e instanceof StateError, `${what}: refused`);
      t.match((e as Error).message, msg, `  "${(e as Error).message}"`);
    }
  }
});
