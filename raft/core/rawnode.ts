// RawNode: the host's handle on a Raft (etcd's RawNode, synchronous). The host loop is:
//   tick() on a timer; step() every inbound message; propose()/readIndex() for clients;
//   if hasReady(): rd = ready(); handle it in the order documented on Ready; advance().
// At most one Ready is outstanding: ready() throws until advance() was called, and hasReady()
// is false meanwhile. Between ready() and advance() the host may keep stepping messages.
import { ConfChangeTransition, ConfChangeType, EntryType, MessageType, NONE, type ConfChange, type Entry, type HardState, type Message, type NodeId, type Ready, type SoftState, type Snapshot } from '../types.js';
import type { RaftConfig } from './config.js';
import { encodeConfChange } from './confchange-codec.js';
import { invariant } from './errors.js';
import { isLocalMessage, newMessage, Raft, type Status } from './raft.js';
import type { CoreConfState } from './tracker.js';

/** The core's Ready (the name older callers use; droppedReads is part of Ready itself now). */
export type CoreReady = Ready;

const WIRE_TYPES = new Set<MessageType>([
  MessageType.Prop,
  MessageType.App,
  MessageType.AppResp,
  MessageType.Vote,
  MessageType.VoteResp,
  MessageType.PreVote,
  MessageType.PreVoteResp,
  MessageType.Snap,
  MessageType.Heartbeat,
  MessageType.HeartbeatResp,
  MessageType.TransferLeader,
  MessageType.TimeoutNow,
  MessageType.ReadIndex,
  MessageType.ReadIndexResp,
]);

interface Handed {
  snapshot?: Snapshot;
  lastEntry?: Entry;
  lastCommitted?: Entry;
  committedEntries: Entry[];
  selfSteps: Message[];
}

export class RawNode {
  readonly raft: Raft;
  private prevSoft: SoftState;
  private prevHard: HardState;
  private handed?: Handed;

  constructor(config: RaftConfig, impl?: typeof Raft) {
    this.raft = new (impl ?? Raft)(config);
    this.prevSoft = { lead: this.raft.lead, role: this.raft.state };
    this.prevHard = this.hardState();
  }

  private hardState(): HardState {
    return { term: this.raft.term, vote: this.raft.vote, commit: this.raft.raftLog.committed };
  }

  /**
   * Starts a brand-new cluster member list the way etcd's Bootstrap does: one committed
   * AddVoter ConfChange entry per voter at term 1, so the membership lives in the log and a
   * node that joins later with an empty log learns it by replay. Every founding node calls it
   * with the same list; joiners call nothing and start empty. The entries show up in the next
   * Ready (persist them; applying them again with applyConfChange is harmless).
   */
  bootstrap(voters: NodeId[]): void {
    const r = this.raft;
    if (r.raftLog.lastIndex() !== 0 || r.term !== 0 || r.trk.progress.size > 0) {
      throw new Error('bootstrap: this node already has state (log, term or config); only a brand-new node with empty storage can be bootstrapped');
    }
    if (voters.length === 0) throw new RangeError('bootstrap: need at least one voter');
    if (new Set(voters).size !== voters.length) throw new RangeError(`bootstrap: duplicate voter ids in [${voters}]`);
    const ccs: ConfChange[] = voters.map((nodeId) => ({ transition: ConfChangeTransition.Auto, changes: [{ type: ConfChangeType.AddVoter, nodeId }], context: new Uint8Array(0) }));
    r.becomeFollower(1, NONE);
    r.raftLog.append(ccs.map((cc, i) => ({ term: 1, index: i + 1, type: EntryType.ConfChange, data: encodeConfChange(cc) })));
    r.raftLog.commitTo(ccs.length);
    // Apply now so the node can campaign at once; the host's second application is a no-op.
    for (const cc of ccs) r.applyConfChange(cc);
  }

  tick(): void {
    this.raft.tick();
  }

  campaign(): void {
    this.raft.step(newMessage({ type: MessageType.Hup, from: this.raft.id }));
  }

