// The allocator's part of a placement: each task the scheduler places gets an address on each of
// its networks from its node's subnet (the node gets a subnet of a network with the first task of
// it there), every node gets a subnet of a network that carries ingress ports (the routing mesh
// forwards from every node into it), and a removed node's subnets go back to the pool once no task
// address is left in them. Pure: the leader commits `networkOps` first, then the tasks with their
// addresses in the same write as their placement, so a task is never dispatched before its address
// is committed and a new leader never hands the same address out again.
import type { NodeObject } from '../control/model.js';
import { DEFAULT_NETWORK, type NetworkAddress, type NetworkObject, type NodeSubnet } from '../networks/model.js';
import type { Schedule } from '../scheduler/scheduler.js';
import type { ServiceObject, TaskObject } from '../services/model.js';
import type { TxnOp } from '../store/types.js';
import { IpamError, IpamPlan } from './ipam.js';
import { ipamSnapshot } from './snapshot.js';

export interface PlacementView {
  networks: NetworkObject[];
  services: ServiceObject[];
  nodes: NodeObject[];
  tasks: TaskObject[];
}

export interface NetworkPlacement {
  /** Network objects whose node subnets changed: commit these before the tasks. */
  networkOps: TxnOp[];
  /** The addresses of each placed task, in its template's network order. */
  addresses: Map<string, NetworkAddress[]>;
  /** Placements that cannot get an address: the task stays pending with the reason. */
  refused: { task: TaskObject; reason: string }[];
}

/** The networks a task joins: its template's, or the default network for a template that names none. */
export function taskNetworkIds(t: TaskObject, byName: (name: string) => NetworkObject | undefined): string[] | undefined {
  const ids = t.spec.template.networks;
  if (ids && ids.length > 0) return ids;
  const d = byName(DEFAULT_NETWORK);
  return d ? [d.id] : undefined;
}

/** Networks that need a subnet on every node: the first non-internal network of each service
 * that publishes a port through the routing mesh (where the nodes' DNAT sends the traffic). */
export function ingressNetworks(services: ServiceObject[], networks: Map<string, NetworkObject>): Set<string> {
  const out = new Set<string>();
  for (const s of services) {
    if (!(s.spec.endpoint?.ports ?? []).some((p) => p.mode === 'ingress')) continue;
    const id = (s.spec.task.networks ?? []).find((n) => networks.has(n) && !networks.get(n)!.spec.internal);
    if (id) out.add(id);
  }
  return out;
}

export function placeNetworks(v: PlacementView, assign: { task: TaskObject; nodeId: string }[]): NetworkPlacement {
  const out: NetworkPlacement = { networkOps: [], addresses: new Map(), refused: [] };
  const nets = new Map(v.networks.map((n) => [n.id, n]));
  const byName = (name: string) => v.networks.find((n) => n.name === name);
  let plan: IpamPlan;
  try {
    plan = new IpamPlan(ipamSnapshot(v));
  } catch (e) {
    for (const a of assign) out.refused.push({ task: a.task, reason: `no address: ${(e as Error).message}` });
    return out;
  }
  for (const a of assign) {
    const ids = taskNetworkIds(a.task, byName);
    if (!ids) {
      out.refused.push({ task: a.task, reason: `no network: its service names none and the ${DEFAULT_NETWORK} network does not exist (shoal service update --network-add NETWORK ${a.task.spec.serviceName})` });
      continue;
    }
    const gone = ids.find((id) => !nets.has(id));
    if (gone) {
      out.refused.push({ task: a.task, reason: `network ${gone} no longer exists; update the service's networks` });
      continue;
    }
    try {
      out.addresses.set(a.task.id, ids.map((networkId) => ({ networkId, address: plan.taskAddress(networkId, a.nodeId, a.task.id) })));
    } catch (e) {
      if (!(e instanceof IpamError)) throw e;
      plan.releaseTask(a.task.id); // an address on its first network, if it got one
      out.refused.push({ task: a.task, reason: `no address: ${e.message}` });
    }
  }
  const nodeIds = new Set(v.nodes.map((n) => n.id));
  for (const id of [...ingressNetworks(v.services, nets)].sort()) {
    for (const n of [...v.nodes].sort((a, b) => (a.id < b.id ? -1 : 1))) {
      if (n.status.state === 'down') continue;
      try {
        plan.nodeSubnet(id, n.id);
      } catch (e) {
        if (!(e instanceof IpamError)) throw e; // exhausted: this node does not accept the ports until one is free
      }
    }
  }
  // Subnets of nodes that left the cluster, once no task address is left in them.
  for (const n of v.networks) {
    for (const s of n.status.nodeSubnets) {
      if (nodeIds.has(s.nodeId)) continue;
      try {
        plan.releaseNodeSubnet(n.id, s.nodeId);
      } catch (e) {
        if (!(e instanceof IpamError)) throw e; // still in use: released by a later pass
      }
    }
  }
  // The plan's node subnet decisions, one update per network object.
  const changed = new Map<string, NodeSubnet[]>();
  for (const d of plan.decisions()) {
    if (d.kind !== 'node-subnet' && d.kind !== 'node-subnet-release') continue;
    const list = changed.get(d.networkId) ?? [...nets.get(d.networkId)!.status.nodeSubnets];
    if (d.kind === 'node-subnet') list.push({ nodeId: d.nodeId, subnet: d.subnet });
    else list.splice(list.findIndex((x) => x.nodeId === d.nodeId), 1);
    changed.set(d.networkId, list);
  }
  for (const [id, nodeSubnets] of changed) {
    const n = nets.get(id)!;
    out.networkOps.push({ op: 'update', object: { kind: 'network', id: n.id, name: n.name, labels: n.labels, spec: n.spec, status: { ...n.status, nodeSubnets } }, expectVersion: n.version });
  }
  return out;
}

/** The schedule with each placed task's addresses; a placement refused an address stays pending. */
export function withAddresses(s: Schedule, p: NetworkPlacement): Schedule {
  const refused = new Set(p.refused.map((r) => r.task.id));
  return {
    assign: s.assign.filter((a) => !refused.has(a.task.id)).map((a) => ({ ...a, networks: p.addresses.get(a.task.id) })),
    unplaceable: [...s.unplaceable, ...p.refused],
  };
}
