// The deterministic simulation of a shoal raft cluster: real RawNodes (raft/core) driven by a
// virtual clock, a lossy reordering network (with deliveries held for several election timeouts
// and late duplicates), hosts that follow raft/storage's rules (sim-disk.ts: mustSync, deferred
// commit, slow and stalling fsyncs, crashes mid-fsync that keep only what was synced, restart
// from the snapshot the store persisted), an operator changing membership and moving leadership,
// a KV state machine applied the way manager/raftnode applies (committed entries while the Ready
// is written), and clients whose history is checked for linearizability at the end. Everything is
// a function of the seed; the invariants in invariants.ts and commit-check.ts are checked as each
// step happens.
//
// A run has three phases: `steps` events of faults; then everything heals and a fresh write must
// commit within a bounded virtual time; then the calm phase (calm.ts) checks what a healthy
// cluster must do: settle, answer reads, hold still, transfer leadership, survive a rejoining
// node and check-quorum, each within a bound.

import { MemoryStorage, RawNode, Raft, decodeConfChange, type CoreReady } from '../core/index.js';
import { toConfState } from '../core/tracker.js';
import { EntryType, MessageType, Role, type ConfChange, type ConfState, type Entry, type Message, type NodeId } from '../types.js';
import { CalmPhase, type CalmHost } from './calm.js';
import { SimClient, type ClientReply, type ClientRequest } from './clients.js';
import { confAfter } from './campaign-conf.js';
import { commitCouldBeLost, type NodeLogs } from './commit-check.js';
import { planMembershipChange } from './operator.js';
import { randomPartition } from './partitions.js';
import { SimDisk, type CrashModel, type DiskSpeed } from './sim-disk.js';
import { SimNode, confMembers, fmtConf } from './sim-node.js';
import { EventQueue } from './event-queue.js';
import { hashString, mix } from './hash.js';
import { InvariantChecker, Violation } from './invariants.js';
import { KvStateMachine, decodeCommand, encodeCommand } from './kv.js';
import { checkHistory, type Operation } from './linearizability.js';
import { CALM, Network, Partition, type Weather } from './network.js';
import { Prng } from './prng.js';

export type { DiskSpeed, CrashModel } from './sim-disk.js';

export interface SimOptions {
  seed: number;
  /** Events processed in the fault phase (default 2000). */
  steps?: number;
  /** Initial voters, 3 or 5 (default: chosen by the seed). */
  nodes?: number;
  /** A subclass of Raft to run instead of the real one (the broken variants). */
  impl?: typeof Raft;
  /**
   * Fault mix: 'mixed' (partitions, crashes, lossy and late network, transfers, stalls,
   * membership changes) or 'leader-churn' (frequent short crashes, mostly of the leader, while
   * entries are in flight: the ground for Figure-8 style histories). Default: chosen by the seed,
   * one run in five is leader-churn.
   */
  profile?: 'mixed' | 'leader-churn';
  /**
   * How nodes answer client reads: 'read-index' (linearizable, the default) or 'local' (from the
   * node's own state machine, no ReadIndex: stale reads are possible). 'local' exists only to
   * show that the linearizability check catches stale reads.
   */
  reads?: 'read-index' | 'local';
  /**
   * What a crash during a write leaves: false = raft/storage's rule (the write in progress is on
   * disk whole or not at all), true = also any prefix of it in the Ready's order (an etcd-style
   * WAL; FINDINGS.md #3). Default: chosen by the seed, one run in four is torn.
   */
  tornWrites?: boolean;
  /** Disk latency: 'fast' (0.2–2 ms), 'slow' (5–45 ms), 'stalls' (mostly fast, some writes stall for up to a second). Default: chosen by the seed. */
  disk?: DiskSpeed;
  /** Messages held for several election timeouts and late duplicates in the network weather (default true). */
  late?: boolean;
  /**
   * 'storage' (default): the host follows raft/storage (a commit-only hard state is not synced).
   * 'sync-all': every hard state change is written and synced (the old, kinder host).
   */
  host?: 'storage' | 'sync-all';
  /** Run the calm phase's liveness stages after healing (default true). */
  calm?: boolean;
  /**
   * Check at every leader commit that the entry could not be lost (commit-check.ts), and after
   * every step that a leader moved its commit index only to an entry of its own term (default true).
   */
  commitCheck?: boolean;
  /** The operator changes membership during the faults (mixed profile; default true). */
  membership?: boolean;
  /** Override the seed's choice of core settings (e.g. small messages to split appends). */
  tunables?: Partial<Tunables>;
  /** Receives a readable narration of the run. */
  narrate?: (line: string) => void;
}

export interface SimViolation {
  invariant: string;
  detail: string;
  step: number;
  time: number;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  violation?: SimViolation;
  /** Compact list of what the fault scheduler and the operator did, and when. */
  schedule: string[];
  /** Hash over every event and message: equal for equal seeds. */
  traceHash: number;
  stats: {
    steps: number;
    /** The --steps of the fault phase (steps also counts the healing and calm phases). */
    faultSteps: number;
    /** The --nodes option, when one was given. */
    nodesOption?: number;
    tornWrites: boolean;
    disk: DiskSpeed;
    virtualMs: number;
    nodes: number;
    leaders: number;
    maxTerm: number;
    commitIndex: number;
    snapshotsSent: number;
    snapshotsInstalled: number;
    crashes: number;
    confChanges: number;
    jointConfigs: number;
    opsCompleted: number;
    opsOpen: number;
    checks: number;
    lateMessages: number;
    deferredHardStates: number;
    slowWrites: number;
    calmStages: number;
  };
}

type Ev =
  | { k: 'tick'; node: NodeId; inc: number }
  | { k: 'deliver'; m: Message; src: NodeId; inc: number; late: boolean }
  | { k: 'disk'; node: NodeId; fn: () => void }
  | { k: 'restart'; node: NodeId }
  | { k: 'crash'; node: NodeId; inc: number; why: string }
  | { k: 'fault' }
  | { k: 'unpartition'; gen: number }
  | { k: 'unisolate'; node: NodeId; gen: number }
  | { k: 'operator' }
  | { k: 'retire'; node: NodeId }
  | { k: 'clientNext'; client: number }
  | { k: 'clientTimeout'; client: number; reqId: number }
  | { k: 'toNode'; node: NodeId; req: ClientRequest }
  | { k: 'toClient'; rep: ClientReply }
  | { k: 'strike'; node: NodeId; term: number }
  | { k: 'calm' };

const EVENT_CODE: Record<Ev['k'], number> = {
  tick: 1, deliver: 2, disk: 3, restart: 4, fault: 5, unpartition: 6, operator: 7, retire: 8,
  clientNext: 9, clientTimeout: 10, toNode: 11, toClient: 12, strike: 13, unisolate: 14, crash: 15, calm: 16,
};

