// The agent's side of the network plugin contract (proto/network): it hands the plugin the view
// of the cluster the dispatcher streams (Dispatcher.Networks) plus its own tasks' attachments,
// as a full state first and then versioned deltas (UpdateState). A task's attachment is pushed
// before its pod is run (the runtime's CNI chain asks the plugin for it) and removed once the
// pod's network is torn down. The agent holds no ip or nft code: the plugin makes the data path.
//
// When the plugin answers FAILED_PRECONDITION (it holds another version: restarted from an older
// file, or a delta was lost) the agent sends a full state. Nothing is pushed before the first
// view arrives: an empty full state would take down the networks of the pods still running.
import type { NetworksMessage, ViewNetwork, ViewNode, ViewService } from '../../manager/dispatcher/network-view.js';
import type { TaskObject } from '../../manager/services/model.js';
import type { NetworkAddress } from '../../manager/networks/model.js';
import { networkPluginClient, type Attachment, type NetworkPluginClient } from '../../proto/network/types.js';
import { contains, parseCidr, parseIp } from '../../manager/allocator/ipv4.js';

export const DEFAULT_DNS = '169.254.53.53';

export interface NetworkSyncOptions {
  /** The plugin's Unix socket. */
  socket: string;
  nodeId: string;
  log(m: string): void;
  /** How long a task waits for its networks to reach this node, or for an address to be free. */
  attachTimeoutMs?: number;
  /** Resolves once the plugin serves (shoald's child started); nothing is pushed before. */
  ready?: Promise<void>;
}

type Kind = 'networks' | 'nodes' | 'services' | 'attachments';

/** What a task's attachment waits for: the network address it is about, and why. */
interface Waiting {
  on: NetworkAddress;
  why: string;
}

export class NetworkSync {
  private client?: NetworkPluginClient;
  private readonly networks = new Map<string, ViewNetwork>();
  private readonly nodes = new Map<string, ViewNode>();
  private readonly services = new Map<string, ViewService>();
  private readonly attachments = new Map<string, Attachment>();
  /** Addresses of pods an earlier run of the agent made (found again at start), by task. */
  private readonly held = new Map<string, Set<string>>();
  private vipRange = '';
  private haveView = false;
  private readonly dirty: Record<Kind, Set<string>> = { networks: new Set(), nodes: new Set(), services: new Set(), attachments: new Set() };
  /** The plugin's version as of our last accepted update; 0: send a full state next. */
  private version = 0;
  private needFull = true;
  /** Changes made so far, and the number of them the plugin has accepted. */
  private seq = 0;
  private synced = 0;
  private running = false;
  private retry?: NodeJS.Timeout;
  private failures = 0;
  private stopped = false;
  private dns: string[] = [DEFAULT_DNS];
  private readonly waiters = new Set<() => void>();

  constructor(private readonly o: NetworkSyncOptions) {}

  private plugin(): NetworkPluginClient {
    this.client ??= networkPluginClient(this.o.socket, 30_000);
    return this.client;
  }

  /** The resolver pods use (the plugin's Status says which). */
  dnsServers(): string[] {
    return [...this.dns];
  }

  /** A message of the dispatcher's Networks stream. */
  onView(m: NetworksMessage): void {
    const st = m.state ?? { networks: [], nodes: [], services: [] };
    const apply = <T extends { id: string }>(kind: Kind, map: Map<string, T>, list: T[] | undefined, removed: string[] | undefined) => {
      if (m.full) {
        for (const id of map.keys()) this.dirty[kind].add(id);
        map.clear();
      }
      for (const id of removed ?? []) {
        map.delete(id);
        this.dirty[kind].add(id);
      }
      for (const x of list ?? []) {
        map.set(x.id, x);
        this.dirty[kind].add(x.id);
      }
    };
    apply('networks', this.networks, st.networks, m.removed_networks);
    apply('nodes', this.nodes, st.nodes, m.removed_nodes);
    apply('services', this.services, st.services, m.removed_services);
    if (st.vip_range) this.vipRange = st.vip_range;
    // An attachment on a network this node no longer has goes: its pod is being torn down, and
    // the plugin refuses a state naming an unknown network.
    for (const [id, a] of this.attachments) {
      if (a.networks.every((n) => this.networks.has(n.network_id))) continue;
      this.attachments.delete(id);
      this.dirty.attachments.add(id);
    }
    if (m.full && !this.haveView) this.o.log(`network: first view of the cluster: ${this.networks.size} network(s), ${this.nodes.size} node(s), ${this.services.size} service(s)`);
    this.haveView = true;
    this.changed();
  }

