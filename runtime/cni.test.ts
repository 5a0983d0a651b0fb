// Pod networking through real CNI plugins (Debian's containernetworking-plugins: bridge,
// host-local, portmap, loopback). The runtime under test runs inside a network namespace of
// this test's own (the bridge plugin makes its bridge in the runtime's namespace, and portmap
// its iptables rules there), so nothing is added to the machine's own network.
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupRoot } from './testing/cleanup.js';
import { startRuntime, type RuntimeProc } from './testing/runtime-proc.js';
import { busyboxImage, ociArchive } from './testing/test-image.js';
import { parseConfFile, parseQuantity, podRuntimeConfig, resultIps, versionAtLeast } from './cni.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
const CNI_BIN = '/usr/lib/cni';
const haveCni = existsSync(join(CNI_BIN, 'bridge')) && existsSync(join(CNI_BIN, 'portmap'));

t.test('config parsing, versions, results and runtimeConfig (pure)', async (t) => {
  const list = parseConfFile('/x/10-a.conflist', JSON.stringify({ cniVersion: '1.0.0', name: 'a', plugins: [{ type: 'bridge' }, { type: 'portmap', capabilities: { portMappings: true } }] }));
  t.same([list.name, list.plugins.length, list.cniVersion], ['a', 2, '1.0.0']);
  const single = parseConfFile('/x/10-b.conf', JSON.stringify({ cniVersion: '0.3.1', name: 'b', type: 'bridge' }));
  t.same(single.plugins.map((p) => p.type), ['bridge'], 'a .conf is a list of one');
  t.throws(() => parseConfFile('/x/bad.conflist', '{'), /bad\.conflist is not valid JSON/);
  t.throws(() => parseConfFile('/x/bad.conflist', JSON.stringify({ name: 'n', plugins: [{}] })), /plugin 0 has no "type"/);
  t.throws(() => parseConfFile('/x/bad.conf', JSON.stringify({ name: 'n' })), /has no "type"/);
  t.ok(versionAtLeast('1.0.0', '0.4.0'));
  t.notOk(versionAtLeast('0.3.1', '0.4.0'));
  t.notOk(versionAtLeast('', '0.4.0'), 'no version is 0.1.0');
  t.same(resultIps({ interfaces: [{ name: 'cni0' }, { name: 'veth1' }, { name: 'eth0', sandbox: '/ns' }], ips: [{ address: 'fd00::5/64', interface: 2 }, { address: '10.1.0.5/24', interface: 2 }, { address: '10.1.0.1/24', interface: 0 }] }, 'eth0'), ['10.1.0.5', 'fd00::5'], 'the pod interface\'s addresses, IPv4 first');
  t.same(resultIps({ ip4: { ip: '10.2.0.3/16' } }, 'eth0'), ['10.2.0.3'], '0.2.0 result');
  t.equal(parseQuantity('10M'), 10_000_000);
  t.equal(parseQuantity('1Gi'), 2 ** 30);
  t.throws(() => parseQuantity('fast'), /not a quantity/);
  const rc = podRuntimeConfig({ port_mappings: [{ protocol: 1, container_port: 53, host_port: 5353, host_ip: '127.0.0.1' }, { container_port: 80 }], annotations: { a: 'b', 'kubernetes.io/ingress-bandwidth': '1M' }, dns_config: { servers: ['10.0.0.10'] } });
  t.same(rc['portMappings'], [{ hostPort: 5353, containerPort: 53, protocol: 'udp', hostIP: '127.0.0.1' }], 'only mappings with a host port, protocol lower-case');
  t.same(rc['bandwidth'], { ingressRate: 1_000_000, ingressBurst: 2 ** 32 - 1 });
  t.same(rc['dns'], { servers: ['10.0.0.10'], searches: [], options: [] });
  t.same(rc['io.kubernetes.cri.pod-annotations'], { a: 'b', 'kubernetes.io/ingress-bandwidth': '1M' });
});

