// The overlay network through faults on a real lab (3 managers, 2 workers): a worker killed with
// SIGKILL disappears from every other node's data path (FDB entries, VIP backends in the pods,
// published-port backends) once the managers mark it down; its tasks' addresses are released,
// and when it comes back a new task reuses one only once the old pod holding it is gone; the
// leader killed during a burst of task creations never leads to one address held twice; and after
// `lab down` nothing of shoal's network is left on the machine.
import t from 'tap';
import { labName } from '../lab/names.js';
import { labNetnsList } from '../lab/netns.js';
import { LAB_IMAGE } from '../lab/registry.js';
import { rootNet } from './lab-helpers.js';
import { fdbPeers, firstAddress, httpFrom, inHost, podRules } from './network-helpers.js';
import { shoalKernelObjects } from './overlay-harness.js';
import { Lab, converged, eventually, type TaskRow } from './services-helpers.js';

const rootBefore = rootNet();
const kernelBefore = shoalKernelObjects();
const lab = new Lab(t, 'netf');
const ALL = ['manager-1', 'manager-2', 'manager-3', 'worker-1', 'worker-2'];
t.setTimeout(40 * 60_000);

type Row = TaskRow & { networks: { networkId: string; address: string }[] };
const SERVE = ['sh', '-c', 'mkdir -p /tmp/w && echo "$SHOAL_TASK_NAME" > /tmp/w/index.html && exec httpd -f -p 80 -h /tmp/w'];

t.before(async () => {
  const up = await lab.shoal(['lab', 'up', '--managers', '3', '--workers', '2', '--demo', '0'], 400_000);
  if (up.code !== 0) throw new Error(`lab up failed: ${up.stderr}\n${up.stdout}`);
});

async function rows(service: string): Promise<Row[]> {
  return (await lab.tasks(service)) as Row[];
}

async function leader(): Promise<string> {
  const r = JSON.parse(await lab.ok(['--lab', 'node', 'ls', '--format', 'json'])) as { hostname: string; managerStatus: { leader: boolean } | null }[];
  return r.find((x) => x.managerStatus?.leader)!.hostname;
}

/** Live tasks' addresses held twice (network/address -> tasks), across every service. */
async function duplicates(): Promise<string[]> {
  const all = JSON.parse(await lab.ok(['--lab', 'task', 'ls', '--format', 'json'])) as Row[];
  const held = new Map<string, string[]>();
  for (const x of all) {
    if (!['assigned', 'accepted', 'preparing', 'starting', 'running'].includes(x.state)) continue;
    for (const a of x.networks ?? []) held.set(`${a.networkId}/${a.address}`, [...(held.get(`${a.networkId}/${a.address}`) ?? []), x.name]);
  }
  return [...held].filter(([, v]) => v.length > 1).map(([k, v]) => `${k}: ${v.join(', ')}`);
}

t.test('a worker killed with SIGKILL: gone from every node\'s data path; its addresses reused only once its pods are gone', async (t) => {
  const w1 = lab.node('worker-1').address;
  // Published, so every node (the managers too) has a subnet of the network: every node peers with worker-1.
  await lab.ok(['--lab', 'service', 'create', '--timeout', '5m', '--name', 'fw', '--replicas', '4', '--constraint', 'node.role==worker', '--publish', '8081:80', LAB_IMAGE, ...SERVE]);
  await lab.ok(['--lab', 'service', 'create', '--timeout', '5m', '--name', 'fc', '--replicas', '1', '--constraint', 'node.hostname==worker-2', LAB_IMAGE, 'sleep', '1000000']);
  const client = (await rows('fc')).find((x) => x.state === 'running')!;
  const onW1 = (await rows('fw')).filter((x) => x.node === 'worker-1' && x.state === 'running');
  t.ok(onW1.length > 0, `worker-1 runs ${onW1.length} task(s) of fw (${onW1.map(firstAddress).join(', ')})`);
  for (const n of ALL.filter((x) => x !== 'worker-1')) await eventually(`an FDB entry to worker-1 on ${n}`, async () => fdbPeers(lab, n).includes(w1));
  t.pass(`the other 4 nodes have an FDB entry to worker-1 (${w1})`);
  await eventually('the client pod\'s VIP rules list worker-1\'s tasks', async () => {
    const r = await podRules(lab, 'worker-2', client.id);
    return onW1.every((x) => r.includes(firstAddress(x)));
  });
  t.pass("the client pod's VIP rules send to worker-1's tasks");

  t.equal((await lab.shoal(['lab', 'stop', 'worker-1', '--signal', 'KILL'])).code, 0, 'SIGKILL worker-1');
  const t0 = Date.now();
  for (const n of ALL.filter((x) => x !== 'worker-1')) await eventually(`no FDB entry to worker-1 on ${n}`, async () => !fdbPeers(lab, n).includes(w1), 180_000);
  t.comment(`network-faults: worker-1's FDB entries gone from the other 4 nodes ${((Date.now() - t0) / 1000).toFixed(1)} s after its SIGKILL (polled; not a timing assertion)`);
  t.pass('no other node sends VXLAN to worker-1 any more');
  await eventually("the client pod's VIP rules without worker-1's tasks", async () => {
    const r = await podRules(lab, 'worker-2', client.id);
    return r.length > 0 && onW1.every((x) => !r.includes(firstAddress(x)));
  });
  t.pass("worker-1's tasks are no VIP backend in the client's pod any more");
  await eventually("manager-1's published port without worker-1's tasks", async () => {
    const r = inHost(lab, 'manager-1', ['nft', 'list', 'chain', 'ip', 'shoal', 'prerouting']).out;
    return r.includes('8081') && onW1.every((x) => !r.includes(`${firstAddress(x)}`));
  });
  t.pass("nor a backend of the published port on manager-1");
  await eventually('fw back to 4 running tasks on worker-2', async () => converged(await rows('fw'), 4));
  const gone = (await rows('fw')).filter((x) => onW1.some((o) => o.id === x.id));
  t.ok(gone.every((x) => x.state === 'orphaned'), "worker-1's tasks were given up (orphaned): their addresses are released");
  const net = JSON.parse(await lab.ok(['--lab', 'network', 'inspect', 'default', '--format', 'json']))[0] as { addressesInUse: number };
  const liveCount = (JSON.parse(await lab.ok(['--lab', 'task', 'ls', '--format', 'json'])) as Row[]).filter((x) => ['assigned', 'accepted', 'preparing', 'starting', 'running'].includes(x.state)).length;
  t.equal(net.addressesInUse, liveCount, `the default network counts only live tasks' addresses (${net.addressesInUse})`);

  // Back: its old pods still hold those addresses until its agent tears them down; the new tasks
  // placed there get the same addresses (the lowest free ones) and wait for that.
  t.equal((await lab.shoal(['lab', 'start', 'worker-1'])).code, 0, 'worker-1 back');
  await eventually('worker-1 ready', async () => (JSON.parse(await lab.ok(['--lab', 'node', 'ls', '--format', 'json'])) as { hostname: string; status: string }[]).some((n) => n.hostname === 'worker-1' && n.status === 'ready'));
  await lab.ok(['--lab', 'service', 'scale', 'fw=' + (4 + onW1.length), '--timeout', '5m']);
  const fresh = (await rows('fw')).filter((x) => x.node === 'worker-1' && x.state === 'running' && x.desiredState === 'running');
  t.same(fresh.map(firstAddress).sort(), onW1.map(firstAddress).sort(), `the new tasks on worker-1 reuse the released addresses (${fresh.map(firstAddress).join(', ')})`);
  t.equal(fresh.length, onW1.length, 'and run');
  for (const x of fresh) t.equal(await httpFrom(lab, 'worker-2', client.id, `http://${firstAddress(x)}/`), x.name, `${firstAddress(x)} answers as the new ${x.name}: the old pod no longer holds it`);
  t.same(await duplicates(), [], 'no address held twice');
  await lab.ok(['--lab', 'service', 'rm', 'fw', 'fc']);
});

