// Derived views of the cluster state: which networks this node serves, its peers on each, the
// ready backends of a service on a network. Pure functions, shared by the data path, the nft
// rules and the DNS resolver.
import type { Backend, ClusterState, Network, Service } from '../proto/network/types.js';
import { EndpointMode } from '../proto/network/types.js';
import { fmtIp, nth, parseCidr, type Cidr } from './ipv4.js';

export interface LocalNet {
  net: Network;
  subnet: Cidr;       // the network's whole subnet
  nodeSubnet: Cidr;   // this node's share
  gateway: string;    // .1 of the node subnet (on the bridge)
  vtep: string;       // .0 of the node subnet (on the VXLAN device)
  peers: { nodeId: string; underlay: string; subnet: Cidr; vtep: string }[];
}

/** Networks this node has a subnet of, each with its peers (other nodes that are up and have a
 * subnet of it). */
export function localNets(s: ClusterState): LocalNet[] {
  const nodes = new Map(s.nodes.map((n) => [n.id, n]));
  const out: LocalNet[] = [];
  for (const net of s.networks) {
    const mine = net.node_subnets.find((x) => x.node_id === s.node_id);
    if (!mine) continue;
    const nodeSubnet = parseCidr(mine.subnet);
    const peers = [];
    for (const ns of net.node_subnets) {
      if (ns.node_id === s.node_id) continue;
      const node = nodes.get(ns.node_id);
      if (!node) continue;
      const sub = parseCidr(ns.subnet);
      peers.push({ nodeId: node.id, underlay: node.underlay_addr, subnet: sub, vtep: fmtIp(sub.base) });
    }
    out.push({ net, subnet: parseCidr(net.subnet), nodeSubnet, gateway: fmtIp(nth(nodeSubnet, 1)), vtep: fmtIp(nodeSubnet.base), peers });
  }
  return out;
}

/** Backends that get traffic: ready, and on a node that is up (or this one). */
export function liveBackends(s: ClusterState, svc: Service): Backend[] {
  const up = new Set(s.nodes.map((n) => n.id));
  up.add(s.node_id);
  return svc.backends.filter((b) => b.ready && up.has(b.node_id));
}

/** Addresses of the ready backends on network `networkId`, sorted for stable rules. */
export function backendAddrs(s: ClusterState, svc: Service, networkId: string, onlyNode?: string): string[] {
  const out: string[] = [];
  for (const b of liveBackends(s, svc)) {
    if (onlyNode && b.node_id !== onlyNode) continue;
    const a = b.addresses.find((x) => x.network_id === networkId);
    if (a) out.push(a.address);
  }
  return [...new Set(out)].sort();
}

export interface PodVip { vip: string; backends: string[] }

/** The VIPs a pod on `podNets` reaches, each with the backends on the VIP's network. */
export function podVips(s: ClusterState, podNets: string[]): PodVip[] {
  const mine = new Set(podNets);
  const out: PodVip[] = [];
  for (const svc of s.services) {
    if (svc.endpoint_mode !== EndpointMode.VIP) continue;
    for (const v of svc.vips) {
      if (!mine.has(v.network_id)) continue;
      out.push({ vip: v.address, backends: backendAddrs(s, svc, v.network_id) });
    }
  }
  return out.sort((a, b) => (a.vip < b.vip ? -1 : 1));
}

/** The first network of `podNets` that `svc` is on (DNS answers come from that network). */
export function sharedNetwork(svc: Service, podNets: string[]): string | undefined {
  const on = new Set([...svc.network_ids, ...svc.vips.map((v) => v.network_id), ...svc.backends.flatMap((b) => b.addresses.map((a) => a.network_id))]);
  return podNets.find((n) => on.has(n));
}

/** What a DNS name means to a pod on `podNets`: a service (VIP or its tasks), tasks.SERVICE, or
 * a task name. undefined: not a cluster name. */
export function resolveName(s: ClusterState, podNets: string[], name: string): string[] | undefined {
  const n = name.toLowerCase().replace(/\.$/, '');
  const tasksOf = n.startsWith('tasks.') ? n.slice(6) : undefined;
  for (const svc of s.services) {
    const sn = svc.name.toLowerCase();
    if (sn !== n && sn !== tasksOf) continue;
    const net = sharedNetwork(svc, podNets);
    if (!net) return undefined; // not visible from this pod's networks
    if (sn === n && svc.endpoint_mode === EndpointMode.VIP) {
      const v = svc.vips.find((x) => x.network_id === net) ?? svc.vips.find((x) => podNets.includes(x.network_id));
      return v ? [v.address] : [];
    }
    return backendAddrs(s, svc, net);
  }
  // A task by its name (e.g. web.1), as Swarm answers container names.
  for (const svc of s.services) {
    const net = sharedNetwork(svc, podNets);
    if (!net) continue;
    for (const b of liveBackends(s, svc)) {
      if (b.name && b.name.toLowerCase() === n) {
        const a = b.addresses.find((x) => x.network_id === net);
        return a ? [a.address] : [];
      }
    }
  }
  return undefined;
}