export interface Tunables {
  electionTick: number;
  heartbeatTick: number;
  preVote: boolean;
  checkQuorum: boolean;
  maxSizePerMsg: number;
  maxInflightMsgs: number;
  maxUncommittedBytes: number;
  disableProposalForwarding: boolean;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
/** The state machine's client id for the calm phase's own writes. */
const CALM_CLIENT = 1000;

function extraTunables(seed: number): Pick<Tunables, 'maxUncommittedBytes' | 'disableProposalForwarding'> {
  const x = new Prng((seed ^ 0x5bd1e995) >>> 0);
  return { maxUncommittedBytes: x.pick([0, 0, 0, 300, 2000]), disableProposalForwarding: x.chance(0.2) };
}

export class Simulation {
  private readonly rng: Prng;
  private readonly netRng: Prng;
  private readonly faultRng: Prng;
  private readonly diskRng: Prng;
  private readonly q = new EventQueue<Ev>();
  private readonly net: Network;
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly inv: InvariantChecker;
  private readonly clients: SimClient[] = [];
  private readonly history: Operation[] = [];
  private readonly schedule: string[] = [];
  private readonly tun: Tunables;
  private readonly impl: typeof Raft | undefined;
  private readonly narrate: ((line: string) => void) | undefined;
  private readonly stepsWanted: number;
  private readonly snapEvery: number;
  private readonly clientTimeoutMs: number;
  private readonly electionMs: number;
  private readonly diskSpeed: DiskSpeed;
  private readonly crashModel: CrashModel;
  private readonly late: boolean;
  private readonly syncAll: boolean;
  private readonly commitCheck: boolean;
  private trace = 0;
  private lastSnapLog = '';
  private steps = 0;
  private healing = false;
  private healedAt = 0;
  private liveProbe: SimClient | null = null;
  private liveDone = false;
  private calm: CalmPhase | null = null;
  private partitionGen = 0;
  private readonly churn: boolean;
  private nextNodeId: number;
  private reqIds = 0;
  private readCtx = 0;
  private calmSeq = 0;
  /** When the last raft message sent so far will have been delivered. */
  private quietAt = 0;
  private readonly maxMembers = 7;
  private opInFlight: { what: string; ids: NodeId[]; until: number } | null = null;
  private readonly joining = new Map<NodeId, number>();
  /** Reads asked and not answered yet: context -> the highest committed index when asked. */
  private readonly readAsked = new Map<string, number>();
  /** Vote grants delivered: "candidate:term" -> voters. */
  private readonly grants = new Map<string, Set<NodeId>>();
  private st = { leaders: 0, maxTerm: 0, snapshotsSent: 0, snapshotsInstalled: 0, crashes: 0, confChanges: 0, jointConfigs: 0, lateMessages: 0 };

  constructor(private readonly opts: SimOptions) {
    const master = new Prng(opts.seed >>> 0);
    this.rng = master.fork(1);
    this.netRng = master.fork(2);
    this.faultRng = master.fork(3);
    this.impl = opts.impl;
    this.narrate = opts.narrate;
    this.stepsWanted = opts.steps ?? 2000;
    const r = this.rng;
    const n = opts.nodes ?? (r.chance(0.5) ? 3 : 5);
    if (!Number.isInteger(n) || n < 1 || n > 7) throw new RangeError(`sim: nodes must be an integer in 1..7, got ${opts.nodes}`);
    this.tun = {
      electionTick: r.pick([5, 6, 8, 10]),
      heartbeatTick: 1,
      preVote: r.chance(0.75),
      checkQuorum: r.chance(0.75),
      maxSizePerMsg: r.pick([64, 256, 4096, 1024 * 1024]),
      maxInflightMsgs: r.pick([1, 4, 64, 256]),
      // Drawn from their own stream so that adding them left every other draw of a seed as it was.
      ...extraTunables(opts.seed),
      ...opts.tunables,
    };
    this.snapEvery = r.int(4, 40);
    this.churn = (opts.profile ?? (r.chance(0.2) ? 'leader-churn' : 'mixed')) === 'leader-churn';
    // The host's own settings come from a stream of their own.
    const h = master.fork(4);
    this.diskRng = master.fork(5);
    this.diskSpeed = opts.disk ?? h.pick<DiskSpeed>(['fast', 'fast', 'slow', 'stalls', 'stalls']);
    this.crashModel = (opts.tornWrites ?? h.chance(0.25)) ? 'torn' : 'record';
    this.late = opts.late ?? true;
    this.syncAll = opts.host === 'sync-all';
    this.commitCheck = opts.commitCheck ?? true;
    this.electionMs = this.tun.electionTick * 10;
    this.net = new Network(this.netRng, 1, 8, this.electionMs);
    this.clientTimeoutMs = this.electionMs * 3;
    const voters = Array.from({ length: n }, (_, i) => i + 1);
    this.nextNodeId = n + 1;
    this.inv = new InvariantChecker(voters);
    for (const id of voters) {
      // Bootstrap: every initial voter starts from the same snapshot at index 1 holding the
      // configuration, so a node added later learns the configuration from a snapshot.
      const storage = new MemoryStorage();
      storage.applySnapshot({ meta: { index: 1, term: 1, conf: { voters, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } }, data: new Uint8Array(0) });
      storage.setHardState({ term: 1, vote: 0, commit: 1 });
      this.inv.onRestart(id, { index: 1, term: 1 }, [], 1);
      this.inv.setDurable(id, storage.hardState());
      this.addNode(id, storage);
    }
    const keys = ['x', 'y', 'z'].slice(0, r.int(1, 3));
    const nClients = r.int(2, 5);
    for (let c = 1; c <= nClients; c++) {
      this.clients.push(new SimClient(c, master.fork(100 + c), keys, this.history, () => ++this.reqIds, this.clientTimeoutMs, 5));
      this.q.at(r.float() * 50, { k: 'clientNext', client: c });
    }
    this.q.at(this.faultRng.float() * 200, { k: 'fault' });
    this.q.at(100 + this.faultRng.float() * 400, { k: 'operator' });
    this.log(
      `seed ${opts.seed}: ${this.churn ? 'leader-churn' : 'mixed'} faults, ${n} voters, electionTick ${this.tun.electionTick}, preVote ${this.tun.preVote}, checkQuorum ${this.tun.checkQuorum}, ` +
        `maxSizePerMsg ${this.tun.maxSizePerMsg}, maxInflight ${this.tun.maxInflightMsgs}, maxUncommittedBytes ${this.tun.maxUncommittedBytes}, ` +
        `proposal forwarding ${this.tun.disableProposalForwarding ? 'off' : 'on'}, snapshot every ${this.snapEvery} entries, ${nClients} clients on keys ${keys.join(',')}, ` +
        `${this.diskSpeed} disks, crashes ${this.crashModel === 'torn' ? 'may tear a write' : 'keep a write whole or lose it'}`,
    );
  }

  // ---- narration, schedule, trace ----------------------------------------------------------------

  private t(): string {
    return `t=${this.q.now.toFixed(1)}`;
  }

  private log(line: string): void {
    this.narrate?.(`${this.t()} ${line}`);
  }

  private fault(line: string): void {
    this.schedule.push(`${this.t()} #${this.steps} ${line}`);
    this.narrate?.(`${this.t()} ⚡ ${line}`);
  }

  // ---- nodes ---------------------------------------------------------------------------------------

  private addNode(id: NodeId, storage: MemoryStorage): SimNode {
    const disk = new SimDisk(storage, this.diskSpeed, this.diskRng.fork(id), (ms, fn) => this.q.after(ms, { k: 'disk', node: id, fn }), (hs) => this.inv.onPersist(id, hs));
    const node = new SimNode(id, disk, 10 * (0.9 + 0.2 * this.rng.float()));
    this.nodes.set(id, node);
    this.start(node, storage.snapshot());
    return node;
  }

