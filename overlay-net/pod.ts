// A pod's side: one veth pair per network (the pod's end named CNI_IFNAME, then eth1, ...), its
// address from this node's subnet of the network, routes through the gateway, and the pod's own
// nft table for service VIPs.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fmtCidr } from './ipv4.js';
import { bridgeName } from './names.js';
import { CommandError, exec, ipBatch, ipJson, nft } from './sys.js';
import { deleteTableScript } from './nft-rules.js';
import type { LocalNet } from './view.js';

export interface EndpointIface {
  networkId: string;
  vni: number;
  podIfname: string;
  hostVeth: string;
  address: string;
  prefix: number;
  gateway: string;
  podMac: string;
  hostMac: string;
}

export interface Endpoint {
  containerId: string;
  ifname: string;
  netns: string;
  taskId: string;
  ifaces: EndpointIface[];
  mtu: number;
}

export function endpointKey(containerId: string, ifname: string): string {
  return `${containerId}/${ifname}`;
}

/** MAC of a pod's interface from its address (as Docker does), so a reused address keeps its MAC. */
export function podMac(address: string): string {
  return '02:54:' + address.split('.').map((x) => Number(x).toString(16).padStart(2, '0')).join(':');
}

export function hostMac(veth: string): string {
  const h = createHash('sha256').update(veth).digest();
  return '02:55:' + [...h.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** The names of a pod's interfaces: the first is CNI_IFNAME, then eth1, eth2, ... (skipping it). */
export function podIfnames(first: string, count: number): string[] {
  const out = [first];
  for (let i = 1; out.length < count; i++) {
    const n = `eth${i}`;
    if (n !== first) out.push(n);
  }
  return out;
}

export interface PlumbOptions {
  netns: string;
  mtu: number;
  dnsAddress: string;
  vipRange: string;
  iface: EndpointIface;
  net: LocalNet;
  /** The first interface also gets the default route (unless its network is internal) and the
   * routes to the resolver and the VIP range. */
  first: boolean;
}

/** Creates the veth pair straight into the pod's namespace and configures both ends. */
export async function plumb(o: PlumbOptions): Promise<void> {
  const i = o.iface;
  // The pod's end is created in the pod's namespace directly, so no name clashes on the node.
  await ipBatch([
    `link add ${i.hostVeth} address ${i.hostMac} mtu ${o.mtu} type veth peer name ${i.podIfname} address ${i.podMac} mtu ${o.mtu} netns ${o.netns}`,
    `link set ${i.hostVeth} master ${bridgeName(i.vni)}`,
    `link set ${i.hostVeth} up`,
  ]);
  const cmds = [
    `addr add ${i.address}/${i.prefix} dev ${i.podIfname}`,
    `link set ${i.podIfname} up`,
    `route replace ${fmtCidr(o.net.subnet)} via ${i.gateway} dev ${i.podIfname}`,
  ];
  if (o.first) {
    cmds.push(`route replace ${o.dnsAddress}/32 via ${i.gateway} dev ${i.podIfname}`);
    if (!o.net.net.internal) cmds.push(`route replace default via ${i.gateway} dev ${i.podIfname}`);
    else if (o.vipRange) cmds.push(`route replace ${o.vipRange} via ${i.gateway} dev ${i.podIfname}`);
  }
  await ipBatch(cmds, o.netns);
}

/** Removes a pod's interfaces (the host end takes the pod's with it) and its nft table. Missing
 * pieces are fine: DEL must succeed on whatever is left. */
export async function unplumb(ep: Pick<Endpoint, 'netns' | 'ifaces'>): Promise<void> {
  if (ep.netns && existsSync(ep.netns)) {
    await nft(deleteTableScript(), ep.netns).catch(() => { /* no table, or the namespace is going */ });
  }
  const links = await ipJson<{ ifname: string }[]>(['link', 'show']);
  const have = new Set(links.map((l) => l.ifname));
  const del = ep.ifaces.filter((i) => have.has(i.hostVeth)).map((i) => `link del ${i.hostVeth}`);
  await ipBatch(del);
}

/** What CHECK verifies: each host end is a port of its bridge and up, each pod end exists with
 * its address. Returns the problems found. */
export async function inspect(ep: Endpoint): Promise<string[]> {
  const problems: string[] = [];
  if (!existsSync(ep.netns)) return [`network namespace ${ep.netns} does not exist`];
  const host = new Map((await ipJson<{ ifname: string; master?: string; flags?: string[] }[]>(['link', 'show'])).map((l) => [l.ifname, l]));
  let pod: { ifname: string; addr_info?: { family: string; local: string; prefixlen: number }[] }[];
  try {
    pod = await ipJson(['addr', 'show'], ep.netns);
  } catch (e) {
    return [`cannot read the pod's interfaces in ${ep.netns}: ${(e as CommandError).message}`];
  }
  for (const i of ep.ifaces) {
    const h = host.get(i.hostVeth);
    if (!h) problems.push(`host interface ${i.hostVeth} is missing`);
    else if (h.master !== bridgeName(i.vni)) problems.push(`host interface ${i.hostVeth} is not a port of ${bridgeName(i.vni)}`);
    const p = pod.find((l) => l.ifname === i.podIfname);
    if (!p) problems.push(`pod interface ${i.podIfname} is missing`);
    else if (!p.addr_info?.some((a) => a.family === 'inet' && a.local === i.address && a.prefixlen === i.prefix)) problems.push(`pod interface ${i.podIfname} lacks ${i.address}/${i.prefix}`);
  }
  return problems;
}

export async function applyPodTable(netns: string, script: string): Promise<void> {
  await nft(script, netns);
}

export { exec };
