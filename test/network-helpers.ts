// Shared by the network tests on a real lab: a command in a task's main container (CRI ExecSync
// through the node's own runtime socket, so names resolve with the pod's resolv.conf and traffic
// leaves from the pod's interfaces), a command in a lab host's namespace, and what a host's data
// path holds (VXLAN FDB entries, the nft rules of a pod).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { criClient } from '../node/cri/client.js';
import type { Lab } from './services-helpers.js';

export interface Out {
  code: number;
  out: string;
}

/** Runs `cmd` in the main container of task `taskId` on `node`; the runtime kills it after `timeoutS`. */
export async function execTask(lab: Lab, node: string, taskId: string, cmd: string[], timeoutS = 5): Promise<Out> {
  const c = criClient(join(lab.node(node).stateDir, 'cri.sock'), (timeoutS + 20) * 1000);
  try {
    const r = await c.runtime.ListContainers({ filter: { label_selector: { 'io.shoal.task.id': taskId, 'io.shoal.container': 'main' }, state: { state: 1 } } });
    const ctr = (r.containers ?? [])[0] as { id: string } | undefined;
    if (!ctr) return { code: -1, out: `task ${taskId} has no running main container on ${node}` };
    const x = await c.runtime.ExecSync({ container_id: ctr.id, cmd, timeout: timeoutS }, (timeoutS + 20) * 1000);
    return { code: Number(x.exit_code), out: `${Buffer.from(x.stdout ?? '').toString()}${Buffer.from(x.stderr ?? '').toString()}`.trim() };
  } finally {
    c.close();
  }
}

/** HTTP GET from inside a task (busybox wget); the body, or undefined when it failed. */
export async function httpFrom(lab: Lab, node: string, taskId: string, url: string, timeoutS = 3): Promise<string | undefined> {
  // busybox wget's own -T crashes in Debian's busybox-static 1.35: the image's `timeout` bounds it.
  const r = await execTask(lab, node, taskId, ['timeout', String(timeoutS), 'wget', '-q', '-O', '-', url], timeoutS + 3);
  return r.code === 0 ? r.out : undefined;
}

/** The addresses a name resolves to inside a task (busybox nslookup; IPv4 answers only). */
export async function resolveFrom(lab: Lab, node: string, taskId: string, name: string): Promise<string[] | undefined> {
  const r = await execTask(lab, node, taskId, ['nslookup', '-type=a', name], 8);
  if (r.code !== 0) return undefined;
  // The answers follow the "Name:" line (the server's own address comes first).
  const after = r.out.split(/\n\s*\n/).slice(1).join('\n');
  return [...after.matchAll(/Address:\s*(\d+\.\d+\.\d+\.\d+)/g)].map((m) => m[1]!).sort();
}

/** A command in a lab host's network namespace (nsenter: no /sys remount). */
export function inHost(lab: Lab, node: string, cmd: string[], timeoutMs = 30_000): Out {
  const r = spawnSync('nsenter', [`--net=/run/netns/${lab.node(node).netns}`, '--', ...cmd], { encoding: 'utf8', timeout: timeoutMs });
  return { code: r.status ?? -1, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

/** HTTP GET from a lab host's namespace (the machine's busybox-static, bounded by coreutils' timeout). */
export function httpFromHost(lab: Lab, node: string, url: string, timeoutS = 3): string | undefined {
  const r = inHost(lab, node, ['timeout', String(timeoutS), 'busybox', 'wget', '-q', '-O', '-', url], (timeoutS + 10) * 1000);
  return r.code === 0 ? r.out : undefined;
}

/** The underlay addresses a host's VXLAN devices send to (its permanent FDB entries). */
export function fdbPeers(lab: Lab, node: string): string[] {
  const r = inHost(lab, node, ['bridge', 'fdb', 'show']);
  return [...new Set([...r.out.matchAll(/dev shvx-\d+ dst (\d+\.\d+\.\d+\.\d+)/g)].map((m) => m[1]!))].sort();
}

/** The nft ruleset inside the network namespace of task `taskId`'s pod on `node` (its VIP DNAT). */
export async function podRules(lab: Lab, node: string, taskId: string): Promise<string> {
  const c = criClient(join(lab.node(node).stateDir, 'cri.sock'), 30_000);
  try {
    const pods = (await c.runtime.ListPodSandbox({ filter: { label_selector: { 'io.shoal.task.id': taskId } } })).items ?? [];
    const pod = (pods as { id: string; state: number }[]).find((p) => p.state === 0);
    if (!pod) return '';
    const st = await c.runtime.PodSandboxStatus({ pod_sandbox_id: pod.id, verbose: true });
    const netns = JSON.parse(st.info?.info ?? '{}').netns as string | undefined;
    if (!netns) return '';
    const r = spawnSync('nsenter', [`--net=${netns}`, '--', 'nft', 'list', 'ruleset'], { encoding: 'utf8', timeout: 30_000 });
    return r.stdout ?? '';
  } finally {
    c.close();
  }
}

/** A task's address on its first network, from `service ps --format json`. */
export function firstAddress(row: { networks?: { address: string }[] }): string {
  return row.networks?.[0]?.address ?? '';
}
