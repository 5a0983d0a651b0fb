// The lab's network: one namespace holding a bridge, and one namespace per host joined to it by
// a veth pair. Every interface is created directly inside a lab namespace (`ip -n`), so the root
// namespace never holds a lab interface, address or route, even for a moment: no lab packet has
// a path to the machine's real interfaces.
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { BRIDGE_IFACE, HOST_IFACE, SUBNET_BITS, bridgeNetns, bridgePort, hostNetns, isLabNetns } from './names.js';
import { run, tryRun } from './sh.js';

export function listNetns(): string[] {
  const out = tryRun(['ip', 'netns', 'list']).out;
  // Lines look like "name (id: 3)" or just "name".
  return out.split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter((n) => n.length > 0);
}

export function netnsExists(ns: string): boolean {
  return listNetns().includes(ns);
}

export function createBridge(lab: string): string {
  const br = bridgeNetns(lab);
  run(['ip', 'netns', 'add', br]);
  run(['ip', '-n', br, 'link', 'set', 'lo', 'up']);
  run(['ip', '-n', br, 'link', 'add', BRIDGE_IFACE, 'type', 'bridge']);
  run(['ip', '-n', br, 'link', 'set', BRIDGE_IFACE, 'up']);
  return br;
}

/** Creates host `node`'s namespace, its veth to the bridge and its address. */
export function createHost(lab: string, node: string, address: string): { netns: string; port: string } {
  const br = bridgeNetns(lab);
  const ns = hostNetns(lab, node);
  const port = bridgePort(node);
  run(['ip', 'netns', 'add', ns]);
  run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  // Created inside the bridge namespace, its peer moved straight into the host's namespace.
  run(['ip', '-n', br, 'link', 'add', port, 'type', 'veth', 'peer', 'name', HOST_IFACE, 'netns', ns]);
  run(['ip', '-n', br, 'link', 'set', port, 'master', BRIDGE_IFACE, 'up']);
  run(['ip', '-n', ns, 'addr', 'add', `${address}/${SUBNET_BITS}`, 'dev', HOST_IFACE]);
  run(['ip', '-n', ns, 'link', 'set', HOST_IFACE, 'up']);
  return { netns: ns, port };
}

/** Process ids whose network namespace is `ns` (what `ip netns pids` reports). */
export function pidsIn(ns: string): number[] {
  const r = tryRun(['ip', 'netns', 'pids', ns]);
  if (!r.ok) return [];
  return r.out.split('\n').map((s) => Number(s.trim())).filter((n) => Number.isInteger(n) && n > 0);
}

/** The inode of a named namespace, to compare with /proc/PID/ns/net. */
export function netnsInode(ns: string): number | undefined {
  try {
    return statSync(`/run/netns/${ns}`).ino;
  } catch {
    return undefined;
  }
}

/** True when `pid` lives in network namespace `ns`. */
export function pidInNetns(pid: number, ns: string): boolean {
  const ino = netnsInode(ns);
  if (ino === undefined) return false;
  try {
    return readlinkSync(`/proc/${pid}/ns/net`) === `net:[${ino}]`;
  } catch {
    return false;
  }
}

export function labNetnsList(lab: string): string[] {
  return listNetns().filter((n) => isLabNetns(lab, n));
}

/** The state of one process from /proc, or undefined when it is gone. Zombies count as gone. */
export function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state === 'Z' || state === 'X' ? undefined : state;
  } catch {
    return undefined;
  }
}
