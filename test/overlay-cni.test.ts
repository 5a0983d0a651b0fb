// shoal-cni exactly as a runtime runs it: the executable itself, config JSON on stdin, CNI_* in
// the environment, inside the node's network namespace; chained with Debian's portmap (which
// takes shoal-cni's result as prevResult); errors in the spec's JSON with its codes.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Network } from '../proto/network/types.js';
import { OverlayLab, inNs, nsPath, stateFor, wget } from './overlay-harness.js';

const SHOAL_CNI = join(dirname(fileURLToPath(import.meta.url)), '..', 'overlay-net', 'cni', 'main.js');
const CNI_BIN = '/usr/lib/cni';
const lab = new OverlayLab('sovc');
t.teardown(() => lab.close());

const front: Network = { id: 'net-front', name: 'front', vni: 6001, subnet: '10.1.0.0/16', internal: false, node_subnets: [
  { node_id: 'n1', subnet: '10.1.1.0/24' }, { node_id: 'n2', subnet: '10.1.2.0/24' }] };
const nodes = [{ id: 'n1', underlay_addr: '10.99.0.11' }, { id: 'n2', underlay_addr: '10.99.0.12' }];
const cluster = {
  networks: [front], nodes, services: [],
  attachments: {
    n1: [{ task_id: 'ta', pod_namespace: '', pod_name: '', networks: [{ network_id: 'net-front', address: '10.1.1.2' }] }],
    n2: [{ task_id: 'tb', pod_namespace: '', pod_name: '', networks: [{ network_id: 'net-front', address: '10.1.2.2' }] }],
  },
};

interface Out { status: number | null; json: Record<string, unknown> | undefined; stdout: string; stderr: string }

