// The lab's network machinery on its own (no shoald): namespaces, bridge, veths, addresses,
// reachability between hosts, a process started in a host, the root namespace left untouched,
// and `lab down` removing everything, also after `lab up` was killed half-way or its state file
// was lost. Plus the lab CLI's refusals of bad input.
import t from 'tap';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { labDown } from '../lab/down.js';
import { bridgeNetns, labName } from '../lab/names.js';
import { labNetnsList, pidInNetns, procState } from '../lab/netns.js';
import { buildNetwork } from '../lab/network.js';
import { planLab } from '../lab/plan.js';
import { isAlive, sleep, startDetached } from '../lab/procs.js';
import { MARKER_FILE, STATE_FILE, ensureDir, readState, writeState } from '../lab/state.js';
import { SHOALD_MAIN } from '../lab/shoald.js';
import { labCli, labDirFor, rootNet, sh } from './lab-helpers.js';

const HTTP_SERVER = `require('http').createServer((q, s) => s.end('hello from ' + process.argv[1])).listen(8080, process.argv[1])`;

/** Builds a lab's network through the library (what `lab up` does before it starts daemons). */
function buildLab(dir: string, managers: number, workers: number) {
  const s = planLab(dir, managers, workers);
  ensureDir(s.labDir);
  writeFileSync(join(s.labDir, MARKER_FILE), 'test\n');
  writeState(s);
  buildNetwork(s, () => {});
  return s;
}

async function fetchIn(netns: string, url: string): Promise<string> {
  const end = Date.now() + 30_000;
  let last = '';
  while (Date.now() < end) {
    const r = sh(['ip', 'netns', 'exec', netns, process.execPath, '-e', `fetch(${JSON.stringify(url)}).then(r => r.text()).then(t => process.stdout.write(t), e => { console.error(e.cause?.code ?? e.message); process.exit(1) })`]);
    if (r.status === 0) return r.stdout;
    last = r.stderr.trim();
    await sleep(100);
  }
  throw new Error(`${url} not reachable from ${netns}: ${last}`);
}

t.test('hosts on the bridge reach each other; the root namespace gets nothing; down removes all', async (t) => {
  const dir = labDirFor(t, 'net');
  const before = rootNet();
  const s = buildLab(dir, 2, 1);
  const [a, b, c] = s.nodes as [typeof s.nodes[0], typeof s.nodes[0], typeof s.nodes[0]];

  t.same(labNetnsList(s.name).sort(), [s.bridgeNetns, a.netns, b.netns, c.netns].sort(), 'bridge namespace and one namespace per host');
  const brLinks = JSON.parse(sh(['ip', '-n', s.bridgeNetns, '-j', 'link', 'show']).stdout) as { ifname: string; master?: string; operstate: string }[];
  t.ok(brLinks.some((l) => l.ifname === 'br0'), 'br0 in the bridge namespace');
  for (const n of s.nodes) {
    const port = brLinks.find((l) => l.ifname === n.port);
    t.equal(port?.master, 'br0', `${n.port} is a port of br0`);
    const addrs = JSON.parse(sh(['ip', '-n', n.netns, '-j', 'addr', 'show', 'dev', 'eth0']).stdout) as { addr_info: { family: string; local: string }[]; operstate: string }[];
    t.ok(addrs[0]?.addr_info.some((x) => x.family === 'inet' && x.local === n.address), `${n.name} has ${n.address} on eth0`);
    const lo = JSON.parse(sh(['ip', '-n', n.netns, '-j', 'link', 'show', 'dev', 'lo']).stdout) as { flags: string[] }[];
    t.ok(lo[0]?.flags.includes('UP'), `${n.name}'s loopback is up`);
  }

  // Reachability across the bridge, both ways.
  for (const [from, to] of [[a, b], [b, c], [c, a]] as const) {
    const r = sh(['ip', 'netns', 'exec', from.netns, 'busybox', 'ping', '-c', '1', '-W', '5', to.address]);
    t.equal(r.status, 0, `${from.name} pings ${to.name} (${to.address}): ${r.stderr.trim()}`);
  }

  // A long-running process in one host, reached from another host over TCP.
  const log = join(s.labDir, 'server.log');
  const server = await startDetached(b.netns, [process.execPath, '-e', HTTP_SERVER, b.address], log);
  t.ok(pidInNetns(server.pid, b.netns), 'the server runs in its host namespace (ip netns exec execs in place)');
  t.equal(await fetchIn(a.netns, `http://${b.address}:8080/`), `hello from ${b.address}`, `${a.name} reaches the server on ${b.name}`);

  // No way out: a host has no route beyond the lab subnet (asking the kernel sends nothing), and
  // the bridge namespace has no address at all.
  for (const n of s.nodes) {
    const r = sh(['ip', '-n', n.netns, 'route', 'get', '203.0.113.1']);
    t.not(r.status, 0, `${n.name} has no route to an outside address`);
    t.match(r.stderr, /unreachable/i, `  (${r.stderr.trim()})`);
  }
  const brAddrs = JSON.parse(sh(['ip', '-n', s.bridgeNetns, '-4', '-j', 'addr', 'show']).stdout) as { ifname: string; addr_info: unknown[] }[];
  t.same(brAddrs.filter((l) => l.ifname !== 'lo' && l.addr_info.length > 0), [], 'the bridge namespace holds no IPv4 address');

  // The root namespace has no lab link, address or route.
  const during = rootNet();
  t.same(during.links, before.links, 'no new interface in the root namespace');
  t.notOk(during.addrs.some((x) => x.includes('10.99.')), 'no lab address in the root namespace');
  t.notOk(during.routes.some((x) => x.includes('10.99.')), 'no route to the lab subnet in the root namespace');
  t.same(during.routes, before.routes, 'root routes unchanged');

  const r = await labDown(dir);
  t.same(r.leftovers, [], 'down reports nothing left');
  t.ok(r.killed.includes(server.pid), 'down stopped the process running in the host');
  t.equal(procState(server.pid), undefined, 'the server process is gone');
  t.same(labNetnsList(s.name), [], 'no lab namespace left');
  t.notOk(existsSync(dir), 'the lab directory is gone');
  t.same(rootNet(), before, 'root namespace exactly as before');
});

