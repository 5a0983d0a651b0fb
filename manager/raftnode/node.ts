// The replicated store node: drives the pure raft core (RawNode) with the on-disk storage, the
// gRPC transport and the object store. One Ready at a time, handled per its contract: send
// `messages`; apply `committedEntries` (answering their clients) while the save runs, as etcd
// does: they are already on a quorum of fsynced disks and the store is rebuilt from snapshot +
// log after a crash; persist (one fsync); send `messagesAfterPersist`; apply a received snapshot
// (only once it is durable); advance. Proposals made while a Ready is in progress are collected
// and stepped into the core as one MsgProp at the start of the next iteration, so a burst of
// writes becomes one log append, one MsgApp per follower and one fsync (group commit).
import { randomBytes } from 'node:crypto';
import { Packr } from 'msgpackr';
import { RawNode, decodeConfChange, type CoreReady } from '../../raft/core/index.js';
import { RaftTransport, type TransportOptions } from '../../raft/transport/transport.js';
import {
  ConfChangeTransition,
  ConfChangeType,
  EntryType,
  MessageType,
  Role,
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type Snapshot,
  type Storage,
} from '../../raft/types.js';
import { decodeCommand, encodeCommand, encodeSnapshotAsync, type SnapshotBody } from '../store/codec.js';
import { ObjectStore } from '../store/store.js';
import { ConflictError, type TxnOp, type TxnResult } from '../store/types.js';
import { validateOps } from '../store/validate.js';
import { WriteTrace } from './write-trace.js';
import { NotLeaderError, ProposalDroppedError, ReadTimeoutError, StoppedError, UnknownOutcomeError } from './errors.js';

/** The durable storage the node needs: raft's read interface plus the writes the host does. */
export interface HostStorage extends Storage {
  /** The latest snapshot without its data (DiskStorage keeps the data on disk only). */
  snapshotMeta?(): Snapshot['meta'];
  /** True if the next save blocks the event loop while it writes and syncs (DiskStorage's inline WAL mode). */
  syncsInline?(): boolean;
  save(batch: { hardState?: HardState; entries: Entry[]; snapshot?: Snapshot; mustSync?: boolean }): Promise<void>;
  saveSnapshot(s: Snapshot): Promise<void>;
  compact(index: number): Promise<void>;
  close?(): Promise<void>;
}

export interface MemberAddr {
  /** raft transport host:port */
  raft: string;
  /** Store service host:port */
  api: string;
}

export interface NodeOptions {
  id: NodeId;
  storage: HostStorage;
  /** Where this node's raft transport listens. */
  listen: string;
  /** Addresses of the other members (and of this one, for the API address). */
  members: Map<NodeId, MemberAddr>;
  tickMs?: number;
  electionTick?: number;
  /**
   * Entries between snapshots, at least (default 10,000). A snapshot copies the whole store, so
   * the interval grows with it: at least one entry per object (etcd's 100,000 for a store of
   * 100,000 objects); the cost of snapshotting per write stays constant as the store grows.
   */
  snapshotEvery?: number;
  snapshotKeep?: number;
  proposalTimeoutMs?: number;
  readTimeoutMs?: number;
  eventLogCapacity?: number;
  log?: (msg: string) => void;
  /** Security of the raft transport (mTLS and the per-call peer check); default plaintext (loopback only). */
  transport?: Pick<TransportOptions, 'serverCredentials' | 'channelCredentials' | 'channelOptions' | 'authorize'>;
}

interface Pending {
  resolve(r: TxnResult & { ok: true }): void;
  reject(e: Error): void;
  /** performance.now() after which the caller is told the outcome is unknown (swept each tick). */
  deadline: number;
  /** The leader when it was proposed: if leadership moves, the proposal may have been lost. */
  lead: NodeId;
}

/** A snapshot that is due: its meta and the store's objects at its index (see snapshotIfDue). */
interface DueSnapshot {
  meta: Snapshot['meta'];
  view: SnapshotBody;
}

