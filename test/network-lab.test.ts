// The overlay network on one real lab (3 managers, 2 workers; real shoald, shoal-net, shoal-runtime
// running shoal-cni + portmap, runc containers), first healthy, then through faults (one lab for
// both: a lab's start and teardown is a good part of either's time).
// Healthy: the lab's demo is reachable by name from another task and on port 8080 of every node,
// the managers included (they run no task of it); tasks on different workers reach each other by
// address, by service name (VIP) and by tasks.SERVICE; the VIP spreads connections over every
// ready task and skips one whose readiness probe fails and one that stopped; two networks are
// isolated; an internal network has no way out; bad input is refused with a clear error and
// writes nothing; a network removed leaves no bridge on any node.
// Faults: a worker killed with SIGKILL disappears from every other node's data path (FDB entries,
// VIP backends in the pods, published-port backends) once the managers mark it down; its tasks'
// addresses are released, and when it comes back a new task reuses one only once the old pod
// holding it is gone; the leader killed during a burst of task creations (and again during a
// scale) never leads to one address held twice nor to a task failing for an address its node's
// lost pod held; and after `lab down` nothing of shoal's network is left on the machine.
import t from 'tap';
import { labName } from '../lab/names.js';
import { labNetnsList } from '../lab/netns.js';
import { LAB_IMAGE, REGISTRY_HOST } from '../lab/registry.js';
import { rootNet } from './lab-helpers.js';
import { Lab, converged, eventually, type TaskRow } from './services-helpers.js';
import { execTask, fdbPeers, firstAddress, httpFrom, httpFromHost, inHost, podRules, resolveFrom } from './network-helpers.js';
import { shoalKernelObjects } from './overlay-harness.js';

const rootBefore = rootNet();
const kernelBefore = shoalKernelObjects();

const lab = new Lab(t, 'net');
const W = ['--constraint', 'node.role==worker'];
const MANAGERS = ['manager-1', 'manager-2', 'manager-3'];
const NODES = [...MANAGERS, 'worker-1', 'worker-2'];
// A whole lab and many real containers: far more than tap's default per-file limit on a loaded machine.
t.setTimeout(40 * 60_000);

type Row = TaskRow & { ready: boolean | null; networks: { networkId: string; address: string }[] };

/** A web server task that answers its own name; `kill $(cat /tmp/pid)` stops it (its container ends). */
const SERVE = ['sh', '-c', 'mkdir -p /tmp/w && echo "$SHOAL_TASK_NAME" > /tmp/w/index.html && touch /tmp/ready && httpd -f -p 80 -h /tmp/w & echo $! > /tmp/pid; wait'];

t.before(async () => {
  const up = await lab.shoal(['lab', 'up', '--managers', '3', '--workers', '2', '--demo', '2'], 400_000);
  if (up.code !== 0) throw new Error(`lab up failed: ${up.stderr}\n${up.stdout}`);
});

async function rows(service: string): Promise<Row[]> {
  return (await lab.tasks(service)) as Row[];
}

async function live(service: string): Promise<Row[]> {
  return (await rows(service)).filter((x) => x.desiredState === 'running' && x.state === 'running');
}

async function create(args: string[]): Promise<void> {
  const r = await lab.shoal(['--lab', 'service', 'create', '--timeout', '5m', ...args]);
  if (r.code !== 0) throw new Error(`service create ${args.join(' ')}: ${r.stderr}${r.stdout}`);
}

async function inspect(kind: 'service' | 'network', name: string): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  return JSON.parse(await lab.ok(['--lab', kind, 'inspect', name, '--format', 'json']))[0];
}

/** N new connections to `url` from a task; the answers (task names), in order. */
async function answers(node: string, taskId: string, url: string, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push((await httpFrom(lab, node, taskId, url)) ?? 'no answer');
  return out;
}

let client: Row;

t.test('the demo: reachable by name from another task, and on port 8080 of every node', async (t) => {
  await create(['--name', 'client', '--replicas', '1', '--constraint', 'node.hostname==worker-1', LAB_IMAGE, 'sleep', '1000000']);
  client = (await live('client'))[0]!;
  t.ok(firstAddress(client).startsWith('10.0.'), `the client got an address on the default network (${firstAddress(client)})`);
  const body = await eventually('http://demo/ from the client', async () => httpFrom(lab, 'worker-1', client.id, 'http://demo/'));
  t.match(body, /hello from a shoal task/, 'the client reaches the demo by its name');
  const nodes = JSON.parse(await lab.ok(['--lab', 'node', 'ls', '--format', 'json'])) as { hostname: string; addr: string }[];
  const demoNodes = new Set((await live('demo')).map((x) => x.node));
  t.notOk(MANAGERS.some((m) => demoNodes.has(m)), 'the demo runs on the workers only');
  for (const n of nodes) {
    const addr = n.addr.replace(/:\d+$/, '');
    for (const from of NODES) {
      const r = await eventually(`${n.hostname}:8080 from ${from}`, async () => httpFromHost(lab, from, `http://${addr}:8080/`));
      t.match(r, /hello from a shoal task/, `${n.hostname}'s port 8080 answers (asked from ${from})${MANAGERS.includes(n.hostname) ? ': a node with no task of it' : ''}`);
    }
  }
});

