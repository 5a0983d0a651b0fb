// Reading the cgroups runc makes for our containers (limits are applied by runc from the OCI
// spec). Works on cgroup v2 (unified) and on v1 (one hierarchy per controller, which is what
// this machine has: /sys/fs/cgroup is a tmpfs of per-controller mounts).
import { existsSync, readFileSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { statfsSync } from 'node:fs';

const CG = '/sys/fs/cgroup';
const CGROUP2_MAGIC = 0x63677270;

let version: 1 | 2 | undefined;
export function cgroupVersion(): 1 | 2 {
  if (version) return version;
  version = statfsSync(CG).type === CGROUP2_MAGIC ? 2 : 1;
  return version;
}

/** Whether the host has the hugetlb controller (runc refuses huge page limits without it). */
export function hugetlbSupported(): boolean {
  if (cgroupVersion() === 1) return existsSync(join(CG, 'hugetlb'));
  try { return readFileSync(join(CG, 'cgroup.controllers'), 'utf8').split(/\s+/).includes('hugetlb'); } catch { return false; }
}

/**
 * Whether a swap limit can be set. On v1 without swap accounting (no memsw files) runc
 * refuses one; on v2 runc ignores a zero swap limit where swap is not accounted.
 */
export function swapLimitSupported(): boolean {
  return cgroupVersion() === 2 || existsSync(join(CG, 'memory', 'memory.memsw.limit_in_bytes'));
}

function v1(controller: string, path: string, file: string): string {
  return join(CG, controller, path, file);
}

function readNum(p: string): number | undefined {
  try {
    const s = readFileSync(p, 'utf8').trim();
    if (s === 'max') return undefined;
    const n = Number(s.split(/\s+/)[0]);
    return Number.isFinite(n) ? n : undefined;
  } catch { return undefined; }
}

function readKV(p: string): Record<string, number> {
  const out: Record<string, number> = {};
  try {
    for (const line of readFileSync(p, 'utf8').split('\n')) {
      const [k, v] = line.trim().split(/\s+/);
      if (k && v !== undefined) out[k] = Number(v);
    }
  } catch { /* absent */ }
  return out;
}

/** How many times the kernel's OOM killer killed a process in this cgroup. */
export function oomKillCount(path: string): number {
  if (cgroupVersion() === 2) return readKV(join(CG, path, 'memory.events'))['oom_kill'] ?? 0;
  return readKV(v1('memory', path, 'memory.oom_control'))['oom_kill'] ?? 0;
}

export interface CgroupStats {
  cpuUsageNs?: number;
  memoryUsage?: number;
  workingSet?: number;
  rss?: number;
  pageFaults?: number;
  majorPageFaults?: number;
  memoryLimit?: number;
  pids?: number;
  pidsLimit?: number;
}

export function readStats(path: string): CgroupStats {
  if (cgroupVersion() === 2) {
    const base = join(CG, path);
    const cpu = readKV(join(base, 'cpu.stat'));
    const mem = readKV(join(base, 'memory.stat'));
    const usage = readNum(join(base, 'memory.current'));
    return {
      cpuUsageNs: cpu['usage_usec'] !== undefined ? cpu['usage_usec'] * 1000 : undefined,
      memoryUsage: usage,
      workingSet: usage !== undefined ? Math.max(0, usage - (mem['inactive_file'] ?? 0)) : undefined,
      rss: mem['anon'],
      pageFaults: mem['pgfault'],
      majorPageFaults: mem['pgmajfault'],
      memoryLimit: readNum(join(base, 'memory.max')),
      pids: readNum(join(base, 'pids.current')),
      pidsLimit: readNum(join(base, 'pids.max')),
    };
  }
  const mem = readKV(v1('memory', path, 'memory.stat'));
  const usage = readNum(v1('memory', path, 'memory.usage_in_bytes'));
  const limit = readNum(v1('memory', path, 'memory.limit_in_bytes'));
  return {
    cpuUsageNs: readNum(v1('cpuacct', path, 'cpuacct.usage')),
    memoryUsage: usage,
    workingSet: usage !== undefined ? Math.max(0, usage - (mem['total_inactive_file'] ?? 0)) : undefined,
    rss: mem['total_rss'],
    pageFaults: mem['total_pgfault'],
    majorPageFaults: mem['total_pgmajfault'],
    memoryLimit: limit !== undefined && limit < 2 ** 62 ? limit : undefined,
    pids: readNum(v1('pids', path, 'pids.current')),
    pidsLimit: readNum(v1('pids', path, 'pids.max')),
  };
}

/** Removes a (pod) cgroup directory in every hierarchy once it is empty. */
export async function removeCgroup(path: string): Promise<void> {
  const dirs = cgroupVersion() === 2 ? [join(CG, path)] : (await fsp.readdir(CG)).map((c) => join(CG, c, path));
  for (const d of dirs) {
    if (!existsSync(d)) continue;
    // Children first (container cgroups runc left behind).
    for (const e of await fsp.readdir(d, { withFileTypes: true }).catch(() => [])) {
      if (e.isDirectory()) await fsp.rmdir(join(d, e.name)).catch(() => {});
    }
    await fsp.rmdir(d).catch(() => {});
  }
}

export function cgroupExists(path: string): boolean {
  return cgroupVersion() === 2 ? existsSync(join(CG, path)) : existsSync(join(CG, 'memory', path));
}
