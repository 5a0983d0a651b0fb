// The control API for networks (proto/control/control.proto: CreateNetwork, ListNetworks,
// GetNetwork, RemoveNetwork), manager-only; writes run on the leader. Every write that allocates
// from the IPAM (a network's subnet and VNI, a service's VIPs and ports) runs under one lock per
// manager after a ReadIndex round, and writes its allocation in the same transaction as its
// object: two calls never decide from the same view, a new leader decides from everything the
// old one committed, and a refused call writes nothing.
import { randomBytes } from 'node:crypto';
import type { Manager } from '../control/manager.js';
import { readLatest } from '../control/service.js';
import { IpamError } from '../allocator/ipam.js';
import { holdsAddresses } from '../allocator/snapshot.js';
import type { MethodSpec } from '../security/authz.js';
import { alreadyExists, invalid, notFound, precondition, type RpcError } from '../security/errors.js';
import type { TaskObject } from '../services/model.js';
import { DEFAULT_NETWORK, type NetworkObject } from './model.js';
import { NetworkError, findNetwork, networks, plan, servicesOn } from './resolve.js';

const M: 'manager'[] = ['manager'];
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._\/-]{0,252}$/;

function randId(): string {
  return BigInt('0x' + randomBytes(16).toString('hex')).toString(36).padStart(25, '0');
}

const locks = new WeakMap<Manager, Promise<unknown>>();

/** Runs `f` alone among this manager's IPAM writes, on a replica that holds every committed write. */
export function withNetworkLock<T>(mgr: Manager, f: () => Promise<T>): Promise<T> {
  const prev = locks.get(mgr) ?? Promise.resolve();
  const run = prev.then(async () => {
    await readLatest(mgr);
    return f();
  });
  locks.set(mgr, run.catch(() => undefined));
  return run;
}

/** A NetworkError (or an IPAM refusal) as the status the caller gets. */
export function networkRpcError(e: unknown): RpcError | unknown {
  if (e instanceof NetworkError) return e.code === 'not-found' ? notFound(e.message) : e.code === 'in-use' ? precondition(e.message) : invalid(e.message);
  if (e instanceof IpamError) return invalid(e.message);
  return e;
}

export function networkToWire(mgr: Manager, n: NetworkObject) {
  const store = mgr.raft.store;
  const hosts = new Map(mgr.nodes().map((x) => [x.id, x.status.hostname]));
  let inUse = 0;
  for (const t of store.list('task') as TaskObject[]) if (holdsAddresses(t) && t.spec.networks!.some((a) => a.networkId === n.id)) inUse++;
  return {
    id: n.id,
    name: n.name,
    labels: n.labels,
    subnet: n.status.subnet,
    vni: n.status.vni,
    internal: !!n.spec.internal,
    node_subnets: n.status.nodeSubnets.map((s) => ({ node_id: s.nodeId, hostname: hosts.get(s.nodeId) ?? '', subnet: s.subnet })),
    services: servicesOn(store, n).map((s) => s.name).sort(),
    addresses_in_use: inUse,
    created_at_ms: n.status.createdAt,
    version: n.version,
    created_version: n.createdVersion,
  };
}

function resolve(mgr: Manager, ref: string): NetworkObject {
  if (!ref) throw invalid('give a network name, id or unique id prefix');
  const n = findNetwork(mgr.raft.store, ref);
  if (!n) throw notFound(`no network ${JSON.stringify(ref)}: "shoal network ls" lists the networks`);
  return n;
}

export function networksTable(mgr: Manager, log: (m: string) => void): Record<string, MethodSpec> {
  return {
    CreateNetwork: {
      roles: M,
      leader: true,
      unary: async (req: { name: string; subnet: string; internal: boolean; labels: Record<string, string> }) => {
        const name = String(req.name ?? '');
        if (!NAME.test(name)) throw invalid(`network name ${JSON.stringify(name)} is not valid: 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit`);
        const labels: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.labels ?? {})) {
          if (!LABEL_KEY.test(k)) throw invalid(`label key ${JSON.stringify(k)} is not valid (letters, digits, . _ / -, at most 253 characters)`);
          labels[k] = String(v);
        }
        const subnet = String(req.subnet ?? '').trim();
        return withNetworkLock(mgr, async () => {
          const store = mgr.raft.store;
          if (store.getByName('network', name)) throw alreadyExists(`a network named ${name} exists already ("shoal network inspect ${name}")`);
          const id = randId();
          let alloc;
          try {
            alloc = plan(store).createNetwork({ id, name, subnet: subnet || undefined });
          } catch (e) {
            throw networkRpcError(e);
          }
          const spec = { internal: !!req.internal, ...(subnet ? { subnet } : {}) };
          const r = await mgr.raft.propose([{ op: 'create', object: { kind: 'network', id, name, labels, spec, status: { subnet: alloc.subnet, vni: alloc.vni, nodeSubnets: [], createdAt: Date.now() } } }]);
          const n = r.objects[0] as NetworkObject;
          log(`control: created network ${name} (${id}): ${alloc.subnet}, VNI ${alloc.vni}${spec.internal ? ', internal' : ''}`);
          return networkToWire(mgr, n);
        });
      },
    },
    ListNetworks: {
      roles: M,
      unary: async () => {
        await readLatest(mgr);
        return { networks: networks(mgr.raft.store).sort((a, b) => (a.name < b.name ? -1 : 1)).map((n) => networkToWire(mgr, n)) };
      },
    },
    GetNetwork: {
      roles: M,
      unary: async (req: { id: string }) => {
        await readLatest(mgr);
        return networkToWire(mgr, resolve(mgr, req.id));
      },
    },
    RemoveNetwork: {
      roles: M,
      leader: true,
      unary: async (req: { id: string }) =>
        withNetworkLock(mgr, async () => {
          const store = mgr.raft.store;
          const n = resolve(mgr, req.id);
          const users = servicesOn(store, n);
          if (users.length > 0) throw precondition(`network ${n.name} is used by service(s) ${users.map((s) => s.name).sort().join(', ')}: remove them or their --network ${n.name} first`);
          const held = (store.list('task') as TaskObject[]).filter((t) => holdsAddresses(t) && t.spec.networks!.some((a) => a.networkId === n.id));
          if (held.length > 0) throw precondition(`network ${n.name} still has ${held.length} task(s) on it (of removed services, stopping); try again once they have stopped`);
          await mgr.raft.propose([{ op: 'delete', kind: 'network', id: n.id, expectVersion: n.version }]);
          log(`control: removed network ${n.name} (${n.id})${n.name === DEFAULT_NETWORK ? '; the next service that names no network creates it again' : ''}`);
          return {};
        }),
    },
  };
}