t.test('tasks on different workers: by address, by VIP name, by tasks.SERVICE; the VIP spreads over ready tasks only', async (t) => {
  await create(['--name', 'web', '--replicas', '3', ...W, '--readiness', 'exec:test -f /tmp/ready', '--readiness-period', '1s', '--restart-condition', 'none', LAB_IMAGE, ...SERVE]);
  await eventually('web: 3 running and ready', async () => {
    const l = await live('web');
    return l.length === 3 && l.every((x) => x.ready === true);
  });
  const web = await live('web');
  const on1 = web.find((x) => x.node === 'worker-1')!;
  const on2 = web.find((x) => x.node === 'worker-2')!;
  t.ok(on1 && on2, 'web runs on both workers');
  t.equal(await httpFrom(lab, 'worker-1', client.id, `http://${firstAddress(on2)}/`), on2.name, `the client on worker-1 reaches ${on2.name} on worker-2 by its address ${firstAddress(on2)}`);
  t.equal(await httpFrom(lab, 'worker-2', on2.id, `http://${firstAddress(on1)}/`), on1.name, `and ${on2.name} on worker-2 reaches ${on1.name} on worker-1 by address`);
  const vip = (await inspect('service', 'web')).virtualIps[0].address as string;
  t.ok(vip.startsWith('10.255.'), `web has a VIP (${vip})`);
  t.same(await resolveFrom(lab, 'worker-1', client.id, 'web'), [vip], 'the name web resolves to its VIP');
  t.same(await resolveFrom(lab, 'worker-1', client.id, 'tasks.web'), web.map(firstAddress).sort(), 'tasks.web to the addresses of its 3 tasks');
  const all = await answers('worker-1', client.id, 'http://web/', 12);
  t.same([...new Set(all)].sort(), web.map((x) => x.name).sort(), `12 connections to the VIP reached all 3 tasks (${all.join(' ')})`);

  // One task stops passing its readiness probe: the VIP skips it, tasks.web leaves it out.
  const [unready, stopped, kept] = [on1, on2, web.find((x) => x !== on1 && x !== on2)!];
  t.equal((await execTask(lab, unready.node!, unready.id, ['rm', '/tmp/ready'])).code, 0, `${unready.name}'s readiness file removed`);
  await eventually(`${unready.name} reported not ready`, async () => (await rows('web')).find((x) => x.id === unready.id)?.ready === false);
  await eventually(`the client's VIP rules without ${unready.name}`, async () => !(await podRules(lab, 'worker-1', client.id)).includes(firstAddress(unready)));
  const a2 = await answers('worker-1', client.id, 'http://web/', 12);
  t.notOk(a2.includes(unready.name), `12 connections, none to the unready ${unready.name} (${a2.join(' ')})`);
  t.same([...new Set(a2)].sort(), [stopped.name, kept.name].sort(), 'the two ready ones share them');
  t.notOk((await resolveFrom(lab, 'worker-1', client.id, 'tasks.web'))?.includes(firstAddress(unready)), 'tasks.web leaves it out');

  // Another one stops: its container ends (restart condition none), and it gets no connection.
  // The exec's own exit is not the property: the server's death ends the container's init, and
  // the kernel then kills every process of the pod's PID namespace, the exec's shell included,
  // which at load may happen before that shell exits 0 (CI saw it). The container ending is.
  const kill = await execTask(lab, stopped.node!, stopped.id, ['sh', '-c', 'kill $(cat /tmp/pid)']);
  await eventually(`${stopped.name} ended`, async () => ['failed', 'complete'].includes((await rows('web')).find((x) => x.id === stopped.id)?.state ?? ''));
  t.pass(`${stopped.name}'s server killed, its task ended (the kill's exec: exit ${kill.code}${kill.out ? `, ${kill.out}` : ''})`);
  await eventually(`the client's VIP rules without ${stopped.name}`, async () => !(await podRules(lab, 'worker-1', client.id)).includes(firstAddress(stopped)));
  const a3 = await answers('worker-1', client.id, 'http://web/', 8);
  t.same([...new Set(a3)], [kept.name], `8 connections, all to the one ready task left (${a3.join(' ')})`);
  await lab.ok(['--lab', 'service', 'rm', 'web']);
});

