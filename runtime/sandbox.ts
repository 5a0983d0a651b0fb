// Pod sandboxes: the namespaces a pod's containers share. Network, IPC and UTS namespaces are
// created by shoal-shim (unshare(2)) and kept alive by bind-mounting them on files under <root>/ns (no pause
// process needed); the network namespace path is what a network plugin is handed. The pod gets
// a loopback interface, its hostname, and /etc/hosts, /etc/hostname, /etc/resolv.conf files
// that every container of the pod mounts.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from './run-command.js';
import { removeCgroup } from './cgroups.js';
import type { CriObject, SandboxRecord, StateStore } from './state.js';
import { nowNs } from './logs.js';
import { InvalidArgumentError } from './errors.js';
import { traced } from './trace.js';
import type { Shim } from './shim.js';

const NODE = 2; // NamespaceMode.NODE

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

export async function createSandbox(state: StateStore, shim: Shim, nsDir: string, config: CriObject, runtimeHandler: string, defaultCgroupParent = '/shoal'): Promise<SandboxRecord> {
  const md = config?.metadata;
  if (!md || !md.name) throw new InvalidArgumentError('RunPodSandbox: config.metadata.name is required');
  if (runtimeHandler && runtimeHandler !== 'runc') throw new InvalidArgumentError(`RunPodSandbox: unknown runtime handler ${JSON.stringify(runtimeHandler)}; shoal-runtime only has "runc" (or empty)`);
  const nsOpts = config.linux?.security_context?.namespace_options ?? {};
  const hostNet = nsOpts.network === NODE;
  const hostIpc = nsOpts.ipc === NODE;
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
    // All three settle before a failure is handled, so the cleanup below never races a
    // namespace mount still being made.
    const done = await Promise.allSettled([
      traced('sb.files', () => writeEtcFiles(rec, hostNet)),
      wanted ? traced('sb.unshare', () => shim.request('ns', [rec.netns ?? '', rec.ipcns ?? '', rec.utsns ?? ''])) : undefined,
      traced('sb.save', () => state.createRecord(dir, rec)),
    ]);
    for (const d of done) if (d.status === 'rejected') throw d.reason;
    return rec;
  } catch (e) {
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

/** Unmounts and removes the namespace files and the pod cgroup. Idempotent. */
export async function destroySandboxResources(rec: SandboxRecord): Promise<void> {
  for (const f of [rec.netns, rec.ipcns, rec.utsns]) {
    if (!f || !existsSync(f)) continue;
    await runCommand('umount', [f], { allowFail: true });
    await fsp.rm(f, { force: true });
  }
  if (!rec.config.linux?.cgroup_parent) await removeCgroup(rec.cgroupParent);
}