  private start(n: SimNode, snap: ReturnType<MemoryStorage['snapshot']>): void {
    n.inc++;
    n.sm = KvStateMachine.restore(snap.data, snap.meta.index);
    n.conf = snap.meta.conf;
    n.inflight = null;
    n.crashOnPersist = false;
    n.dueSnapshot = null;
    n.snapshotting = false;
    n.snapStarted = snap.meta.index;
    n.transfer = { to: 0, term: 0, ticks: 0 };
    n.lastCommit = n.disk.store.hardState().commit;
    n.waitingWrites.clear();
    n.pendingReads.clear();
    n.readyReads = [];
    // As manager/raftnode: the store restarts from the snapshot storage recovered, and that is
    // the applied index the core is told (entries after it are applied again).
    n.rn = new RawNode(
      { id: n.id, storage: n.disk.store, random: this.rng.fork(n.id * 1000 + n.inc).asFunction(), applied: snap.meta.index, ...this.tun, readOnly: 'safe' },
      this.impl,
    );
    const st = n.rn.status();
    n.role = st.role;
    n.term = st.term;
    n.lead = st.lead;
    n.tickGen++;
    this.q.after(this.rng.float() * n.tickMs, { k: 'tick', node: n.id, inc: n.tickGen });
  }

  private crash(n: SimNode, why: string): void {
    if (!n.rn) return;
    this.st.crashes++;
    const out = n.disk.crash(this.crashModel);
    this.fault(`crash ${n.id}${why}${out.what ? ` (${out.what})` : ''}`);
    n.rn = null;
    n.inflight = null;
    n.inc++;
    n.role = Role.Follower;
  }

  private restart(n: SimNode): void {
    if (n.up || n.retired) return;
    // Only what reached the disk survives: recovery picks the snapshot, a fresh RawNode starts.
    const snap = n.disk.recover();
    const s = n.disk.store;
    const first = s.firstIndex();
    const last = s.lastIndex();
    this.inv.onRestart(n.id, { index: first - 1, term: s.term(first - 1) }, last >= first ? s.entries(first, last + 1, Infinity) : [], snap.meta.index);
    this.start(n, snap);
    const hs = s.hardState();
    this.fault(`restart ${n.id} (term ${hs.term}, vote ${hs.vote}, commit ${hs.commit}, snapshot ${snap.meta.index}, log ${first - 1}..${last})`);
  }

  private retire(n: SimNode): void {
    if (n.retired) return;
    n.retired = true;
    n.rn = null;
    n.inflight = null;
    n.inc++;
    this.fault(`shut down ${n.id} (no longer a member)`);
  }

  private members(): NodeId[] {
    return [...this.nodes.values()].filter((n) => !n.retired).map((n) => n.id);
  }

  private leader(): SimNode | null {
    let best: SimNode | null = null;
    for (const n of this.nodes.values()) {
      if (n.up && n.role === Role.Leader && (!best || n.term > best.term)) best = n;
    }
    return best;
  }

  // ---- the host loop (manager/raftnode's order) -----------------------------------------------------

  /** Takes the node's next Ready, if it has one and none is being handled. */
  private pump(n: SimNode): void {
    const rn = n.rn;
    if (!rn || n.inflight || !rn.hasReady()) return;
    const st = rn.status();
    const rd = rn.ready();
    this.inv.onReady(n.id, st.role === Role.Leader ? st.term : 0, rd);
    if (rd.softState) this.observeRole(n, rd.softState.role, st.term, rd.softState.lead);
    if (this.churn && !this.healing && st.role === Role.Leader && rd.hardState && rd.hardState.commit > n.lastCommit && this.faultRng.chance(0.3)) {
      // Cut the leader off right as its commit index moves: the appends and heartbeats that would
      // tell the followers are lost in flight.
      this.isolateNow(n, `leader of term ${st.term} just committed ${rd.hardState.commit}`);
    }
    if (rd.hardState) {
      if (st.role === Role.Leader && this.commitCheck && rd.hardState.commit > n.lastCommit) this.checkCommitFinal(n, rn, rd.hardState.commit, st.term);
      n.lastCommit = rd.hardState.commit;
    }
    // 1. messages that do not wait for this Ready's write
    for (const m of rd.messages) this.send(n, m);
    n.inflight = rd;
    // 2. committed entries are applied while the write runs (they are on a quorum of disks
    // already); a received snapshot only once it is durable
    if (!rd.snapshot) this.applyReady(n, rn, rd);
    // 3. persist by raft/storage's rules
    const inc = n.inc;
    const save = this.syncAll && rd.hardState && !rd.mustSync ? { ...rd, mustSync: true } : rd;
    if (n.crashOnPersist && SimDisk.needsWrite(save)) {
      // Armed: the host dies while this write's fsync is under way.
      n.crashOnPersist = false;
      this.q.after(this.diskRng.float() * 0.2, { k: 'crash', node: n.id, inc, why: ' during its fsync' });
    }
    n.disk.save(save, () => this.persisted(n, inc));
  }

  private persisted(n: SimNode, inc: number): void {
    const rd = n.inflight;
    const rn = n.rn;
    if (!rd || !rn || n.inc !== inc) return;
    // 4. messages that promise durability (votes, append acks)
    for (const m of rd.messagesAfterPersist) this.send(n, m);
    if (rd.snapshot) {
      n.sm = KvStateMachine.restore(rd.snapshot.data, rd.snapshot.meta.index);
      n.conf = rd.snapshot.meta.conf;
      this.inv.onApplySnapshot(n.id, rd.snapshot.meta.index, n.sm.chain);
      this.st.snapshotsInstalled++;
      n.snapStarted = Math.max(n.snapStarted, rd.snapshot.meta.index);
      this.log(`${n.id} installed a snapshot at index ${rd.snapshot.meta.index} (${fmtConf(n.conf)})`);
      this.applyReady(n, rn, rd);
    }
    // 5. advance; then the local snapshot captured while applying, if one is due
    n.inflight = null;
    rn.advance();
    this.startSnapshot(n);
    this.pump(n);
  }