  /** Never throws for "not leader": a refusal shows up in Ready.droppedProposals. */
  propose(data: Uint8Array): void {
    if (!(data instanceof Uint8Array)) throw new TypeError('propose: data must be a Uint8Array');
    this.raft.step(newMessage({ type: MessageType.Prop, from: this.raft.id, entries: [{ term: 0, index: 0, type: EntryType.Normal, data }] }));
  }

  proposeConfChange(cc: ConfChange): void {
    const data = encodeConfChange(cc);
    this.raft.step(newMessage({ type: MessageType.Prop, from: this.raft.id, entries: [{ term: 0, index: 0, type: EntryType.ConfChange, data }] }));
  }

  /**
   * The host calls this when it applies a committed ConfChange entry. Throws ConfChangeError
   * (and changes nothing) if the change is invalid for the current config, e.g. it re-adds a
   * removed id; the leader never lets such a proposal into the log, so this means host misuse.
   */
  applyConfChange(cc: ConfChange): CoreConfState {
    return this.raft.applyConfChange(cc);
  }

  transferLeader(to: NodeId): void {
    this.raft.step(newMessage({ type: MessageType.TransferLeader, from: to }));
  }

  /** The answer arrives as a Ready.readStates entry with this context, or a droppedReads entry. */
  readIndex(context: Uint8Array): void {
    if (!(context instanceof Uint8Array)) throw new TypeError('readIndex: context must be a Uint8Array');
    this.raft.step(newMessage({ type: MessageType.ReadIndex, from: this.raft.id, context }));
  }

  /** Any inbound wire message. Throws on local message types and on messages for another node. */
  step(m: Message): void {
    if (!m || typeof m !== 'object') throw new TypeError('step: message must be an object');
    if (isLocalMessage(m.type)) throw new RangeError(`step: ${MessageType[m.type]} is a local message type and cannot come from the wire; use tick()/campaign()/report*()`);
    if (!WIRE_TYPES.has(m.type)) throw new RangeError(`step: unknown message type ${String(m.type)}`);
    if (m.to !== this.raft.id) throw new RangeError(`step: message ${MessageType[m.type]} from ${m.from} is addressed to node ${m.to}, not to this node ${this.raft.id}`);
    if (!Number.isSafeInteger(m.term) || m.term < 0) throw new RangeError(`step: message term ${String(m.term)} is invalid`);
    if (!Array.isArray(m.entries)) throw new TypeError('step: message entries must be an array');
    if (m.type === MessageType.App) {
      for (let i = 0; i < m.entries.length; i++) {
        const e = m.entries[i];
        if (!e || e.index !== m.index + 1 + i || !(e.data instanceof Uint8Array) || !(e.term > 0) || e.term > m.term) {
          throw new RangeError(`step: MsgApp from ${m.from} has a malformed entry at position ${i} (expected index ${m.index + 1 + i}, term in 1..${m.term}, binary data)`);
        }
      }
    }
    if (m.type === MessageType.Snap && (!m.snapshot || !m.snapshot.meta || !m.snapshot.meta.conf)) {
      throw new RangeError(`step: MsgSnap from ${m.from} carries no snapshot (or no snapshot metadata)`);
    }
    // Answers from nodes we do not know (e.g. removed ones) are ignored, as in etcd.
    const isResp = m.type === MessageType.AppResp || m.type === MessageType.HeartbeatResp || m.type === MessageType.VoteResp || m.type === MessageType.PreVoteResp;
    if (isResp && !this.raft.trk.progress.has(m.from)) return;
    this.raft.step(m);
  }

  reportUnreachable(id: NodeId): void {
    this.raft.step(newMessage({ type: MessageType.Unreachable, from: id }));
  }

  /** After sending a MsgSnap: ok = delivered and applied by the follower's transport. */
  reportSnapshot(id: NodeId, ok: boolean): void {
    this.raft.step(newMessage({ type: MessageType.SnapStatus, from: id, reject: !ok }));
  }

