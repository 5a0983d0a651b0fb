// shoal-net's life cycle on two netns hosts: bad input is refused and changes nothing; CHECK
// finds a broken pod; a plugin killed with SIGKILL leaves the pods' network working, and on
// restart its reconcile removes leftovers (stray interfaces, FDB and neighbour entries, nft
// rules, pods whose namespace went away); DEL and GC remove what they should (and DEL again is
// fine); `shoal-net --teardown` leaves no interface or nft table behind.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import type { ServiceError } from '@grpc/grpc-js';
import { CNI_CODE_METADATA, type Attachment, type Network } from '../proto/network/types.js';
import { SHOAL_NET_MAIN } from '../overlay-net/child.js';
import { OverlayLab, inNs, nsPath, shoalKernelObjects, stateFor, wget } from './overlay-harness.js';

const rootBefore = shoalKernelObjects();
const lab = new OverlayLab('sovr');
t.teardown(() => lab.close());

const front: Network = { id: 'net-front', name: 'front', vni: 5001, subnet: '10.1.0.0/16', internal: false, node_subnets: [
  { node_id: 'n1', subnet: '10.1.1.0/24' }, { node_id: 'n2', subnet: '10.1.2.0/24' }] };
const nodes = [{ id: 'n1', underlay_addr: '10.99.0.11' }, { id: 'n2', underlay_addr: '10.99.0.12' }];
const att = (task: string, addr: string): Attachment => ({ task_id: task, pod_namespace: 'shoal', pod_name: task, networks: [{ network_id: 'net-front', address: addr }] });
const attachments = { n1: [att('p1', '10.1.1.2'), att('p3', '10.1.1.3')], n2: [att('p2', '10.1.2.2'), att('p4', '10.1.2.3')] };
const cluster = { networks: [front], nodes, services: [], attachments };
const pods = new Map<string, string>();
const podRef = (task: string, extra: Record<string, unknown> = {}) => ({ container_id: `ctr-${task}`, netns: nsPath(pods.get(task)!), ifname: 'eth0', args: { K8S_POD_UID: task }, ...extra });

function cniCode(e: unknown): number {
  return Number((e as ServiceError).metadata?.get(CNI_CODE_METADATA)?.[0]);
}

t.test('set up', async (t) => {
  await lab.addHost('n1', '10.99.0.11');
  await lab.addHost('n2', '10.99.0.12');
  for (const h of lab.hosts.values()) await h.plugin!.client.updateState({ full: true, version: 1, state: stateFor(h.name, cluster) });
  for (const [node, list] of Object.entries(attachments)) {
    for (const a of list) {
      pods.set(a.task_id, lab.makePodNs(a.task_id));
      const r = await lab.host(node).plugin!.client.add({ pod: podRef(a.task_id) });
      t.equal(r.task_id, a.task_id, `${a.task_id} attached on ${node} (matched by K8S_POD_UID)`);
    }
  }
  lab.serveHttp(pods.get('p2')!, 80, 'p2');
  await lab.waitHttp(pods.get('p2')!, 80);
  t.equal(wget(pods.get('p1')!, 'http://10.1.2.2/', 5), 'p2', 'p1 reaches p2');
});