  /** Applies a Ready's committed entries and hands out its reads and drops (raftnode's applyReady). */
  private applyReady(n: SimNode, rn: RawNode, rd: CoreReady): void {
    for (const e of rd.committedEntries) {
      if (e.index <= n.sm.appliedIndex) continue; // covered by a snapshot applied in this Ready
      if (e.type === EntryType.ConfChange) {
        n.sm.skip(e.index, e.data);
        this.inv.onApply(n.id, e.index, n.sm.chain);
        this.applyConfChange(n, rn, decodeConfChange(e.data), e.index);
      } else {
        const fresh = n.sm.apply(e.index, e.data).fresh;
        this.inv.onApply(n.id, e.index, n.sm.chain);
        if (e.data.length > 0) {
          const cmd = decodeCommand(e.data);
          if (this.narrate && n.role === Role.Leader) {
            this.log(`leader ${n.id} applied ${e.index}: client ${cmd.c}#${cmd.s} ${cmd.op} ${cmd.k} ${JSON.stringify(cmd.v)}${fresh ? '' : ' (duplicate, skipped)'}`);
          }
          const key = `${cmd.c}:${cmd.s}`;
          const w = n.waitingWrites.get(key);
          if (w) {
            n.waitingWrites.delete(key);
            this.reply({ client: w.client, reqId: w.reqId, ok: true, leader: n.lead });
          }
        }
      }
    }
    for (const rs of rd.readStates) {
      const k = dec.decode(rs.context);
      const asked = this.readAsked.get(k);
      if (asked !== undefined) {
        this.readAsked.delete(k);
        this.inv.onReadState(n.id, rs.index, asked);
      }
      const req = n.pendingReads.get(k);
      if (req) {
        n.pendingReads.delete(k);
        n.readyReads.push({ index: rs.index, req });
      }
    }
    for (const d of rd.droppedProposals) {
      let cmd;
      try {
        cmd = decodeCommand(d.data);
      } catch {
        continue; // a conf change of the operator's: it retries on its own schedule
      }
      const w = n.waitingWrites.get(`${cmd.c}:${cmd.s}`);
      if (w) {
        n.waitingWrites.delete(`${cmd.c}:${cmd.s}`);
        this.reply({ client: w.client, reqId: w.reqId, ok: false, leader: d.leader });
      }
    }
    for (const d of rd.droppedReads) {
      const k = dec.decode(d.context);
      const req = n.pendingReads.get(k);
      if (req) {
        n.pendingReads.delete(k);
        if (typeof req === 'function') req(false);
        else this.reply({ client: req.client, reqId: req.reqId, ok: false, leader: d.leader });
      }
    }
    this.serveReads(n);
    this.captureSnapshot(n);
  }

  private applyConfChange(n: SimNode, rn: RawNode, cc: ConfChange, index: number): void {
    const before = fmtConf(n.conf);
    n.conf = rn.applyConfChange(cc);
    const after = fmtConf(n.conf);
    n.confDirty = true;
    if (n.role === Role.Leader && before !== after) {
      this.st.confChanges++;
      if (n.conf.votersOutgoing.length > 0) this.st.jointConfigs++;
      this.log(`conf change at index ${index} applied by leader ${n.id}: ${after}`);
    }
  }

  private serveReads(n: SimNode): void {
    if (n.readyReads.length === 0) return;
    const keep: typeof n.readyReads = [];
    for (const r of n.readyReads) {
      if (r.index > n.sm.appliedIndex) keep.push(r);
      else if (typeof r.req === 'function') r.req(true);
      else this.reply({ client: r.req.client, reqId: r.req.reqId, ok: true, value: n.sm.get(r.req.key), leader: n.lead });
    }
    n.readyReads = keep;
  }

  /**
   * A local snapshot of the applied state is due every snapEvery entries, and right after a conf
   * change (a node added later refuses a snapshot whose configuration lacks it). It is captured
   * now and saved after advance(), one at a time (manager/raftnode's snapshotIfDue/startSnapshot).
   */
  private captureSnapshot(n: SimNode): void {
    const applied = n.sm.appliedIndex;
    if (n.snapshotting || n.dueSnapshot || applied <= n.snapStarted) return;
    if (applied - n.snapStarted < this.snapEvery && !n.confDirty) return;
    n.confDirty = false;
    n.dueSnapshot = { meta: { index: applied, term: 0, conf: n.conf }, data: n.sm.snapshot() };
  }

  private startSnapshot(n: SimNode): void {
    const snap = n.dueSnapshot;
    if (!snap || n.snapshotting) return;
    n.dueSnapshot = null;
    const s = n.disk.store;
    const index = snap.meta.index;
    // Every applied entry is in the log now that the Ready it came with is written.
    if (index <= s.snapshot().meta.index || index > s.lastIndex()) return;
    snap.meta.term = s.term(index);
    n.snapshotting = true;
    n.snapStarted = index;
    const inc = n.inc;
    n.disk.saveSnapshot(snap, this.diskRng.int(0, 3), n.disk.latency() * 2, () => {
      if (n.inc === inc) n.snapshotting = false;
    });
  }

  /**
   * Raft §5.4.2 (Figure 8): a leader moves its commit index only to an entry of its own term
   * (earlier entries commit with it). Observed after every step: a correct leader never holds
   * an earlier-term commit index it reached itself, even for a moment. The "commit is final"
   * check sees the same bug only when some node could still win without the entry, which needs
   * a Figure-8 history (rare: about 1 seed in 230 catches such a mutant that way).
   */
  private checkCommitOwnTerm(n: SimNode, rn: RawNode): void {
    const log = rn.raft.raftLog;
    const term = rn.raft.term;
    if (n.leaderCommit.term !== term) {
      n.leaderCommit = { term, index: log.committed }; // what it knew when elected
      return;
    }
    if (log.committed <= n.leaderCommit.index) return;
    n.leaderCommit.index = log.committed;
    const t = log.termOrZero(log.committed);
    if (t !== 0 && t !== term) {
      throw new Violation('commit of an earlier term', `leader ${n.id} of term ${term} moved its commit index to ${log.committed}, an entry of term ${t}, by counting`);
    }
  }

  /** The "commit is final" check (commit-check.ts) for a leader that just committed `commit`. */
  private checkCommitFinal(l: SimNode, rn: RawNode, commit: number, term: number): void {
    const log = rn.raft.raftLog;
    const termC = log.termOrZero(commit);
    if (termC === 0) return; // compacted at the leader: older than what was already checked
    const views: NodeLogs[] = [];
    for (const n of this.nodes.values()) {
      if (n.retired) continue;
      const s = n.disk.store;
      const sl = s.lastIndex();
      const durable = { index: sl, term: s.term(sl) };
      const dHolds = commit <= s.firstIndex() - 1 ? true : commit <= sl && s.term(commit) === termC;
      // After a crash the node restarts from its snapshot and applies up to the commit index on
      // its disk before it may campaign (the store may keep entries below its snapshot).
      const snap = s.snapshot().meta;
      const dCommit = Math.min(Math.max(n.disk.durableHs.commit, snap.index), sl);
      const durableConf = confAfter(snap.conf, dCommit > snap.index ? s.entries(snap.index + 1, dCommit + 1, Infinity) : []);
      let volatile = null;
      let vHolds = true;
      let volatileConf = durableConf;
      if (n.rn) {
        const v = n.rn.raft.raftLog;
        volatile = { index: v.lastIndex(), term: v.lastTerm() };
        vHolds = commit <= v.firstIndex() - 1 || v.termOrZero(commit) === termC;
        // The core's configuration now (a snapshot it restored included), plus the committed conf
        // changes it must apply before it may campaign.
        const from = Math.max(n.sm.appliedIndex, v.unstable.snapshot?.meta.index ?? 0);
        volatileConf = confAfter(toConfState(n.rn.raft.trk.config), v.committed > from ? v.slice(from + 1, v.committed + 1, Infinity) : []);
      }
      views.push({ id: n.id, durableConf, volatileConf, durable, volatile, durableHolds: dHolds, volatileHolds: vHolds });
    }
    const lost = commitCouldBeLost(views);
    if (lost) throw new Violation('committed entry could be lost', `leader ${l.id} of term ${term} committed index ${commit} (term ${termC}), but ${lost}`);
  }

  // ---- network -------------------------------------------------------------------------------------

