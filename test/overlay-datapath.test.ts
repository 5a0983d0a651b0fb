// The overlay's data path for real, on three network-namespace hosts each running shoal-net:
// pods on different hosts reach each other over VXLAN, networks are isolated, an internal network
// has no way out, a VIP spreads over ready backends only, DNS answers per network, a published
// port answers on every host, and a host removed from the state loses its FDB entries and VIP
// backends everywhere. Nothing is created in the test's own (root) namespace.
import t from 'tap';
import type { Attachment, Network, Service } from '../proto/network/types.js';
import { OverlayLab, inNs, nsPath, sh, shoalKernelObjects, stateFor, wget } from './overlay-harness.js';
import { vtepMac } from '../overlay-net/names.js';

const rootBefore = shoalKernelObjects();
const lab = new OverlayLab('sovd');
t.teardown(() => lab.close());

const front: Network = { id: 'net-front', name: 'front', vni: 4097, subnet: '10.1.0.0/16', internal: false, node_subnets: [
  { node_id: 'n1', subnet: '10.1.1.0/24' }, { node_id: 'n2', subnet: '10.1.2.0/24' }, { node_id: 'n3', subnet: '10.1.3.0/24' }] };
const back: Network = { id: 'net-back', name: 'back', vni: 4098, subnet: '10.2.0.0/16', internal: false, node_subnets: [
  { node_id: 'n1', subnet: '10.2.1.0/24' }, { node_id: 'n2', subnet: '10.2.2.0/24' }] };
const sealed: Network = { id: 'net-sealed', name: 'sealed', vni: 4099, subnet: '10.3.0.0/16', internal: true, node_subnets: [
  { node_id: 'n1', subnet: '10.3.1.0/24' }, { node_id: 'n2', subnet: '10.3.2.0/24' }] };
const nodes = [{ id: 'n1', underlay_addr: '10.99.0.11' }, { id: 'n2', underlay_addr: '10.99.0.12' }, { id: 'n3', underlay_addr: '10.99.0.13' }];
const backend = (task: string, node: string, addr: string, ready = true, net = 'net-front') => ({ task_id: task, node_id: node, ready, name: `web.${task.slice(1)}`, addresses: [{ network_id: net, address: addr }] });
const web = (ready4: boolean): Service => ({
  id: 'svc-web', name: 'web', endpoint_mode: 0, vips: [{ network_id: 'net-front', address: '10.255.0.2' }], network_ids: ['net-front'],
  ports: [{ protocol: 0, target_port: 80, published_port: 8080, mode: 0 }],
  backends: [backend('w1', 'n1', '10.1.1.2'), backend('w2', 'n2', '10.1.2.2'), backend('w3', 'n2', '10.1.2.3'), backend('w4', 'n2', '10.1.2.4', ready4)],
});
const db: Service = { id: 'svc-db', name: 'db', endpoint_mode: 1, vips: [], network_ids: ['net-back'], ports: [],
  backends: [backend('d1', 'n2', '10.2.2.2', true, 'net-back')] };
// Host mode: published only where a ready task runs (w1 on n1).
const edge: Service = { id: 'svc-edge', name: 'edge', endpoint_mode: 0, vips: [{ network_id: 'net-front', address: '10.255.0.3' }], network_ids: ['net-front'],
  ports: [{ protocol: 0, target_port: 80, published_port: 8090, mode: 1 }], backends: [backend('w1', 'n1', '10.1.1.2')] };
const att = (task: string, pairs: [string, string][]): Attachment => ({ task_id: task, pod_namespace: 'shoal', pod_name: task, networks: pairs.map(([n, a]) => ({ network_id: n, address: a })) });
const attachments: Record<string, Attachment[]> = {
  n1: [att('w1', [['net-front', '10.1.1.2']]), att('c1', [['net-front', '10.1.1.10']]), att('b1', [['net-back', '10.2.1.2']]), att('s1', [['net-sealed', '10.3.1.2']])],
  n2: [att('w2', [['net-front', '10.1.2.2']]), att('w3', [['net-front', '10.1.2.3']]), att('w4', [['net-front', '10.1.2.4']]), att('d1', [['net-back', '10.2.2.2']]), att('s2', [['net-sealed', '10.3.2.2']])],
  n3: [],
};
const cluster = (ready4 = false) => ({ networks: [front, back, sealed], nodes, services: [web(ready4), db, edge], attachments });
const pods = new Map<string, string>(); // task -> pod netns