  hasReady(): boolean {
    if (this.handed) return false;
    const r = this.raft;
    if (r.lead !== this.prevSoft.lead || r.state !== this.prevSoft.role) return true;
    const hs = this.hardState();
    if (hs.term !== this.prevHard.term || hs.vote !== this.prevHard.vote || hs.commit !== this.prevHard.commit) return true;
    return (
      r.raftLog.hasPendingSnapshot() ||
      r.raftLog.unstableEntries().length > 0 ||
      r.raftLog.hasNextCommittedEntries() ||
      r.msgs.length > 0 ||
      r.msgsAfterAppend.length > 0 ||
      r.readStates.length > 0 ||
      r.droppedProposals.length > 0 ||
      r.droppedReads.length > 0
    );
  }

  ready(): CoreReady {
    if (this.handed) throw new Error('ready: the previous Ready was not advanced; call advance() after handling it');
    const r = this.raft;
    const rd: CoreReady = {
      entries: r.raftLog.unstableEntries().slice(),
      committedEntries: r.raftLog.nextCommittedEntries(),
      messages: r.msgs,
      messagesAfterPersist: [],
      readStates: r.readStates,
      droppedProposals: r.droppedProposals,
      droppedReads: r.droppedReads,
      mustSync: false,
    };
    const selfSteps: Message[] = [];
    for (const m of r.msgsAfterAppend) (m.to === r.id ? selfSteps : rd.messagesAfterPersist).push(m);
    r.msgs = [];
    r.msgsAfterAppend = [];
    r.readStates = [];
    r.droppedProposals = [];
    r.droppedReads = [];
    const snap = r.raftLog.unstable.snapshot;
    if (snap) rd.snapshot = snap;
    const soft = { lead: r.lead, role: r.state };
    if (soft.lead !== this.prevSoft.lead || soft.role !== this.prevSoft.role) {
      rd.softState = soft;
      this.prevSoft = soft;
    }
    const hs = this.hardState();
    if (hs.term !== this.prevHard.term || hs.vote !== this.prevHard.vote || hs.commit !== this.prevHard.commit) {
      rd.hardState = hs;
      rd.mustSync = hs.term !== this.prevHard.term || hs.vote !== this.prevHard.vote;
      this.prevHard = hs;
    }
    if (rd.entries.length > 0 || rd.snapshot) rd.mustSync = true;
    if (rd.committedEntries.length > 0) r.raftLog.applying = rd.committedEntries[rd.committedEntries.length - 1].index;
    this.handed = {
      snapshot: rd.snapshot,
      lastEntry: rd.entries[rd.entries.length - 1],
      lastCommitted: rd.committedEntries[rd.committedEntries.length - 1],
      committedEntries: rd.committedEntries,
      selfSteps,
    };
    return rd;
  }

  /** The last Ready was persisted, sent and applied. */
  advance(): void {
    const h = this.handed;
    if (!h) throw new Error('advance: no outstanding Ready; call ready() first');
    this.handed = undefined;
    const r = this.raft;
    if (h.snapshot) r.raftLog.unstable.stableSnapTo(h.snapshot.meta.index);
    if (h.lastEntry) r.raftLog.unstable.stableTo(h.lastEntry.index, h.lastEntry.term);
    // Our own acks and votes take effect now that what they vouch for is durable.
    for (const m of h.selfSteps) r.step(m);
    if (h.snapshot && h.snapshot.meta.index > r.raftLog.applied) r.raftLog.appliedTo(h.snapshot.meta.index);
    if (h.lastCommitted) {
      invariant(h.lastCommitted.index > r.raftLog.applied || h.lastCommitted.index === r.raftLog.applied, 'applied index moved backwards');
      r.raftLog.appliedTo(h.lastCommitted.index);
      r.reduceUncommittedSize(h.committedEntries);
    }
    r.afterApplied();
  }

  status(): Status {
    return this.raft.status();
  }
}

export { NONE };
