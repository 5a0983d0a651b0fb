// ContainerStats: CPU and memory from the container's cgroup, the writable layer's size from
// its overlayfs upper directory. usage_nano_cores needs two samples, so the last one is kept.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { readStats } from './cgroups.js';
import { nowNs } from './logs.js';
import type { ContainerRecord, SandboxRecord } from './state.js';

const lastCpu = new Map<string, { t: number; usage: number }>();

async function du(dir: string): Promise<{ bytes: number; inodes: number }> {
  let bytes = 0; let inodes = 0;
  const stack = [dir];
  while (stack.length) {
    const d = stack.pop()!;
    let ents;
    try { ents = await fsp.readdir(d, { withFileTypes: true }); } catch { continue; }
    for (const e of ents) {
      inodes++;
      const p = join(d, e.name);
      if (e.isDirectory()) stack.push(p);
      else { try { bytes += (await fsp.lstat(p)).blocks * 512; } catch { /* gone */ } }
    }
  }
  return { bytes, inodes };
}

const u64 = (v: number | undefined) => (v === undefined ? null : { value: v });

export async function containerStats(c: ContainerRecord): Promise<object> {
  const ts = Number(nowNs());
  const running = c.state === 'running';
  const s = running ? readStats(c.cgroupsPath) : {};
  let nanoCores: number | undefined;
  if (s.cpuUsageNs !== undefined) {
    const prev = lastCpu.get(c.id);
    if (prev && ts > prev.t) nanoCores = Math.max(0, Math.round(((s.cpuUsageNs - prev.usage) / (ts - prev.t)) * 1e9));
    lastCpu.set(c.id, { t: ts, usage: s.cpuUsageNs });
  }
  const fs = await du(join(c.dir, 'upper'));
  return {
    attributes: { id: c.id, metadata: c.config.metadata, labels: c.config.labels ?? {}, annotations: c.config.annotations ?? {} },
    cpu: { timestamp: ts, usage_core_nano_seconds: u64(s.cpuUsageNs), usage_nano_cores: u64(nanoCores) },
    memory: {
      timestamp: ts,
      working_set_bytes: u64(s.workingSet),
      available_bytes: u64(s.memoryLimit !== undefined && s.workingSet !== undefined ? Math.max(0, s.memoryLimit - s.workingSet) : undefined),
      usage_bytes: u64(s.memoryUsage),
      rss_bytes: u64(s.rss),
      page_faults: u64(s.pageFaults),
      major_page_faults: u64(s.majorPageFaults),
    },
    writable_layer: { timestamp: ts, fs_id: { mountpoint: join(c.dir, 'upper') }, used_bytes: { value: fs.bytes }, inodes_used: { value: fs.inodes } },
  };
}

export function forgetStats(id: string): void { lastCpu.delete(id); }

/** Pod-level stats from the pod's cgroup (network usage is not collected). */
export async function podSandboxStats(sb: SandboxRecord, containers: ContainerRecord[]): Promise<object> {
  const ts = Number(nowNs());
  const s = readStats(sb.cgroupParent);
  let nanoCores: number | undefined;
  if (s.cpuUsageNs !== undefined) {
    const key = 'pod:' + sb.id;
    const prev = lastCpu.get(key);
    if (prev && ts > prev.t) nanoCores = Math.max(0, Math.round(((s.cpuUsageNs - prev.usage) / (ts - prev.t)) * 1e9));
    lastCpu.set(key, { t: ts, usage: s.cpuUsageNs });
  }
  return {
    attributes: { id: sb.id, metadata: sb.config.metadata, labels: sb.config.labels ?? {}, annotations: sb.config.annotations ?? {} },
    linux: {
      cpu: { timestamp: ts, usage_core_nano_seconds: u64(s.cpuUsageNs), usage_nano_cores: u64(nanoCores) },
      memory: { timestamp: ts, working_set_bytes: u64(s.workingSet), usage_bytes: u64(s.memoryUsage), rss_bytes: u64(s.rss), page_faults: u64(s.pageFaults), major_page_faults: u64(s.majorPageFaults) },
      network: null,
      process: { timestamp: ts, process_count: u64(s.pids) },
      containers: await Promise.all(containers.filter((c) => c.state === 'running').map(containerStats)),
    },
  };
}
