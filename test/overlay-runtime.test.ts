// shoal-runtime (the built-in CRI runtime) runs a pod's CNI chain from its config directory:
// shoal-cni, then portmap, as a shoal node is set up. The pod is matched to its task by the
// pod's uid (K8S_POD_UID, what the agent sets), gets the task's address, reaches a pod on
// another host over VXLAN and answers on its host port; StopPodSandbox leaves nothing behind.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Network } from '../proto/network/types.js';
import { cleanupRoot } from '../runtime/testing/cleanup.js';
import { startRuntime, type RuntimeProc } from '../runtime/testing/runtime-proc.js';
import { OverlayLab, nsPath, sh, shoalKernelObjects, stateFor, wget } from './overlay-harness.js';

const SHOAL_CNI = join(dirname(fileURLToPath(import.meta.url)), '..', 'overlay-net', 'cni', 'main.js');
const lab = new OverlayLab('sovs');
let rt: RuntimeProc | undefined;
let root = '';
let server: ChildProcess | undefined;
t.teardown(async () => {
  if (server) { try { process.kill(-server.pid!, 'SIGKILL'); } catch { /* gone */ } }
  await rt?.kill('SIGKILL');
  if (root) cleanupRoot(root);
  await lab.close();
});

const front: Network = { id: 'net-front', name: 'front', vni: 8001, subnet: '10.1.0.0/16', internal: false, node_subnets: [
  { node_id: 'n1', subnet: '10.1.1.0/24' }, { node_id: 'n2', subnet: '10.1.2.0/24' }] };
const cluster = {
  networks: [front], nodes: [{ id: 'n1', underlay_addr: '10.99.0.11' }, { id: 'n2', underlay_addr: '10.99.0.12' }], services: [],
  attachments: {
    n1: [{ task_id: 'task1abc', pod_namespace: '', pod_name: '', networks: [{ network_id: 'net-front', address: '10.1.1.9' }] }],
    n2: [{ task_id: 'task2def', pod_namespace: '', pod_name: '', networks: [{ network_id: 'net-front', address: '10.1.2.2' }] }],
  },
};

t.test('shoal-runtime runs a pod through shoal-cni and portmap', async (t) => {
  const n1 = await lab.addHost('n1', '10.99.0.11');
  const n2 = await lab.addHost('n2', '10.99.0.12');
  for (const h of [n1, n2]) await h.plugin!.client.updateState({ full: true, version: 1, state: stateFor(h.name, cluster) });
  const podB = lab.makePodNs('b');
  await n2.plugin!.client.add({ pod: { container_id: 'sandbox-b', netns: nsPath(podB), ifname: 'eth0', args: { K8S_POD_UID: 'task2def' } } });
  lab.serveHttp(podB, 80, 'pod b');
  await lab.waitHttp(podB, 80);

  // The node's own CNI directories, as shoald gives them to its runtime.
  const cni = join(lab.dir, 'cni');
  mkdirSync(join(cni, 'net.d'), { recursive: true });
  mkdirSync(join(cni, 'bin'), { recursive: true });
  symlinkSync(SHOAL_CNI, join(cni, 'bin', 'shoal-cni'));
  writeFileSync(join(cni, 'net.d', '10-shoal.conflist'), JSON.stringify({
    cniVersion: '1.0.0', name: 'shoal',
    plugins: [
      { type: 'shoal-cni', socket: n1.socket, capabilities: { 'io.kubernetes.cri.pod-annotations': true } },
      { type: 'portmap', capabilities: { portMappings: true }, snat: true },
    ],
  }));
  root = join(lab.dir, 'runtime');
  rt = await startRuntime(join(lab.dir, 'cri.sock'), root, ['--cni-conf-dir', join(cni, 'net.d'), '--cni-bin-dir', `${join(cni, 'bin')}:/usr/lib/cni`], { netns: nsPath(n1.netns) });
  // What the agent sends: the task id as the pod's uid (no annotation needed).
  const run = await rt.client.rt.RunPodSandbox({ config: {
    metadata: { name: 'web-1', uid: 'task1abc', namespace: 'shoal', attempt: 0 },
    port_mappings: [{ protocol: 0, container_port: 80, host_port: 8083 }],
    linux: { security_context: { namespace_options: { network: 0, pid: 1, ipc: 0 } } },
  } });
  const id = run.pod_sandbox_id as string;
  const st = await rt.client.rt.PodSandboxStatus({ pod_sandbox_id: id, verbose: true });
  t.equal(st.status.network.ip, '10.1.1.9', 'the pod has its task\'s address (matched by K8S_POD_UID)');
  const netns = (JSON.parse(st.info.info) as { netns: string }).netns;
  const r = sh(['nsenter', `--net=${netns}`, '--', 'timeout', '5', 'busybox', 'wget', '-q', '-O', '-', 'http://10.1.2.2/']);
  t.equal(r.stdout.trim(), 'pod b', 'it reaches pod b on n2 over VXLAN');
  server = spawn('nsenter', [`--net=${netns}`, '--', 'busybox', 'httpd', '-f', '-p', '80', '-h', join(lab.dir, 'www', `${podB}-80`)], { stdio: 'ignore', detached: true });
  const end = Date.now() + 10_000;
  let body: string | undefined;
  while (!(body = wget(n2.netns, 'http://10.99.0.11:8083/', 2)) && Date.now() < end) await new Promise((res) => setTimeout(res, 100));
  t.equal(body, 'pod b', 'host n2 reaches the pod through its host port on n1 (portmap after shoal-cni)');
  try { process.kill(-server.pid!, 'SIGKILL'); } catch { /* gone */ }
  server = undefined;
  await rt.client.rt.StopPodSandbox({ pod_sandbox_id: id });
  await rt.client.rt.RemovePodSandbox({ pod_sandbox_id: id });
  t.same(shoalKernelObjects(n1.netns).links.filter((l) => l.startsWith('shv-')), [], 'StopPodSandbox ran DEL: no pod veth left on n1');
  t.equal(wget(n2.netns, 'http://10.99.0.11:8083/', 2), undefined, 'and the host port is gone');
});
