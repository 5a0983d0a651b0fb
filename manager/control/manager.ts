// The manager role of a node: the replicated store (raft), the trust policy every authorized call
// consults, leader forwarding, and the reconcilers that run on the leader (node health from
// gossip). shoald creates one when its certificate says manager and stops it when demoted.
// The raft transport runs under the cluster's mTLS: a CA-signed client certificate is required
// at the TLS handshake, and every incoming raft call must come from a current manager.
import type { Log } from '../../proto/log.js';
import { writeDurable } from '../durable-file.js';
import { chmodSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DiskStorage } from '../../raft/storage/index.js';
import { ReplicatedNode, type MemberAddr } from '../raftnode/node.js';
import type { ObjectInput, TxnOp } from '../store/types.js';
import type { TrustPolicy } from '../security/authz.js';
import type { ServerTls, TlsIdentity } from '../security/credentials.js';
import { raftChannel, raftServerCredentials, refuseRaftPeer } from '../security/raft-security.js';
import { LeaderForwarder } from '../security/forward.js';
import { LeaderComponents } from '../leader/components.js';
import { raftLeaderChanges, raftProposals, raftSave, raftSnapshot, sources } from '../metrics.js';
import { VolumeController } from '../volumes/controller.js';
import { NODE_DOWN_GRACE_MS, isGone, nodeHealth } from './node-health.js';
import { nodeInput, raftIdOf, type ClusterObject, type NodeObject, type NodeState } from './model.js';
import type { DataKey } from '../secrets/datakey.js';
import type { RootCA } from '../ca/pki.js';
import { rootCA } from '../ca/ca-key.js';
import { unavailable } from '../security/errors.js';

export type GossipView = (nodeId: string) => 'alive' | 'suspect' | 'dead' | 'left' | undefined;

export interface ManagerOptions {
  stateDir: string;
  nodeId: string;
  clusterId: string;
  raftListen: string;
  raftAdvertise: string;
  apiAddr: string;
  tls(): TlsIdentity;
  gossip: GossipView;
  /** A new cluster: bootstrap a raft group (this manager alone unless `voters` is given). */
  bootstrap?: boolean;
  voters?: number[];
  /** This membership's raft id (a fresh one per promotion); default: derived from the node id. */
  raftId?: number;
  tickMs?: number;
  /** The endpoint of a CSI driver registered on this node, by name: the volume controller's CSI controller calls run there while this manager leads. */
  csi?(driver: string): string | undefined;
  /** This node's hostname (for the volume controller's messages). */
  hostname?: string;
  /** How often the leader reconciles node health with gossip besides on gossip's events (1 s). */
  healthIntervalMs?: number;
  /** How long a node gossip reports gone stays `unknown` before it is `down` (node-health.ts). */
  nodeDownGraceMs?: number;
  log: Log;
}


export class Manager {
  raft!: ReplicatedNode;
  readonly raftId: number;
  readonly forwarder: LeaderForwarder;
  private healthTimer?: NodeJS.Timeout;
  private peersWatch?: { cancel(): void };
  private stopped = false;
  private raftTls?: ServerTls;
  /** Orchestrators, allocator and scheduler: running while this manager leads. */
  leaderComponents?: LeaderComponents;
  /** Volumes: provision, attach, detach, delete (CSI), while this manager leads. */
  volumes?: VolumeController;
  /** The secrets data key (the daemon points this at its keeper); throws UNAVAILABLE until held. */
  dataKey: () => DataKey = () => {
    throw unavailable('this manager does not hold the secrets data key; retry, or ask another manager');
  };

  constructor(readonly o: ManagerOptions) {
    this.raftId = o.raftId ?? raftIdOf(o.nodeId);
    this.forwarder = new LeaderForwarder({
      isLeader: () => this.raft?.isLeader() ?? false,
      leaderAddr: () => this.leaderNode()?.status.addr,
      tls: o.tls,
    });
  }

  private get membersFile(): string {
    return join(this.o.stateDir, 'raft-members.json');
  }