t.test('lab up killed half-way (SIGKILL after 2 hosts): down removes the partial lab', { skip: !existsSync(SHOALD_MAIN) && `needs shoald (${SHOALD_MAIN}), not built yet` }, async (t) => {
  const dir = labDirFor(t, 'crash');
  const name = labName(dir);
  const before = rootNet();
  const r = labCli(['up', '--managers', '3', '--workers', '2', '--lab-dir', dir], { SHOAL_LAB_FAULT: 'after-host:2' });
  t.equal(r.signal, 'SIGKILL', `lab up died by SIGKILL mid-way (status ${r.status}, stderr ${r.stderr.trim()})`);
  t.equal(labNetnsList(name).length, 3, 'the bridge namespace and two hosts were left behind');
  const st = readState(dir);
  t.equal(st?.phase, 'building', 'the state file records an unfinished lab');

  const again = labCli(['up', '--lab-dir', dir]);
  t.equal(again.status, 1, 'a second up over the wreck is refused');
  t.match(again.stderr, /already exists.*lab down/s, 'and says to run lab down');

  const d = labCli(['down', '--lab-dir', dir]);
  t.equal(d.status, 0, `down exits 0 on a half-built lab: ${d.stderr}`);
  t.same(labNetnsList(name), [], 'no lab namespace left');
  t.notOk(existsSync(dir), 'lab directory removed');
  t.same(rootNet(), before, 'root namespace exactly as before');
});

t.test('lab up killed after starting its daemons: down stops the orphaned daemons too', { skip: !existsSync(SHOALD_MAIN) && `needs shoald (${SHOALD_MAIN}), not built yet` }, async (t) => {
  const dir = labDirFor(t, 'crash2');
  const name = labName(dir);
  const r = labCli(['up', '--managers', '2', '--workers', '1', '--lab-dir', dir], { SHOAL_LAB_FAULT: 'after-daemons:3' });
  t.equal(r.signal, 'SIGKILL', `lab up died by SIGKILL after starting the daemons (status ${r.status}, stderr ${r.stderr.trim()})`);
  const procs = readState(dir)!.nodes.map((n) => n.proc!);
  t.equal(procs.filter((p) => isAlive(p)).length, 3, 'three shoald daemons outlived it');
  const d = labCli(['down', '--lab-dir', dir]);
  t.equal(d.status, 0, `down exits 0: ${d.stderr}`);
  t.same(procs.filter((p) => procState(p.pid) !== undefined).map((p) => p.pid), [], 'every daemon is gone');
  t.same(labNetnsList(name), [], 'no lab namespace left');
  t.notOk(existsSync(dir), 'lab directory removed');
});

t.test('state file lost: down finds the lab by its names and stops its processes', async (t) => {
  const dir = labDirFor(t, 'lost');
  const s = buildLab(dir, 1, 1);
  const h = s.nodes[1]!;
  const server = await startDetached(h.netns, [process.execPath, '-e', HTTP_SERVER, h.address], join(s.labDir, 'x.log'));
  rmSync(join(dir, STATE_FILE));
  t.ok(isAlive(server), 'a process runs in a host');
  const d = labCli(['down', '--lab-dir', dir]);
  t.equal(d.status, 0, `down exits 0: ${d.stderr}`);
  t.equal(procState(server.pid), undefined, 'the process is gone');
  t.same(labNetnsList(s.name), [], 'no lab namespace left');
  t.notOk(existsSync(dir), 'lab directory removed');
});

