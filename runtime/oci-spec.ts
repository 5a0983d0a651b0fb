// Builds the OCI runtime spec (config.json) runc runs a container from: the process (args,
// env, cwd, user), the root, the mounts, the pod's namespaces, the cgroup and the resource
// limits. oomScoreAdj is never set: no process here may ask for a negative value.
import { readFileSync } from 'node:fs';
import type { ImageConfig } from './image-store.js';
import { swapLimitSupported } from './cgroups.js';

let nofile: number | undefined;
/** Our own hard RLIMIT_NOFILE: raising it needs CAP_SYS_RESOURCE, which we may not have. */
function nofileLimit(): number {
  if (nofile !== undefined) return nofile;
  const m = /^Max open files\s+\S+\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  nofile = m && /^\d+$/.test(m[1]!) ? Math.min(Number(m[1]), 1048576) : 1024;
  return nofile;
}

export interface SpecInput {
  args: string[];
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  additionalGids: number[];
  rootfs: string;
  readonlyRootfs: boolean;
  hostname?: string;
  namespaces: { type: string; path?: string }[];
  cgroupsPath: string;
  mounts: OciMount[];
  resources: ResourceInput;
  privileged: boolean;
  /** The capability set (security.ts decides it). */
  caps: string[];
  noNewPrivs: boolean;
  seccomp?: object;
  devices?: object[];
  deviceRules?: object[];
  rootfsPropagation?: string;
  terminal?: boolean;
  maskedPaths?: string[];
  readonlyPaths?: string[];
  sysctls?: Record<string, string>;
}

export interface ResourceInput {
  cpuShares?: number;
  cpuQuota?: number;
  cpuPeriod?: number;
  cpusetCpus?: string;
  cpusetMems?: string;
  memoryLimit?: number;
  memorySwap?: number;
  pidsLimit?: number;
  /** Huge page limits per page size ("2MB": bytes); the kubelet sends 0 for every size not asked for. */
  hugepageLimits?: { pageSize: string; limit: number }[];
}

/** The CRI's memory and CPU fields (LinuxContainerResources) as ResourceInput; 0 means unset. */
export function resourcesFromCri(res: { cpu_shares?: number; cpu_quota?: number; cpu_period?: number; cpuset_cpus?: string; cpuset_mems?: string; memory_limit_in_bytes?: number; memory_swap_limit_in_bytes?: number; hugepage_limits?: { page_size: string; limit: number }[] }): ResourceInput {
  return {
    cpuShares: res.cpu_shares || undefined,
    cpuQuota: res.cpu_quota || undefined,
    cpuPeriod: res.cpu_period || undefined,
    cpusetCpus: res.cpuset_cpus || undefined,
    cpusetMems: res.cpuset_mems || undefined,
    memoryLimit: res.memory_limit_in_bytes || undefined,
    memorySwap: res.memory_swap_limit_in_bytes || undefined,
    hugepageLimits: res.hugepage_limits?.length ? res.hugepage_limits.map((h) => ({ pageSize: h.page_size, limit: Number(h.limit) })) : undefined,
  };
}

/** The memory and CPU part of the OCI linux.resources (for a new spec and for `runc update`). */
export function memoryCpuResources(res: ResourceInput): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  // Swap = limit (no swap beyond the memory limit), as docker's default, where it can be set.
  if (res.memoryLimit) out['memory'] = { limit: res.memoryLimit, ...(swapLimitSupported() ? { swap: res.memorySwap ?? res.memoryLimit } : {}) };
  const cpu: Record<string, unknown> = {};
  if (res.cpuShares) cpu['shares'] = res.cpuShares;
  if (res.cpuQuota) cpu['quota'] = res.cpuQuota;
  if (res.cpuPeriod) cpu['period'] = res.cpuPeriod;
  if (res.cpusetCpus) cpu['cpus'] = res.cpusetCpus;
  if (res.cpusetMems) cpu['mems'] = res.cpusetMems;
  if (Object.keys(cpu).length) out['cpu'] = cpu;
  return out;
}

export interface OciMount { destination: string; type: string; source: string; options: string[] }

const MASKED = ['/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats',
  '/proc/sched_debug', '/proc/scsi', '/sys/firmware'];
const READONLY = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** Merges image and CRI settings as the kubelet/containerd do: command replaces Entrypoint, args replace Cmd. */
export function processArgs(command: string[], args: string[], img: ImageConfig['config']): string[] {
  const entry = command.length > 0 ? command : (img?.Entrypoint ?? []);
  const cmd = args.length > 0 ? args : command.length > 0 ? [] : (img?.Cmd ?? []);
  return [...entry, ...cmd];
}

export function mergeEnv(image: string[], cri: { key: string; value: string }[]): string[] {
  const m = new Map<string, string>();
  for (const e of image) { const i = e.indexOf('='); m.set(i < 0 ? e : e.slice(0, i), i < 0 ? '' : e.slice(i + 1)); }
  for (const kv of cri) m.set(kv.key, kv.value);
  if (!m.has('PATH')) m.set('PATH', '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
  return [...m].map(([k, v]) => `${k}=${v}`);
}

export function buildSpec(i: SpecInput): object {
  const caps = i.caps;
  const res = i.resources;
  const resources: Record<string, unknown> = {
    devices: [{ allow: i.privileged, access: 'rwm' }, ...(i.deviceRules ?? [])],
  };
  Object.assign(resources, memoryCpuResources(res));
  if (res.pidsLimit) resources['pids'] = { limit: res.pidsLimit };
  // runc writes them to the hugetlb cgroup, and skips them where the host has no hugetlb controller.
  if (res.hugepageLimits) resources['hugepageLimits'] = res.hugepageLimits;
  const mounts: OciMount[] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', i.privileged ? 'rw' : 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', i.privileged ? 'rw' : 'ro'] },
    ...i.mounts,
  ];
  const linux: Record<string, unknown> = {
    namespaces: i.namespaces,
    cgroupsPath: i.cgroupsPath,
    resources,
  };
  if (!i.privileged) {
    linux['maskedPaths'] = i.maskedPaths?.length ? i.maskedPaths : MASKED;
    linux['readonlyPaths'] = i.readonlyPaths?.length ? i.readonlyPaths : READONLY;
  }
  if (i.sysctls && Object.keys(i.sysctls).length) linux['sysctl'] = i.sysctls;
  if (i.seccomp) linux['seccomp'] = i.seccomp;
  if (i.devices?.length) linux['devices'] = i.devices;
  if (i.rootfsPropagation) linux['rootfsPropagation'] = i.rootfsPropagation;
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: !!i.terminal,
      user: { uid: i.uid, gid: i.gid, ...(i.additionalGids.length ? { additionalGids: i.additionalGids } : {}) },
      args: i.args,
      env: i.env,
      cwd: i.cwd,
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: nofileLimit(), soft: nofileLimit() }],
      noNewPrivileges: i.noNewPrivs,
    },
    root: { path: i.rootfs, readonly: i.readonlyRootfs },
    ...(i.hostname ? { hostname: i.hostname } : {}),
    mounts,
    linux,
  };
}
