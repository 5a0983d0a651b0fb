// What a task says while its network attachment waits (node/agent/network.ts): each reason in
// turn (no view yet, its node's subnet not there yet, its address still held by another pod, the
// plugin not taking it), naming the network and the address, said once per change, and the same
// reason in the error when the wait gives up. No plugin runs: its `ready` never resolves, as while
// shoald's network plugin has not started, so nothing is pushed and only the waiting is seen (the
// pushes themselves are test/network-agent.test.ts's, against a real shoal-net).
import t from 'tap';
import type { NetworksMessage } from '../../manager/dispatcher/network-view.js';
import { replicated, service, task } from '../../manager/orchestrator/fixtures.js';
import type { TaskObject } from '../../manager/services/model.js';
import { NetworkSync } from './network.js';

const web = service('web', replicated(1));
function webTask(id: string, address: string): TaskObject {
  const x = task(web, id, { slot: 1, nodeId: 'n1', state: 'assigned' });
  x.spec.networks = [{ networkId: 'netfront1', address }];
  return x;
}
const view = (subnets: [string, string][]): NetworksMessage => ({
  full: true,
  state: { node_id: 'n1', vip_range: '10.255.0.0/16', networks: [{ id: 'netfront1', name: 'front', vni: 4200, subnet: '10.1.0.0/16', internal: false, node_subnets: subnets.map(([node_id, subnet]) => ({ node_id, subnet })) }], nodes: [{ id: 'n1', underlay_addr: '10.99.0.11' }], services: [] },
  removed_networks: [],
  removed_nodes: [],
  removed_services: [],
});
const never = new Promise<void>(() => {});
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, f: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await wait(20);
  }
}

function newSync(attachTimeoutMs: number): NetworkSync {
  return new NetworkSync({ socket: `/nonexistent/shoal-netwait-${process.pid}.sock`, nodeId: 'n1', log: () => {}, attachTimeoutMs, ready: never });
}

t.test('each reason the attachment waits for is said, naming the network and the address', async (t) => {
  const sync = newSync(60_000);
  t.teardown(() => sync.stop());
  const said: string[] = [];
  let stop = false;
  const done = sync.attach(webTask('t1', '10.1.1.2'), () => {
    if (stop) throw new Error('stopped by the test');
  }, (m) => said.push(m));
  const outcome = done.then(() => 'attached', (e: Error) => e.message);

  await until('the first message', () => said.length >= 1);
  t.equal(said[0], 'waiting for network attachment netfront1 (address 10.1.1.2): no view of the cluster from the managers yet', 'before any view: the network by its id');

  sync.onView(view([['n2', '10.1.2.0/24']]));
  await until('the second message', () => said.length >= 2);
  t.match(said[1], /^waiting for network attachment front \(address 10\.1\.1\.2\): this node's subnet of network front \(holding 10\.1\.1\.2\) has not reached it yet/, 'the view names the network; this node has no subnet of it yet');

  sync.hold('t0', ['10.1.1.2']);
  sync.onView(view([['n1', '10.1.1.0/24'], ['n2', '10.1.2.0/24']]));
  await until('the third message', () => said.length >= 3);
  t.match(said[2], /^waiting for network attachment front \(address 10\.1\.1\.2\): address 10\.1\.1\.2 is still held by task t0's pod \(found after the agent's restart\) on this node/, 'its address is still held by an earlier pod');

  // The same reason is not said again at once (each message is a status write to the managers).
  await wait(2500);
  t.equal(said.length, 3, 'a reason that lasts is not repeated within 10 s');

  sync.detach('t0');
  await until('the plugin message', () => said.length >= 4);
  t.match(said[3], /^waiting for the network plugin to take its attachment \(front 10\.1\.1\.2\) \(\d+ s of at most 60 s\)$/, 'then the plugin (not serving) is what it waits for, with how long so far');

  stop = true;
  t.equal(await outcome, 'stopped by the test', 'a stopped task ends the wait');
});

t.test('a wait that gives up says what it waited for', async (t) => {
  const sync = newSync(1200);
  t.teardown(() => sync.stop());
  sync.onView(view([['n2', '10.1.2.0/24']]));
  await t.rejects(sync.attach(webTask('t1', '10.1.1.2'), () => {}), /^its network attachment front \(address 10\.1\.1\.2\) could not be made within 1\.2 s: this node's subnet of network front \(holding 10\.1\.1\.2\) has not reached it yet$/);
});

t.test('a task without a network address is refused at once, with why', async (t) => {
  const sync = newSync(60_000);
  t.teardown(() => sync.stop());
  const x = webTask('t1', '10.1.1.2');
  x.spec.networks = [];
  await t.rejects(sync.attach(x, () => {}), /the task has no network address \(its placement gave it none\)/);
});