t.test('two networks are isolated; an internal network has no way out', async (t) => {
  t.equal((await lab.shoal(['--lab', 'network', 'create', 'iso-a'])).code, 0, 'network iso-a');
  t.equal((await lab.shoal(['--lab', 'network', 'create', '--subnet', '10.42.0.0/16', 'iso-b'])).code, 0, 'network iso-b with a subnet of its choice');
  t.equal((await lab.shoal(['--lab', 'network', 'create', '--internal', 'inside'])).code, 0, 'network inside, internal');
  await create(['--name', 'sa', '--replicas', '1', '--network', 'iso-a', '--constraint', 'node.hostname==worker-1', LAB_IMAGE, ...SERVE]);
  await create(['--name', 'sb', '--replicas', '1', '--network', 'iso-b', '--constraint', 'node.hostname==worker-1', LAB_IMAGE, ...SERVE]);
  await create(['--name', 'pa', '--replicas', '1', '--network', 'iso-a', '--constraint', 'node.hostname==worker-2', LAB_IMAGE, 'sleep', '1000000']);
  await create(['--name', 'pin', '--replicas', '1', '--network', 'inside', '--constraint', 'node.hostname==worker-2', LAB_IMAGE, ...SERVE]);
  const [sa, sb, pa, pin] = [(await live('sa'))[0]!, (await live('sb'))[0]!, (await live('pa'))[0]!, (await live('pin'))[0]!];
  t.ok(firstAddress(sb).startsWith('10.42.'), `sb's address is in iso-b's subnet (${firstAddress(sb)})`);
  t.equal(await eventually('sa by name from pa', async () => httpFrom(lab, 'worker-2', pa.id, 'http://sa/')), sa.name, 'pa reaches sa (same network, another worker) by name');
  t.equal(await httpFrom(lab, 'worker-2', pa.id, `http://${firstAddress(sb)}/`, 3), undefined, 'pa cannot reach sb (another network) by its address');
  t.equal(await httpFrom(lab, 'worker-2', pa.id, `http://${(await inspect('service', 'sb')).virtualIps[0].address}/`, 3), undefined, 'nor by its VIP');
  t.equal(await resolveFrom(lab, 'worker-2', pa.id, 'sb'), undefined, 'and the name sb means nothing on iso-a');
  t.equal(await httpFrom(lab, 'worker-1', client.id, `http://${firstAddress(sa)}/`, 3), undefined, 'the client on the default network cannot reach sa');
  const registry = `http://${REGISTRY_HOST}/v2/`;
  t.not(await httpFrom(lab, 'worker-2', pa.id, registry), undefined, `pa (a network with a way out) reaches ${REGISTRY_HOST} outside the cluster`);
  t.equal(await httpFrom(lab, 'worker-2', pin.id, registry, 3), undefined, 'pin (internal) has no way out');
  t.equal(await httpFromHost(lab, 'worker-2', `http://${firstAddress(pin)}/`), pin.name, 'while its node still reaches it (probes use the pod\'s address)');
});