interface PendingConf {
  resolve(c: ConfState): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

const ctxPackr = new Packr({ useRecords: false });

/** The latest snapshot's meta, without loading its data where storage can tell it apart. */
function snapMetaOf(s: HostStorage): Snapshot['meta'] {
  return s.snapshotMeta ? s.snapshotMeta() : s.snapshot().meta;
}

export class ReplicatedNode {
  readonly id: NodeId;
  readonly store: ObjectStore;
  readonly transport: RaftTransport;
  private node!: RawNode;
  private readonly storage: HostStorage;
  private readonly members: Map<NodeId, MemberAddr>;
  private readonly o: Required<Omit<NodeOptions, 'storage' | 'members' | 'log' | 'id' | 'listen' | 'transport'>>;
  private readonly log: (msg: string) => void;
  private ticker?: NodeJS.Timeout;
  private running = false;
  private stopped = false;
  private fatal?: Error;
  private lead: NodeId = 0;
  private role: Role = Role.Follower;
  private conf: ConfState;
  private appliedTerm = 0;
  private snapIndex = 0;
  /** The snapshot being encoded and saved in the background, if any. */
  private snapshotting?: Promise<void>;
  private confChangedSinceSnapshot = false;
  private reqSeq = 0;
  private readonly reqPrefix = randomBytes(6).toString('base64url');
  /** Waiting proposals, in proposal order, hence also in deadline order (one fixed timeout). */
  private readonly pending = new Map<string, Pending>();
  /** Proposals not yet stepped into the core (see flushProposals). */
  private propBatch: Entry[] = [];
  /** The current term as last reported in a Ready's hard state. */
  private term = 0;
  /**
   * The entries this node handed to storage while leader of `term`, from index `first` on (see
   * applyCommittedEarly). A leader's log is append-only for its whole term, so these are its log.
   */
  private leaderLog?: { term: number; first: number; entries: Entry[] };
  private earlyApplyQueued = false;
  private readonly pendingConf = new Map<string, PendingConf>();
  private readonly applyWaiters: { index: number; resolve(): void; reject(e: Error): void; timer?: NodeJS.Timeout }[] = [];
  // ReadIndex: reads waiting for the next round, and the round in flight.
  private readQueue: { resolve(): void; reject(e: Error): void }[] = [];
  private readRound?: { ctx: string; waiters: { resolve(): void; reject(e: Error): void }[]; timer: NodeJS.Timeout };
  private readSeq = 0;
  /** Fires on every leadership change (for the Store service and tests). */
  onLeaderChange?: (lead: NodeId, role: Role) => void;
  /** Fires when the node stops on a fatal error (storage failure): the process should exit. */
  onFatal?: (e: Error) => void;
  readonly metrics = { readies: 0, saves: 0, saveMs: 0, entries: 0, applied: 0, appliedEarly: 0, proposals: 0, snapshots: 0 };
  /** Optional observer of timings and outcomes (the process's Prometheus metrics). */
  observer?: { save?(ms: number): void; snapshot?(ms: number): void; proposal?(ok: boolean): void };
  /** Stage timings of writes (SHOAL_RAFT_TRACE only). */
  private readonly trace = process.env.SHOAL_RAFT_TRACE ? new WriteTrace() : undefined;
  /** When the oldest proposal in propBatch was made (trace only). */
  private firstProposedAt = 0;

  constructor(opts: NodeOptions) {
    this.id = opts.id;
    this.storage = opts.storage;
    this.members = new Map(opts.members);
    this.log = opts.log ?? (() => {});
    this.o = {
      tickMs: opts.tickMs ?? 100,
      electionTick: opts.electionTick ?? 10,
      snapshotEvery: opts.snapshotEvery ?? 10_000,
      snapshotKeep: opts.snapshotKeep ?? 5_000,
      proposalTimeoutMs: opts.proposalTimeoutMs ?? 10_000,
      readTimeoutMs: opts.readTimeoutMs ?? 5_000,
      eventLogCapacity: opts.eventLogCapacity ?? 100_000,
    };
    this.store = new ObjectStore({ eventLogCapacity: this.o.eventLogCapacity });
    this.conf = opts.storage.initialState().confState;
    this.transport = new RaftTransport({
      ...opts.transport,
      id: opts.id,
      listen: opts.listen,
      onMessage: (m) => this.receive(m),
      onUnreachable: (p) => this.node?.reportUnreachable(p),
      onSnapshotStatus: (p, ok) => {
        this.node?.reportSnapshot(p, ok);
        this.kick();
      },
      log: this.log,
    });
    this.listen = opts.listen;
  }

