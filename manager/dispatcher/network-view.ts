// What each node's network plugin must know, as the dispatcher streams it to the node's agent
// (Dispatcher.Networks): the networks the node has a subnet of, the nodes that are up on them
// (their underlay addresses: VXLAN peers), and the services on them with their VIPs, published
// ports and backends (`ready`: running, wanted and passing its readiness probe). Only what the
// node needs: a service on a network the node is not on is not sent, nor a VIP, backend address
// or port of another network. A full view first, then per batch the objects that changed.
import { DEFAULT_IPAM_CONFIG } from '../allocator/ipam.js';
import { holdsAddresses } from '../allocator/snapshot.js';
import type { NodeObject } from '../control/model.js';
import { DEFAULT_NETWORK, type NetworkObject } from '../networks/model.js';
import { taskDisplayName, type ServiceObject, type TaskObject } from '../services/model.js';
import type { ObjectStore } from '../store/store.js';
import type { StoreEvent } from '../store/types.js';

/* Shapes of proto/network/network.proto (as proto-loader takes them). */
export interface ViewNetwork { id: string; name: string; vni: number; subnet: string; internal: boolean; node_subnets: { node_id: string; subnet: string }[] }
export interface ViewNode { id: string; underlay_addr: string }
export interface ViewAddress { network_id: string; address: string }
export interface ViewBackend { task_id: string; node_id: string; ready: boolean; addresses: ViewAddress[]; name: string }
export interface ViewPort { protocol: number; target_port: number; published_port: number; mode: number }
export interface ViewService { id: string; name: string; endpoint_mode: number; vips: ViewAddress[]; network_ids: string[]; ports: ViewPort[]; backends: ViewBackend[] }

export interface NetworksMessage {
  full: boolean;
  state: { node_id?: string; vip_range?: string; networks: ViewNetwork[]; nodes: ViewNode[]; services: ViewService[] };
  removed_networks: string[];
  removed_nodes: string[];
  removed_services: string[];
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

export function networkView(n: NetworkObject): ViewNetwork {
  return { id: n.id, name: n.name, vni: n.status.vni, subnet: n.status.subnet, internal: !!n.spec.internal, node_subnets: n.status.nodeSubnets.map((s) => ({ node_id: s.nodeId, subnet: s.subnet })) };
}

/** A node as a VXLAN peer: only while it is not down, and only with an IPv4 underlay address. */
export function nodeView(n: NodeObject): ViewNode | undefined {
  if (n.status.state === 'down') return undefined;
  const host = (n.status.addr ?? '').replace(/:\d+$/, '');
  return IPV4.test(host) ? { id: n.id, underlay_addr: host } : undefined;
}

/** A task that gets traffic: running, still wanted, and ready (no readiness probe: ready once running). */
export function taskReady(t: TaskObject): boolean {
  return t.status.state === 'running' && t.spec.desiredState === 'running' && t.status.ready !== false;
}

export function serviceView(s: ServiceObject, tasks: TaskObject[], defaultNetwork: string | undefined): ViewService {
  const ids = s.spec.task.networks?.length ? s.spec.task.networks : defaultNetwork ? [defaultNetwork] : [];
  const backends = tasks
    .filter(holdsAddresses)
    .sort((a, b) => (a.id < b.id ? -1 : 1))
    .map((t) => ({ task_id: t.id, node_id: t.nodeId ?? '', ready: taskReady(t), addresses: t.spec.networks!.map((a) => ({ network_id: a.networkId, address: a.address })), name: taskDisplayName(t) }));
  return {
    id: s.id,
    name: s.name,
    endpoint_mode: s.spec.endpoint?.mode === 'dnsrr' ? 1 : 0,
    vips: (s.status?.vips ?? []).map((v) => ({ network_id: v.networkId, address: v.address })),
    network_ids: [...ids],
    ports: (s.spec.endpoint?.ports ?? []).map((p) => ({ protocol: p.protocol === 'udp' ? 1 : 0, target_port: p.targetPort, published_port: p.publishedPort, mode: p.mode === 'host' ? 1 : 0 })),
    backends,
  };
}

/** A service as a node on `scope` (its networks) sees it; undefined when it shares none. */
export function scopeService(v: ViewService, scope: Set<string>): ViewService | undefined {
  if (!v.network_ids.some((id) => scope.has(id))) return undefined;
  if (v.network_ids.every((id) => scope.has(id))) return v;
  const inScope = (a: ViewAddress) => scope.has(a.network_id);
  return {
    ...v,
    network_ids: v.network_ids.filter((id) => scope.has(id)),
    vips: v.vips.filter(inScope),
    backends: v.backends.map((b) => ({ ...b, addresses: b.addresses.filter(inScope) })).filter((b) => b.addresses.length > 0),
  };
}

interface Cached<T> {
  view: T;
  json: string;
}

/** The view of one node from the cached objects: ids to JSON, for diffing against what was sent. */
interface NodeView {
  networks: Map<string, Cached<ViewNetwork>>;
  nodes: Map<string, Cached<ViewNode>>;
  services: Map<string, Cached<ViewService>>;
}

function cached<T>(view: T): Cached<T> {
  return { view, json: JSON.stringify(view) };
}

/**
 * One per dispatcher: caches each network's, node's and service's view (recomputed only when
 * the store changes one of them or its tasks), and feeds each open Networks stream what changed
 * for its node, in batches.
 */
export class NetworkViews {
  private readonly nets = new Map<string, Cached<ViewNetwork>>();
  private readonly nodes = new Map<string, Cached<ViewNode>>();
  private readonly services = new Map<string, Cached<ViewService>>();
  private readonly scoped = new WeakMap<Cached<ViewService>, Map<string, Cached<ViewService> | undefined>>();
  private dirtyServices = new Set<string>();
  private loaded = false;
  private allDirty = true;
  private watch?: { cancel(): void };
  private readonly streams = new Set<NodeStream>();
  private timer?: NodeJS.Timeout;

