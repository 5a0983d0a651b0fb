// containerd (Debian's 1.6) in place of shoal-runtime: started inside host n1's namespace with a
// state directory of its own, its CNI config directory holding shoal's config list (shoal-cni,
// then portmap). A pod run through its CRI gets the task's address from shoal-net, reaches a
// shoal pod on host n2 over VXLAN (and is reached by it), and its host port answers through
// portmap. Stopping the pod runs CNI DEL: nothing of it is left on the host.
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Network } from '../proto/network/types.js';
import { criClient, type CriClient } from '../runtime/testing/cri-client.js';
import { tarBuffer } from '../runtime/testing/tar-writer.js';
import { OverlayLab, inNs, nsPath, shoalKernelObjects, stateFor, wget } from './overlay-harness.js';

const SHOAL_CNI = join(dirname(fileURLToPath(import.meta.url)), '..', 'overlay-net', 'cni', 'main.js');
const IMAGE = 'shoal.test/pod-httpd:1';
const CGROUP_PARENT = `/shoal-ctrd-test-${process.pid}`;
const lab = new OverlayLab('sovk');
let containerd: ChildProcess | undefined;
let cri: CriClient | undefined;
let cdir = '';
// containerd's shims keep their sockets and runc state under /run/containerd whatever the state
// directory; the test removes those folders again if it made them (and they are empty).
const RUN_DIR = '/run/containerd';
const hadRunDir = existsSync(RUN_DIR);

/** A docker-archive (`docker save` layout) of a one-layer busybox image whose command serves
 * HTTP on port 80: the pod's sandbox itself answers, no container needed. */
function sandboxImageArchive(): Buffer {
  const layer = tarBuffer([
    { name: 'bin/', type: 'dir' },
    { name: 'bin/busybox', data: readFileSync('/bin/busybox'), mode: 0o755 },
    { name: 'www/', type: 'dir' },
    { name: 'www/index.html', data: 'containerd pod\n' },
    { name: 'proc/', type: 'dir' }, { name: 'dev/', type: 'dir' }, { name: 'sys/', type: 'dir' }, { name: 'etc/', type: 'dir' }, { name: 'tmp/', type: 'dir', mode: 0o1777 },
  ]);
  const diffId = 'sha256:' + createHash('sha256').update(layer).digest('hex');
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux',
    config: { Cmd: ['/bin/busybox', 'httpd', '-f', '-p', '80', '-h', '/www'], Env: ['PATH=/bin'] },
    rootfs: { type: 'layers', diff_ids: [diffId] },
  }));
  const cfgHex = createHash('sha256').update(config).digest('hex');
  return tarBuffer([
    { name: `${cfgHex}.json`, data: config },
    { name: 'layer/', type: 'dir' },
    { name: 'layer/layer.tar', data: layer },
    { name: 'manifest.json', data: JSON.stringify([{ Config: `${cfgHex}.json`, RepoTags: [IMAGE], Layers: ['layer/layer.tar'] }]) },
  ]);
}

/** Removes `dir` and its sub-folders bottom-up if they hold no file; true when it is gone. */
function removeEmptyTree(dir: string): boolean {
  let empty = true;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (!e.isDirectory() || !removeEmptyTree(join(dir, e.name))) empty = false;
  }
  if (!empty) return false;
  try { rmdirSync(dir); return true; } catch { return false; }
}