t.test('the leader killed during a burst of task creations: no address held twice', async (t) => {
  const old = await leader();
  const c = await lab.shoal(['--lab', 'service', 'create', '--name', 'burst', '--replicas', '30', '--detach', LAB_IMAGE, 'sleep', '1000000']);
  t.equal(c.code, 0, 'create acknowledged');
  await eventually('the first tasks placed', async () => (await rows('burst')).some((x) => x.networks?.length > 0), 60_000, 50);
  t.equal((await lab.shoal(['lab', 'stop', old, '--signal', 'KILL'])).code, 0, `SIGKILL the leader ${old} while the tasks are being placed`);
  const placedBefore = (await eventually('a new leader answering', async () => rows('burst').catch(() => undefined))).filter((x) => x.networks?.length > 0).length;
  t.comment(`${placedBefore} of 30 tasks had their addresses when the leader died`);
  await eventually('30 running tasks', async () => converged(await rows('burst'), 30), 600_000);
  t.same(await duplicates(), [], 'no address held by two live tasks');
  t.equal((await lab.shoal(['lab', 'start', old])).code, 0, `${old} back`);
  // Killing the next leader leaves two managers: the one back must be in raft again first.
  await eventually(`${old} reachable in raft again`, async () => (JSON.parse(await lab.ok(['--lab', 'node', 'ls', '--format', 'json'])) as { hostname: string; managerStatus: { reachability: string } | null }[]).some((n) => n.hostname === old && n.managerStatus?.reachability === 'reachable'));
  const s2 = await lab.shoal(['--lab', 'service', 'scale', 'burst=40', '--detach']);
  t.equal(s2.code, 0, 'scale to 40');
  const again = await leader();
  t.equal((await lab.shoal(['lab', 'stop', again, '--signal', 'KILL'])).code, 0, `SIGKILL the new leader ${again} during the scale`);
  await eventually('40 running tasks', async () => converged(await rows('burst'), 40), 600_000);
  t.same(await duplicates(), [], 'still no address held twice');
  const net = JSON.parse(await lab.ok(['--lab', 'network', 'inspect', 'default', '--format', 'json']))[0] as { nodeSubnets: { node: string; subnet: string }[] };
  const subnetOf = new Map(net.nodeSubnets.map((s) => [s.node, s.subnet.replace(/\.0\/24$/, '.')]));
  const misplaced = (await rows('burst')).filter((x) => x.state === 'running' && !firstAddress(x).startsWith(subnetOf.get(x.node!) ?? '?'));
  t.same(misplaced.map((x) => x.name), [], "every task's address lies in its own node's subnet");
  t.equal((await lab.shoal(['lab', 'start', again])).code, 0, `${again} back`);
  await lab.ok(['--lab', 'service', 'rm', 'burst']);
});

t.test('after lab down nothing of shoal\'s network is left on the machine', async (t) => {
  const dir = lab.dir;
  const down = await lab.shoal(['lab', 'down'], 300_000);
  t.equal(down.code, 0, `lab down (${down.stderr.trim() || 'ok'})`);
  t.same(labNetnsList(labName(dir)), [], 'no namespace of the lab (hosts, bridge, registry)');
  t.same(shoalKernelObjects(), kernelBefore, 'no shoal bridge, VXLAN device, veth or nft table in the machine\'s own namespace');
  t.same(rootNet(), rootBefore, 'its links, addresses and routes are as they were');
});