  constructor(private readonly store: ObjectStore, private readonly batchMs = 100) {}

  private ensureWatch(): void {
    if (this.watch) return;
    this.watch = this.store.watch({ kinds: ['network', 'node', 'service', 'task'] }, (evs) => this.changed(evs), undefined, () => {
      // A restored snapshot: everything is recomputed from the new store.
      this.watch = undefined;
      this.allDirty = true;
      this.ensureWatch();
      this.kick();
    });
  }

  private changed(evs: StoreEvent[]): void {
    for (const e of evs) {
      const o = e.object;
      if (o.kind === 'task') {
        if (o.serviceId) this.dirtyServices.add(o.serviceId);
      } else if (o.kind === 'service') this.dirtyServices.add(o.id);
      else if (o.kind === 'network') {
        // The default network's id is what services naming none are on.
        if (o.name === DEFAULT_NETWORK) this.allDirty = true;
        this.refreshNetwork(o.id);
      } else if (o.kind === 'node') this.refreshNode(o.id);
    }
    this.kick();
  }

  private refreshNetwork(id: string): void {
    const n = this.store.get('network', id) as NetworkObject | undefined;
    if (!n) return void this.nets.delete(id);
    const c = cached(networkView(n));
    if (this.nets.get(id)?.json !== c.json) this.nets.set(id, c);
  }

  private refreshNode(id: string): void {
    const n = this.store.get('node', id) as NodeObject | undefined;
    const v = n ? nodeView(n) : undefined;
    if (!v) return void this.nodes.delete(id);
    const c = cached(v);
    if (this.nodes.get(id)?.json !== c.json) this.nodes.set(id, c);
  }

  private defaultNetwork(): string | undefined {
    return this.store.getByName('network', DEFAULT_NETWORK)?.id;
  }

  private refreshService(id: string, dflt: string | undefined): void {
    const s = this.store.get('service', id) as ServiceObject | undefined;
    if (!s) return void this.services.delete(id);
    const c = cached(serviceView(s, this.store.list('task', { serviceId: id }) as TaskObject[], dflt));
    // Unchanged (a task moved on without changing readiness or addresses): keep the old entry,
    // so streams see the same object and send nothing.
    if (this.services.get(id)?.json !== c.json) this.services.set(id, c);
  }

  /** Brings the caches up to date with the store. */
  private refresh(): void {
    if (this.allDirty || !this.loaded) {
      this.allDirty = false;
      this.loaded = true;
      this.dirtyServices.clear();
      const dflt = this.defaultNetwork();
      for (const id of [...this.nets.keys()]) if (!this.store.get('network', id)) this.nets.delete(id);
      for (const n of this.store.list('network')) this.refreshNetwork(n.id);
      for (const id of [...this.nodes.keys()]) if (!this.store.get('node', id)) this.nodes.delete(id);
      for (const n of this.store.list('node')) this.refreshNode(n.id);
      for (const id of [...this.services.keys()]) if (!this.store.get('service', id)) this.services.delete(id);
      for (const s of this.store.list('service')) this.refreshService(s.id, dflt);
      return;
    }
    if (this.dirtyServices.size === 0) return;
    const dflt = this.defaultNetwork();
    const ids = this.dirtyServices;
    this.dirtyServices = new Set();
    for (const id of ids) this.refreshService(id, dflt);
  }