/** Runs a CNI plugin binary in `hostNs` the way libcni does: exec, env, config on stdin. */
function cni(hostNs: string, bin: string, env: Record<string, string>, conf: unknown): Out {
  const r = spawnSync('nsenter', [`--net=${nsPath(hostNs)}`, '--', bin], {
    input: typeof conf === 'string' ? conf : JSON.stringify(conf),
    env: { PATH: process.env.PATH, CNI_PATH: CNI_BIN, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  let json: Record<string, unknown> | undefined;
  try { json = r.stdout.trim() ? JSON.parse(r.stdout) : undefined; } catch { json = undefined; }
  return { status: r.status, json, stdout: r.stdout, stderr: r.stderr };
}

/** The same, asynchronously (independent calls run side by side). */
function cniAsync(hostNs: string, bin: string, env: Record<string, string>, conf: unknown): Promise<Out> {
  return new Promise((resolve) => {
    const p = spawn('nsenter', [`--net=${nsPath(hostNs)}`, '--', bin], { env: { PATH: process.env.PATH, CNI_PATH: CNI_BIN, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    p.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    p.on('close', (status) => {
      let json: Record<string, unknown> | undefined;
      try { json = stdout.trim() ? JSON.parse(stdout) : undefined; } catch { json = undefined; }
      resolve({ status, json, stdout, stderr });
    });
    p.stdin.end(typeof conf === 'string' ? conf : JSON.stringify(conf));
  });
}

let podA = '';
let podB = '';
const confFor = (sock: string, version = '1.0.0', extra: Record<string, unknown> = {}) => ({ cniVersion: version, name: 'shoal', type: 'shoal-cni', socket: sock, ...extra });
const annotated = (task: string) => ({ runtimeConfig: { 'io.kubernetes.cri.pod-annotations': { 'shoal.io/task-id': task, other: 'x' } } });

t.test('set up two hosts', async (t) => {
  await lab.addHost('n1', '10.99.0.11');
  await lab.addHost('n2', '10.99.0.12');
  for (const h of lab.hosts.values()) await h.plugin!.client.updateState({ full: true, version: 1, state: stateFor(h.name, cluster) });
  podA = lab.makePodNs('a');
  podB = lab.makePodNs('b');
  t.pass('hosts up, state pushed');
});

t.test('VERSION', async (t) => {
  const r = cni(lab.host('n1').netns, SHOAL_CNI, { CNI_COMMAND: 'VERSION' }, { cniVersion: '1.0.0' });
  t.equal(r.status, 0);
  t.same(r.json, { cniVersion: '1.0.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] }, 'names the versions it speaks');
});

t.test('ADD, then portmap with the result as prevResult, CHECK both, DEL both', async (t) => {
  const n1 = lab.host('n1');
  const env = { CNI_CONTAINERID: 'sandbox-a', CNI_NETNS: nsPath(podA), CNI_IFNAME: 'eth0', CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=a;K8S_POD_INFRA_CONTAINER_ID=sandbox-a' };
  const add = cni(n1.netns, SHOAL_CNI, { ...env, CNI_COMMAND: 'ADD' }, confFor(n1.socket, '1.0.0', annotated('ta')));
  t.equal(add.status, 0, `shoal-cni ADD: ${add.stdout}${add.stderr}`);
  const res = add.json as { cniVersion: string; interfaces: { name: string; mac: string; sandbox?: string }[]; ips: { address: string; gateway: string; interface: number }[]; routes: { dst: string; gw?: string }[]; dns: { nameservers: string[] } };
  t.equal(res.cniVersion, '1.0.0', 'result in the configuration\'s version');
  t.same(res.ips, [{ address: '10.1.1.2/24', gateway: '10.1.1.1', interface: 1 }], 'ips: the task\'s address (matched by the pod annotation), the gateway, the pod\'s interface');
  t.equal(res.interfaces[1]?.name, 'eth0', 'interfaces[1] is eth0');
  t.equal(res.interfaces[1]?.sandbox, nsPath(podA), '  in the pod\'s namespace');
  t.match(res.interfaces[0]?.name, /^shv-[0-9a-f]{10}$/, 'interfaces[0] is the host end');
  t.same(res.routes, [{ dst: '0.0.0.0/0', gw: '10.1.1.1' }, { dst: '10.1.0.0/16', gw: '10.1.1.1' }], 'routes');
  t.same(res.dns, { nameservers: ['169.254.53.53'] }, 'dns: the node resolver');

  // portmap, as the chain's next plugin.
  const pmConf = { cniVersion: '1.0.0', name: 'shoal', type: 'portmap', capabilities: { portMappings: true }, snat: true,
    runtimeConfig: { portMappings: [{ hostPort: 8081, containerPort: 80, protocol: 'tcp' }] }, prevResult: res };
  const pm = cni(n1.netns, join(CNI_BIN, 'portmap'), { ...env, CNI_COMMAND: 'ADD' }, pmConf);
  t.equal(pm.status, 0, `portmap ADD accepts shoal-cni's result as prevResult: ${pm.stdout}${pm.stderr}`);
  t.same((pm.json as { ips?: unknown })?.ips, res.ips, 'and passes it on');
  lab.serveHttp(podA, 80, 'pod a');
  await lab.waitHttp(podA, 80);
  t.equal(wget(lab.host('n2').netns, 'http://10.99.0.11:8081/', 5), 'pod a', 'host n2 reaches pod a through portmap\'s host port 8081 on n1');

  // Pod b on n2, matched by K8S_POD_UID; a reaches b across hosts.
  const n2 = lab.host('n2');
  const envB = { CNI_CONTAINERID: 'sandbox-b', CNI_NETNS: nsPath(podB), CNI_IFNAME: 'eth0', CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=b;K8S_POD_UID=tb' };
  const addB = cni(n2.netns, SHOAL_CNI, { ...envB, CNI_COMMAND: 'ADD' }, confFor(n2.socket, '0.4.0'));
  t.equal(addB.status, 0, `ADD b (cniVersion 0.4.0): ${addB.stdout}`);
  t.same((addB.json as { ips: unknown[] }).ips, [{ version: '4', address: '10.1.2.2/24', gateway: '10.1.2.1', interface: 1 }], '0.4.0 result: ips carry "version"');
  lab.serveHttp(podB, 80, 'pod b');
  await lab.waitHttp(podB, 80);
  t.equal(wget(podA, 'http://10.1.2.2/', 5), 'pod b', 'pod a reaches pod b on the other host');

  const check = cni(n1.netns, SHOAL_CNI, { ...env, CNI_COMMAND: 'CHECK' }, confFor(n1.socket, '1.0.0', { ...annotated('ta'), prevResult: res }));
  t.equal(check.status, 0, `shoal-cni CHECK: ${check.stdout}`);
  // portmap's own CHECK is not run: Debian's 1.1.1 fails CHECK for any IPv4-only pod, looking for
  // ip6tables chains its ADD never made (containernetworking/plugins#819, fixed upstream later).

  const st = cni(n1.netns, SHOAL_CNI, { CNI_COMMAND: 'STATUS' }, confFor(n1.socket, '1.1.0'));
  t.equal(st.status, 0, `STATUS (1.1.0) answers ready: ${st.stdout}`);

  // DEL in reverse order, as the runtime does.
  const pmDel = cni(n1.netns, join(CNI_BIN, 'portmap'), { ...env, CNI_COMMAND: 'DEL' }, pmConf);
  t.equal(pmDel.status, 0, `portmap DEL: ${pmDel.stdout}`);
  const del = cni(n1.netns, SHOAL_CNI, { ...env, CNI_COMMAND: 'DEL' }, confFor(n1.socket, '1.0.0', { ...annotated('ta'), prevResult: res }));
  t.equal(del.status, 0, `shoal-cni DEL: ${del.stdout}`);
  t.equal(del.stdout.trim(), '', 'DEL prints nothing');
  t.not(inNs(podA, ['ip', 'link', 'show', 'eth0']).status, 0, 'pod a has no eth0 any more');
  const del2 = cni(n1.netns, SHOAL_CNI, { ...env, CNI_NETNS: '', CNI_COMMAND: 'DEL' }, confFor(n1.socket));
  t.equal(del2.status, 0, 'DEL again, without a netns, succeeds');

  const gc = cni(n2.netns, SHOAL_CNI, { CNI_COMMAND: 'GC' }, confFor(n2.socket, '1.1.0', { 'cni.dev/valid-attachments': [] }));
  t.equal(gc.status, 0, `GC (1.1.0) with no valid attachment: ${gc.stdout}`);
  t.not(inNs(podB, ['ip', 'link', 'show', 'eth0']).status, 0, 'GC removed pod b\'s eth0');
});

t.test('errors come as the spec\'s JSON with its codes', async (t) => {
  const n1 = lab.host('n1');
  const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'sandbox-e', CNI_NETNS: nsPath(podA), CNI_IFNAME: 'eth0', CNI_ARGS: 'K8S_POD_UID=ta' };
  const cases: [string, Record<string, string>, unknown, number, RegExp][] = [
    ['config that is not JSON', env, '{"cniVersion": ', 6, /not JSON/],
    ['config without cniVersion', env, { name: 'shoal', type: 'shoal-cni', socket: n1.socket }, 7, /no cniVersion/],
    ['an unknown version', env, confFor(n1.socket, '9.9.9'), 1, /incompatible CNI version 9\.9\.9/],
    ['CHECK at 0.3.1', { ...env, CNI_COMMAND: 'CHECK' }, confFor(n1.socket, '0.3.1'), 1, /CHECK needs cniVersion 0\.4\.0/],
    ['a socket that is not absolute', env, confFor('relative.sock'), 7, /"socket" must be the absolute path/],
    ['no CNI_NETNS', { ...env, CNI_NETNS: '' }, confFor(n1.socket), 4, /CNI_NETNS is not set/],
    ['a netns that does not exist', { ...env, CNI_NETNS: '/run/netns/no-such-pod' }, confFor(n1.socket), 4, /does not exist/],
    ['no CNI_CONTAINERID', { ...env, CNI_CONTAINERID: '' }, confFor(n1.socket), 4, /CNI_CONTAINERID is not set/],
    ['a bad CNI_ARGS', { ...env, CNI_ARGS: 'novalue' }, confFor(n1.socket), 4, /CNI_ARGS: "novalue" is not KEY=VALUE/],
    ['an unknown command', { ...env, CNI_COMMAND: 'FROB' }, confFor(n1.socket), 4, /CNI_COMMAND "FROB"/],
    ['a pod with no attachment', { ...env, CNI_ARGS: 'K8S_POD_UID=nobody' }, confFor(n1.socket), 11, /no network attachment/],
    ['a plugin that is not running', env, confFor('/run/no-such-shoal-plugin.sock'), 11, /not answering/],
  ];
  const results = await Promise.all(cases.map(([, e, conf]) => cniAsync(n1.netns, SHOAL_CNI, e, conf)));
  for (const [i, [what, , , code, msg]] of cases.entries()) {
    const r = results[i]!;
    t.equal(r.status, 1, `${what}: exit 1`);
    t.equal(r.json?.code, code, `  code ${code}`);
    t.match(String(r.json?.msg), msg, `  msg "${r.json?.msg}"`);
    t.type(r.json?.cniVersion, 'string', '  and a cniVersion');
  }
});
