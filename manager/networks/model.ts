// Networks as the replicated store keeps them, and the network parts of services and tasks.
// A network object (kind `network`) holds what the operator asked for (spec) and what the
// allocator decided (status: the subnet, the VXLAN id, each node's share). A service names its
// networks by id in its task template (so a change of networks rolls its tasks, as in Swarm),
// its endpoint (VIP or DNS round robin, published ports) in its spec, and its VIPs in its status;
// a task gets its addresses with its placement (TaskSpec.networks), committed before dispatch.
import type { StoreObject } from '../store/types.js';

export interface NetworkSpec {
  /** No way out of the cluster: no default route, no masquerade. */
  internal: boolean;
  /** The subnet the operator asked for (CIDR); absent: the allocator picked one from the pool. */
  subnet?: string;
}

export interface NodeSubnet {
  nodeId: string;
  /** A /24 of the network's subnet: .0 is the node's VXLAN endpoint, .1 the pods' gateway. */
  subnet: string;
}

export interface NetworkStatus {
  subnet: string;
  /** VXLAN network identifier, unique in the cluster. */
  vni: number;
  /** Nodes that have (had) tasks on it, and every node for a network with ingress ports. */
  nodeSubnets: NodeSubnet[];
  createdAt: number;
}

export type NetworkObject = StoreObject<NetworkSpec, NetworkStatus>;

/** Services that name no network join this one (created with the first such service). */
export const DEFAULT_NETWORK = 'default';

export type EndpointMode = 'vip' | 'dnsrr';
export type PortProtocol = 'tcp' | 'udp';
/** ingress: every node accepts and forwards to a ready task anywhere (the routing mesh); host:
 * only nodes with a ready task accept, to that task. */
export type PublishMode = 'ingress' | 'host';

export interface PortSpec {
  protocol: PortProtocol;
  targetPort: number;
  publishedPort: number;
  mode: PublishMode;
}

export interface EndpointSpec {
  mode: EndpointMode;
  ports: PortSpec[];
}

export const DEFAULT_ENDPOINT: EndpointSpec = { mode: 'vip', ports: [] };

/** One network of a task (its address) or of a service (its VIP). */
export interface NetworkAddress {
  networkId: string;
  address: string;
}

/** The key a published port is unique by, across the cluster. */
export function portKey(p: Pick<PortSpec, 'protocol' | 'publishedPort'>): string {
  return `${p.publishedPort}/${p.protocol}`;
}
