// The overlay network on a real lab (1 manager, 2 workers; real shoald, shoal-net, shoal-runtime
// running shoal-cni + portmap, runc containers): the lab's demo is reachable by name from another
// task and on port 8080 of every node, the manager included (it runs no task); tasks on different
// workers reach each other by address, by service name (VIP) and by tasks.SERVICE; the VIP spreads
// connections over every ready task and skips one whose readiness probe fails and one that
// stopped; two networks are isolated; an internal network has no way out; bad input is refused
// with a clear error and writes nothing; a network removed leaves no bridge on any node.
import t from 'tap';
import { LAB_IMAGE, REGISTRY_HOST } from '../lab/registry.js';
import { Lab, eventually, type TaskRow } from './services-helpers.js';
import { execTask, firstAddress, httpFrom, httpFromHost, inHost, podRules, resolveFrom } from './network-helpers.js';

const lab = new Lab(t, 'net');
const W = ['--constraint', 'node.role==worker'];
const NODES = ['manager-1', 'worker-1', 'worker-2'];
// A whole lab and many real containers: far more than tap's default per-file limit on a loaded machine.
t.setTimeout(40 * 60_000);

type Row = TaskRow & { ready: boolean | null; networks: { networkId: string; address: string }[] };

/** A web server task that answers its own name; `kill $(cat /tmp/pid)` stops it (its container ends). */
const SERVE = ['sh', '-c', 'mkdir -p /tmp/w && echo "$SHOAL_TASK_NAME" > /tmp/w/index.html && touch /tmp/ready && httpd -f -p 80 -h /tmp/w & echo $! > /tmp/pid; wait'];

t.before(async () => {
  const up = await lab.shoal(['lab', 'up', '--managers', '1', '--workers', '2', '--demo', '2'], 400_000);
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
  t.notOk(demoNodes.has('manager-1'), 'the demo runs on the workers only');
  for (const n of nodes) {
    const addr = n.addr.replace(/:\d+$/, '');
    for (const from of NODES) {
      const r = await eventually(`${n.hostname}:8080 from ${from}`, async () => httpFromHost(lab, from, `http://${addr}:8080/`));
      t.match(r, /hello from a shoal task/, `${n.hostname}'s port 8080 answers (asked from ${from})${n.hostname === 'manager-1' ? ': a node with no task of it' : ''}`);
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
  t.equal((await execTask(lab, stopped.node!, stopped.id, ['sh', '-c', 'kill $(cat /tmp/pid)'])).code, 0, `${stopped.name}'s server killed`);
  await eventually(`${stopped.name} ended`, async () => ['failed', 'complete'].includes((await rows('web')).find((x) => x.id === stopped.id)?.state ?? ''));
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
