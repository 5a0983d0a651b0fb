// The agent's side of the network plugin contract (node/agent/network.ts) against a real
// shoal-net in a host namespace of the test's own: nothing is pushed before the managers' first
// view (an empty full state would take the running pods' networks down); then a full state and
// deltas; a task's attachment waits for its network to reach the node and for an earlier pod with
// its address to be gone, and a pod then attaches through the plugin (CNI ADD) with it; a plugin
// that lost its state (restarted with an older file) answers FAILED_PRECONDITION and gets a full
// state; a node marked down leaves the plugin's peers.
import t from 'tap';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { NetworksMessage } from '../manager/dispatcher/network-view.js';
import { replicated, service, task } from '../manager/orchestrator/fixtures.js';
import type { TaskObject } from '../manager/services/model.js';
import { NetworkSync } from '../node/agent/network.js';
import { OverlayLab, inNs, nsPath, shoalKernelObjects } from './overlay-harness.js';

const rootBefore = shoalKernelObjects();
const lab = new OverlayLab('snag');
t.teardown(() => lab.close());
t.setTimeout(10 * 60_000);

const web = service('web', replicated(2));
function webTask(id: string, address: string): TaskObject {
  const x = task(web, id, { slot: 1, nodeId: 'n1', state: 'assigned' });
  x.spec.networks = [{ networkId: 'front', address }];
  return x;
}

const front = (subnets: [string, string][]) => ({ id: 'front', name: 'front', vni: 4200, subnet: '10.1.0.0/16', internal: false, node_subnets: subnets.map(([node_id, subnet]) => ({ node_id, subnet })) });
const full = (subnets: [string, string][]): NetworksMessage => ({
  full: true,
  state: { node_id: 'n1', vip_range: '10.255.0.0/16', networks: [front(subnets)], nodes: [{ id: 'n1', underlay_addr: '10.99.0.11' }, { id: 'n2', underlay_addr: '10.99.0.12' }], services: [] },
  removed_networks: [],
  removed_nodes: [],
  removed_services: [],
});

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, f: () => Promise<boolean> | boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await wait(50);
  }
}

t.test('the agent keeps the plugin in step with the managers\' view and its tasks', async (t) => {
  const h = await lab.addHost('n1', '10.99.0.11');
  const plugin = h.plugin!.client;
  const logs: string[] = [];
  const sync = new NetworkSync({ socket: h.socket, nodeId: 'n1', log: (m) => logs.push(m), attachTimeoutMs: 60_000 });
  t.teardown(() => sync.stop());
  const saved = () => JSON.parse(readFileSync(join(h.stateDir, 'network-state.json'), 'utf8')) as { version: number; state: { attachments: { task_id: string }[]; nodes: { id: string }[] } };

  // A task assigned before the managers' view: it waits, and nothing reaches the plugin.
  const t1 = webTask('t1', '10.1.1.2');
  let attached1 = false;
  const a1 = sync.attach(t1, () => {}).then(() => (attached1 = true));
  await wait(500);
  t.equal((await plugin.status()).state_version, 0, 'nothing pushed before the first view');
  t.equal(attached1, false, 'the task waits for it');

  // The view arrives without this node's subnet of the network yet: still waiting.
  sync.onView(full([['n2', '10.1.2.0/24']]));
  await until('the first full state', async () => (await plugin.status()).state_version > 0);
  t.equal((await plugin.status()).ready, true, 'a full state: the plugin is ready');
  await wait(300);
  t.equal(attached1, false, 'the task still waits: its address is in no subnet of this node yet');

  // The node's subnet arrives: the attachment goes in, and a pod attaches with it.
  const before = (await plugin.status()).state_version;
  sync.onView({ full: false, state: { networks: [front([['n2', '10.1.2.0/24'], ['n1', '10.1.1.0/24']])], nodes: [], services: [] }, removed_networks: [], removed_nodes: [], removed_services: [] });
  await a1;
  t.ok((await plugin.status()).state_version > before, 'applied as deltas');
  t.same(saved().state.attachments.map((a) => a.task_id), ['t1'], 'the plugin holds t1\'s attachment');
  const pod1 = lab.makePodNs('t1');
  const r = await plugin.add({ pod: { container_id: 'ctr-t1', netns: nsPath(pod1), ifname: 'eth0', args: {}, pod_annotations: { 'shoal.io/task-id': 't1' } } });
  t.equal(r.result.ips[0]!.address, '10.1.1.2/24', 'CNI ADD found the task by its annotation and gave it its address');
  t.match(inNs(pod1, ['ip', '-4', 'addr', 'show', 'eth0']).stdout, /10\.1\.1\.2\/24/, 'the pod has it');
  t.same(sync.dnsServers(), ['169.254.53.53'], 'the resolver pods must use, from the plugin');

  // t1 ended and the managers gave its address to t2: t2 waits until t1's pod is gone.
  const t2 = webTask('t2', '10.1.1.2');
  let attached2 = false;
  const a2 = sync.attach(t2, () => {}).then(() => (attached2 = true));
  await wait(500);
  t.equal(attached2, false, 't2 waits while t1\'s pod holds 10.1.1.2');
  await plugin.del({ pod: { container_id: 'ctr-t1', netns: nsPath(pod1), ifname: 'eth0', args: {}, pod_annotations: {} } });
  sync.detach('t1');
  await a2;
  t.same(saved().state.attachments.map((a) => a.task_id), ['t2'], 't1\'s attachment went, t2\'s came');

  // A stopped task gives up its wait.
  const t3 = webTask('t3', '10.1.9.9');
  const gaveUp = await sync.attach(t3, () => {
    throw new Error('stop requested');
  }).then(() => 'attached', (e: Error) => e.message);
  t.equal(gaveUp, 'stop requested', 'a task stopped while waiting abandons the wait');

  // The plugin loses its state (restarted from nothing): the next delta is refused, a full state follows.
  await h.plugin!.stop();
  rmSync(join(h.stateDir, 'network-state.json'));
  await lab.startPlugin(h);
  t.equal((await h.plugin!.client.status()).state_version, 0, 'the restarted plugin holds nothing');
  sync.onView({ full: false, state: { networks: [], nodes: [], services: [] }, removed_networks: [], removed_nodes: ['n2'], removed_services: [] });
  await until('a full state after FAILED_PRECONDITION', async () => (await h.plugin!.client.status()).state_version > 0);
  t.same(saved().state.nodes.map((n) => n.id), ['n1'], 'the full state has the node marked down removed');
  t.same(saved().state.attachments.map((a) => a.task_id), ['t2'], 'and the attachments the agent holds');
  t.same(logs.filter((l) => /failed/.test(l)), [], 'a version mismatch is no failure worth a log line');
});

