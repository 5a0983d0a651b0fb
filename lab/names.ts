// Every name the lab gives to a kernel object derives from the lab's name, and the lab's name
// derives from its directory. So `lab down` finds every namespace of a lab even when its state
// file is lost, and two labs in two directories never collide.
import { createHash } from 'node:crypto';
import { basename, resolve } from 'node:path';

export const DEFAULT_LAB_DIR = '/var/lib/shoal-lab';
/** Every lab network namespace starts with this; nothing else on the machine should. */
export const NETNS_PREFIX = 'shoal-lab-';
/** The lab's private subnet. It exists only inside the lab's namespaces (each lab has its own
 * bridge namespace, so labs may reuse it); the root namespace never gets a route to it. */
export const SUBNET_PREFIX = '10.99.0.';
export const SUBNET_BITS = 24;
/** First host address: .11 for the first node, .12 for the second, ... */
const FIRST_HOST = 11;
export const MAX_NODES = 200;

/** `default` for the default directory; else the directory's base name (made safe, shortened)
 * and a hash of its full path, e.g. /tmp/mylab -> mylab-3f9a1c. */
export function labName(labDir: string): string {
  const abs = resolve(labDir);
  if (abs === DEFAULT_LAB_DIR) return 'default';
  const base = basename(abs).toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 16) || 'lab';
  return `${base}-${createHash('sha256').update(abs).digest('hex').slice(0, 6)}`;
}

export function bridgeNetns(name: string): string {
  return `${NETNS_PREFIX}${name}-br`;
}

export function hostNetns(name: string, node: string): string {
  return `${NETNS_PREFIX}${name}-${node}`;
}

/** The netns names that belong to lab `name` (its bridge namespace and its hosts) and to no other
 * lab: lab "default" must not claim "shoal-lab-default-3f9a1c-manager-1" of lab "default-3f9a1c". */
export function isLabNetns(name: string, netns: string): boolean {
  const p = `${NETNS_PREFIX}${name}-`;
  if (!netns.startsWith(p)) return false;
  return /^(br|registry|dht|manager-\d+|worker-\d+)$/.test(netns.slice(p.length));
}

/** The cgroup under which a lab node's runtime puts its pods (all of a lab's under one parent,
 * so `lab down` removes them in one sweep). */
export function labCgroup(name: string, node?: string): string {
  return node ? `/${NETNS_PREFIX}${name}/${node}` : `/${NETNS_PREFIX}${name}`;
}

export function managerName(i: number): string {
  return `manager-${i}`;
}

export function workerName(i: number): string {
  return `worker-${i}`;
}

/** The bridge-side end of a host's veth. It lives only inside the bridge namespace, so it need
 * only be unique there; IFNAMSIZ allows 15 characters. */
export function bridgePort(node: string): string {
  const n = `v-${node}`;
  if (n.length > 15) throw new Error(`node name ${node} is too long for an interface name (max 13 characters)`);
  return n;
}

/** The host-side end, inside the host's namespace. */
export const HOST_IFACE = 'eth0';
export const BRIDGE_IFACE = 'br0';

export function hostAddress(index: number): string {
  if (index < 0 || index >= MAX_NODES) throw new Error(`node index ${index} out of range 0..${MAX_NODES - 1}`);
  return `${SUBNET_PREFIX}${FIRST_HOST + index}`;
}