  private changed(): void {
    this.seq++;
    for (const w of [...this.waiters]) w();
    void this.sync();
  }

  /** A network's name as the managers' view gives it (its id until the view names it). */
  private nameOf(networkId: string): string {
    return this.networks.get(networkId)?.name || networkId;
  }

  /** Why the task cannot be attached yet (its networks have not reached this node), or undefined. */
  private notReady(t: TaskObject): Waiting | undefined {
    for (const a of t.spec.networks ?? []) {
      if (!this.haveView) return { on: a, why: 'no view of the cluster from the managers yet' };
      const n = this.networks.get(a.networkId);
      if (!n) return { on: a, why: `network ${a.networkId} has not reached this node yet` };
      const mine = n.node_subnets.find((s) => s.node_id === this.o.nodeId);
      if (!mine || !contains(parseCidr(mine.subnet), parseIp(a.address))) return { on: a, why: `this node's subnet of network ${n.name} (holding ${a.address}) has not reached it yet` };
    }
    return undefined;
  }

  /** Another task of this node whose pod may still hold one of `t`'s addresses. */
  private conflict(t: TaskObject): Waiting | undefined {
    for (const a of t.spec.networks ?? []) {
      for (const [id, other] of this.attachments) {
        if (id === t.id) continue;
        if (other.networks.some((n) => n.network_id === a.networkId && n.address === a.address)) return { on: a, why: `address ${a.address} is still held by task ${id}'s pod on this node` };
      }
      // Networks' subnets never overlap: an address alone names the pod's interface.
      for (const [id, ips] of this.held) if (id !== t.id && ips.has(a.address)) return { on: a, why: `address ${a.address} is still held by task ${id}'s pod (found after the agent's restart) on this node` };
    }
    return undefined;
  }

  /**
   * A pod of task `taskId` that an earlier run of the agent made holds `ips`: no other task's pod
   * gets one of them before its network is torn down (detach).
   */
  hold(taskId: string, ips: string[]): void {
    if (ips.length > 0) this.held.set(taskId, new Set([...(this.held.get(taskId) ?? []), ...ips]));
  }

  /**
   * Pushes the task's attachment before its pod runs; resolves once the plugin holds it. Waits
   * (at most attachTimeoutMs) for its networks to reach this node and for an earlier pod with one
   * of its addresses (a task that ended, whose address the managers released) to be torn down.
   * `check` throws to abandon the wait (the task was stopped meanwhile). `say` gets what the task
   * waits for, when that changes and every 10 s while it lasts (the task's status message).
   */
  async attach(t: TaskObject, check: () => void, say: (message: string) => void = () => {}): Promise<void> {
    const nets = t.spec.networks ?? [];
    if (nets.length === 0) throw new Error('the task has no network address (its placement gave it none); it cannot get a network');
    const limit = this.o.attachTimeoutMs ?? 120_000;
    const start = Date.now();
    const end = start + limit;
    let said = '';
    let saidAt = 0;
    const waiting = (m: string) => {
      const secs = Math.floor((Date.now() - start) / 1000);
      if (m === said && Date.now() - saidAt < 10_000) return;
      said = m;
      saidAt = Date.now();
      say(`${m}${secs >= 1 ? ` (${secs} s of at most ${limit / 1000} s)` : ''}`);
    };
    for (;;) {
      check();
      if (this.stopped) throw new Error('the agent is stopping');
      const w = this.notReady(t) ?? this.conflict(t);
      if (!w) break;
      const what = `network attachment ${this.nameOf(w.on.networkId)} (address ${w.on.address})`;
      if (Date.now() > end) throw new Error(`its ${what} could not be made within ${limit / 1000} s: ${w.why}`);
      waiting(`waiting for ${what}: ${w.why}`);
      await this.nextChange(1000);
    }
    this.attachments.set(t.id, { task_id: t.id, pod_namespace: '', pod_name: '', networks: nets.map((n) => ({ network_id: n.networkId, address: n.address })) });
    this.dirty.attachments.add(t.id);
    this.changed();
    const mine = this.seq;
    const pushed = Date.now();
    while (this.synced < mine) {
      check();
      if (this.stopped) throw new Error('the agent is stopping');
      if (Date.now() > end) throw new Error(`the network plugin did not take the task's attachment within ${limit / 1000} s (see the network lines in shoald's log)`);
      // The plugin usually takes it at once: only a wait worth telling is told.
      if (Date.now() - pushed >= 1000) waiting(`waiting for the network plugin to take its attachment (${nets.map((n) => `${this.nameOf(n.networkId)} ${n.address}`).join(', ')})`);
      await this.nextChange(1000);
    }
  }