  private scopedService(c: Cached<ViewService>, scope: Set<string>, key: string): Cached<ViewService> | undefined {
    let m = this.scoped.get(c);
    if (!m) this.scoped.set(c, (m = new Map()));
    if (m.has(key)) return m.get(key);
    const v = scopeService(c.view, scope);
    const out = v === c.view ? c : v ? cached(v) : undefined;
    m.set(key, out);
    return out;
  }

  /** The view of node `nodeId` now. */
  viewOf(nodeId: string): NodeView {
    this.refresh();
    const out: NodeView = { networks: new Map(), nodes: new Map(), services: new Map() };
    const peers = new Set<string>([nodeId]);
    for (const [id, c] of this.nets) {
      if (!c.view.node_subnets.some((s) => s.node_id === nodeId)) continue;
      out.networks.set(id, c);
      for (const s of c.view.node_subnets) peers.add(s.node_id);
    }
    for (const id of peers) {
      const c = this.nodes.get(id);
      if (c) out.nodes.set(id, c);
    }
    const scope = new Set(out.networks.keys());
    const key = [...scope].sort().join(',');
    for (const [id, c] of this.services) {
      const v = this.scopedService(c, scope, key);
      if (v) out.services.set(id, v);
    }
    return out;
  }

  /** Opens the view of `nodeId` for a stream: `send` gets the full view now, then the changes. */
  open(nodeId: string, send: (m: NetworksMessage) => void): { close(): void } {
    this.ensureWatch();
    const st = new NodeStream(nodeId, send);
    this.streams.add(st);
    st.flush(this.viewOf(nodeId), true);
    return { close: () => this.streams.delete(st) };
  }

  private kick(): void {
    if (this.timer || this.streams.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      for (const st of [...this.streams]) st.flush(this.viewOf(st.nodeId), false);
    }, this.batchMs);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.watch?.cancel();
    this.watch = undefined;
    this.streams.clear();
  }
}

class NodeStream {
  private readonly sent: { networks: Map<string, string>; nodes: Map<string, string>; services: Map<string, string> } = { networks: new Map(), nodes: new Map(), services: new Map() };

  constructor(readonly nodeId: string, private readonly send: (m: NetworksMessage) => void) {}

  flush(v: NodeView, full: boolean): void {
    const m: NetworksMessage = { full, state: { networks: [], nodes: [], services: [] }, removed_networks: [], removed_nodes: [], removed_services: [] };
    if (full) {
      m.state.node_id = this.nodeId;
      m.state.vip_range = DEFAULT_IPAM_CONFIG.vipRange;
    }
    const diff = <T>(want: Map<string, Cached<T>>, sent: Map<string, string>, upsert: T[], removed: string[]) => {
      for (const [id, c] of want) {
        if (!full && sent.get(id) === c.json) continue;
        sent.set(id, c.json);
        upsert.push(c.view);
      }
      for (const id of [...sent.keys()]) {
        if (want.has(id)) continue;
        sent.delete(id);
        if (!full) removed.push(id);
      }
    };
    diff(v.networks, this.sent.networks, m.state.networks, m.removed_networks);
    diff(v.nodes, this.sent.nodes, m.state.nodes, m.removed_nodes);
    diff(v.services, this.sent.services, m.state.services, m.removed_services);
    const empty = m.state.networks.length + m.state.nodes.length + m.state.services.length + m.removed_networks.length + m.removed_nodes.length + m.removed_services.length === 0;
    if (full || !empty) this.send(m);
  }
}

/** Serves one agent's Networks stream until the agent cancels it or its session ends. */
export function serveNetworks(views: NetworkViews, call: { write(m: unknown): boolean; end(): void; on(ev: string, f: () => void): unknown }, nodeId: string, ended: Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    let done = false;
    const h = views.open(nodeId, (m) => call.write(m));
    const finish = (end: boolean) => {
      if (done) return;
      done = true;
      h.close();
      if (end) call.end();
      resolve();
    };
    call.on('cancelled', () => finish(false));
    call.on('error', () => finish(false));
    call.on('close', () => finish(false));
    void ended.then(() => finish(true));
  });
}