  private send(from: SimNode, m: Message): void {
    this.trace = mix(this.trace, 0x5e, m.type, m.from, m.to, m.term, m.index, m.entries.length, m.reject ? 1 : 0);
    // Only a forwarded proposal or read request may keep its originator as `from` (as in etcd).
    if (m.from !== from.id && m.type !== MessageType.Prop && m.type !== MessageType.ReadIndex) {
      throw new Violation('message sender', `node ${from.id} emitted ${MessageType[m.type]} claiming to be from ${m.from}`);
    }
    if (m.type < MessageType.App && m.type !== MessageType.Prop) {
      throw new Violation('local message on the wire', `node ${from.id} emitted ${MessageType[m.type]} to ${m.to}`);
    }
    if (m.to === from.id) throw new Violation('message to self', `node ${from.id} handed the host a ${MessageType[m.type]} to itself`);
    this.inv.onSend(from.id, m);
    // An append acknowledgement promises the entries are on this node's disk.
    if (m.type === MessageType.AppResp && !m.reject) {
      const s = from.disk.store;
      if (m.index > s.lastIndex()) {
        throw new Violation('acknowledged before persisted', `node ${from.id} acknowledged index ${m.index} to ${m.to} while its disk's log ends at ${s.lastIndex()}`);
      }
    }
    if (m.type === MessageType.Snap) {
      this.st.snapshotsSent++;
      const what = `${from.id} sends a snapshot at index ${m.snapshot?.meta.index} to ${m.to}`;
      if (what !== this.lastSnapLog) this.log(what);
      this.lastSnapLog = what;
    }
    const delays = this.net.delays();
    if (delays.length === 0 && m.type === MessageType.Snap) this.snapStatus(from.id, from.inc, m.to, false);
    for (let i = 0; i < delays.length; i++) {
      const late = delays[i] > this.electionMs;
      if (late) this.st.lateMessages++;
      if (!this.healing) this.quietAt = Math.max(this.quietAt, this.q.now + delays[i]);
      // A late duplicate of a snapshot reports nothing (the original did).
      this.q.after(delays[i], { k: 'deliver', m: { ...m, entries: m.entries.slice() }, src: from.id, inc: from.inc, late: i > 0 && m.type === MessageType.Snap });
    }
  }

  private snapStatus(from: NodeId, inc: number, to: NodeId, ok: boolean): void {
    const n = this.nodes.get(from);
    if (n?.rn && n.inc === inc) {
      n.rn.reportSnapshot(to, ok);
      this.pump(n);
    }
  }

  private deliver(m: Message, src: NodeId, inc: number, dup: boolean): void {
    const to = this.nodes.get(m.to);
    const lost = !to || !to.rn || this.net.cut(src, m.to);
    if (m.type === MessageType.Snap && !dup) this.snapStatus(src, inc, m.to, !lost);
    if (lost || !to || !to.rn) return;
    if (m.type === MessageType.VoteResp && !m.reject) {
      const k = `${m.to}:${m.term}`;
      const g = this.grants.get(k);
      if (g) g.add(m.from);
      else this.grants.set(k, new Set([m.from]));
    }
    to.rn.step(m);
    this.observe(to);
    this.pump(to);
  }

  /** Sends a reply from a node to its client (client links drop and delay, but are never partitioned). */
  private reply(rep: ClientReply): void {
    for (const d of this.net.delays()) this.q.after(d, { k: 'toClient', rep });
  }

  private observe(n: SimNode): void {
    if (!n.rn) return;
    const st = n.rn.raft;
    if (st.state === Role.Leader && this.commitCheck) this.checkCommitOwnTerm(n, n.rn);
    if ((st.state === Role.Candidate || st.state === Role.PreCandidate) && (st.state !== n.role || st.term !== n.term)) this.checkCampaignConf(n, n.rn);
    this.observeRole(n, st.state, st.term, st.lead);
  }

  /** Committed conf changes the host has not applied yet (beyond a snapshot restored but not installed). */
  private unappliedConfChanges(n: SimNode, rn: RawNode): Entry[] {
    const log = rn.raft.raftLog;
    const from = Math.max(n.sm.appliedIndex, log.unstable.snapshot?.meta.index ?? 0);
    return log.committed > from ? log.slice(from + 1, log.committed + 1, Infinity).filter((e) => e.type === EntryType.ConfChange) : [];
  }

  /**
   * A leader's configuration is final once an entry of its own term is committed (so is every
   * conf change of an earlier term in its log; nobody proposes new ones after the faults) and it
   * has applied every committed conf change. Until then its configuration may still drop a
   * member (seed 59513: the calm phase asked a node that a committed entry had already removed).
   */
  private confFinal(n: SimNode, rn: RawNode): boolean {
    const log = rn.raft.raftLog;
    return log.termOrZero(log.committed) === rn.raft.term && log.unstable.snapshot === undefined && this.unappliedConfChanges(n, rn).length === 0;
  }

  /**
   * A node campaigns only once it has applied every committed conf change (and installed any
   * snapshot it restored): it then campaigns in the configuration of its commit index. The
   * "commit is final" check relies on this (campaign-conf.ts), so it is checked on its own.
   */
  private checkCampaignConf(n: SimNode, rn: RawNode): void {
    const log = rn.raft.raftLog;
    const snapIdx = log.unstable.snapshot?.meta.index;
    const pending = this.unappliedConfChanges(n, rn);
    if (snapIdx !== undefined || pending.length > 0) {
      const what = snapIdx !== undefined ? `a snapshot at ${snapIdx} not yet installed` : `committed conf changes at ${pending.map((e) => e.index).join(',')} not yet applied`;
      throw new Violation('campaign with an unapplied configuration', `node ${n.id} became ${rn.raft.state} at term ${rn.raft.term} with ${what} (commit ${log.committed}, applied ${n.sm.appliedIndex})`);
    }
  }

  private observeRole(n: SimNode, role: Role, term: number, lead: NodeId): void {
    if (role === Role.Leader) this.inv.leaderSeen(n.id, term, 'its status said so');
    if (role === Role.Leader && (n.role !== Role.Leader || n.term !== term)) {
      this.st.leaders++;
      this.log(`${n.id} became leader of term ${term}`);
      this.checkElectedByQuorum(n, term);
      // Leader churn: new leaders are struck soon after taking over, while their first entries
      // are still in flight (Figure 8 of the Raft paper needs three such short reigns in a row).
      if (this.churn && !this.healing) {
        const x = this.faultRng.float();
        // Cut off at once (its first appends never leave), or struck a little later.
        if (x < 0.35) this.isolateNow(n, `new leader of term ${term}`);
        else if (x < 0.7) this.q.after(this.faultRng.float() * 3 * n.tickMs, { k: 'strike', node: n.id, term });
      }
    }
    if (term > this.st.maxTerm) this.st.maxTerm = term;
    n.role = role;
    n.term = term;
    n.lead = lead;
  }