t.test('pods on a CNI network (bridge + host-local + portmap, loopback)', { skip: haveCni ? false : `Debian's containernetworking-plugins are not in ${CNI_BIN} (scripts/setup.sh installs them)` }, async (t) => {
  const tag = String(process.pid);
  const base = mkdtempSync(join(tmpdir(), `shoal-cni-${tag}-`));
  const root = join(base, 'root');
  const netns = `shoal-cni-${tag}`;
  const nsPath = `/var/run/netns/${netns}`;
  const inNs = (cmd: string, ...args: string[]) => execFileSync('nsenter', [`--net=${nsPath}`, '--', cmd, ...args], { encoding: 'utf8' });
  let rt: RuntimeProc | undefined;
  t.teardown(async () => {
    if (rt) await rt.kill('SIGKILL');
    cleanupRoot(root);
    spawnSync('ip', ['netns', 'del', netns]);
    rmSync(base, { recursive: true, force: true });
  });
  execFileSync('ip', ['netns', 'add', netns]);
  inNs('ip', 'link', 'set', 'lo', 'up');

  const confDir = join(base, 'net.d');
  const binDir = join(base, 'bin');
  const ipamDir = join(base, 'ipam');
  const spyDir = join(base, 'spy');
  mkdirSync(confDir); mkdirSync(binDir); mkdirSync(spyDir);
  // A pass-through CNI plugin that records what it was given (environment and config), so the
  // test can see CNI_ARGS and runtimeConfig as the chain's plugins get them; it fails ADD when
  // the pod asks (annotation test/fail-add), to make an ADD that fails halfway.
  writeFileSync(join(binDir, 'spy'), `#!${process.execPath}
const fs = require('fs');
const conf = JSON.parse(fs.readFileSync(0, 'utf8'));
const env = process.env;
fs.writeFileSync('${spyDir}/' + env.CNI_COMMAND + '-' + env.CNI_CONTAINERID, JSON.stringify({ env: { CNI_ARGS: env.CNI_ARGS, CNI_IFNAME: env.CNI_IFNAME, CNI_NETNS: env.CNI_NETNS, CNI_PATH: env.CNI_PATH }, conf }));
const ann = (conf.runtimeConfig || {})['io.kubernetes.cri.pod-annotations'] || {};
if (env.CNI_COMMAND === 'ADD' && ann['test/fail-add'] === 'yes') { process.stdout.write(JSON.stringify({ cniVersion: conf.cniVersion, code: 999, msg: 'spy refuses', details: 'asked to by the pod' })); process.exit(1); }
if (env.CNI_COMMAND === 'ADD') process.stdout.write(JSON.stringify(conf.prevResult));
`);
  chmodSync(join(binDir, 'spy'), 0o755);
  const bridge = `scb${Number(tag) % 1000000}`;
  const subnet = '10.250.0.0/24';
  const conflist = {
    cniVersion: '1.0.0', name: 'shoaltest',
    plugins: [
      { type: 'bridge', bridge, isGateway: true, ipMasq: false, hairpinMode: true, ipam: { type: 'host-local', ranges: [[{ subnet }]], dataDir: ipamDir } },
      { type: 'portmap', capabilities: { portMappings: true } },
      { type: 'spy', capabilities: { portMappings: true, 'io.kubernetes.cri.pod-annotations': true } },
    ],
  };

  const archive = join(base, 'busybox.tar');
  writeFileSync(archive, ociArchive(busyboxImage(), 'cni.test/busybox:1'));
  rt = await startRuntime(join(base, 'cri.sock'), root, ['--cni-conf-dir', `${join(base, 'other-empty')}:${confDir}`, '--cni-bin-dir', binDir, '--cni-bin-dir', CNI_BIN], { netns: nsPath });
  const c = rt.client;
  await c.img.PullImage({ image: { image: `oci-archive:${archive}` } });
  const IMAGE = 'cni.test/busybox:1';
  let n = 0;
  const pod = async (extra: any = {}) => {
    const config = { metadata: { name: `web${++n}`, uid: `uid-${tag}-${n}`, namespace: 'cnitest' }, hostname: `web${n}`, ...extra };
    const { pod_sandbox_id } = await c.rt.RunPodSandbox({ config });
    return { id: pod_sandbox_id as string, config };
  };
  const run = async (p: { id: string; config: any }, name: string, command: string[]) => {
    const { container_id } = await c.rt.CreateContainer({ pod_sandbox_id: p.id, sandbox_config: p.config, config: { metadata: { name }, image: { image: IMAGE }, command } });
    await c.rt.StartContainer({ container_id });
    return container_id as string;
  };
  const veths = () => inNs('ip', '-o', 'link', 'show').split('\n').filter((l) => /: veth/.test(l)).length;
  const leases = () => existsSync(ipamDir) ? readdirSync(ipamDir).flatMap((net) => readdirSync(join(ipamDir, net)).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f))) : [];
  const natRules = () => inNs('iptables-save', '-t', 'nat').split('\n').filter((l) => /^-A .*CNI-DN-|^-A CNI-HOSTPORT-DNAT .*-j CNI-DN/.test(l));

  // No network config yet: pods still run with loopback only, Status says why.
  let st = await c.rt.Status({});
  const netCond = () => st.status.conditions.find((x: any) => x.type === 'NetworkReady');
  t.same([netCond().status, netCond().reason], [false, 'NetworkPluginNotReady'], 'no config: NetworkReady false');
  t.match(netCond().message, confDir, 'the message names the config directory');
  const bare = await pod();
  t.equal((await c.rt.PodSandboxStatus({ pod_sandbox_id: bare.id })).status.network.ip, '', 'a loopback-only pod has no IP');
  await c.rt.RemovePodSandbox({ pod_sandbox_id: bare.id });

  // A config file that cannot be used: Status names it.
  writeFileSync(join(confDir, '05-broken.conflist'), '{"name": ');
  st = await c.rt.Status({});
  t.same([netCond().status, netCond().reason], [false, 'NetworkPluginNotReady']);
  t.match(netCond().message, /05-broken\.conflist is not valid JSON/);
  const broken = await c.rt.RunPodSandbox({ config: { metadata: { name: 'broken', uid: 'b', namespace: 'cnitest' } } }).catch((x: any) => x);
  t.match(broken.details, /05-broken\.conflist/, 'RunPodSandbox with a broken config fails naming the file');
  rmSync(join(confDir, '05-broken.conflist'));

  writeFileSync(join(confDir, '10-shoaltest.conflist'), JSON.stringify(conflist));
  st = await c.rt.Status({});
  t.equal(netCond().status, true, 'a config in the directory: NetworkReady');

  const hostPort = 20000 + (Number(tag) % 20000);
  const a = await pod({ port_mappings: [{ protocol: 0, container_port: 8080, host_port: hostPort }, { protocol: 0, container_port: 9999 }], annotations: { note: 'for-the-spy' } });
  await run(a, 'web', ['sh', '-c', 'mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www']);
  const sa = (await c.rt.PodSandboxStatus({ pod_sandbox_id: a.id })).status;
  t.match(sa.network.ip, /^10\.250\.0\.\d+$/, `pod got an address from host-local: ${sa.network.ip}`);
  t.same(leases(), [sa.network.ip], 'host-local holds its lease');

  const spy = JSON.parse(readFileSync(join(spyDir, `ADD-${a.id}`), 'utf8'));
  t.same(spy.env.CNI_ARGS.split(';'), ['IgnoreUnknown=1', 'K8S_POD_NAMESPACE=cnitest', `K8S_POD_NAME=${a.config.metadata.name}`, `K8S_POD_INFRA_CONTAINER_ID=${a.id}`, `K8S_POD_UID=${a.config.metadata.uid}`], 'CNI_ARGS as containerd passes them');
  t.equal(spy.env.CNI_IFNAME, 'eth0');
  t.match(spy.env.CNI_NETNS, new RegExp(`^${root}/ns/${a.id}-net$`));
  t.same(spy.conf.runtimeConfig, { portMappings: [{ hostPort, containerPort: 8080, protocol: 'tcp' }], 'io.kubernetes.cri.pod-annotations': { note: 'for-the-spy' } }, 'runtimeConfig: the capabilities the plugin declares');
  t.same([spy.conf.name, spy.conf.cniVersion], ['shoaltest', '1.0.0'], 'name and cniVersion from the list');
  t.match(spy.conf.prevResult.ips[0].address, sa.network.ip, 'prevResult: what bridge and portmap returned');

  // Another pod reaches the first one's address.
  const b = await pod();
  const cli = await run(b, 'client', ['sleep', '1000']);
  const got = await c.rt.ExecSync({ container_id: cli, cmd: ['wget', '-q', '-O', '-', `http://${sa.network.ip}:8080/index.html`], timeout: 20 });
  t.equal(got.stdout.toString(), `hello-from-${a.config.hostname}\n`, 'pod to pod over the bridge');
  // The host port (portmap's DNAT) reaches the container port, from the runtime's host.
  const viaHost = inNs('busybox', 'wget', '-q', '-O', '-', `http://10.250.0.1:${hostPort}/index.html`);
  t.equal(viaHost, `hello-from-${a.config.hostname}\n`, `host port ${hostPort} reaches container port 8080 (portmap)`);
  t.ok(natRules().length > 0, 'portmap made its DNAT rules');

  // Pod b loses its interface (DEL must still succeed for it below).
  const info = async (cl: typeof c, id: string) => JSON.parse((await cl.rt.PodSandboxStatus({ pod_sandbox_id: id, verbose: true })).info.info);
  execFileSync('nsenter', [`--net=${(await info(c, b.id)).netns}`, '--', 'ip', 'link', 'del', 'eth0']);

  // DEL on stop: no veth, no rule, no lease left (also for pod b, whose veth is already gone).
  await c.rt.StopPodSandbox({ pod_sandbox_id: a.id });
  t.equal((await c.rt.PodSandboxStatus({ pod_sandbox_id: a.id })).status.network.ip, '', 'a stopped pod reports no IP');
  t.ok(existsSync(join(spyDir, `DEL-${a.id}`)), 'the chain got DEL on StopPodSandbox');
  const del = JSON.parse(readFileSync(join(spyDir, `DEL-${a.id}`), 'utf8'));
  t.match(del.conf.prevResult.ips[0].address, sa.network.ip, 'DEL gets the cached result as prevResult');
  await c.rt.RemovePodSandbox({ pod_sandbox_id: a.id });
  await c.rt.RemovePodSandbox({ pod_sandbox_id: b.id });
  t.equal(veths(), 0, 'no veth left');
  t.same(natRules(), [], 'no portmap rule left');
  t.same(leases(), [], 'no IP lease left');

  // An ADD that fails halfway (bridge and portmap done, the third plugin refuses): the error
  // names the plugin, DEL runs through the chain, nothing is left.
  const half = await c.rt.RunPodSandbox({ config: { metadata: { name: 'half', uid: 'half', namespace: 'cnitest' }, port_mappings: [{ container_port: 80, host_port: hostPort + 1 }], annotations: { 'test/fail-add': 'yes' } } }).catch((x: any) => x);
  t.match(half.details, /plugin type="spy" name="shoaltest" failed \(add, exit 1\): spy refuses: asked to by the pod \(code 999\)/, 'the error names the failing plugin');
  t.equal(veths(), 0, 'half-failed ADD: no veth left');
  t.same(natRules(), [], 'half-failed ADD: no portmap rule left');
  t.same(leases(), [], 'half-failed ADD: no IP lease left');
  t.same((await c.rt.ListPodSandbox({})).items, [], 'and no pod');

  // A restart keeps the pod's network; DEL after the restart uses the recorded chain and result.
  const r1 = await pod({ port_mappings: [{ container_port: 8080, host_port: hostPort + 2 }] });
  const ip1 = (await c.rt.PodSandboxStatus({ pod_sandbox_id: r1.id })).status.network.ip;
  await rt.kill('SIGKILL');
  rmSync(join(confDir, '10-shoaltest.conflist')); // the config changes meanwhile: the pod keeps its chain
  rt = await startRuntime(join(base, 'cri.sock'), root, ['--cni-conf-dir', confDir, '--cni-bin-dir', `${binDir}:${CNI_BIN}`], { netns: nsPath });
  t.equal((await rt.client.rt.PodSandboxStatus({ pod_sandbox_id: r1.id })).status.network.ip, ip1, 'the IP survives a runtime restart');
  await rt.client.rt.RemovePodSandbox({ pod_sandbox_id: r1.id });
  t.ok(existsSync(join(spyDir, `DEL-${r1.id}`)), 'DEL after the restart ran the recorded chain');
  t.same([veths(), natRules().length, leases().length], [0, 0, 0], 'nothing left after DEL');

  // CHECK where asked (verbose status): passes on a healthy pod, fails once its interface is
  // gone. (Not with portmap in the chain: Debian's portmap 1.1.1 fails CHECK on IPv4-only pods,
  // looking for an IPv6 chain it never made.)
  writeFileSync(join(confDir, '15-check.conflist'), JSON.stringify({ ...conflist, name: 'checknet', plugins: [conflist.plugins[0]] }));
  const chk = await rt.client.rt.RunPodSandbox({ config: { metadata: { name: 'chk', uid: 'chk', namespace: 'cnitest' } } });
  t.equal((await info(rt.client, chk.pod_sandbox_id)).cniCheck, 'passed', 'CHECK passes on a healthy pod');
  execFileSync('nsenter', [`--net=${(await info(rt.client, chk.pod_sandbox_id)).netns}`, '--', 'ip', 'link', 'del', 'eth0']);
  t.match((await info(rt.client, chk.pod_sandbox_id)).cniCheck, /^failed: plugin type="bridge" name="checknet" failed \(check/, 'CHECK fails when the pod lost its interface');
  await rt.client.rt.RemovePodSandbox({ pod_sandbox_id: chk.pod_sandbox_id });
  rmSync(join(confDir, '15-check.conflist'));

  // A single-plugin .conf at CNI 0.3.1 (no CHECK in that version) works too; host-network pods skip CNI.
  writeFileSync(join(confDir, '20-old.conf'), JSON.stringify({ cniVersion: '0.3.1', name: 'oldnet', type: 'bridge', bridge, isGateway: true, ipam: { type: 'host-local', ranges: [[{ subnet }]], dataDir: ipamDir } }));
  const old = await rt.client.rt.RunPodSandbox({ config: { metadata: { name: 'old', uid: 'old', namespace: 'cnitest' } } });
  const oldInfo = JSON.parse((await rt.client.rt.PodSandboxStatus({ pod_sandbox_id: old.pod_sandbox_id, verbose: true })).info.info);
  t.match(oldInfo.cniResult.ips[0].address, /^10\.250\.0\./);
  t.match(oldInfo.cniCheck, /cniVersion 0\.3\.1 has no CHECK/);
  const hostNet = await rt.client.rt.RunPodSandbox({ config: { metadata: { name: 'hostnet', uid: 'hn', namespace: 'cnitest' }, linux: { security_context: { namespace_options: { network: 2 } } } } });
  t.equal((await rt.client.rt.PodSandboxStatus({ pod_sandbox_id: hostNet.pod_sandbox_id })).status.network.ip, '', 'host network: no CNI');
  t.notOk(existsSync(join(spyDir, `ADD-${hostNet.pod_sandbox_id}`)));
  await rt.client.rt.RemovePodSandbox({ pod_sandbox_id: old.pod_sandbox_id });
  await rt.client.rt.RemovePodSandbox({ pod_sandbox_id: hostNet.pod_sandbox_id });
  t.same([veths(), leases().length], [0, 0], 'nothing left');
});
