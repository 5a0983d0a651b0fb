// What the overlay benchmarks share: two netns hosts with shoal-net on a bridge (the test
// harness), a network with a subnet per host, pods attached through the plugin, clean-up on
// exit or interrupt, measurements serialised machine-wide, medians and the load average.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Attachment, Network, Service } from '../proto/network/types.js';
import { OverlayLab, nsPath, stateFor } from '../test/overlay-harness.js';

export const BENCH_LOCK = '/tmp/shoal-bench.lock';

export function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return def;
  const v = Number(process.argv[i + 1]);
  if (!(v > 0)) { process.stderr.write(`${name} needs a positive number\n`); process.exit(2); }
  return v;
}

export function loadavg(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Runs `cmd` inside netns `ns` holding the machine-wide benchmark lock (other helpers'
 * measurements wait for ours and ours for theirs). Asynchronous, so an interrupt is handled at
 * once (the clean-up kills what is running) even while the lock is awaited. */
export async function lockedIn(ns: string, cmd: string[], timeoutMs: number): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const inner = ['nsenter', `--net=${nsPath(ns)}`, '--', ...cmd];
  let r = await runAsync(['flock', '-n', '-E', '75', BENCH_LOCK, ...inner], timeoutMs);
  if (r.status === 75) {
    process.stdout.write(`  waiting for ${BENCH_LOCK} (another measurement is running; up to 30 min)\n`);
    r = await runAsync(['flock', '-w', '1800', BENCH_LOCK, ...inner], timeoutMs + 1_800_000);
  }
  return r;
}

const running = new Set<ChildProcess>();

/** Kills the measurements under way (the interrupt handler calls it). */
export function killRunning(): void {
  for (const p of running) p.kill('SIGKILL');
}

function runAsync(cmd: string[], timeoutMs: number): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(p);
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => { stderr += `(killed after ${timeoutMs} ms)`; p.kill('SIGKILL'); }, timeoutMs);
    p.stdout!.on('data', (b: Buffer) => { stdout += b.toString(); });
    p.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
    p.on('error', (e) => { stderr += e.message; });
    p.on('close', (status) => { clearTimeout(timer); running.delete(p); resolve({ status, stdout, stderr }); });
  });
}

export const FRONT: Network = { id: 'net-bench', name: 'bench', vni: 4242, subnet: '10.1.0.0/16', internal: false, node_subnets: [
  { node_id: 'n1', subnet: '10.1.1.0/24' }, { node_id: 'n2', subnet: '10.1.2.0/24' }] };
export const NODES = [{ id: 'n1', underlay_addr: '10.99.0.11' }, { id: 'n2', underlay_addr: '10.99.0.12' }];

export interface BenchLab {
  lab: OverlayLab;
  pods: Map<string, string>; // task -> netns name
  close(): Promise<void>;
}

/** Two hosts, and one pod per entry of `pods` ([task, node, address]); `services` pushed too. */
export async function benchLab(tag: string, pods: [string, 'n1' | 'n2', string][], services: Service[] = []): Promise<BenchLab> {
  const lab = new OverlayLab(tag);
  let closing: Promise<void> | undefined;
  const close = () => closing ??= lab.close();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => { process.stderr.write(`\n${sig}: removing the benchmark's namespaces and processes\n`); killRunning(); void close().then(() => process.exit(130)); });
  }
  try {
    await lab.addHost('n1', '10.99.0.11');
    await lab.addHost('n2', '10.99.0.12');
    const attachments: Record<string, Attachment[]> = { n1: [], n2: [] };
    for (const [task, node, addr] of pods) attachments[node]!.push({ task_id: task, pod_namespace: 'bench', pod_name: task, networks: [{ network_id: FRONT.id, address: addr }] });
    const cluster = { networks: [FRONT], nodes: NODES, services, attachments };
    for (const h of lab.hosts.values()) await h.plugin!.client.updateState({ full: true, version: 1, state: stateFor(h.name, cluster) });
    const map = new Map<string, string>();
    for (const [task, node] of pods) {
      const ns = lab.makePodNs(task);
      map.set(task, ns);
      await lab.host(node).plugin!.client.add({ pod: { container_id: `ctr-${task}`, netns: nsPath(ns), ifname: 'eth0', args: { K8S_POD_UID: task } } });
    }
    return { lab, pods: map, close };
  } catch (e) {
    await close();
    throw e;
  }
}