t.test('set up three hosts, push the state, attach the pods', async (t) => {
  for (const [i, n] of ['n1', 'n2', 'n3'].entries()) await lab.addHost(n, `10.99.0.${11 + i}`);
  for (const h of lab.hosts.values()) {
    const r = await h.plugin!.client.updateState({ full: true, version: 1, state: stateFor(h.name, cluster()) });
    t.equal(r.version, 1, `${h.name} took the full state`);
  }
  for (const [node, list] of Object.entries(attachments)) {
    for (const a of list) {
      const ns = lab.makePodNs(a.task_id);
      pods.set(a.task_id, ns);
      const r = await lab.host(node).plugin!.client.add({ pod: { container_id: `ctr-${a.task_id}`, netns: nsPath(ns), ifname: 'eth0', args: { K8S_POD_NAMESPACE: 'shoal', K8S_POD_NAME: a.task_id }, cni_version: '1.0.0' } });
      t.equal(r.task_id, a.task_id, `pod ${a.task_id} on ${node} matched its task by K8S_POD_NAMESPACE/NAME`);
      t.equal(r.result.ips[0]?.address, `${a.networks[0]!.address}/24`, `  and got ${a.networks[0]!.address}/24`);
    }
  }
  for (const w of ['w1', 'w2', 'w3', 'w4']) lab.serveHttp(pods.get(w)!, 80, w);
  lab.serveHttp(pods.get('d1')!, 80, 'd1');
  lab.serveHttp(pods.get('s2')!, 80, 's2');
  lab.serveHttp(lab.host('n2').netns, 9000, 'host n2');
  for (const p of ['w1', 'w2', 'w3', 'w4', 'd1', 's2']) await lab.waitHttp(pods.get(p)!, 80);
  await lab.waitHttp(lab.host('n2').netns, 9000);
  const vx = JSON.parse(inNs(lab.host('n1').netns, ['ip', '-j', '-d', 'link', 'show', 'shvx-4097']).stdout)[0];
  t.equal(vx.linkinfo.info_kind, 'vxlan', 'n1 has a VXLAN device for front');
  t.equal(vx.linkinfo.info_data.id, 4097, '  with its VNI');
  t.equal(vx.linkinfo.info_data.port, 4789, '  on UDP 4789');
  t.equal(vx.linkinfo.info_data.learning, false, '  learning off');
  t.equal(vx.mtu, 1450, '  MTU 1500 - 50 for the encapsulation');
  const eth0 = JSON.parse(inNs(pods.get('c1')!, ['ip', '-j', 'link', 'show', 'eth0']).stdout)[0];
  t.equal(eth0.mtu, 1450, 'the pod\'s eth0 has the overlay MTU');
});

t.test('pods on different hosts reach each other over VXLAN', async (t) => {
  t.equal(wget(pods.get('c1')!, 'http://10.1.2.2/', 5), 'w2', 'c1 (n1) -> w2 (n2) by address');
  t.equal(wget(pods.get('w2')!, 'http://10.1.1.2/', 5), 'w1', 'w2 (n2) -> w1 (n1) by address');
  t.equal(inNs(pods.get('c1')!, ['busybox', 'ping', '-c', '1', '-W', '3', '10.1.2.3']).status, 0, 'c1 pings w3 on n2');
  // Full-size packets cross too (the MTU leaves room for the encapsulation).
  t.equal(inNs(pods.get('c1')!, ['busybox', 'ping', '-c', '1', '-W', '3', '-s', '1422', '10.1.2.3']).status, 0, 'a 1450-byte packet crosses');
  const fdb = sh(['nsenter', `--net=${nsPath(lab.host('n1').netns)}`, '--', 'bridge', 'fdb', 'show', 'dev', 'shvx-4097']).stdout;
  t.match(fdb, `${vtepMac('10.99.0.12')} dst 10.99.0.12`, 'n1 has a static FDB entry for n2');
  t.match(fdb, `${vtepMac('10.99.0.13')} dst 10.99.0.13`, 'and for n3');
});

t.test('networks are isolated from each other', async (t) => {
  t.equal(wget(pods.get('b1')!, 'http://10.2.2.2/', 5), 'd1', 'b1 (back, n1) reaches d1 (back, n2)');
  t.equal(wget(pods.get('b1')!, 'http://10.1.2.2/'), undefined, 'b1 (back) cannot reach w2 (front, other host)');
  t.equal(wget(pods.get('b1')!, 'http://10.1.1.2/'), undefined, 'b1 (back) cannot reach w1 (front, same host)');
  t.equal(wget(pods.get('c1')!, 'http://10.2.2.2/'), undefined, 'c1 (front) cannot reach d1 (back)');
});

t.test('an internal network has no way out', async (t) => {
  t.equal(wget(pods.get('s1')!, 'http://10.3.2.2/', 5), 's2', 's1 reaches s2 on its internal network across hosts');
  t.equal(wget(pods.get('c1')!, 'http://10.99.0.12:9000/', 5), 'host n2', 'c1 (front, not internal) gets out to host n2');
  t.equal(wget(pods.get('s1')!, 'http://10.99.0.12:9000/'), undefined, 's1 (internal) cannot reach host n2');
  t.equal(wget(pods.get('s1')!, 'http://10.1.2.2/'), undefined, 's1 (internal) cannot reach another network');
  const r = inNs(pods.get('s1')!, ['ip', 'route', 'get', '203.0.113.1']);
  t.not(r.status, 0, `s1 has no route out (${r.stderr.trim()})`);
  t.equal(wget(pods.get('s1')!, 'http://10.3.1.1:9000/'), undefined, 's1 cannot reach its own host through the gateway');
});

function vipSpread(from: string, n: number): Map<string, number> {
  const seen = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const body = wget(pods.get(from)!, 'http://10.255.0.2/', 3) ?? 'failed';
    seen.set(body, (seen.get(body) ?? 0) + 1);
  }
  return seen;
}