  private readonly listen: string;

  /**
   * Writes a new cluster's starting point into empty storage: a snapshot at index 1, term 1,
   * holding an empty store and the initial voters. Every founding member writes the same one,
   * so they start from identical state. Returns false if the storage already holds state.
   */
  static async bootstrap(storage: HostStorage, voters: NodeId[]): Promise<boolean> {
    const hs = storage.initialState().hardState;
    if (storage.lastIndex() > 0 || snapMetaOf(storage).index > 0 || hs.term > 0) return false;
    if (voters.length === 0) throw new Error('bootstrap needs at least one voter');
    const empty = new ObjectStore();
    empty.skip(1);
    const conf: ConfState = { voters: [...voters].sort((a, b) => a - b), learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
    await storage.save({ snapshot: { meta: { index: 1, term: 1, conf }, data: empty.snapshot() }, hardState: { term: 1, vote: 0, commit: 1 }, entries: [], mustSync: true });
    return true;
  }

  /** Restores the store from the latest snapshot, starts the transport, the core and the ticker. */
  async start(): Promise<void> {
    const snap = this.storage.snapshot();
    if (snap.meta.index > 0) {
      if (snap.data.length > 0) this.store.restore(snap.data);
      else this.store.skip(snap.meta.index);
      this.snapIndex = snap.meta.index;
      this.appliedTerm = snap.meta.term;
      this.conf = snap.meta.conf;
    }
    this.node = new RawNode({
      id: this.id,
      storage: this.storage,
      random: Math.random,
      electionTick: this.o.electionTick,
      heartbeatTick: 1,
      preVote: true,
      checkQuorum: true,
      applied: this.store.applied,
      logger: { info: (m) => this.log(m), warn: (m) => this.log('warn: ' + m) },
    });
    for (const [id, a] of this.members) if (id !== this.id) this.transport.addPeer(id, a.raft);
    await this.transport.start();
    this.ticker = setInterval(() => {
      if (this.stopped) return;
      this.node.tick();
      this.expireProposals();
      this.kick();
    }, this.o.tickMs);
    this.kick();
    if (process.env.SHOAL_RAFT_TRACE) {
      let last = { ...this.metrics };
      const t = setInterval(() => {
        const m = this.metrics;
        const d = (k: keyof typeof m) => m[k] - last[k];
        if (d('readies') > 0) this.log(`trace: readies ${d('readies')} saves ${d('saves')} save ms avg ${(d('saveMs') / Math.max(1, d('saves'))).toFixed(2)} entries ${d('entries')} applied ${d('applied')} proposals ${d('proposals')} early applies ${d('appliedEarly')}`);
        last = { ...m };
        this.trace?.report(this.log);
      }, 1000);
      t.unref();
    }
  }

  get port(): number {
    return this.transport.port;
  }

  leader(): NodeId {
    return this.lead;
  }

  isLeader(): boolean {
    return this.role === Role.Leader;
  }

  memberAddr(id: NodeId): MemberAddr | undefined {
    return this.members.get(id);
  }

  confState(): ConfState {
    return this.conf;
  }

  status() {
    return this.node.status();
  }

  campaign(): void {
    this.node.campaign();
    this.kick();
  }

  transferLeader(to: NodeId): void {
    this.node.transferLeader(to);
    this.kick();
  }

  private receive(m: Message): void {
    if (this.stopped) return;
    if (this.trace && m.entries.length > 0 && m.type === MessageType.App) this.trace.follower.stamp(m.entries[0]!.index, m.entries[m.entries.length - 1]!.index, 'received');
    if (this.trace && m.type === MessageType.AppResp && !m.reject) this.trace.leader.stampUpTo(m.index, 'handed', 'acked');
    try {
      this.node.step(m);
    } catch (e) {
      this.log(`raft: refused a message of type ${m.type} from ${m.from}: ${(e as Error).message}`);
      return;
    }
    // An append ack may commit entries while a Ready is being persisted: apply them now rather
    // than after that save (once per batch of messages: the microtask runs after the batch).
    if (m.type === MessageType.AppResp && this.running && this.leaderLog && !this.earlyApplyQueued) {
      this.earlyApplyQueued = true;
      queueMicrotask(() => {
        this.earlyApplyQueued = false;
        this.applyCommittedEarly();
      });
    }
    this.kick();
  }

  /**
   * Leader only: applies entries the core has committed (its commit index moved on an append ack)
   * while a Ready is outstanding, so their clients are answered without waiting for that Ready's
   * save and the next ready(). The core hands the same entries out again later as
   * committedEntries; applyEntry skips what is applied. The entries come from leaderLog, i.e.
   * from Readies handed out while leader in the same term as now: continuously leader of one term
   * means the log was only appended to (no conflict truncation, no received snapshot), so those
   * are exactly the committed entries at their indexes. A ConfChange entry stops the run (the
   * core must see it applied in order, through the normal path).
   */
  private applyCommittedEarly(): void {
    const ll = this.leaderLog;
    if (this.stopped || !ll) return;
    const st = this.node.status();
    if (st.role !== Role.Leader || st.term !== ll.term) return;
    let applied = false;
    for (let i = this.store.applied + 1; i <= st.commit; i++) {
      const e = ll.entries[i - ll.first];
      if (!e || e.index !== i || e.type === EntryType.ConfChange) break;
      this.applyEntry(e);
      applied = true;
    }
    if (applied) {
      this.metrics.appliedEarly++;
      this.releaseApplyWaiters();
    }
  }

  /** Keeps leaderLog: the entries handed out while leader of this term, not yet applied. */
  private trackLeaderLog(rd: CoreReady): void {
    if (rd.hardState) this.term = rd.hardState.term;
    if (this.role !== Role.Leader) {
      this.leaderLog = undefined;
      return;
    }
    let ll = this.leaderLog;
    if (rd.entries.length > 0) {
      const first = rd.entries[0]!.index;
      if (!ll || ll.term !== this.term || first !== ll.first + ll.entries.length) {
        ll = this.leaderLog = { term: this.term, first, entries: [] };
      }
      for (const e of rd.entries) ll.entries.push(e);
    }
    // Drop what is applied.
    if (ll) {
      const drop = Math.min(ll.entries.length, this.store.applied - ll.first + 1);
      if (drop > 0) {
        ll.entries.splice(0, drop);
        ll.first += drop;
      }
    }
  }

  private kick(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    setImmediate(() => void this.run());
  }

  private async run(): Promise<void> {
    try {
      for (;;) {
        if (this.stopped) break;
        // Everything proposed since the last iteration goes into this Ready, as one append.
        this.flushProposals();
        if (!this.node.hasReady()) break;
        await this.handle(this.node.ready());
      }
    } catch (e) {
      this.die(e as Error);
    } finally {
      this.running = false;
    }
    if (!this.stopped && (this.propBatch.length > 0 || this.node.hasReady())) this.kick();
  }

  /**
   * Steps the collected proposals into the core as one MsgProp (the message a follower forwards
   * to its leader, which may carry many entries): the leader appends them together and sends one
   * MsgApp per follower instead of one per proposal; a follower forwards them in one message.
   */
  private flushProposals(): void {
    if (this.propBatch.length === 0) return;
    const entries = this.propBatch;
    this.propBatch = [];
    this.node.step({ type: MessageType.Prop, to: this.id, from: this.id, term: 0, logTerm: 0, index: 0, entries, commit: 0, reject: false, rejectHint: 0 });
    if (this.trace && this.role === Role.Leader) {
      const last = this.node.raft.raftLog.lastIndex();
      this.trace.leader.stamp(last - entries.length + 1, last, 'called', this.firstProposedAt);
      this.trace.leader.stamp(last - entries.length + 1, last, 'proposed');
    }
  }

  /** Rejects the proposals whose time is up (checked every tick rather than a timer each). */
  private expireProposals(): void {
    const now = performance.now();
    for (const [k, p] of this.pending) {
      if (p.deadline > now) break;
      this.pending.delete(k);
      p.reject(new UnknownOutcomeError(`not applied within ${this.o.proposalTimeoutMs} ms`));
    }
  }

  private async handle(rd: CoreReady): Promise<void> {
    this.metrics.readies++;
    if (rd.softState) this.setSoftState(rd.softState.lead, rd.softState.role);
    // 1. messages that do not depend on this batch being durable
    if (rd.messages.length > 0) this.transport.send(rd.messages);
    const traced = this.trace && rd.entries.length > 0 ? { from: rd.entries[0]!.index, to: rd.entries[rd.entries.length - 1]!.index, table: this.role === Role.Leader ? this.trace.leader : this.trace.follower } : undefined;
    traced?.table.stamp(traced.from, traced.to, 'handed');
    // 2. committed entries, while this Ready's own entries are written: they are committed, so
    // on a quorum of fsynced disks already, and this store lives in memory (a crash rebuilds it
    // from snapshot + log), so nothing depends on our copy being durable first. A Ready with a
    // received snapshot is the exception: the snapshot is applied only once it is durable (the
    // core hands out no committed entries alongside it, and these would follow it anyway).
    const applyNow = !rd.snapshot;
    let snap: DueSnapshot | undefined;
    if (applyNow) {
      this.applyReady(rd);
      // Captured here, where every applied entry is durable or in this save (entries applied
      // later, during the save, may not be): saveSnapshot runs after the save in storage's queue.
      snap = this.snapshotIfDue();
    }
    this.trackLeaderLog(rd);
    // 3. persist, one fsync. A leader's appends must be on the wire first, so the followers'
    // fsyncs run while ours does (etcd's pipeline): gRPC hands a message to the socket only on a
    // later turn of the event loop, which an fsync done on the loop (the WAL's inline mode, on a
    // fast disk) would hold until it finished. Our own ack still counts only after the save
    // (the core steps it in advance()).
    if (rd.entries.length > 0 && this.storage.syncsInline?.() && rd.messages.some((m) => m.type === MessageType.App)) {
      await new Promise<void>((r) => setImmediate(r));
      if (this.stopped) return;
    }
    if (rd.snapshot || rd.entries.length > 0 || rd.hardState) {
      this.metrics.entries += rd.entries.length;
      const t0 = performance.now();
      await this.storage.save({ hardState: rd.hardState, entries: rd.entries, snapshot: rd.snapshot, mustSync: rd.mustSync });
      this.metrics.saves++;
      this.metrics.saveMs += performance.now() - t0;
      this.observer?.save?.(performance.now() - t0);
    }
    if (this.stopped) return;
    traced?.table.stamp(traced.from, traced.to, 'saved');
    // 4. messages that promise durability (votes, append acks)
    if (rd.messagesAfterPersist.length > 0) this.transport.send(rd.messagesAfterPersist);
    if (traced && traced.table === this.trace!.follower) this.trace!.follower.stamp(traced.from, traced.to, 'acked');
    if (!applyNow) {
      if (rd.snapshot && rd.snapshot.meta.index > this.store.applied) this.applySnapshot(rd.snapshot);
      this.applyReady(rd);
      snap = this.snapshotIfDue();
    }
    // 5. done
    this.node.advance();
    // Every entry up to the snapshot's index is durable here now (in this save or an earlier one).
    if (snap) this.startSnapshot(snap);
  }

  /**
   * The store's state if a snapshot is due: every snapshotEvery entries (or one entry per object,
   * if more), and right after a membership change (a member added later catches up from the
   * latest snapshot, and raft refuses one whose config lacks it). Not while one is being written.
   */
  private snapshotIfDue(): DueSnapshot | undefined {
    if (this.snapshotting) return undefined;
    const index = this.store.applied;
    if (index <= this.snapIndex) return undefined;
    if (index - this.snapIndex < Math.max(this.o.snapshotEvery, this.store.size) && !this.confChangedSinceSnapshot) return undefined;
    this.confChangedSinceSnapshot = false;
    return { meta: { index, term: this.appliedTerm, conf: this.conf }, view: this.store.snapshotView() };
  }

  /**
   * Encodes and saves a snapshot in the background: the store is encoded a chunk at a time and
   * the file written outside the storage's save queue, so raft goes on meanwhile (a snapshot of
   * 100,000 objects took ~100 ms of encoding and ~30 MB of file in one piece before). A failure
   * is fatal, as any storage failure.
   */
  private startSnapshot(due: DueSnapshot): void {
    this.snapshotting = (async () => {
      const t0 = performance.now();
      try {
        const data = await encodeSnapshotAsync(due.view);
        if (this.stopped || due.meta.index <= snapMetaOf(this.storage).index) return;
        await this.persistSnapshot({ meta: due.meta, data });
        this.observer?.snapshot?.(performance.now() - t0);
      } catch (e) {
        // A newer snapshot from the leader was installed meanwhile: this one is simply stale.
        if (due.meta.index <= snapMetaOf(this.storage).index) this.log(`raft: dropped the snapshot at ${due.meta.index}: a newer one was installed meanwhile`);
        else if (!this.stopped) this.die(e as Error);
      } finally {
        this.snapshotting = undefined;
      }
    })();
  }

  /** Applies the committed entries (answering their clients) and hands out reads and drops. */
  private applyReady(rd: CoreReady): void {
    for (const e of rd.committedEntries) this.applyEntry(e);
    for (const rs of rd.readStates) this.readStateArrived(rs.index, Buffer.from(rs.context).toString());
    for (const d of rd.droppedProposals) this.proposalDropped(d.data, d.type, d.reason, d.leader);
    for (const d of rd.droppedReads) this.readDropped(Buffer.from(d.context).toString(), d.reason, d.leader);
    this.releaseApplyWaiters();
  }

  private setSoftState(lead: NodeId, role: Role): void {
    this.lead = lead;
    this.role = role;
    // Proposals made under another leader may or may not be kept by the next one: say so now
    // rather than at the timeout.
    for (const [k, p] of this.pending) {
      if (p.lead === lead) continue;
      p.reject(new UnknownOutcomeError(`raft leadership moved from ${p.lead} to ${lead || 'none'} before the write was applied`));
      this.pending.delete(k);
    }
    this.log(`raft: node ${this.id} is ${role}, leader ${lead}`);
    this.onLeaderChange?.(lead, role);
  }

  private applySnapshot(s: Snapshot): void {
    if (s.data.length > 0) this.store.restore(s.data);
    else this.store.skip(s.meta.index);
    this.snapIndex = s.meta.index;
    this.appliedTerm = s.meta.term;
    this.conf = s.meta.conf;
    this.log(`raft: restored the store from a snapshot at index ${s.meta.index}`);
  }

  private applyEntry(e: Entry): void {
    if (e.index <= this.store.applied) return;
    this.appliedTerm = e.term;
    this.metrics.applied++;
    if (e.type === EntryType.ConfChange) {
      const cc = decodeConfChange(e.data);
      this.conf = this.node.applyConfChange(cc);
      this.store.skip(e.index);
      this.confChangedSinceSnapshot = true;
      let reqId = '';
      if (cc.context.length > 0) {
        try {
          const c = ctxPackr.unpack(cc.context) as { reqId: string; addrs?: [NodeId, MemberAddr][] };
          reqId = c.reqId;
          for (const [id, a] of c.addrs ?? []) {
            this.members.set(id, a);
            if (id !== this.id) this.transport.addPeer(id, a.raft);
          }
        } catch {
          this.log(`raft: conf change at ${e.index} has an unreadable context`);
        }
      }
      for (const ch of cc.changes) if (ch.type === ConfChangeType.RemoveNode && ch.nodeId !== this.id) this.transport.removePeer(ch.nodeId);
      const w = this.pendingConf.get(reqId);
      if (w) {
        clearTimeout(w.timer);
        this.pendingConf.delete(reqId);
        w.resolve(this.conf);
      }
      return;
    }
    const r = this.store.applyEntry(e.index, e.data);
    this.trace?.leader.stamp(e.index, e.index, 'applied');
    if (!r) return;
    const p = this.pending.get(r.reqId);
    if (!p) return;
    this.pending.delete(r.reqId);
    this.observer?.proposal?.(r.result.ok);
    if (r.result.ok) p.resolve(r.result);
    else p.reject(new ConflictError(r.result.conflict, r.result.version));
  }

  private proposalDropped(data: Uint8Array, type: EntryType, reason: string, leader: NodeId): void {
    // Store commands and conf-change contexts both carry a reqId; find its waiter.
    if (type === EntryType.ConfChange) {
      let reqId = '';
      try {
        reqId = (ctxPackr.unpack(decodeConfChange(data).context) as { reqId: string }).reqId;
      } catch {
        return; // not one of ours (no context): nobody waits for it
      }
      const w = this.pendingConf.get(reqId);
      if (w) {
        clearTimeout(w.timer);
        this.pendingConf.delete(reqId);
        w.reject(new ProposalDroppedError(reason, leader));
      }
      return;
    }
    let reqId: string;
    try {
      reqId = decodeCommand(data).reqId;
    } catch {
      return; // not a store command: nobody waits for it
    }
    const p = this.pending.get(reqId);
    if (p) {
      this.pending.delete(reqId);
      this.observer?.proposal?.(false);
      p.reject(new ProposalDroppedError(reason, leader));
    }
  }

  private async persistSnapshot(snap: Snapshot): Promise<void> {
    const index = snap.meta.index;
    await this.storage.saveSnapshot(snap);
    // A newer snapshot from the leader may have been installed meanwhile (the save then only
    // left an old file): never move snapIndex back.
    if (snapMetaOf(this.storage).index > index) return;
    this.snapIndex = index;
    this.metrics.snapshots++;
    const keepFrom = index - this.o.snapshotKeep;
    if (keepFrom > this.storage.firstIndex()) await this.storage.compact(keepFrom);
    this.log(`raft: snapshot at index ${index} (${snap.data.length} bytes); log compacted below ${Math.max(keepFrom, 0)}`);
  }

  private die(e: Error): void {
    if (this.fatal) return;
    this.fatal = e;
    this.log(`raft: fatal: ${e.stack ?? e.message}`);
    void this.stop();
    this.onFatal?.(e);
  }

  private newReqId(): string {
    return `${this.id}.${this.reqPrefix}.${++this.reqSeq}`;
  }

  /**
   * Proposes a transaction and resolves with its result once it is applied here. On a follower
   * the core forwards the proposal to the leader over the raft stream (batched with the rest of
   * the traffic) and the result is matched when this replica applies the entry. A failed compare
   * rejects with ConflictError; no known leader with NotLeaderError (nothing was proposed).
   */
  propose(ops: TxnOp[]): Promise<TxnResult & { ok: true }> {
    if (this.stopped) return Promise.reject(new StoppedError());
    const bad = validateOps(ops);
    if (bad) return Promise.reject(new ConflictError({ opIndex: bad[0], code: 'invalid', message: bad[1] }, 0));
    if (this.lead === 0) return Promise.reject(new NotLeaderError(0));
    const reqId = this.newReqId();
    const data = encodeCommand({ reqId, ops });
    return new Promise((resolve, reject) => {
      this.pending.set(reqId, { resolve, reject, deadline: performance.now() + this.o.proposalTimeoutMs, lead: this.lead });
      this.metrics.proposals++;
      if (this.propBatch.length === 0 && this.trace) this.firstProposedAt = performance.now();
      this.propBatch.push({ term: 0, index: 0, type: EntryType.Normal, data });
      this.kick();
    });
  }

  /** Resolves once the local store reflects every write committed before the call (ReadIndex). */
  linearizableRead(): Promise<void> {
    if (this.stopped) return Promise.reject(new StoppedError());
    return new Promise((resolve, reject) => {
      this.readQueue.push({ resolve, reject });
      this.startReadRound();
    });
  }

  private startReadRound(): void {
    if (this.readRound || this.readQueue.length === 0) return;
    const ctx = `${this.id}.${this.reqPrefix}.r${++this.readSeq}`;
    const waiters = this.readQueue;
    this.readQueue = [];
    const timer = setTimeout(() => {
      if (this.readRound?.ctx !== ctx) return;
      this.readRound = undefined;
      for (const w of waiters) w.reject(new ReadTimeoutError(this.o.readTimeoutMs));
      this.startReadRound();
    }, this.o.readTimeoutMs);
    this.readRound = { ctx, waiters, timer };
    this.node.readIndex(Buffer.from(ctx));
    this.kick();
  }

  private readStateArrived(index: number, ctx: string): void {
    const r = this.readRound;
    if (!r || r.ctx !== ctx) return;
    clearTimeout(r.timer);
    this.readRound = undefined;
    // The read point is known; applying up to it must also finish in time (a follower cut off
    // right after the round would otherwise keep its callers waiting for ever).
    void this.waitApplied(index, this.o.readTimeoutMs).then(() => {
      for (const w of r.waiters) w.resolve();
    }, (e: Error) => {
      for (const w of r.waiters) w.reject(e);
    });
    this.startReadRound();
  }

  private readDropped(ctx: string, reason: string, leader: NodeId): void {
    const r = this.readRound;
    if (!r || r.ctx !== ctx) return;
    clearTimeout(r.timer);
    this.readRound = undefined;
    const e = new ReadTimeoutError(0, reason + (leader ? `; leader is ${leader}` : ""));
    for (const w of r.waiters) w.reject(e);
    this.startReadRound();
  }

  /** Resolves when the local store has applied `index`; rejects on stop or after `timeoutMs`. */
  waitApplied(index: number, timeoutMs?: number): Promise<void> {
    if (this.store.applied >= index) return Promise.resolve();
    if (this.stopped) return Promise.reject(new StoppedError());
    return new Promise((resolve, reject) => {
      const w: (typeof this.applyWaiters)[number] = { index, resolve, reject };
      if (timeoutMs !== undefined) {
        w.timer = setTimeout(() => {
          const i = this.applyWaiters.indexOf(w);
          if (i >= 0) this.applyWaiters.splice(i, 1);
          reject(new ReadTimeoutError(timeoutMs));
        }, timeoutMs);
      }
      this.applyWaiters.push(w);
    });
  }

  private releaseApplyWaiters(): void {
    if (this.applyWaiters.length === 0) return;
    const applied = this.store.applied;
    for (let i = this.applyWaiters.length - 1; i >= 0; i--) {
      const w = this.applyWaiters[i]!;
      if (w.index <= applied) {
        this.applyWaiters.splice(i, 1);
        clearTimeout(w.timer);
        w.resolve();
      }
    }
  }

  /** Proposes a membership change carrying the members' addresses; resolves when applied here. */
  private changeConf(changes: ConfChange['changes'], addrs: [NodeId, MemberAddr][]): Promise<ConfState> {
    if (this.role !== Role.Leader) return Promise.reject(new NotLeaderError(this.lead));
    const reqId = this.newReqId();
    const cc: ConfChange = { transition: ConfChangeTransition.Auto, changes, context: ctxPackr.pack({ reqId, addrs }) };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pendingConf.delete(reqId);
        reject(new UnknownOutcomeError(`membership change not applied within ${this.o.proposalTimeoutMs} ms`));
      }, this.o.proposalTimeoutMs);
      this.pendingConf.set(reqId, { resolve, reject, timer });
      this.node.proposeConfChange(cc);
      this.kick();
    });
  }

  /** Adds a manager as a learner: it receives the log (or a snapshot) but does not vote yet. */
  addLearner(id: NodeId, addr: MemberAddr): Promise<ConfState> {
    return this.changeConf([{ type: ConfChangeType.AddLearner, nodeId: id }], [[id, addr]]);
  }

  /** Makes a (caught-up) learner a voter. */
  promote(id: NodeId): Promise<ConfState> {
    const a = this.members.get(id);
    return this.changeConf([{ type: ConfChangeType.AddVoter, nodeId: id }], a ? [[id, a]] : []);
  }

  removeMember(id: NodeId): Promise<ConfState> {
    return this.changeConf([{ type: ConfChangeType.RemoveNode, nodeId: id }], []);
  }

  /** The leader's view of a member's replication progress (match index), if leader. */
  progress(id: NodeId): number | undefined {
    return this.node.status().progress?.get(id)?.match;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.ticker);
    const err = new StoppedError();
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.propBatch = [];
    for (const p of this.pendingConf.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pendingConf.clear();
    if (this.readRound) {
      clearTimeout(this.readRound.timer);
      for (const w of this.readRound.waiters) w.reject(err);
      this.readRound = undefined;
    }
    for (const w of this.readQueue) w.reject(err);
    this.readQueue = [];
    for (const w of this.applyWaiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    await this.transport.stop();
    // Let a save and a snapshot in flight finish before closing the storage under them.
    while (this.running) await new Promise((r) => setTimeout(r, 5));
    await this.snapshotting;
    await this.storage.close?.();
  }
}
