// What the IPAM decides from: the store's networks, the addresses tasks hold, the services' VIPs,
// and the ranges never to hand out (the nodes' own underlay). Pure: built from store objects, so
// a new leader derives exactly what the old one held.
import type { NodeObject } from '../control/model.js';
import type { NetworkObject } from '../networks/model.js';
import { isTerminal, type ServiceObject, type TaskObject } from '../services/model.js';
import type { IpamSnapshot } from './ipam.js';
import { fmtCidr, maskOf, parseIp } from './ipv4.js';

/**
 * True while a task holds its addresses: placed and not ended. A task that ended (or was given
 * up with its node) releases them; its node's agent does not reuse one of them for another pod
 * until the old pod's network is torn down (node/agent/network.ts).
 */
export function holdsAddresses(t: TaskObject): boolean {
  return !!t.spec.networks?.length && !isTerminal(t.status.state);
}

/** The /24 around a node's underlay address (from `HOST:PORT`), never given to a network. */
export function underlayRange(n: NodeObject): string | undefined {
  const host = (n.status.addr ?? '').replace(/:\d+$/, '');
  try {
    return fmtCidr({ base: (parseIp(host) & maskOf(24)) >>> 0, bits: 24 });
  } catch {
    return undefined; // not an IPv4 address (a name, IPv6): nothing to keep out
  }
}

export function ipamSnapshot(v: { networks: NetworkObject[]; services: ServiceObject[]; tasks: TaskObject[]; nodes: NodeObject[] }): IpamSnapshot {
  const reserved = [...new Set(v.nodes.map(underlayRange).filter((r): r is string => !!r))].sort();
  return {
    config: { reserved },
    networks: v.networks.map((n) => ({ id: n.id, name: n.name, subnet: n.status.subnet, vni: n.status.vni, nodeSubnets: n.status.nodeSubnets.map((s) => ({ ...s })) })),
    taskAddresses: v.tasks.filter(holdsAddresses).flatMap((t) => t.spec.networks!.map((a) => ({ taskId: t.id, networkId: a.networkId, address: a.address }))),
    vips: v.services.flatMap((s) => (s.status?.vips ?? []).map((a) => ({ serviceId: s.id, networkId: a.networkId, address: a.address }))),
  };
}