t.test('bad input: a clear error, and nothing written', async (t) => {
  const list = async (kind: string) => (JSON.parse(await lab.ok(['--lab', kind, 'ls', '--format', 'json'])) as { name: string; version: number }[]).map((x) => `${x.name}@${x.version}`);
  const state = async () => JSON.stringify([await list('network'), await list('service')]);
  const before = await state();
  const refused = async (args: string[], code: number, msg: RegExp, what: string) => {
    const r = await lab.shoal(['--lab', ...args]);
    t.equal(r.code, code, `${what}: exit ${code}`);
    t.match(r.stderr, msg, `  ${r.stderr.trim()}`);
  };
  await refused(['network', 'create', '--subnet', '10.0.0.0/24', 'x1'], 1, /subnet 10\.0\.0\.0\/24 overlaps network default \(10\.0\.0\.0\/16\)/, 'an overlapping subnet');
  await refused(['network', 'create', '--subnet', '10.42.128.0/17', 'x2'], 1, /overlaps network iso-b/, 'a subnet inside another network\'s');
  await refused(['network', 'create', '--subnet', '192.168.7.0/24', 'x3'], 1, /outside the address pool 10\.0\.0\.0\/8/, 'a subnet outside the pool');
  await refused(['network', 'create', '--subnet', '10.99.0.0/16', 'x4'], 1, /overlaps the reserved range 10\.99\.0\.0\/24/, "the nodes' own underlay");
  await refused(['network', 'create', 'iso-a'], 1, /a network named iso-a exists already/, 'a name taken');
  await refused(['service', 'create', '--name', 'x5', '--publish', '8080:80', LAB_IMAGE, 'sleep', '1'], 1, /port 8080\/tcp is already published by service demo/, 'a published port already taken');
  await refused(['service', 'create', '--name', 'x6', '--network', 'nope', LAB_IMAGE, 'sleep', '1'], 1, /no network "nope"/, 'an unknown network');
  await refused(['service', 'create', '--name', 'x7', '--network', 'inside', '--publish', '9999:80', LAB_IMAGE, 'sleep', '1'], 1, /publishes ports but all its networks are internal/, 'ports on an internal network only');
  await refused(['service', 'create', '--name', 'x8', '--publish', '80', LAB_IMAGE, 'sleep', '1'], 2, /--publish must be PUBLISHED:TARGET/, 'a --publish without a target');
  await refused(['network', 'rm', 'iso-a'], 1, /network iso-a is used by service\(s\) pa, sa/, 'a network in use');
  t.equal(await state(), before, 'networks and services are as they were');
});

t.test('a network removed once its services are: no bridge of it left on any node', async (t) => {
  const vni = (await inspect('network', 'iso-b')).vni as number;
  t.equal(inHost(lab, 'worker-1', ['ip', 'link', 'show', `shbr-${vni}`]).code, 0, `worker-1 has iso-b's bridge shbr-${vni}`);
  await lab.ok(['--lab', 'service', 'rm', 'sb']);
  await eventually('network rm iso-b once sb\'s task stopped', async () => (await lab.shoal(['--lab', 'network', 'rm', 'iso-b'])).code === 0);
  t.notOk((await lab.ok(['--lab', 'network', 'ls'])).includes('iso-b'), 'gone from network ls');
  for (const n of NODES) await eventually(`no shbr-${vni} or shvx-${vni} on ${n}`, async () => inHost(lab, n, ['ip', 'link', 'show', `shbr-${vni}`]).code !== 0 && inHost(lab, n, ['ip', 'link', 'show', `shvx-${vni}`]).code !== 0);
  t.pass(`no node has shbr-${vni} or its VXLAN device any more`);
});

// The faults below start from a lab with no service: a task of the healthy part coming back to a
// worker would take the lowest free address there, which the reuse check expects for the new tasks.
t.test('the healthy part\'s services removed: their tasks end and give their addresses back', async (t) => {
  const names = ['demo', 'client', 'sa', 'pa', 'pin'];
  await lab.ok(['--lab', 'service', 'rm', ...names]);
  const holding = ['new', 'pending', 'assigned', 'accepted', 'preparing', 'starting', 'running'];
  await eventually('every task of the removed services ended', async () => (JSON.parse(await lab.ok(['--lab', 'task', 'ls', '--format', 'json'])) as (Row & { service: string })[]).every((x) => !names.includes(x.service) || !holding.includes(x.state)));
  t.pass(`${names.join(', ')} removed, none of their tasks holds an address`);
});

const ALL = NODES;
const SERVE_ONLY = ['sh', '-c', 'mkdir -p /tmp/w && echo "$SHOAL_TASK_NAME" > /tmp/w/index.html && exec httpd -f -p 80 -h /tmp/w'];

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
  await lab.ok(['--lab', 'service', 'create', '--timeout', '5m', '--name', 'fw', '--replicas', '4', '--constraint', 'node.role==worker', '--publish', '8081:80', LAB_IMAGE, ...SERVE_ONLY]);
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
  // Slots, not rows: by the time a new leader answers it may have replaced the dead one's tasks.
  const placedBefore = new Set((await eventually('a new leader answering', async () => rows('burst').catch(() => undefined))).filter((x) => x.networks?.length > 0).map((x) => x.slot)).size;
  t.comment(`${placedBefore} of 30 slots had a task with its address when a new leader answered`);
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
  // A pod its node's runtime never recorded (killed mid-RunPodSandbox) must not keep its address.
  const refused = (await rows('burst')).filter((x) => /is already used by task/.test(x.error ?? ''));
  t.same(refused.map((x) => `${x.name} on ${x.node}: ${x.error}`), [], 'no task failed for an address a lost pod of its node held');
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