t.test('bad input gets a clear error and changes nothing', async (t) => {
  const c = lab.host('n1').plugin!.client;
  const bad = async (what: string, req: Parameters<typeof c.updateState>[0], msg: RegExp) => {
    const e = await c.updateState(req).then(() => undefined, (x: unknown) => x as ServiceError);
    t.ok(e, `${what}: refused`);
    t.match(e?.details ?? '', msg, `  "${e?.details}"`);
  };
  const base = stateFor('n1', cluster);
  await bad('overlapping subnets', { full: true, version: 9, state: { ...base, networks: [front, { ...front, id: 'net-x', vni: 5002, subnet: '10.1.128.0/17', node_subnets: [] }] } }, /overlaps network net-front/);
  await bad('a subnet with host bits', { full: true, version: 9, state: { ...base, networks: [{ ...front, subnet: '10.1.0.1/16' }] } }, /host bits set/);
  await bad('an attachment outside its network', { full: true, version: 9, state: { ...base, attachments: [att('p9', '10.7.0.2')] } }, /not in network front/);
  await bad('an unknown network', { full: true, version: 9, state: { ...base, attachments: [{ ...att('p9', '10.1.1.9'), networks: [{ network_id: 'nope', address: '10.1.1.9' }] }] } }, /unknown network nope/);
  await bad('a VNI out of range', { full: true, version: 9, state: { ...base, networks: [{ ...front, vni: 0 }] } }, /vni 0 out of range/);
  await bad('a delta on the wrong version', { full: false, base_version: 7, version: 8, state: {} }, /holds version 1; send a full state/);
  await bad('a state with no node id', { full: true, version: 9, state: { ...base, node_id: '' } }, /node_id is empty/);
  t.equal((await c.status()).state_version, 1, 'the plugin still holds version 1');
  t.equal(wget(pods.get('p1')!, 'http://10.1.2.2/', 5), 'p2', 'and the data path is untouched');

  const addErr = async (what: string, pod: Record<string, unknown>, code: number, msg: RegExp) => {
    const e = await c.add({ pod }).then(() => undefined, (x: unknown) => x);
    t.equal(cniCode(e), code, `${what}: CNI code ${code}`);
    t.match((e as ServiceError)?.details ?? '', msg, `  "${(e as ServiceError)?.details}"`);
  };
  await addErr('a pod with no attachment', { ...podRef('p1'), container_id: 'ctr-x', args: { K8S_POD_UID: 'nobody' } }, 11, /no network attachment for pod uid nobody/);
  await addErr('a missing netns', { ...podRef('p1'), container_id: 'ctr-y', netns: '/run/netns/does-not-exist' }, 4, /does not exist/);
  await addErr('no netns', { ...podRef('p1'), container_id: 'ctr-y', netns: '' }, 4, /CNI_NETNS is empty/);
  await addErr('a bad interface name', { ...podRef('p1'), container_id: 'ctr-y', ifname: 'this-name-is-too-long' }, 4, /not a valid interface name/);
  await addErr('the same container in another netns', { ...podRef('p1'), netns: nsPath(pods.get('p3')!) }, 7, /already has eth0/);
  const e = await c.check({ pod: { ...podRef('p1'), container_id: 'ctr-unknown' } }).then(() => undefined, (x: unknown) => x);
  t.equal(cniCode(e), 3, 'CHECK of an unknown container: code 3');
});

t.test('CHECK passes on a good pod and names what is broken', async (t) => {
  const c = lab.host('n1').plugin!.client;
  await c.check({ pod: podRef('p1') });
  t.pass('CHECK p1 passes');
  inNs(pods.get('p3')!, ['ip', 'addr', 'flush', 'dev', 'eth0']);
  const e = await c.check({ pod: podRef('p3') }).then(() => undefined, (x: unknown) => x as ServiceError);
  t.match(e?.details ?? '', /pod interface eth0 lacks 10\.1\.1\.3\/24/, `CHECK p3 after its address was removed: "${e?.details}"`);
});

