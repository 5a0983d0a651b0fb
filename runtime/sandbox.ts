// Pod sandboxes: the namespaces a pod's containers share. Network, IPC and UTS namespaces are
// created by shoal-shim (unshare(2)) and kept alive by bind-mounting them on files under <root>/ns (no pause
// process needed); the network namespace path is what a network plugin is handed. The pod gets
// a loopback interface, its hostname, and /etc/hosts, /etc/hostname, /etc/resolv.conf files
// that every container of the pod mounts.
import { checkSandboxConfig } from './unimplemented.js';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readlinkSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from './run-command.js';
import { removeCgroup } from './cgroups.js';
import type { CriObject, SandboxRecord, StateStore } from './state.js';
import { nowNs } from './logs.js';
import { InvalidArgumentError } from './errors.js';
import { traced } from './trace.js';
import type { Shim } from './shim.js';
import { type Cni, type PodNetworkRequest, podRuntimeConfig, resultIps } from './cni.js';

const POD = 0; // NamespaceMode.POD (the proto default)
const NODE = 2; // NamespaceMode.NODE
const TARGET = 3;

/** Is `pid` the infra process of the sandbox in `dir` (named shoal-pause, working in dir)? */
export function isInfraOf(pid: number | undefined, dir: string): boolean {
  if (!pid) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const st = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (st === 'Z' || st === 'X') return false;
    return stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) === 'shoal-pause' && readlinkSync(`/proc/${pid}/cwd`) === dir;
  } catch { return false; }
}

/** What the CNI plugins are told about a pod (CNI_ARGS, runtimeConfig). */
export function podNetworkRequest(rec: SandboxRecord): PodNetworkRequest {
  const md = rec.config.metadata ?? {};
  return { sandboxId: rec.id, netns: rec.netns ?? '', podName: md.name ?? '', podNamespace: md.namespace ?? '', podUid: md.uid ?? '', runtimeConfig: podRuntimeConfig(rec.config) };
}

export function newId(): string {
  return randomBytes(32).toString('hex');
}

export function isMountpoint(p: string): boolean {
  const mi = readFileSync('/proc/self/mountinfo', 'utf8');
  return mi.split('\n').some((l) => l.split(' ')[4] === p);
}

/** Bind-mounts <root>/ns on itself, private, so namespace files can be bind-mounted there. */
export async function prepareNsDir(root: string): Promise<string> {
  const dir = join(root, 'ns');
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  if (!isMountpoint(dir)) await runCommand('mount', ['--bind', dir, dir]);
  await runCommand('mount', ['--make-private', dir]);
  return dir;
}

const HOSTNAME_RE = /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;

export async function createSandbox(state: StateStore, shim: Shim, nsDir: string, config: CriObject, runtimeHandler: string, defaultCgroupParent = '/shoal', cni?: Cni): Promise<SandboxRecord> {
  const md = config?.metadata;
  if (!md || !md.name) throw new InvalidArgumentError('RunPodSandbox: config.metadata.name is required');
  if (runtimeHandler && runtimeHandler !== 'runc') throw new InvalidArgumentError(`RunPodSandbox: unknown runtime handler ${JSON.stringify(runtimeHandler)}; shoal-runtime only has "runc" (or empty)`);
  const nsOpts = config.linux?.security_context?.namespace_options ?? {};
  const hostNet = nsOpts.network === NODE;
  const hostIpc = nsOpts.ipc === NODE;
  if (nsOpts.pid === TARGET || nsOpts.network === TARGET || nsOpts.ipc === TARGET) throw new InvalidArgumentError('RunPodSandbox: NamespaceMode TARGET is for containers only');
  checkSandboxConfig(config);
  // POD (the default): one PID namespace for the pod, held by an infra process.
  const sharedPid = (nsOpts.pid ?? POD) === POD;
  // The network the config directory defines now; none: a loopback-only pod.
  const netConf = hostNet ? undefined : cni?.load();
  const id = newId();
  const hostname: string = config.hostname || (hostNet ? '' : md.name.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 63));
  if (hostname && !HOSTNAME_RE.test(hostname)) throw new InvalidArgumentError(`RunPodSandbox: hostname ${JSON.stringify(hostname)} is not a valid DNS name`);
  const dir = state.sandboxDir(id);
  await traced('sb.mkdir', () => fsp.mkdir(dir, { recursive: true, mode: 0o711 }));
  const rec: SandboxRecord = {
    id, config, runtimeHandler: runtimeHandler || '', createdAt: Number(nowNs()), state: 'ready',
    hostname, dir,
    cgroupParent: config.linux?.cgroup_parent || `${defaultCgroupParent}/${id.slice(0, 16)}`,
  };
  try {
    if (!hostNet) rec.netns = join(nsDir, `${id}-net`);
    if (!hostIpc) rec.ipcns = join(nsDir, `${id}-ipc`);
    if (!hostNet) rec.utsns = join(nsDir, `${id}-uts`);
    // One shim request creates the mount-point files and the namespaces and brings loopback up
    // inside; the hostname is set in the UTS namespace by runc when the pod's first container
    // starts (spec.hostname).
    const wanted = !!(rec.netns || rec.ipcns || rec.utsns);
    // The chain is recorded before ADD runs, so a DEL (now, or after a crash) finds it.
    if (netConf) rec.network = { confList: netConf, ifName: 'eth0', ips: [] };
    const infra = sharedPid ? traced('sb.infra', () => shim.request('infra', [dir])) : undefined;
    const ns = wanted ? traced('sb.unshare', () => shim.request('ns', [rec.netns ?? '', rec.ipcns ?? '', rec.utsns ?? ''])) : undefined;
    const lo = netConf ? cni!.loopback() : undefined;
    if (lo) rec.network!.loopback = true;
    const net = ns && netConf ? ns.then(() => Promise.all([
      traced('sb.cni', () => cni!.add(netConf, podNetworkRequest(rec), 'eth0')),
      lo ? traced('sb.cni-lo', () => cni!.add(lo, podNetworkRequest(rec), 'lo')) : undefined,
    ]).then(([r]) => r)) : undefined;
    // Everything settles before a failure is handled, so the cleanup below never races a
    // namespace mount or a plugin still at work.
    const done = await Promise.allSettled([
      traced('sb.files', () => writeEtcFiles(rec, hostNet)),
      ns, net,
      // The first record waits for the infra pid (a fork: quick) so it need not be written twice.
      (infra ?? Promise.resolve(undefined)).then((pid) => { if (pid) rec.infraPid = Number(pid); return traced('sb.save', () => state.createRecord(dir, rec)); }),
    ]);
    for (const d of done) if (d.status === 'rejected') throw d.reason;
    if (net && rec.network) {
      rec.network.result = ((done[2] as PromiseFulfilledResult<Record<string, unknown>>).value);
      rec.network.ips = resultIps(rec.network.result, rec.network.ifName);
    }
    // The network's result goes into the record too (DEL hands it to the plugins as prevResult).
    if (rec.network) await traced('sb.save2', () => state.saveSandbox(rec));
    return rec;
  } catch (e) {
    if (rec.network && cni) {
      // ADD may have failed halfway: DEL through the whole chain (plugins tolerate missing state).
      const del = await cniDel(cni, rec).then(() => undefined, (x: Error) => x);
      if (del) (e as Error).message += `; and the cleanup (CNI DEL) failed too: ${del.message}`;
    }
    await destroySandboxResources(rec).catch(() => {});
    await fsp.rm(dir, { recursive: true, force: true });
    throw e;
  }
}

