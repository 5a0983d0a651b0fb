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

/** Namespace `ns` with loopback up and a bridge `br0`: the "switch" hosts attach to. */
export function makeBridgeNetns(ns: string): void {
  run(['ip', 'netns', 'add', ns]);
  run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  run(['ip', '-n', ns, 'link', 'add', BRIDGE_IFACE, 'type', 'bridge']);
  run(['ip', '-n', ns, 'link', 'set', BRIDGE_IFACE, 'up']);
}

/** Namespace `ns` (loopback up) plugged into the bridge of `bridgeNs`: a veth whose end `port`
 * is a bridge port and whose other end is `eth0` in `ns`, with `address/bits`. Both ends are
 * created inside those namespaces, never in the caller's. */
export function attachNetns(p: { bridgeNs: string; ns: string; port: string; address: string; bits: number }): void {
  run(['ip', 'netns', 'add', p.ns]);
  run(['ip', '-n', p.ns, 'link', 'set', 'lo', 'up']);
  // Created inside the bridge namespace, its peer moved straight into the host's namespace.
  run(['ip', '-n', p.bridgeNs, 'link', 'add', p.port, 'type', 'veth', 'peer', 'name', HOST_IFACE, 'netns', p.ns]);
  run(['ip', '-n', p.bridgeNs, 'link', 'set', p.port, 'master', BRIDGE_IFACE, 'up']);
  run(['ip', '-n', p.ns, 'addr', 'add', `${p.address}/${p.bits}`, 'dev', HOST_IFACE]);
  run(['ip', '-n', p.ns, 'link', 'set', HOST_IFACE, 'up']);
}

/** Cuts (up=false) or restores a host's link by its bridge port: a partition of that host. */
export function setBridgePort(bridgeNs: string, port: string, up: boolean): void {
  run(['ip', '-n', bridgeNs, 'link', 'set', port, up ? 'up' : 'down']);
}

/** Deletes a namespace (its veths go with it); false if it could not (absent, or busy). */
export function deleteNetns(ns: string): boolean {
  return tryRun(['ip', 'netns', 'del', ns]).ok;
}

export function createBridge(lab: string): string {
  const br = bridgeNetns(lab);
  makeBridgeNetns(br);
  return br;
}

/** Creates host `node`'s namespace, its veth to the bridge and its address. */
export function createHost(lab: string, node: string, address: string): { netns: string; port: string } {
  const ns = hostNetns(lab, node);
  const port = bridgePort(node);
  attachNetns({ bridgeNs: bridgeNetns(lab), ns, port, address, bits: SUBNET_BITS });
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