  async start(): Promise<void> {
    const dir = join(this.o.stateDir, 'raft');
    // The raft log and snapshots hold the cluster object, CA key included: owner only.
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    const log: Log = (m, f) => this.o.log(m, f);
    const storage = await DiskStorage.open(dir, { logger: { info: () => {}, warn: log } });
    if (this.o.bootstrap) await ReplicatedNode.bootstrap(storage, this.o.voters ?? [this.raftId]);
    const members = new Map<number, MemberAddr>();
    try {
      for (const [id, a] of JSON.parse(readFileSync(this.membersFile, 'utf8')) as [number, MemberAddr][]) members.set(id, a);
    } catch {
      // first start: peers come from the join answer and from the store
    }
    members.set(this.raftId, { raft: this.o.raftAdvertise, api: this.o.apiAddr });
    // Reads retry (control/service.ts), so a ReadIndex round stuck on a dead leader may give up
    // early: 2 s is far above one heartbeat round trip.
    this.raftTls = raftServerCredentials(this.o.tls());
    const transport = {
      serverCredentials: this.raftTls,
      // Built anew for each peer client, so updateTls() reconnects with the renewed certificate.
      channelCredentials: () => raftChannel(this.o.tls()).credentials,
      // Only the TLS names: the transport's own keepalive and back-off (tuned for raft) stay.
      channelOptions: tlsNames(raftChannel(this.o.tls()).options),
      authorize: (call: Parameters<typeof refuseRaftPeer>[0]) => refuseRaftPeer(call, this.raftPolicy),
    };
    this.raft = new ReplicatedNode({ id: this.raftId, storage, listen: this.o.raftListen, members, tickMs: this.o.tickMs ?? 100, readTimeoutMs: 2000, transport, log: (m) => (m.startsWith('raft: node') || m.startsWith('warn') || m.startsWith('raft transport: refused') || m.startsWith('raft listener') ? log(m) : undefined) });
    this.raft.onFatal = (e) => {
      log(`manager: raft stopped on a fatal error: ${e.message}; exiting`);
      process.exit(1);
    };
    this.leaderComponents = new LeaderComponents(this.raft, log);
    this.volumes = new VolumeController({ raft: this.raft, csi: (d) => this.o.csi?.(d), hostname: this.o.hostname ?? this.o.nodeId, log });
    let lastLead = -1;
    this.raft.onLeaderChange = (lead) => {
      if (lead !== lastLead) raftLeaderChanges.inc();
      lastLead = lead;
      this.leaderComponents?.leadershipChanged(lead === this.raftId);
      this.volumes?.leadershipChanged(lead === this.raftId);
    };
    this.observe();
    await this.raft.start();
    // Every manager keeps its raft peers' addresses from the node objects (a restored snapshot
    // does not carry them) and remembers them on disk for the next start.
    this.watchPeers();
    this.healthTimer = setInterval(() => {
      this.checkMembership();
      void this.reconcileHealth();
    }, this.o.healthIntervalMs ?? 1000);
  }

  /** Feeds the process's metrics from this manager's raft node and store. */
  private observe(): void {
    const raft = this.raft;
    raft.observer = {
      save: (ms) => raftSave.observe(ms / 1000),
      snapshot: (ms) => raftSnapshot.observe(ms / 1000),
      proposal: (ok) => raftProposals.inc({ result: ok ? 'committed' : 'failed' }),
    };
    sources.raft = () => {
      const st = raft.status();
      return { term: st.term, commit: st.commit, applied: raft.store.applied, leader: raft.isLeader() };
    };
    sources.store = () => ({ objects: raft.store.countsByKind(), watches: raft.store.watchCount });
    sources.scheduler = () => ({ pending: raft.store.list('task').filter((t) => (t.status as { state?: string } | null)?.state === 'pending').length });
  }

  /** Follows the node objects; a restored snapshot ends the watch, so it starts again then. */
  private watchPeers(): void {
    this.peersWatch = this.raft.store.watch({ kinds: ['node'] }, () => this.syncPeers(), undefined, () => this.watchPeers());
    this.syncPeers();
  }

  /** Called once when this manager sees itself removed from raft (demoted): renew as a worker. */
  onRemoved?: () => void;
  private wasMember = false;
  private removedSignalled = false;

  private checkMembership(): void {
    const c = this.raft.confState();
    const member = c.voters.includes(this.raftId) || c.learners.includes(this.raftId);
    if (member) this.wasMember = true;
    else if (this.wasMember && !this.removedSignalled) {
      this.removedSignalled = true;
      this.o.log('manager: this node was removed from raft (demoted)');
      this.onRemoved?.();
    }
  }

  addPeers(list: { raftId: number; addr: string }[]): void {
    for (const m of list) if (m.raftId !== this.raftId) this.raft.transport.addPeer(m.raftId, m.addr);
  }

  /** What syncPeers last wrote: the file (two fsyncs, blocking) is written only when it changes. */
  private lastMembers = '';