t.test('the VIP spreads over ready backends and skips an unready one', async (t) => {
  const seen = vipSpread('c1', 9);
  t.same([...seen.keys()].sort(), ['w1', 'w2', 'w3'], `9 connections to 10.255.0.2 went to w1, w2, w3 (${JSON.stringify([...seen])})`);
  // w4 becomes ready: a delta adds it on every node.
  for (const h of lab.hosts.values()) await h.plugin!.client.updateState({ full: false, base_version: 1, version: 2, state: { services: [web(true)] } });
  const seen2 = vipSpread('c1', 8);
  t.same([...seen2.keys()].sort(), ['w1', 'w2', 'w3', 'w4'], `w4 is ready: 8 connections went to all four (${JSON.stringify([...seen2])})`);
  t.equal(wget(pods.get('b1')!, 'http://10.255.0.2/'), undefined, 'a pod of another network does not reach the VIP');
});

function nslookup(pod: string, name: string): string[] | 'NXDOMAIN' | 'failed' {
  const r = inNs(pods.get(pod)!, ['busybox', 'nslookup', name, '169.254.53.53']);
  if (/NXDOMAIN|can't find/i.test(r.stdout + r.stderr)) return 'NXDOMAIN';
  if (r.status !== 0) return 'failed';
  const after = r.stdout.split(/Name:/).slice(1).join('\n');
  return [...after.matchAll(/Address(?: \d+)?:\s+(\d+\.\d+\.\d+\.\d+)/g)].map((m) => m[1]!).sort();
}

t.test('DNS: SERVICE is the VIP, tasks.SERVICE the ready tasks, dnsrr the tasks, per network', async (t) => {
  t.same(nslookup('c1', 'web'), ['10.255.0.2'], 'web -> its VIP');
  t.same(nslookup('c1', 'tasks.web'), ['10.1.1.2', '10.1.2.2', '10.1.2.3', '10.1.2.4'], 'tasks.web -> the ready tasks');
  t.same(nslookup('b1', 'db'), ['10.2.2.2'], 'db (dnsrr) -> its task from a pod of its network');
  t.equal(nslookup('b1', 'web'), 'NXDOMAIN', 'web is not visible from the back network');
  t.equal(nslookup('c1', 'example.com'), 'NXDOMAIN', 'nothing outside the cluster is forwarded (none configured)');
  t.same(nslookup('s1', 'web'), 'NXDOMAIN', 'the internal pod reaches the resolver (and web is not on its network)');
});

t.test('a published port answers on every host, one with no task included', async (t) => {
  for (const h of lab.hosts.values()) {
    for (const from of ['n1', 'n3']) {
      const body = wget(lab.host(from).netns, `http://${h.address}:8080/`, 5);
      t.match(body ?? 'failed', /^w[1-4]$/, `${from} -> ${h.name} (${h.address}:8080) answered by a task (${body})`);
    }
  }
});

t.test('a host-mode port answers only where its task runs', async (t) => {
  t.equal(wget(lab.host('n3').netns, 'http://10.99.0.11:8090/', 5), 'w1', 'n3 -> n1:8090 (w1 runs on n1)');
  t.equal(wget(lab.host('n3').netns, 'http://10.99.0.12:8090/'), undefined, 'n3 -> n2:8090: not published on n2');
});

t.test('a host removed from the state loses its FDB entries and VIP backends', async (t) => {
  const n1 = lab.host('n1');
  const without = cluster(true);
  await n1.plugin!.client.updateState({ full: false, base_version: 2, version: 3, removed_nodes: ['n2'] });
  const fdb = inNs(n1.netns, ['bridge', 'fdb', 'show', 'dev', 'shvx-4097']).stdout;
  t.notMatch(fdb, vtepMac('10.99.0.12'), 'n1 has no FDB entry for n2 any more');
  t.match(fdb, vtepMac('10.99.0.13'), 'but keeps n3\'s');
  t.notMatch(inNs(n1.netns, ['ip', 'neigh', 'show', 'dev', 'shvx-4097']).stdout, '10.1.2.0', 'nor a neighbour entry');
  t.notMatch(inNs(n1.netns, ['ip', 'route', 'show', 'dev', 'shvx-4097']).stdout, '10.1.2.0/24', 'nor a route to its subnet');
  const seen = vipSpread('c1', 4);
  t.same([...seen.keys()], ['w1'], `the VIP now goes to w1 only (${JSON.stringify([...seen])})`);
  t.equal(wget(pods.get('c1')!, 'http://10.1.2.2/'), undefined, 'and n2\'s pods are out of reach');
  // Back again (a full state, as an agent sends after a reconnect).
  await n1.plugin!.client.updateState({ full: true, version: 4, state: stateFor('n1', without) });
  t.equal(wget(pods.get('c1')!, 'http://10.1.2.2/', 5), 'w2', 'n2 added back: reachable again');
});

t.test('the root namespace got nothing', async (t) => {
  t.same(shoalKernelObjects(), rootBefore, 'no shoal interface or nft table in the root namespace');
});