  /**
   * A leader was elected by a quorum of its configuration: grants it received for its term (each
   * was durable at the voter when sent, see invariants.ts) plus its own vote if that is on its
   * disk. Catches a vote counted twice, from another term, from a learner, by too small or the
   * wrong half of a joint quorum, or counted before it was persisted, even when no second leader
   * of the same term happens to come of it.
   */
  private checkElectedByQuorum(n: SimNode, term: number): void {
    const grants = this.grants.get(`${n.id}:${term}`) ?? new Set<NodeId>();
    const hs = n.disk.durableHs;
    const own = hs.term === term && hs.vote === n.id;
    for (const half of [n.conf.voters, n.conf.votersOutgoing]) {
      if (half.length === 0) continue;
      const yes = half.filter((v) => (v === n.id ? own : grants.has(v)));
      if (yes.length < Math.floor(half.length / 2) + 1) {
        throw new Violation(
          'leader elected by a quorum',
          `node ${n.id} became leader of term ${term} in ${fmtConf(n.conf)} with the votes of {${yes.join(',')}} ` +
            `(grants received from {${[...grants].join(',')}}; its own vote ${own ? 'is' : 'is not'} on its disk: term ${hs.term} vote ${hs.vote})`,
        );
      }
    }
  }

  /** A leader's tick: a leadership transfer must complete or abort within an election timeout. */
  private watchTransfer(n: SimNode, rn: RawNode): void {
    const r = rn.raft;
    if (r.state !== Role.Leader || r.leadTransferee === 0) {
      n.transfer.ticks = 0;
      return;
    }
    if (n.transfer.to !== r.leadTransferee || n.transfer.term !== r.term) n.transfer = { to: r.leadTransferee, term: r.term, ticks: 0 };
    // The core aborts it after electionTick ticks; one tick of slack.
    if (++n.transfer.ticks > this.tun.electionTick + 1) {
      throw new Violation('liveness', `leader ${n.id} of term ${r.term} kept a transfer to ${r.leadTransferee} pending for ${n.transfer.ticks} ticks (it must finish or abort within an election timeout)`);
    }
  }

  // ---- clients -------------------------------------------------------------------------------------

  private clientAct(c: SimClient, a: ReturnType<SimClient['next']> | null): void {
    if (!a) return;
    if (a.send) {
      const { to, req } = a.send;
      for (const d of this.net.delays()) this.q.after(d, { k: 'toNode', node: to, req });
    }
    if (a.timeout) this.q.after(a.timeout.after, { k: 'clientTimeout', client: c.id, reqId: a.timeout.reqId });
    if (a.thinkFor !== undefined && (!this.healing || c === this.liveProbe)) this.q.after(a.thinkFor, { k: 'clientNext', client: c.id });
  }

  private client(id: number): SimClient {
    return id === 0 ? (this.liveProbe as SimClient) : this.clients[id - 1];
  }

  private onClientRequest(node: NodeId, req: ClientRequest): void {
    const n = this.nodes.get(node);
    if (!n || !n.rn) return; // nobody there: the client times out
    if (req.op === 'get' && this.opts.reads === 'local') {
      this.reply({ client: req.client, reqId: req.reqId, ok: true, value: n.sm.get(req.key), leader: n.lead });
      return;
    }
    if (req.op === 'get') {
      const ctx = `${req.client}:${req.reqId}:${++this.readCtx}`;
      n.pendingReads.set(ctx, req);
      this.readAsked.set(ctx, this.inv.maxCommitted);
      n.rn.readIndex(enc.encode(ctx));
    } else {
      if (n.sm.applied(req.client, req.seq)) {
        this.reply({ client: req.client, reqId: req.reqId, ok: true, leader: n.lead });
        return;
      }
      n.waitingWrites.set(`${req.client}:${req.seq}`, req);
      n.rn.propose(encodeCommand({ c: req.client, s: req.seq, op: req.op, k: req.key, v: req.value }));
    }
    this.observe(n);
    this.pump(n);
  }

  // ---- faults and the operator -------------------------------------------------------------------------

  private onFault(): void {
    if (this.healing) return;
    const r = this.faultRng;
    const up = [...this.nodes.values()].filter((n) => n.up);
    const members = this.members();
    const pick = r.float();
    if (this.churn) {
      this.churnFault(up);
      return;
    }
    if (pick < 0.3 && this.net.partition === null && members.length >= 2) {
      this.partition(members);
    } else if (pick < 0.55 && up.length > 0) {
      const victim = r.chance(0.3) && this.leader() ? (this.leader() as SimNode) : r.pick(up);
      if (r.chance(0.35) && victim.rn) {
        victim.crashOnPersist = true;
        this.fault(`arm: ${victim.id} crashes during its next fsync`);
      } else {
        this.crash(victim, victim.role === Role.Leader ? ' (leader)' : '');
        this.q.after(1 + r.float() * 600, { k: 'restart', node: victim.id });
      }
    } else if (pick < 0.75) {
      const w: Weather = { drop: r.pick([0, 0, 0.02, 0.1, 0.3]), duplicate: r.pick([0, 0.02, 0.1]), spike: r.pick([0, 0, 0.03]) };
      if (this.late) {
        w.late = r.pick([0, 0, 0.01, 0.03, 0.1]);
        w.lateDuplicate = r.pick([0, 0.01, 0.05]);
      }
      this.net.weather = w;
      this.fault(`network: drop ${w.drop}, duplicate ${w.duplicate}, spike ${w.spike}, late ${w.late ?? 0}, late duplicate ${w.lateDuplicate ?? 0}`);
    } else if (pick < 0.9) {
      const l = this.leader();
      if (l?.rn) {
        const voters = l.conf.voters.filter((v) => v !== l.id);
        if (voters.length > 0) {
          const to = r.pick(voters);
          this.fault(`transfer leadership ${l.id} -> ${to}`);
          l.rn.transferLeader(to);
          this.pump(l);
        }
      }
    } else {
      // Stall a node's clock for a while (a slow or overloaded host): its timers stop and its
      // write in progress is delayed; it still steps what arrives. It keeps all its state.
      const n = up.length ? r.pick(up) : null;
      if (n) {
        const pause = r.float() * n.tickMs * this.tun.electionTick * 2;
        this.fault(`stall ${n.id}'s clock and disk for ${pause.toFixed(0)}ms`);
        n.tickGen++; // cancels the pending tick; the node keeps running otherwise
        this.q.after(pause, { k: 'tick', node: n.id, inc: n.tickGen });
        n.disk.stall(pause);
      }
    }
    this.q.after(r.float() * 250, { k: 'fault' });
  }

  private churnFault(up: SimNode[]): void {
    const r = this.faultRng;
    const l = this.leader();
    const victim = l && r.chance(0.75) ? l : up.length ? r.pick(up) : null;
    if (victim) {
      if (r.chance(0.5)) {
        victim.crashOnPersist = true;
        this.fault(`arm: ${victim.id} crashes during its next fsync`);
      } else {
        this.crash(victim, victim.role === Role.Leader ? ' (leader)' : '');
      }
      this.q.after(1 + r.float() * 8 * this.electionMs, { k: 'restart', node: victim.id });
    }
    if (r.chance(0.3)) {
      const w: Weather = { drop: r.pick([0, 0.1, 0.3, 0.5]), duplicate: r.pick([0, 0.05]), spike: 0 };
      if (this.late) {
        w.late = r.pick([0, 0, 0.05]);
        w.lateDuplicate = r.pick([0, 0.05]);
      }
      this.net.weather = w;
      this.fault(`network: drop ${w.drop}, duplicate ${w.duplicate}, late ${w.late ?? 0}, late duplicate ${w.lateDuplicate ?? 0}`);
    }
    this.q.after(r.float() * this.electionMs * 3, { k: 'fault' });
  }