  /** The task's pod has no network any more (torn down, or never made): forget its attachment. */
  detach(taskId: string): void {
    if (this.held.delete(taskId)) for (const w of [...this.waiters]) w();
    if (!this.attachments.delete(taskId)) return;
    this.dirty.attachments.add(taskId);
    this.changed();
  }

  private nextChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
    });
  }

  private stateOf(kinds: 'all' | Record<Kind, Set<string>>) {
    const pick = <T>(kind: Kind, map: Map<string, T>): T[] => (kinds === 'all' ? [...map.values()] : [...kinds[kind]].filter((id) => map.has(id)).map((id) => map.get(id)!));
    return {
      node_id: this.o.nodeId,
      vip_range: this.vipRange,
      networks: pick('networks', this.networks),
      nodes: pick('nodes', this.nodes),
      services: pick('services', this.services),
      attachments: pick('attachments', this.attachments),
      dns_upstreams: [],
    };
  }

  /** Sends what changed (or a full state) until the plugin holds everything; one push at a time. */
  private async sync(): Promise<void> {
    // A retry already waiting (the plugin failed just now) runs on its own time.
    if (this.running || this.stopped || !this.haveView || this.retry) return;
    this.running = true;
    try {
      await this.o.ready;
      while (!this.stopped && this.synced < this.seq) {
        const target = this.seq;
        const dirty = this.dirty;
        const empty = Object.values(dirty).every((s) => s.size === 0);
        try {
          if (this.needFull) {
            const st = await this.plugin().status();
            this.dns = st.dns_servers?.length ? [...st.dns_servers] : [DEFAULT_DNS];
            const version = Number(st.state_version ?? 0) + 1;
            for (const k of Object.keys(dirty) as Kind[]) dirty[k] = new Set();
            await this.plugin().updateState({ full: true, version, state: this.stateOf('all') });
            this.version = version;
            this.needFull = false;
          } else if (!empty) {
            const taken: Record<Kind, Set<string>> = { networks: dirty.networks, nodes: dirty.nodes, services: dirty.services, attachments: dirty.attachments };
            for (const k of Object.keys(dirty) as Kind[]) dirty[k] = new Set();
            const removed = (k: Kind, map: Map<string, unknown>) => [...taken[k]].filter((id) => !map.has(id));
            try {
              await this.plugin().updateState({
                full: false,
                base_version: this.version,
                version: this.version + 1,
                state: this.stateOf(taken),
                removed_networks: removed('networks', this.networks),
                removed_nodes: removed('nodes', this.nodes),
                removed_services: removed('services', this.services),
                removed_attachments: removed('attachments', this.attachments),
              });
              this.version += 1;
            } catch (e) {
              // Not applied: the same ids are sent again (with whatever they are by then).
              for (const k of Object.keys(taken) as Kind[]) for (const id of taken[k]) dirty[k].add(id);
              throw e;
            }
          }
          this.synced = target;
          this.failures = 0;
          for (const w of [...this.waiters]) w();
        } catch (e) {
          const err = e as { code?: number; details?: string; message: string };
          // FAILED_PRECONDITION: the plugin holds another version; anything else may have left
          // it anywhere too: the next try is a full state.
          this.needFull = true;
          this.failures++;
          const delay = err.code === 9 ? 0 : Math.min(200 * 2 ** Math.min(this.failures, 6), 10_000);
          if (err.code !== 9 && (this.failures <= 3 || this.failures % 20 === 0)) this.o.log(`network: updating the network plugin failed: ${err.details ?? err.message}; retrying with a full state in ${delay} ms`);
          if (delay > 0) {
            this.retry = setTimeout(() => {
              this.retry = undefined;
              void this.sync();
            }, delay);
            return;
          }
        }
      }
    } finally {
      this.running = false;
    }
    if (!this.stopped && this.synced < this.seq && !this.retry) void this.sync();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    for (const w of [...this.waiters]) w();
    this.client?.close();
    this.client = undefined;
  }
}
