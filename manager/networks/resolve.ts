// A service's networking as the control API writes it: its networks resolved from names (or ids)
// to ids (the default network, created on first use, when it names none), its published ports
// checked against every other service's, and a VIP on each of its networks (VIP mode) from the
// IPAM. Pure over a read of the store: the caller holds the network lock (control.ts) and writes
// `ops` and the service in one transaction, so nothing is written when anything is refused.
import type { NodeObject } from '../control/model.js';
import { IpamError, IpamPlan } from '../allocator/ipam.js';
import { ipamSnapshot } from '../allocator/snapshot.js';
import type { ServiceObject, ServiceSpec, TaskObject } from '../services/model.js';
import type { Kind, StoreObject, TxnOp } from '../store/types.js';
import { DEFAULT_ENDPOINT, DEFAULT_NETWORK, portKey, type NetworkAddress, type NetworkObject } from './model.js';

/** A pod gets one interface per network (eth0, eth1, ...). */
export const MAX_NETWORKS = 4;

export class NetworkError extends Error {
  constructor(readonly code: 'invalid' | 'not-found' | 'in-use' | 'exhausted', msg: string) {
    super(msg);
  }
}

export interface StoreReader {
  get(kind: Kind, id: string): StoreObject | undefined;
  getByName(kind: Kind, name: string): StoreObject | undefined;
  list(kind: Kind): StoreObject[];
}

export function networks(r: StoreReader): NetworkObject[] {
  return r.list('network') as NetworkObject[];
}

/** A network by id, unique id prefix or name. */
export function findNetwork(r: StoreReader, ref: string): NetworkObject | undefined {
  const exact = (r.get('network', ref) ?? r.getByName('network', ref)) as NetworkObject | undefined;
  if (exact) return exact;
  const byPrefix = networks(r).filter((n) => n.id.startsWith(ref));
  return byPrefix.length === 1 ? byPrefix[0] : undefined;
}

export function plan(r: StoreReader): IpamPlan {
  return new IpamPlan(ipamSnapshot({ networks: networks(r), services: r.list('service') as ServiceObject[], tasks: r.list('task') as TaskObject[], nodes: r.list('node') as NodeObject[] }));
}

export interface ServiceNetworking {
  spec: ServiceSpec;
  vips: NetworkAddress[];
  /** Writes that must share the service's transaction (the default network's creation). */
  ops: TxnOp[];
}

/**
 * Several services resolved for one transaction (Control.Apply): one IPAM plan, so no VIP is
 * given twice; the default network created once; ports checked among them too.
 */
export interface NetworkingBatch {
  ipam: IpamPlan;
  created?: NetworkObject;
  /** Published ports taken in this batch (portKey -> service name). */
  ports: Map<string, string>;
}

export function networkingBatch(r: StoreReader): NetworkingBatch {
  try {
    return { ipam: plan(r), ports: new Map() };
  } catch (e) {
    return ipamFail(e);
  }
}

/**
 * `spec` with its networks as the ids they name (as resolveServiceNetworking stores them; a
 * name that names none is left for it to refuse) and, naming none, the default network when it
 * exists: what an apply compares with the stored spec.
 */
export function withNetworkIds(r: StoreReader, spec: ServiceSpec): ServiceSpec {
  const refs = spec.task.networks ?? [];
  const d = refs.length === 0 ? r.getByName('network', DEFAULT_NETWORK) : undefined;
  const ids = refs.length > 0 ? refs.map((ref) => findNetwork(r, ref)?.id ?? ref) : d ? [d.id] : [];
  return { ...spec, endpoint: spec.endpoint ?? DEFAULT_ENDPOINT, task: { ...spec.task, networks: ids } };
}

function ipamFail(e: unknown): never {
  if (e instanceof IpamError) throw new NetworkError(e.code === 'exhausted' ? 'exhausted' : 'invalid', e.message);
  throw e;
}

/**
 * Resolves `spec`'s networks (as given: names or ids) and endpoint for the service `serviceId`
 * (`current` when it exists), and gives it its VIPs. Throws NetworkError naming what is wrong.
 */