  private syncPeers(): void {
    if (this.stopped) return;
    const list: [number, MemberAddr][] = [];
    for (const n of this.nodes()) {
      const r = n.status?.raft;
      if (!r) continue;
      list.push([r.id, { raft: r.addr, api: n.status.addr }]);
    }
    const json = JSON.stringify(list);
    // Every node change comes here (a thousand agents describing their nodes): only a change to
    // the managers touches the transport and the disk.
    if (list.length === 0 || json === this.lastMembers) return;
    for (const [id, a] of list) if (id !== this.raftId) this.raft.transport.addPeer(id, a.raft);
    writeDurable(this.membersFile, json);
    this.lastMembers = json;
  }

  cluster(): ClusterObject | undefined {
    return this.raft.store.list('cluster')[0] as ClusterObject | undefined;
  }

  /** The cluster's CA with its key, opened with the data key (the store keeps it sealed). */
  rootCA(c: ClusterObject): RootCA {
    return rootCA(c, this.dataKey);
  }

  node(id: string): NodeObject | undefined {
    return this.raft.store.get('node', id) as NodeObject | undefined;
  }

  nodes(): NodeObject[] {
    return this.raft.store.list('node') as NodeObject[];
  }

  isLeader(): boolean {
    return this.raft.isLeader();
  }

  leaderNode(): NodeObject | undefined {
    const lead = this.raft.leader();
    if (!lead) return undefined;
    return this.nodes().find((n) => n.status?.raft?.id === lead);
  }