t.test('SIGKILL, leftovers, restart: the reconcile removes what is not wanted', async (t) => {
  const n1 = lab.host('n1');
  await n1.plugin!.stop('SIGKILL');
  t.equal(wget(pods.get('p1')!, 'http://10.1.2.2/', 5), 'p2', 'with the plugin dead, p1 still reaches p2');
  // Leftovers as a crash (or an older run) could leave them.
  inNs(n1.netns, ['ip', 'link', 'add', 'shv-0123456789', 'type', 'veth', 'peer', 'name', 'stray0']);
  inNs(n1.netns, ['ip', 'link', 'add', 'shbr-9999', 'type', 'bridge']);
  inNs(n1.netns, ['ip', 'link', 'add', 'shvx-9998', 'type', 'vxlan', 'id', '9998', 'dstport', '4789', 'local', '10.99.0.11', 'nolearning']);
  inNs(n1.netns, ['bridge', 'fdb', 'append', '02:53:0a:63:00:63', 'dev', 'shvx-5001', 'dst', '10.99.0.99', 'self', 'permanent']);
  inNs(n1.netns, ['ip', 'neigh', 'replace', '10.1.9.0', 'lladdr', '02:53:0a:63:00:63', 'dev', 'shvx-5001', 'nud', 'permanent']);
  inNs(n1.netns, ['nft', 'add', 'rule', 'ip', 'shoal', 'forward', 'ip', 'daddr', '10.1.2.2', 'drop']);
  // A pod removed without DEL while the plugin was away.
  const { deleteNetns } = await import('../lab/netns.js');
  deleteNetns(pods.get('p3')!);
  await lab.startPlugin(n1);
  const st = await n1.plugin!.client.status();
  t.equal(st.state_version, 1, 'the restarted plugin kept its state (version 1)');
  t.ok(st.ready, '  and is ready');
  const links = shoalKernelObjects(n1.netns).links.sort();
  t.notOk(links.includes('shv-0123456789'), 'the stray veth is gone');
  t.notOk(links.includes('shbr-9999') || links.includes('shvx-9998'), 'the stray bridge and VXLAN device are gone');
  t.equal(links.filter((l) => l.startsWith('shv-')).length, 1, 'one pod veth is left (p1; p3\'s namespace went away)');
  t.notMatch(inNs(n1.netns, ['bridge', 'fdb', 'show', 'dev', 'shvx-5001']).stdout, '10.99.0.99', 'the stray FDB entry is gone');
  t.notMatch(inNs(n1.netns, ['ip', 'neigh', 'show', 'dev', 'shvx-5001']).stdout, '10.1.9.0', 'the stray neighbour entry is gone');
  t.notMatch(inNs(n1.netns, ['nft', 'list', 'table', 'ip', 'shoal']).stdout, 'ip daddr 10.1.2.2 drop', 'the stray nft rule is gone');
  t.equal(wget(pods.get('p1')!, 'http://10.1.2.2/', 5), 'p2', 'p1 still reaches p2');
  const e = await n1.plugin!.client.check({ pod: { ...podRef('p1'), container_id: 'ctr-p3', netns: '/run/netns/gone' } }).then(() => undefined, (x: unknown) => x);
  t.ok(e, 'p3 is no longer known');
});

t.test('DEL removes a pod\'s interfaces and table; DEL again and DEL of the unknown succeed', async (t) => {
  const n1 = lab.host('n1');
  await n1.plugin!.client.del({ pod: podRef('p1') });
  t.same(shoalKernelObjects(n1.netns).links.filter((l) => l.startsWith('shv-')), [], 'no pod veth left on n1');
  t.same(shoalKernelObjects(pods.get('p1')!), { links: [], tables: [] }, 'no interface or nft table of shoal in p1');
  t.notOk(inNs(pods.get('p1')!, ['ip', 'link', 'show', 'eth0']).status === 0, 'p1 has no eth0');
  await n1.plugin!.client.del({ pod: podRef('p1') });
  t.pass('DEL again succeeds');
  await n1.plugin!.client.del({ pod: { container_id: 'never-added', ifname: 'eth0', netns: '' } });
  t.pass('DEL of a container never added succeeds');
});

t.test('GC removes every attachment not listed as valid', async (t) => {
  const n2 = lab.host('n2');
  const r = await n2.plugin!.client.gc({ valid_attachments: [{ container_id: 'ctr-p2', ifname: 'eth0' }] });
  t.same(r.removed, [{ container_id: 'ctr-p4', ifname: 'eth0' }], 'GC removed p4');
  t.equal(shoalKernelObjects(n2.netns).links.filter((l) => l.startsWith('shv-')).length, 1, 'one pod veth left on n2 (p2)');
  t.equal(inNs(pods.get('p4')!, ['ip', 'link', 'show', 'eth0']).status === 0, false, 'p4 lost its eth0');
});

t.test('shoal-net --teardown leaves nothing; the root namespace got nothing', async (t) => {
  for (const h of lab.hosts.values()) {
    await h.plugin!.stop();
    const r = spawnSync('nsenter', [`--net=${nsPath(h.netns)}`, '--', process.execPath, SHOAL_NET_MAIN, '--teardown', '--state', h.stateDir, '--underlay-addr', h.address], { encoding: 'utf8' });
    t.equal(r.status, 0, `teardown on ${h.name}: ${r.stderr.trim()}`);
    t.same(shoalKernelObjects(h.netns), { links: [], tables: [] }, `${h.name} has no shoal interface or nft table left`);
  }
  t.same(shoalKernelObjects(pods.get('p2')!), { links: [], tables: [] }, 'p2 has no shoal interface or table left');
  t.same(shoalKernelObjects(), rootBefore, 'the root namespace has no shoal interface or nft table');
});