async function cleanup(): Promise<void> {
  cri?.close();
  if (containerd && containerd.exitCode === null && containerd.signalCode === null) {
    const gone = new Promise((r) => containerd!.once('exit', r));
    containerd.kill('SIGTERM');
    const timer = setTimeout(() => containerd!.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(timer);
  }
  if (cdir) {
    // Shims of our pods (their command line names our state directory), then mounts under it.
    for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
      try { if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(cdir)) process.kill(Number(p), 'SIGKILL'); } catch { /* gone */ }
    }
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m.startsWith(cdir + '/')).sort((a, b) => b.length - a.length);
    for (const m of mounts) spawnSync('umount', ['-l', m]);
  }
  for (const ctl of existsSync('/sys/fs/cgroup') ? readdirSync('/sys/fs/cgroup') : []) {
    const d = join('/sys/fs/cgroup', ctl, CGROUP_PARENT);
    if (!existsSync(d)) continue;
    for (const sub of readdirSync(d, { withFileTypes: true })) if (sub.isDirectory()) { try { rmdirSync(join(d, sub.name)); } catch { /* busy */ } }
    try { rmdirSync(d); } catch { /* busy */ }
  }
  if (!hadRunDir) {
    // The shims remove their own entries as they exit: wait for that (bounded), then remove the
    // empty folders; whatever is still inside after that is named.
    const end = Date.now() + 10_000;
    while (existsSync(RUN_DIR) && !removeEmptyTree(RUN_DIR) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    if (existsSync(RUN_DIR)) t.comment(`left in ${RUN_DIR}: ${spawnSync('find', [RUN_DIR], { encoding: 'utf8' }).stdout}`);
  }
  await lab.close();
}
t.teardown(cleanup);

const front: Network = { id: 'net-front', name: 'front', vni: 7001, subnet: '10.1.0.0/16', internal: false, node_subnets: [
  { node_id: 'n1', subnet: '10.1.1.0/24' }, { node_id: 'n2', subnet: '10.1.2.0/24' }] };
const nodes = [{ id: 'n1', underlay_addr: '10.99.0.11' }, { id: 'n2', underlay_addr: '10.99.0.12' }];
// The containerd pod is matched by the annotation only: its pod name and uid match nothing.
const cluster = {
  networks: [front], nodes, services: [],
  attachments: {
    n1: [{ task_id: 'task-ctrd', pod_namespace: 'elsewhere', pod_name: 'other', networks: [{ network_id: 'net-front', address: '10.1.1.7' }] }],
    n2: [{ task_id: 'task-b', pod_namespace: 'shoal', pod_name: 'b', networks: [{ network_id: 'net-front', address: '10.1.2.2' }] }],
  },
};