  async waitLeader(timeoutMs: number): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!this.raft.leader()) {
      if (Date.now() > end) throw new Error(`no raft leader after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The trust policy the authorizer consults on every call served by this manager. */
  readonly policy: TrustPolicy = {
    clusterId: () => this.o.clusterId,
    refuse: (nodeId: string) => {
      const c = this.cluster();
      const until = c?.spec.removed?.[nodeId];
      if (until !== undefined && until > Date.now()) return 'the node was removed from the cluster (shoal node rm); join it again with a token to get a new identity';
      if (!this.node(nodeId)) {
        // A node joins through a follower before this replica applied its object: only refuse
        // ids this replica cannot know yet when the store is up to date.
        return 'it is not a member of this cluster (unknown node id)';
      }
      return undefined;
    },
    effectiveRole: (nodeId, role) => {
      if (role !== 'manager') return role;
      const n = this.node(nodeId);
      return n && n.spec.desiredRole !== 'manager' ? 'worker' : role;
    },
  };

  /**
   * The raft transport's check of a peer holding a manager certificate of this cluster: refused
   * when removed or demoted. Unlike `policy`, a node this replica does not know yet is accepted:
   * a new member starts with an empty store and a lagging follower may not have applied a newer
   * manager's object, yet both must hear from the leader to catch up. The CA issues manager
   * certificates only to nodes admitted as managers, so the certificate itself vouches for it.
   */
  readonly raftPolicy: TrustPolicy = {
    clusterId: () => this.o.clusterId,
    refuse: (nodeId: string) => {
      const until = this.cluster()?.spec.removed?.[nodeId];
      if (until !== undefined && until > Date.now()) return 'the node was removed from the cluster (shoal node rm)';
      return undefined;
    },
    effectiveRole: (nodeId, role) => this.policy.effectiveRole!(nodeId, role),
  };

  /** After a certificate renewal: new raft connections (both ways) use the current certificate. */
  updateTls(): void {
    if (this.stopped) return;
    this.raftTls?.update(this.o.tls());
    this.raft?.transport.updateCredentials();
  }

  /** Raft reachability of a manager as the leader sees it. */
  reachability(raftId: number): 'reachable' | 'unreachable' | 'unknown' {
    if (raftId === this.raftId) return 'reachable';
    const p = this.raft.status().progress?.get(raftId);
    if (!p) {
      const n = this.nodes().find((x) => x.status?.raft?.id === raftId);
      const g = n ? this.o.gossip(n.id) : undefined;
      return g === 'alive' || g === 'suspect' ? 'reachable' : g ? 'unreachable' : 'unknown';
    }
    // A new leader starts every peer's progress afresh: a peer counts as reachable only once it
    // has answered this leader (match > 0), so a manager that just died is not shown reachable.
    return p.recentActive && p.match > 0 ? 'reachable' : 'unreachable';
  }

  private healthRunning = false;
  private healthAgain = false;

  /**
   * Gossip's view of a member changed: reconcile node health now rather than at the next
   * once-a-second round (a dead node's tasks move that much sooner). Rounds never overlap; a
   * change during one runs another after it.
   */
  healthChanged(): Promise<void> {
    return this.reconcileHealth();
  }

  /** Leader: node status follows gossip (alive/suspect = ready; dead/left = unknown, then down after the grace: node-health.ts). */
  async reconcileHealth(): Promise<void> {
    if (this.stopped) return;
    if (this.healthRunning) {
      // Resolves once the round after the running one is done (it sees this change).
      this.healthAgain = true;
      return new Promise((r) => this.healthWaiters.push(r));
    }
    this.healthRunning = true;
    try {
      await this.reconcileHealthOnce();
    } finally {
      this.healthRunning = false;
    }
    if (this.healthAgain) {
      this.healthAgain = false;
      const waiters = this.healthWaiters.splice(0);
      await this.reconcileHealth();
      for (const w of waiters) w();
    }
  }

  private readonly healthWaiters: (() => void)[] = [];

  /** When this manager's gossip first reported each node dead or left (every manager keeps it, so a new leader counts from its own sighting). */
  private readonly goneSince = new Map<string, number>();
  private graceTimer?: NodeJS.Timeout;

  private async reconcileHealthOnce(): Promise<void> {
    if (this.stopped) return;
    const now = Date.now();
    const nodes = this.nodes();
    for (const n of nodes) {
      if (isGone(n, this.o.gossip(n.id))) {
        if (!this.goneSince.has(n.id)) this.goneSince.set(n.id, now);
      } else this.goneSince.delete(n.id);
    }
    if (!this.raft.isLeader()) return;
    const grace = this.o.nodeDownGraceMs ?? NODE_DOWN_GRACE_MS;
    const ops: TxnOp[] = [];
    let recheckAt = Infinity;
    for (const n of nodes) {
      const v = nodeHealth(n, this.o.gossip(n.id), this.goneSince.get(n.id), now, grace);
      if (v.recheckAt !== undefined) recheckAt = Math.min(recheckAt, v.recheckAt);
      if (!v.state) continue;
      ops.push({ op: 'update', object: nodeInput(n, { status: { state: v.state, message: v.message ?? '' } }), expectVersion: n.version });
    }
    // A grace that runs out is acted on then, not at the next periodic round.
    clearTimeout(this.graceTimer);
    if (recheckAt !== Infinity && !this.stopped) this.graceTimer = setTimeout(() => void this.reconcileHealth(), Math.max(0, recheckAt - Date.now()) + 5);
    // Proposed together (raft batches them into one append): the nodes are independent.
    await Promise.all(ops.map(async (op) => {
      try {
        await this.raft.propose([op]);
        const o = (op as { object: { id: string; status: { state: string; message: string } } }).object;
        this.o.log(`manager: node ${o.id} is now ${o.status.state}${o.status.message ? ` (${o.status.message})` : ''}`);
      } catch {
        // a concurrent update or a leadership change: the next round retries
      }
    }));
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.healthTimer);
    clearTimeout(this.graceTimer);
    this.leaderComponents?.stop();
    delete sources.raft;
    delete sources.store;
    delete sources.scheduler;
    this.volumes?.stop();
    this.peersWatch?.cancel();
    this.forwarder.reset();
    await this.raft?.stop();
  }
}

function tlsNames(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([k]) => k === 'grpc.ssl_target_name_override' || k === 'grpc.default_authority'));
}

/**
 * Read-modify-write of one node object with a version check, retried on a concurrent change so no
 * writer overwrites another's fields with a stale copy. `patch` returns undefined to skip.
 */
export async function updateNode(mgr: Manager, id: string, patch: (n: NodeObject) => ObjectInput | undefined, attempts = 8): Promise<NodeObject | undefined> {
  for (let i = 0; ; i++) {
    const n = mgr.node(id);
    if (!n) return undefined;
    const inp = patch(n);
    if (!inp) return n;
    try {
      const r = await mgr.raft.propose([{ op: 'update', object: inp, expectVersion: n.version }]);
      return r.objects[0] as NodeObject;
    } catch (e) {
      const c = e as { name?: string; conflict?: { code?: string } };
      if (c.name !== 'ConflictError' || c.conflict?.code !== 'version-mismatch' || i >= attempts) throw e;
      // Our replica may lag behind the version that beat us: wait a moment before re-reading.
      await new Promise((r) => setTimeout(r, 20 * (i + 1)));
    }
  }
}