  /** Cuts one node off from everyone right now (messages already in flight to or from it are lost too). */
  private isolateNow(n: SimNode, why: string): void {
    const gen = ++this.partitionGen;
    this.net.isolated.set(n.id, gen);
    this.fault(`isolate ${n.id} (${why})`);
    if (!this.healing) this.q.after(this.faultRng.float() * 4 * this.electionMs, { k: 'unisolate', node: n.id, gen });
  }

  private strike(id: NodeId, term: number): void {
    const n = this.nodes.get(id);
    if (this.healing || !n || !n.up || n.role !== Role.Leader || n.term !== term) return;
    const r = this.faultRng;
    if (r.chance(0.5)) {
      this.crash(n, ` (new leader of term ${term})`);
      this.q.after(1 + r.float() * 4 * this.electionMs, { k: 'restart', node: id });
    } else {
      this.isolateNow(n, `struck new leader of term ${term}`);
    }
  }

  private partition(members: NodeId[]): void {
    const l = this.leader();
    const p = randomPartition(this.faultRng, members, l ? l.id : null);
    if (!p) return;
    this.net.partition = p;
    const gen = ++this.partitionGen;
    this.fault(`partition: ${p.description}`);
    this.q.after(20 + this.faultRng.float() * 1500, { k: 'unpartition', gen });
  }

  private onOperator(): void {
    if (this.healing || this.churn || this.opts.membership === false) return; // leader churn runs without membership changes
    const r = this.faultRng;
    this.q.after(50 + r.float() * 550, { k: 'operator' });
    // New nodes whose AddLearner never took effect are shut down.
    for (const [id, deadline] of this.joining) {
      const l = this.leader();
      if (this.q.now > deadline && l) {
        // Decided by a leader's applied configuration only: without a leader nothing is known.
        this.joining.delete(id);
        if (!confMembers(l.conf).includes(id)) this.retire(this.nodes.get(id) as SimNode);
      }
    }
    const l = this.leader();
    if (!l || !l.rn) return;
    const conf = l.conf;
    // Shut down nodes the committed configuration no longer has (the leader's applied conf).
    const inConf = new Set(confMembers(conf));
    for (const n of this.nodes.values()) {
      if (!n.retired && !inConf.has(n.id) && !this.joining.has(n.id)) this.q.after(r.float() * 50, { k: 'retire', node: n.id });
    }
    if (this.opInFlight && this.q.now < this.opInFlight.until) return;
    this.opInFlight = null;
    if (conf.votersOutgoing.length > 0) return; // joint: wait for the automatic leave
    const st = l.rn.status();
    const caughtUp = conf.learners.filter((id) => (st.progress?.get(id)?.match ?? 0) + 3 >= st.commit && this.nodes.get(id)?.up);
    const total = inConf.size;
    const plan = planMembershipChange(r, { leader: l.id, conf, caughtUp, members: total, maxMembers: this.maxMembers, nextId: this.nextNodeId });
    if (!plan) return;
    const { cc, what } = plan;
    if (plan.newNode !== undefined) {
      const id = this.nextNodeId++;
      this.inv.addNode(id);
      this.addNode(id, new MemoryStorage());
      this.joining.set(id, this.q.now + 3000);
    }
    this.fault(`operator via leader ${l.id}: ${what}`);
    this.opInFlight = { what, ids: cc.changes.map((c) => c.nodeId), until: this.q.now + 200 + r.float() * 300 };
    l.rn.proposeConfChange(cc);
    this.pump(l);
  }

  private heal(): void {
    this.healing = true;
    this.healedAt = this.q.now;
    this.net.partition = null;
    this.net.isolated.clear();
    this.net.weather = CALM;
    this.fault('heal: network repaired, crashed nodes restarted, disks fast, faults stop');
    for (const n of this.nodes.values()) {
      n.crashOnPersist = false;
      n.disk.speed = 'fast';
      if (!n.up && !n.retired) this.restart(n);
    }
    // The liveness probe: one fresh write that must commit.
    this.liveProbe = new SimClient(0, this.rng.fork(999), ['live'], this.history, () => ++this.reqIds, this.clientTimeoutMs, Infinity);
    this.clientAct(this.liveProbe, this.liveProbe.next(this.q.now, this.members(), { op: 'put', key: 'live', value: `probe-${this.opts.seed}` }));
  }

  // ---- the calm phase's view of the cluster ---------------------------------------------------------

  private calmHost(): CalmHost {
    return {
      now: () => this.q.now,
      electionMs: this.electionMs,
      electionTick: this.tun.electionTick,
      preVote: this.tun.preVote,
      checkQuorum: this.tun.checkQuorum,
      quietAt: () => this.quietAt,
      nodes: () =>
        [...this.nodes.values()]
          .filter((n) => !n.retired)
          .map((n) => ({ id: n.id, up: n.up, role: n.role, term: n.term, lead: n.lead, conf: n.conf, tickMs: n.tickMs, confFinal: n.rn !== null && n.role === Role.Leader && this.confFinal(n, n.rn) })),
      isolate: (id, why) => this.isolateNow(this.nodes.get(id) as SimNode, why),
      reconnect: (id) => {
        this.net.isolated.delete(id);
        this.fault(`${id} reconnected`);
      },
      split: (a, b) => {
        this.partitionGen++; // a fault phase's pending "partition healed" must not undo this one
        this.net.partition = Partition.symmetric(a, b);
        this.fault(`calm: ${this.net.partition.description}`);
      },
      heal: () => {
        this.net.partition = null;
        this.fault('calm: partition healed');
      },
      maxCommitted: () => this.inv.maxCommitted,
      propose: (id) => {
        const n = this.nodes.get(id);
        if (!n?.rn) return;
        n.rn.propose(encodeCommand({ c: CALM_CLIENT, s: ++this.calmSeq, op: 'put', k: 'calm', v: String(this.calmSeq) }));
        this.pump(n);
      },
      read: (id, done) => {
        const n = this.nodes.get(id);
        if (!n?.rn) return done(false);
        const ctx = `calm:${++this.readCtx}`;
        n.pendingReads.set(ctx, done);
        this.readAsked.set(ctx, this.inv.maxCommitted);
        n.rn.readIndex(enc.encode(ctx));
        this.pump(n);
      },
      transfer: (from, to) => {
        const n = this.nodes.get(from);
        if (!n?.rn) return;
        n.rn.transferLeader(to);
        this.pump(n);
      },
      retireNonMembers: (conf: ConfState) => {
        const ms = new Set(confMembers(conf));
        for (const n of this.nodes.values()) if (!n.retired && !ms.has(n.id)) this.retire(n);
      },
      log: (line) => this.log(line),
    };
  }

  // ---- the loop ------------------------------------------------------------------------------------------