t.test('containerd runs a pod through shoal-cni and portmap', async (t) => {
  const n1 = await lab.addHost('n1', '10.99.0.11');
  const n2 = await lab.addHost('n2', '10.99.0.12');
  for (const h of [n1, n2]) await h.plugin!.client.updateState({ full: true, version: 1, state: stateFor(h.name, cluster) });
  const podB = lab.makePodNs('b');
  await n2.plugin!.client.add({ pod: { container_id: 'sandbox-b', netns: nsPath(podB), ifname: 'eth0', args: { K8S_POD_NAMESPACE: 'shoal', K8S_POD_NAME: 'b' } } });
  lab.serveHttp(podB, 80, 'pod b');
  await lab.waitHttp(podB, 80);

  cdir = join(lab.dir, 'containerd');
  const bin = join(cdir, 'cni-bin');
  const conf = join(cdir, 'cni-conf');
  mkdirSync(bin, { recursive: true });
  mkdirSync(conf, { recursive: true });
  symlinkSync(SHOAL_CNI, join(bin, 'shoal-cni'));
  for (const p of ['portmap', 'loopback']) symlinkSync(`/usr/lib/cni/${p}`, join(bin, p));
  // What a shoal node writes into the runtime's CNI config directory.
  writeFileSync(join(conf, '10-shoal.conflist'), JSON.stringify({
    cniVersion: '1.0.0', name: 'shoal',
    plugins: [
      { type: 'shoal-cni', socket: n1.socket, capabilities: { 'io.kubernetes.cri.pod-annotations': true } },
      { type: 'portmap', capabilities: { portMappings: true }, snat: true },
    ],
  }, null, 2));
  const sock = join(cdir, 'containerd.sock');
  writeFileSync(join(cdir, 'config.toml'), [
    'version = 2',
    `root = "${cdir}/root"`,
    `state = "${cdir}/state"`,
    '[grpc]', `  address = "${sock}"`,
    '[ttrpc]', `  address = "${sock}.ttrpc"`,
    '[plugins."io.containerd.internal.v1.opt"]', `  path = "${cdir}/opt"`,
    '[plugins."io.containerd.grpc.v1.cri"]',
    `  sandbox_image = "${IMAGE}"`,
    // This machine cannot lower oom_score_adj (no CAP_SYS_RESOURCE).
    '  restrict_oom_score_adj = true',
    '[plugins."io.containerd.grpc.v1.cri".cni]', `  bin_dir = "${bin}"`, `  conf_dir = "${conf}"`,
    '',
  ].join('\n'));
  let log = '';
  containerd = spawn('nsenter', [`--net=${nsPath(n1.netns)}`, '--', 'containerd', '--config', join(cdir, 'config.toml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  containerd.stdout!.on('data', (b: Buffer) => { log += b.toString(); });
  containerd.stderr!.on('data', (b: Buffer) => { log += b.toString(); });
  const end = Date.now() + 60_000;
  while (!existsSync(sock) || !/serving\.\.\..*containerd\.sock/.test(log)) {
    if (containerd.exitCode !== null) throw new Error(`containerd exited: ${log.slice(-2000)}`);
    if (Date.now() > end) throw new Error(`containerd did not start: ${log.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const imp = spawnSync('ctr', ['--address', sock, '-n', 'k8s.io', 'images', 'import', '-'], { input: sandboxImageArchive(), encoding: 'utf8' });
  t.equal(imp.status, 0, `image imported: ${imp.stdout}${imp.stderr}`);

  cri = criClient(sock);
  const config = {
    metadata: { name: 'web', namespace: 'shoal', uid: 'uid-not-a-task', attempt: 0 },
    annotations: { 'shoal.io/task-id': 'task-ctrd' },
    port_mappings: [{ protocol: 0, container_port: 80, host_port: 8082 }],
    linux: { cgroup_parent: CGROUP_PARENT },
  };
  const run = await cri.rt.RunPodSandbox({ config }).catch((e: Error) => { throw new Error(`RunPodSandbox: ${e.message}\ncontainerd log:\n${log.slice(-3000)}`); });
  const id = run.pod_sandbox_id as string;
  t.ok(id, 'containerd ran the pod');
  const st = await cri.rt.PodSandboxStatus({ pod_sandbox_id: id });
  t.equal(st.status.network.ip, '10.1.1.7', 'its IP is the task\'s address (matched by the shoal.io/task-id annotation)');
  t.equal(wget(podB, 'http://10.1.1.7/', 5), 'containerd pod', 'shoal pod b on n2 reaches the containerd pod on n1 over VXLAN');
  t.equal(wget(n2.netns, 'http://10.99.0.11:8082/', 5), 'containerd pod', 'host n2 reaches it through its host port (portmap)');
  // And the other way: from the pod's namespace (its sandbox process's) to pod b.
  const pid = spawnSync('nsenter', [`--net=${nsPath(n1.netns)}`, '--', 'ctr', '--address', sock, '-n', 'k8s.io', 'tasks', 'ls'], { encoding: 'utf8' }).stdout
    .split('\n').map((l) => l.trim().split(/\s+/)).find((f) => f[0] === id)?.[1];
  t.ok(pid, `the pod's process (pid ${pid})`);
  const r = spawnSync('nsenter', [`--net=/proc/${pid}/ns/net`, '--', 'timeout', '5', 'busybox', 'wget', '-q', '-O', '-', 'http://10.1.2.2/'], { encoding: 'utf8' });
  t.equal(r.stdout.trim(), 'pod b', 'the containerd pod reaches shoal pod b on n2');

  await cri.rt.StopPodSandbox({ pod_sandbox_id: id });
  await cri.rt.RemovePodSandbox({ pod_sandbox_id: id });
  t.same(shoalKernelObjects(n1.netns).links.filter((l) => l.startsWith('shv-')), [], 'StopPodSandbox ran CNI DEL: no pod veth left on n1');
  t.equal(wget(n2.netns, 'http://10.99.0.11:8082/', 2), undefined, 'and the host port is gone');
  t.notMatch(inNs(n1.netns, ['iptables-save', '-t', 'nat']).stdout, /dport 8082/, 'portmap removed its DNAT rule');
});