t.test('a pod nobody will tear down (its runtime killed while creating it) gives its address up to the task the managers gave it to', async (t) => {
  const h = await lab.addHost('k1', '10.99.0.21');
  const plugin = h.plugin!.client;
  const logs: string[] = [];
  const view: NetworksMessage = { full: true, state: { node_id: 'n1', vip_range: '10.255.0.0/16', networks: [front([['n1', '10.1.1.0/24']])], nodes: [{ id: 'n1', underlay_addr: h.address }], services: [] }, removed_networks: [], removed_nodes: [], removed_services: [] };
  const add = (task: string, ns: string) => plugin.add({ pod: { container_id: `ctr-${task}`, netns: nsPath(ns), ifname: 'eth0', args: {}, pod_annotations: { 'shoal.io/task-id': task } } });
  // The agent's first run: task x's pod gets 10.1.1.7 (CNI ADD done).
  const first = new NetworkSync({ socket: h.socket, nodeId: 'n1', log: (m) => logs.push(m), attachTimeoutMs: 60_000 });
  first.onView(view);
  await first.attach(webTask('x', '10.1.1.7'), () => {});
  const podX = lab.makePodNs('x');
  await add('x', podX);
  // shoald SIGKILLed with its runtime before the runtime recorded x's pod: the restarted agent
  // finds no pod of x (no hold, no attachment), the managers gave x up and 10.1.1.7 to task y.
  first.stop();
  const second = new NetworkSync({ socket: h.socket, nodeId: 'n1', log: (m) => logs.push(m), attachTimeoutMs: 60_000 });
  t.teardown(() => second.stop());
  second.onView(view);
  await second.attach(webTask('y', '10.1.1.7'), () => {});
  const podY = lab.makePodNs('y');
  const got = await add('y', podY).then((r) => r.result.ips[0]!.address, (e: { details?: string; message: string }) => `refused: ${e.details ?? e.message}`);
  t.equal(got, '10.1.1.7/24', "y's pod gets the address x's lost pod held (not refused as used by task x)");
  t.match(inNs(podY, ['ip', '-4', 'addr', 'show', 'eth0']).stdout, /10\.1\.1\.7\/24/, "y's pod has it");
  t.notMatch(inNs(podX, ['ip', '-4', 'addr']).stdout, /10\.1\.1\.7/, "x's lost pod no longer has it (its interface was removed)");
  const saved = JSON.parse(readFileSync(join(h.stateDir, 'network-state.json'), 'utf8')) as { endpoints: { taskId: string }[] };
  t.same(saved.endpoints.map((e) => e.taskId), ['y'], 'the plugin holds only y\'s pod');
  await plugin.del({ pod: { container_id: 'ctr-x', netns: nsPath(podX), ifname: 'eth0', args: {}, pod_annotations: {} } });
  t.pass("a late DEL of x's pod (the runtime removing it after all) succeeds");
  t.match(inNs(podY, ['ip', '-4', 'addr', 'show', 'eth0']).stdout, /10\.1\.1\.7\/24/, "and leaves y's pod its address");
});

t.test('nothing of the plugin is left in the machine\'s own namespace', async (t) => {
  await lab.close();
  t.same(shoalKernelObjects(), rootBefore, 'no shoal interface or nft table in the root namespace');
});