  private handle(ev: Ev): void {
    switch (ev.k) {
      case 'tick': {
        const n = this.nodes.get(ev.node);
        if (!n || !n.rn || n.tickGen !== ev.inc) return;
        n.rn.tick();
        this.watchTransfer(n, n.rn);
        this.q.after(n.tickMs * (0.95 + 0.1 * this.rng.float()), { k: 'tick', node: n.id, inc: n.tickGen });
        this.observe(n);
        this.pump(n);
        return;
      }
      case 'deliver':
        this.deliver(ev.m, ev.src, ev.inc, ev.late);
        return;
      case 'disk':
        ev.fn();
        return;
      case 'crash': {
        const n = this.nodes.get(ev.node);
        if (n && n.inc === ev.inc && !this.healing) {
          this.crash(n, ev.why);
          this.q.after(1 + this.faultRng.float() * 600, { k: 'restart', node: n.id });
        }
        return;
      }
      case 'restart': {
        const n = this.nodes.get(ev.node);
        if (n && !this.healing) this.restart(n);
        return;
      }
      case 'fault':
        this.onFault();
        return;
      case 'unpartition':
        if (ev.gen === this.partitionGen && this.net.partition) {
          this.net.partition = null;
          this.fault('partition healed');
        }
        return;
      case 'operator':
        this.onOperator();
        return;
      case 'unisolate':
        if (this.net.isolated.get(ev.node) === ev.gen) {
          this.net.isolated.delete(ev.node);
          this.fault(`${ev.node} reconnected`);
        }
        return;
      case 'retire': {
        const n = this.nodes.get(ev.node);
        const l = this.leader();
        if (n && l && !confMembers(l.conf).includes(n.id) && !this.joining.has(n.id)) this.retire(n);
        return;
      }
      case 'clientNext': {
        const c = this.client(ev.client);
        if (!c.busy && (!this.healing || c === this.liveProbe)) this.clientAct(c, c.next(this.q.now, this.members()));
        return;
      }
      case 'clientTimeout': {
        const c = this.client(ev.client);
        this.clientAct(c, c.onTimeout(ev.reqId, this.members()));
        return;
      }
      case 'toNode':
        this.onClientRequest(ev.node, ev.req);
        return;
      case 'toClient': {
        const c = this.client(ev.rep.client);
        const wasBusy = c.busy;
        const before = this.history.length;
        this.clientAct(c, c.onReply(this.q.now, ev.rep, this.members()));
        if (this.narrate && wasBusy && !c.busy && ev.rep.ok) {
          const o = [...this.history.slice(0, before)].reverse().find((h) => h.clientId === c.id) as Operation;
          this.log(`client ${c.id}: ${o.op} ${o.key}${o.op === 'get' ? ` → ${JSON.stringify(o.output)}` : ` ${JSON.stringify(o.value)}`} answered after ${(this.q.now - o.call).toFixed(1)}ms`);
        }
        if (c === this.liveProbe && wasBusy && !c.busy && !this.liveDone) {
          this.liveDone = true;
          this.log(`liveness: the probe write committed ${(this.q.now - this.healedAt).toFixed(1)}ms after healing`);
          if (this.opts.calm ?? true) {
            this.calm = new CalmPhase(this.calmHost(), this.rng.fork(77));
            this.q.after(1, { k: 'calm' });
          }
        }
        return;
      }
      case 'strike':
        this.strike(ev.node, ev.term);
        return;
      case 'calm':
        this.calm?.poll();
        if (this.calm && !this.calm.finished) this.q.after(5, { k: 'calm' });
        return;
    }
  }

  private get finished(): boolean {
    return this.liveDone && (this.calm === null || this.calm.finished);
  }

  run(): SimResult {
    let violation: SimViolation | undefined;
    const livenessBoundMs = 200 * this.electionMs;
    try {
      for (;;) {
        if (!this.healing && this.steps >= this.stepsWanted) this.heal();
        if (this.healing && this.finished) break;
        if (this.healing && !this.liveDone && this.q.now - this.healedAt > livenessBoundMs) {
          const l = this.leader();
          throw new Violation(
            'liveness',
            `${livenessBoundMs}ms after healing ${l ? `leader ${l.id} (term ${l.term}) has not committed the probe write` : 'there is still no leader'}`,
          );
        }
        const ev = this.q.pop();
        if (!ev) throw new Violation('liveness', 'the simulation ran out of events');
        if (this.steps > this.stepsWanted + 500_000) throw new Violation('liveness', `no end after ${this.steps} events (a node busy without progress?)`);
        this.steps++;
        const node = 'node' in ev.event ? ev.event.node : 'm' in ev.event ? ev.event.m.to : 0;
        this.trace = mix(this.trace, EVENT_CODE[ev.event.k], node, Math.round(ev.time * 1000));
        this.handle(ev.event);
      }
      const lin = checkHistory(this.history);
      if (!lin.ok) throw new Violation(lin.unknown ? 'linearizability (undecided)' : 'linearizability', lin.explanation ?? '');
    } catch (err) {
      if (err instanceof Violation) {
        violation = { invariant: err.invariant, detail: err.detail, step: this.steps, time: this.q.now };
      } else {
        const e = err as Error;
        violation = { invariant: 'core or host threw', detail: `${e.name}: ${e.message}\n${(e.stack ?? '').split('\n').slice(1, 6).join('\n')}`, step: this.steps, time: this.q.now };
      }
      this.log(`VIOLATION ${violation.invariant}: ${violation.detail}`);
    }
    this.trace = mix(this.trace, hashString(JSON.stringify(this.history)));
    let commit = 0;
    let deferred = 0;
    let slow = 0;
    for (const n of this.nodes.values()) {
      commit = Math.max(commit, n.sm.appliedIndex);
      deferred += n.disk.stats.deferred;
      slow += n.disk.stats.slowWrites;
    }
    return {
      seed: this.opts.seed,
      ok: violation === undefined,
      violation,
      schedule: this.schedule,
      traceHash: this.trace,
      stats: {
        steps: this.steps,
        faultSteps: this.stepsWanted,
        nodesOption: this.opts.nodes,
        tornWrites: this.crashModel === 'torn',
        disk: this.diskSpeed,
        virtualMs: Math.round(this.q.now),
        nodes: this.nodes.size,
        leaders: this.st.leaders,
        maxTerm: this.st.maxTerm,
        commitIndex: commit,
        snapshotsSent: this.st.snapshotsSent,
        snapshotsInstalled: this.st.snapshotsInstalled,
        crashes: this.st.crashes,
        confChanges: this.st.confChanges,
        jointConfigs: this.st.jointConfigs,
        opsCompleted: this.history.filter((o) => o.return !== null && o.return !== undefined).length,
        opsOpen: this.history.filter((o) => o.op !== 'get' && (o.return === null || o.return === undefined)).length,
        checks: this.inv.checks,
        lateMessages: this.st.lateMessages,
        deferredHardStates: deferred,
        slowWrites: slow,
        calmStages: this.calm?.done.length ?? 0,
      },
    };
  }
}

export function runSeed(opts: SimOptions): SimResult {
  return new Simulation(opts).run();
}

/** A multi-line report of a failed run: seed, first broken invariant, the fault schedule. */
export function formatViolation(r: SimResult): string {
  if (!r.violation) return `seed ${r.seed}: ok`;
  const v = r.violation;
  return [
    `seed ${r.seed}: VIOLATION of ${v.invariant} at step ${v.step} (t=${v.time.toFixed(1)}ms)`,
    `  ${v.detail.split('\n').join('\n  ')}`,
    `  fault schedule (${r.schedule.length} events):`,
    ...r.schedule.map((s) => `    ${s}`),
    `  replay: node dist/raft/sim/cli.js --seed ${r.seed} --steps ${r.stats.faultSteps}${r.stats.nodesOption ? ` --nodes ${r.stats.nodesOption}` : ''} --verbose`,
  ].join('\n');
}