t.test('a corrupt state file: status says so, down still removes the lab', async (t) => {
  const dir = labDirFor(t, 'corrupt');
  const s = buildLab(dir, 1, 0);
  writeFileSync(join(dir, STATE_FILE), '{"version":1,"nodes":[');
  const st = labCli(['status', '--lab-dir', dir]);
  t.equal(st.status, 1, 'status fails');
  t.match(st.stderr, /not valid JSON.*lab down/s, 'naming the file problem and the way out');
  const d = labCli(['down', '--lab-dir', dir]);
  t.equal(d.status, 0, 'down exits 0');
  t.same(labNetnsList(s.name), [], 'no lab namespace left');
});

t.test('bad input is refused with a clear message and creates nothing', async (t) => {
  const dir = labDirFor(t, 'bad');
  const name = labName(dir);
  const cases: [string[], number, RegExp][] = [
    [['up', '--managers', '0', '--lab-dir', dir], 1, /--managers must be a whole number of at least 1/],
    [['up', '--workers', 'two', '--lab-dir', dir], 2, /--workers must be a whole number/],
    [['up', '--nodes', '3', '--lab-dir', dir], 2, /unknown flag --nodes/],
    [['up', '--managers', '150', '--workers', '51', '--lab-dir', dir], 1, /at most 200 nodes/],
    [['frobnicate'], 2, /unknown lab command "frobnicate"/],
    [['status', '--lab-dir', dir], 1, /no lab in .*lab up/],
    [['exec', 'manager-1', '--lab-dir', dir, '--', 'true'], 1, /no lab in/],
    [['stop', '--lab-dir', dir], 2, /needs exactly one NODE/],
    [['stop', 'manager-1', '--signal', 'HUP', '--lab-dir', dir], 2, /--signal must be TERM or KILL/],
    [['status', '--format', 'yaml', '--lab-dir', dir], 2, /--format must be json or table/],
  ];
  for (const [args, code, re] of cases) {
    const r = labCli(args);
    t.equal(r.status, code, `shoal lab ${args.join(' ')} exits ${code}`);
    t.match(r.stderr, re, `  and says: ${re.source}`);
  }
  t.same(labNetnsList(name), [], 'no namespace was created');
  t.notOk(existsSync(dir), 'no lab directory was created');

  // A directory that is not a lab's is never taken over.
  mkdirSync(join(dir, 'bin'), { recursive: true });
  mkdirSync(join(dir, 'logs'), { recursive: true });
  writeFileSync(join(dir, 'precious.txt'), 'keep me');
  const r = labCli(['up', '--lab-dir', dir]);
  t.equal(r.status, 1, 'up into a foreign non-empty directory is refused');
  t.match(r.stderr, /not empty and is not a lab directory.*precious\.txt/s, 'naming the directory and a file in it');
  t.equal(readFileSync(join(dir, 'precious.txt'), 'utf8'), 'keep me', 'its files are untouched');
  t.same(labNetnsList(name), [], 'no namespace was created');
  const d = labCli(['down', '--lab-dir', dir]);
  t.equal(d.status, 0, 'down on a directory without a lab exits 0');
  t.equal(readFileSync(join(dir, 'precious.txt'), 'utf8'), 'keep me', 'and leaves foreign files alone');
  t.ok(existsSync(join(dir, 'bin')) && existsSync(join(dir, 'logs')), 'even those named like a lab\'s (bin/, logs/)');

  // exec on a node that does not exist names the lab's nodes.
  const dir2 = labDirFor(t, 'bad2');
  const s = buildLab(dir2, 1, 1);
  const e = labCli(['exec', 'worker-9', '--lab-dir', dir2, '--', 'true']);
  t.equal(e.status, 1, 'exec on an unknown node fails');
  t.match(e.stderr, /no lab node named "worker-9".*manager-1, worker-1/s, 'listing the nodes there are');
  const ok = labCli(['exec', 'worker-1', '--lab-dir', dir2, '--', 'ip', '-br', 'addr', 'show', 'dev', 'eth0']);
  t.equal(ok.status, 0, 'exec runs a command on a host');
  t.match(ok.stdout, new RegExp(s.nodes[1]!.address.replace(/\./g, '\\.')), 'inside the host namespace (its address shows)');
  const fail = labCli(['exec', 'worker-1', '--lab-dir', dir2, '--', 'sh', '-c', 'exit 7']);
  t.equal(fail.status, 7, "exec passes the command's exit status through");
  t.ok(labNetnsList(s.name).includes(bridgeNetns(s.name)), 'the bridge namespace exists while the lab does');
});