async function writeEtcFiles(rec: SandboxRecord, hostNet: boolean): Promise<void> {
  const name = rec.hostname || readFileSync('/etc/hostname', 'utf8').trim();
  const hosts = hostNet && existsSync('/etc/hosts') ? readFileSync('/etc/hosts', 'utf8')
    : `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t${name}\n`;
  const dns = rec.config.dns_config;
  let resolv = '';
  if (dns && (dns.servers?.length || dns.searches?.length || dns.options?.length)) {
    resolv = (dns.servers ?? []).map((s: string) => `nameserver ${s}\n`).join('')
      + (dns.searches?.length ? `search ${dns.searches.join(' ')}\n` : '')
      + (dns.options?.length ? `options ${dns.options.join(' ')}\n` : '');
  } else if (hostNet && existsSync('/etc/resolv.conf')) {
    resolv = readFileSync('/etc/resolv.conf', 'utf8');
  }
  await Promise.all([
    fsp.writeFile(join(rec.dir, 'hostname'), name + '\n'),
    fsp.writeFile(join(rec.dir, 'hosts'), hosts),
    fsp.writeFile(join(rec.dir, 'resolv.conf'), resolv),
  ]);
}

/** CNI DEL of a pod's network (its chain, then the loopback network if it had one). */
export async function cniDel(cni: Cni, rec: SandboxRecord): Promise<void> {
  const n = rec.network;
  if (!n) return;
  const req = podNetworkRequest(rec);
  await cni.del(n.confList, req, n.ifName, n.result);
  const lo = n.loopback ? cni.loopback() : undefined;
  if (lo) await cni.del(lo, req, 'lo', undefined);
}

/** Ends the pod's infra process (and with it what is left in its PID namespace). Idempotent. */
export async function killInfra(rec: SandboxRecord): Promise<void> {
  if (!isInfraOf(rec.infraPid, rec.dir)) return;
  try { process.kill(rec.infraPid!, 'SIGKILL'); } catch { return; }
  for (let i = 0; i < 200 && isInfraOf(rec.infraPid, rec.dir); i++) await new Promise((r) => setTimeout(r, 10));
}

/** Unmounts and removes the namespace files and the pod cgroup. Idempotent. */
export async function destroySandboxResources(rec: SandboxRecord): Promise<void> {
  await killInfra(rec);
  for (const f of [rec.netns, rec.ipcns, rec.utsns]) {
    if (!f || !existsSync(f)) continue;
    await runCommand('umount', [f], { allowFail: true });
    await fsp.rm(f, { force: true });
  }
  if (!rec.config.linux?.cgroup_parent) await removeCgroup(rec.cgroupParent);
}