export function resolveServiceNetworking(r: StoreReader, p: { serviceId: string; name: string; spec: ServiceSpec; current?: ServiceObject; now: number; newId: () => string; batch?: NetworkingBatch }): ServiceNetworking {
  const endpoint = p.spec.endpoint ?? DEFAULT_ENDPOINT;
  const refs = p.spec.task.networks ?? [];
  if (refs.length > MAX_NETWORKS) throw new NetworkError('invalid', `service ${p.name} names ${refs.length} networks; a pod gets at most ${MAX_NETWORKS} (one interface each)`);
  const ipam = (() => {
    if (p.batch) return p.batch.ipam;
    try {
      return plan(r);
    } catch (e) {
      return ipamFail(e);
    }
  })();
  const ops: TxnOp[] = [];
  const nets: NetworkObject[] = [];
  for (const ref of refs) {
    const n = findNetwork(r, ref);
    if (!n) throw new NetworkError('not-found', `service ${p.name}: no network ${JSON.stringify(ref)} ("shoal network ls" lists them; "shoal network create ${ref}" makes it)`);
    if (nets.some((x) => x.id === n.id)) throw new NetworkError('invalid', `service ${p.name}: network ${n.name} is named twice`);
    nets.push(n);
  }
  if (nets.length === 0) {
    let d = (r.getByName('network', DEFAULT_NETWORK) as NetworkObject | undefined) ?? p.batch?.created;
    if (!d) {
      const id = p.newId();
      let alloc;
      try {
        alloc = ipam.createNetwork({ id, name: DEFAULT_NETWORK });
      } catch (e) {
        ipamFail(e);
      }
      const status = { subnet: alloc.subnet, vni: alloc.vni, nodeSubnets: [], createdAt: p.now };
      ops.push({ op: 'create', object: { kind: 'network', id, name: DEFAULT_NETWORK, labels: {}, spec: { internal: false }, status } });
      d = { kind: 'network', id, name: DEFAULT_NETWORK, labels: {}, version: 0, createdVersion: 0, spec: { internal: false }, status };
      if (p.batch) p.batch.created = d;
    }
    nets.push(d);
  }
  if (endpoint.ports.length > 0 && nets.every((n) => n.spec.internal)) {
    throw new NetworkError('invalid', `service ${p.name} publishes ports but all its networks are internal (no way in from the nodes): add a network that is not internal`);
  }
  const mine = new Map(endpoint.ports.map((x) => [portKey(x), x]));
  for (const other of r.list('service') as ServiceObject[]) {
    if (other.id === p.serviceId) continue;
    for (const q of other.spec.endpoint?.ports ?? []) {
      if (mine.has(portKey(q))) throw new NetworkError('in-use', `port ${portKey(q)} is already published by service ${other.name}; choose another published port`);
    }
  }
  for (const k of mine.keys()) {
    const other = p.batch?.ports.get(k);
    if (other && other !== p.name) throw new NetworkError('in-use', `port ${k} is published by service ${other} too; choose another published port`);
  }
  const vips: NetworkAddress[] = [];
  if (endpoint.mode === 'vip') {
    for (const n of nets) {
      try {
        vips.push({ networkId: n.id, address: ipam.vip(p.serviceId, n.id) });
      } catch (e) {
        ipamFail(e);
      }
    }
  }
  const spec: ServiceSpec = { ...p.spec, endpoint, task: { ...p.spec.task, networks: nets.map((n) => n.id) } };
  for (const k of mine.keys()) p.batch?.ports.set(k, p.name);
  return { spec, vips, ops };
}

/** Services whose current spec uses the network (the default one: also those that name none). */
export function servicesOn(r: StoreReader, n: NetworkObject): ServiceObject[] {
  return (r.list('service') as ServiceObject[]).filter((s) => {
    const ids = s.spec.task.networks;
    return ids && ids.length > 0 ? ids.includes(n.id) : n.name === DEFAULT_NETWORK;
  });
}
