// The Raft protocol as a pure state machine, modelled on etcd-io/raft (our own code). No timers,
// I/O or clocks: the host drives it through RawNode (tick, step, ready, advance).
//
// Durability: messages that promise something about this node's disk (vote grants and pre-vote
// answers, append acks and rejections, the leader's self-ack, a candidate's self-vote) go to
// msgsAfterAppend and leave only after the host persisted the Ready they came with. Messages to
// this node itself are not handed to the host: RawNode steps them in advance().
//
// The protected methods are the named protocol steps the simulator's broken variants override
// (see README.md here, "Subclassing"); keep their names and meanings.
import {
  CompactedError,
  ConfChangeTransition,
  EntryType,
  MessageType,
  NONE,
  Role,
  UnavailableError,
  type ConfChange,
  type DroppedProposal,
  type DroppedRead,
  type Entry,
  type Message,
  type NodeId,
  type ReadState,
  type Snapshot,
} from '../types.js';
import { resolveConfig, type RaftConfig, type ResolvedConfig } from './config.js';
import { applyChange } from './confchange.js';
import { decodeConfChange, encodeConfChange } from './confchange-codec.js';
import { payloadBytes, entryBytes } from './entries.js';
import { ConfChangeError, RaftInvariantError, invariant } from './errors.js';
import { RaftLog } from './log.js';
import type { Progress, ProgressState } from './progress.js';
import { ReadOnlyQueue } from './read-only.js';
import { configFromConfState, ProgressTracker, toConfState, type CoreConfState, type TrackerConfig } from './tracker.js';
import { Progress as ProgressClass } from './progress.js';

export type { DroppedRead } from '../types.js';

export interface ProgressStatus {
  match: number;
  next: number;
  state: ProgressState;
  isLearner: boolean;
  recentActive: boolean;
  inflight: number;
}

export interface Status {
  id: NodeId;
  term: number;
  vote: NodeId;
  commit: number;
  applied: number;
  lead: NodeId;
  role: Role;
  conf: CoreConfState;
  /** Leader only. */
  progress?: Map<NodeId, ProgressStatus>;
  /** Leader only: the node a leadership transfer is going to (0 = none). */
  leadTransferee: NodeId;
}

type CampaignType = 'pre-election' | 'election' | 'transfer';

/** Context of a MsgVote sent because of a leadership transfer: it overrides the leader lease. */
const TRANSFER_CONTEXT = new TextEncoder().encode('CampaignTransfer');

const LOCAL_TYPES = new Set([MessageType.Hup, MessageType.Beat, MessageType.CheckQuorum, MessageType.Unreachable, MessageType.SnapStatus]);

export function isLocalMessage(t: MessageType): boolean {
  return LOCAL_TYPES.has(t);
}

function isTransfer(ctx: Uint8Array | undefined): boolean {
  if (!ctx || ctx.length !== TRANSFER_CONTEXT.length) return false;
  for (let i = 0; i < ctx.length; i++) if (ctx[i] !== TRANSFER_CONTEXT[i]) return false;
  return true;
}

const EMPTY = new Uint8Array(0);

/**
 * A forwarded read neither answered nor failed is failed after this many election timeouts. It
 * bounds what lost messages can leave here, and is a backstop for hosts without a read timeout.
 * It is long on purpose: a slow answer (a check-quorum leader takes up to two election timeouts to
 * give up; the asker's own disk may stall its Readys) must not turn into a failure and a retry
 * that takes longer still (raft/sim seed 464 with 3).
 */
export const FORWARDED_READ_TICKS = 10;

/** A read context as a map key (contexts are short byte strings chosen by the host). */
function contextKey(ctx: Uint8Array): string {
  let s = '';
  for (let i = 0; i < ctx.length; i++) s += String.fromCharCode(ctx[i]);
  return s;
}

export function newMessage(p: Partial<Message> & { type: MessageType }): Message {
  return {
    to: NONE,
    from: NONE,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    ...p,
  };
}

export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = NONE;
  lead: NodeId = NONE;
  state: Role = Role.Follower;
  isLearner = false;
  readonly raftLog: RaftLog;
  readonly trk: ProgressTracker;
  protected readonly cfg: ResolvedConfig;

  /** Outboxes; RawNode drains them into a Ready. */
  msgs: Message[] = [];
  msgsAfterAppend: Message[] = [];
  readStates: ReadState[] = [];
  droppedProposals: DroppedProposal[] = [];
  droppedReads: DroppedRead[] = [];

  leadTransferee: NodeId = NONE;
  /** Index of the latest conf change entry; a new one is refused until it is applied. */
  pendingConfIndex = 0;
  private uncommittedSize = 0;
  private readOnly = new ReadOnlyQueue();
  /** ReadIndex requests waiting for the leader's first commit in its term. */
  private pendingReadIndex: Message[] = [];
  /**
   * This node's own reads that it forwarded to its leader and that are not answered yet, by
   * context, with the tick they left at. Each ends in a ReadState or a DroppedRead: the answer,
   * a rejection, the leader changing here (an answer from the old leader would carry an older
   * term and be ignored), or no answer within FORWARDED_READ_TICKS election timeouts (lost).
   */
  private forwardedReads = new Map<string, { context: Uint8Array; at: number }>();
  /** Ticks since start; ages forwarded reads. */
  private ticks = 0;

  electionElapsed = 0;
  private heartbeatElapsed = 0;
  readonly electionTimeout: number;
  private readonly heartbeatTimeout: number;
  randomizedElectionTimeout = 0;

  constructor(config: RaftConfig) {
    this.cfg = resolveConfig(config);
    this.id = this.cfg.id;
    this.electionTimeout = this.cfg.electionTick;
    this.heartbeatTimeout = this.cfg.heartbeatTick;
    this.raftLog = new RaftLog(this.cfg.storage);
    this.raftLog.onTruncate = (i) => this.dropStaleAcks(i);
    this.trk = new ProgressTracker(this.cfg.maxInflightMsgs);

    const { hardState: hs, confState: cs } = this.cfg.storage.initialState();
    const conf = configFromConfState(cs);
    const progress = new Map<NodeId, Progress>();
    const last = this.raftLog.lastIndex();
    for (const id of [...conf.incoming, ...conf.outgoing, ...conf.learners, ...conf.learnersNext]) {
      if (!progress.has(id)) progress.set(id, new ProgressClass(0, last + 1, this.cfg.maxInflightMsgs, conf.learners.has(id)));
    }
    this.trk.config = conf;
    this.trk.progress = progress;
    this.isLearner = !!progress.get(this.id)?.isLearner;

    if (hs.term !== 0 || hs.vote !== NONE || hs.commit !== 0) {
      invariant(hs.commit <= this.raftLog.lastIndex(), `stored commit ${hs.commit} is out of range [${this.raftLog.committed}, ${this.raftLog.lastIndex()}]`);
      // A crash after a received snapshot was written but before the fsync that covers the hard
      // state leaves an older commit beside it: the snapshot holds only committed state, so the
      // commit index starts at the snapshot's (raftLog.committed already is that).
      if (hs.commit > this.raftLog.committed) this.raftLog.committed = hs.commit;
      this.term = hs.term;
      this.vote = hs.vote;
    }
    // The same kind of tear (snapshot or entries written, hard state not) can leave a term older
    // than the last one in the log. No vote was sent in a term the durable hard state does not
    // show (grants wait for the fsync), so moving up to that term with no vote is safe, and it
    // keeps any later leader's term above every term in its log.
    const lastTerm = this.raftLog.lastTerm();
    if (lastTerm > this.term) {
      this.term = lastTerm;
      this.vote = NONE;
    }
    if (this.cfg.applied > 0) {
      invariant(
        this.cfg.applied <= this.raftLog.lastIndex(),
        `config.applied ${this.cfg.applied} is beyond the last log index ${this.raftLog.lastIndex()} (the state machine is ahead of the raft log)`,
      );
      // A commit-only HardState change need not be fsynced, so the stored commit may lag what the
      // host applied; whatever was applied was committed, so the commit index can catch up.
      if (this.cfg.applied > this.raftLog.committed) this.raftLog.committed = this.cfg.applied;
      if (this.cfg.applied > this.raftLog.applied) this.raftLog.applied = this.raftLog.applying = this.cfg.applied;
    }
    this.becomeFollower(this.term, NONE);
    this.cfg.logger.info(
      `raft ${this.id} starts: term ${this.term}, commit ${this.raftLog.committed}, applied ${this.raftLog.applied}, ` +
        `last ${this.raftLog.lastIndex()}/${this.raftLog.lastTerm()}, voters [${[...conf.incoming]}]`,
    );
  }

  // ---- outbox ---------------------------------------------------------------------------------

  protected send(p: Partial<Message> & { type: MessageType; to: NodeId }): void {
    const m = newMessage(p);
    if (m.from === NONE) m.from = this.id;
    const t = m.type;
    if (t === MessageType.Vote || t === MessageType.VoteResp || t === MessageType.PreVote || t === MessageType.PreVoteResp) {
      // Campaigns and answers carry the term they are about, which may differ from ours (pre-vote).
      invariant(m.term !== 0, `term must be set when sending message type ${MessageType[t]}`);
    } else {
      invariant(m.term === 0, `term must not be preset when sending ${MessageType[t]} (got ${m.term})`);
      // Forwarded proposals and read requests are term-less, as in etcd: they are local requests.
      if (t !== MessageType.Prop && t !== MessageType.ReadIndex) m.term = this.term;
    }
    if (t === MessageType.AppResp || t === MessageType.VoteResp || t === MessageType.PreVoteResp) {
      this.msgsAfterAppend.push(m);
    } else {
      invariant(m.to !== this.id, `message ${MessageType[t]} addressed to self must not reach the wire`);
      this.msgs.push(m);
    }
  }

  /**
   * Entries from index i on are being replaced. An append ack for them that has not been handed
   * to the host yet would leave only after this Ready is persisted — when the acknowledged
   * entries are no longer on this node's disk. Drop it (the leader re-probes); acks already in
   * an outstanding Ready stay valid, since that Ready's entries are persisted before they leave.
   */
  private dropStaleAcks(i: number): void {
    const before = this.msgsAfterAppend.length;
    this.msgsAfterAppend = this.msgsAfterAppend.filter((m) => !(m.type === MessageType.AppResp && !m.reject && m.index >= i && m.to !== this.id));
    if (this.msgsAfterAppend.length !== before) this.cfg.logger.info(`raft ${this.id} dropped ${before - this.msgsAfterAppend.length} unsent ack(s) for entries >= ${i} that are being replaced`);
  }

  private dropProposal(entries: Entry[], reason: string): void {
    for (const e of entries) this.droppedProposals.push({ data: e.data, type: e.type, reason, leader: this.lead });
    this.cfg.logger.warn(`raft ${this.id} dropped ${entries.length} proposal(s): ${reason}`);
  }

  private dropRead(m: Message, reason: string): void {
    this.droppedReads.push({ context: m.context ?? EMPTY, reason, leader: this.lead });
  }

  /** Forwards one of this node's own reads to the leader and remembers it until it is settled. */
  private forwardOwnRead(m: Message): void {
    const ctx = m.context ?? EMPTY;
    const k = contextKey(ctx);
    if (this.forwardedReads.has(k)) {
      // Its answer could not be told from the first one's: refuse it, as the leader would.
      this.dropRead(m, 'a read with the same context is already pending here; use contexts unique across the cluster');
      return;
    }
    this.forwardedReads.set(k, { context: ctx, at: this.ticks });
    this.send({ ...m, to: this.lead, term: 0 });
  }

  /** Settles every forwarded read still waiting: its answer can no longer arrive (or count). */
  private failForwardedReads(reason: string): void {
    if (this.forwardedReads.size === 0) return;
    for (const r of this.forwardedReads.values()) this.droppedReads.push({ context: r.context, reason, leader: this.lead });
    this.forwardedReads.clear();
  }

  /** Forwarded reads unanswered for too long were lost in flight (or with a crashed leader). */
  private expireForwardedReads(): void {
    const limit = FORWARDED_READ_TICKS * this.electionTimeout;
    for (const [k, r] of this.forwardedReads) {
      if (this.ticks - r.at < limit) break; // insertion order is age order
      this.forwardedReads.delete(k);
      this.droppedReads.push({ context: r.context, reason: `no answer from the leader within ${FORWARDED_READ_TICKS} election timeouts (the request or its answer was lost); retry`, leader: this.lead });
    }
  }

  // ---- role changes -----------------------------------------------------------------------------

  private resetRandomizedElectionTimeout(): void {
    const r = this.cfg.random();
    invariant(r >= 0 && r < 1, `config.random() returned ${r}, expected a number in [0,1)`);
    this.randomizedElectionTimeout = this.electionTimeout + Math.floor(r * this.electionTimeout);
  }

  private reset(term: number): void {
    if (term !== this.term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.trk.resetVotes();
    const last = this.raftLog.lastIndex();
    for (const [id, pr] of this.trk.progress) {
      const fresh = new ProgressClass(0, last + 1, this.cfg.maxInflightMsgs, pr.isLearner);
      // Entries up to lastIndex are durable here whenever this matters (a leader's log was
      // persisted before its self-vote counted), so the leader's own match starts there.
      if (id === this.id) fresh.match = last;
      this.trk.progress.set(id, fresh);
    }
    this.pendingConfIndex = 0;
    this.uncommittedSize = 0;
    this.failPendingReads('the leader changed role before the read was confirmed');
    this.failForwardedReads('the leader changed before it answered the forwarded read; retry');
  }

  /** Reads waiting on this (former) leader are reported, locally or back to the follower that asked. */
  private failPendingReads(reason: string): void {
    const waiting = [...this.readOnly.drain().map((s) => s.req), ...this.pendingReadIndex];
    this.pendingReadIndex = [];
    for (const req of waiting) this.rejectRead(req, reason);
  }

  private rejectRead(req: Message, reason: string): void {
    if (req.from === NONE || req.from === this.id) this.dropRead(req, reason);
    else this.send({ type: MessageType.ReadIndexResp, to: req.from, reject: true, context: req.context });
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.lead = lead;
    this.state = Role.Follower;
    this.cfg.logger.info(`raft ${this.id} became follower at term ${this.term}${lead ? ` (leader ${lead})` : ''}`);
  }

  private becomePreCandidate(): void {
    invariant(this.state !== Role.Leader, 'invalid transition leader -> pre-candidate');
    // Pre-candidacy changes neither term nor vote: that is the point of pre-vote.
    this.trk.resetVotes();
    this.lead = NONE;
    this.state = Role.PreCandidate;
    this.cfg.logger.info(`raft ${this.id} became pre-candidate at term ${this.term}`);
  }

  private becomeCandidate(): void {
    invariant(this.state !== Role.Leader, 'invalid transition leader -> candidate');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.state = Role.Candidate;
    this.cfg.logger.info(`raft ${this.id} became candidate at term ${this.term}`);
  }

  private becomeLeader(): void {
    invariant(this.state !== Role.Follower, 'invalid transition follower -> leader');
    this.reset(this.term);
    this.lead = this.id;
    this.state = Role.Leader;
    const self = this.trk.progress.get(this.id);
    if (self) {
      self.becomeReplicate();
      self.recentActive = true;
    }
    // Conservatively treat every not-yet-applied entry as a possible conf change.
    this.pendingConfIndex = this.raftLog.lastIndex();
    const ok = this.appendEntry([{ term: 0, index: 0, type: EntryType.Normal, data: EMPTY }]);
    invariant(ok, 'the new leader could not append its empty entry');
    this.cfg.logger.info(`raft ${this.id} became leader at term ${this.term}`);
  }

  // ---- ticks ------------------------------------------------------------------------------------

  tick(): void {
    this.ticks++;
    if (this.forwardedReads.size > 0) this.expireForwardedReads();
    if (this.state === Role.Leader) this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.mayCampaign() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.step(newMessage({ type: MessageType.Hup, from: this.id }));
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum) this.step(newMessage({ type: MessageType.CheckQuorum, from: this.id }));
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.state === Role.Leader && this.leadTransferee !== NONE) {
        this.cfg.logger.warn(`raft ${this.id} aborts the leadership transfer to ${this.leadTransferee}: it did not complete within an election timeout`);
        this.abortLeaderTransfer();
      }
    }
    if (this.state !== Role.Leader) return;
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.step(newMessage({ type: MessageType.Beat, from: this.id }));
    }
  }

  promotable(): boolean {
    const pr = this.trk.progress.get(this.id);
    return !!pr && !pr.isLearner && !this.raftLog.hasPendingSnapshot();
  }

  /**
   * Whether this node may start an election. Voters may. A learner or a removed node may only
   * while it holds entries beyond its commit index: after a config change that drops it, it can be
   * the only holder of entries the remaining voters need, and since it refuses votes to anyone
   * with a shorter log, an election could otherwise never succeed (openraft#2091, braft#432).
   * Such a leader accepts no proposals and steps down once its whole log is committed.
   */
  mayCampaign(): boolean {
    if (this.promotable()) return true;
    return (
      this.trk.config.incoming.size > 0 &&
      !this.raftLog.hasPendingSnapshot() &&
      this.raftLog.lastIndex() > this.raftLog.committed
    );
  }

  private isVoter(): boolean {
    const pr = this.trk.progress.get(this.id);
    return !!pr && !pr.isLearner && this.trk.isVoter(this.id);
  }

  /**
   * A leader that is not a voter (removed, demoted, or elected as a learner to unblock the
   * cluster) steps down once every entry of its log is committed, after telling the voters the
   * commit index.
   */
  private maybeRetire(): boolean {
    if (this.state !== Role.Leader || this.isVoter()) return false;
    if (this.raftLog.committed < this.raftLog.lastIndex()) return false;
    this.cfg.logger.warn(`raft ${this.id} is not a voter of the config and steps down as leader (its log is fully committed)`);
    this.bcastHeartbeat(undefined);
    this.becomeFollower(this.term, NONE);
    return true;
  }

  // ---- elections --------------------------------------------------------------------------------

  private hup(t: CampaignType): void {
    if (this.state === Role.Leader) return;
    if (!this.mayCampaign()) {
      this.cfg.logger.warn(`raft ${this.id} is not promotable (not a voter, or a snapshot is pending) and will not campaign`);
      return;
    }
    if (this.hasUnappliedConfChanges()) {
      this.cfg.logger.warn(`raft ${this.id} cannot campaign at term ${this.term}: committed conf changes are not applied yet`);
      return;
    }
    this.campaign(t);
  }

  private hasUnappliedConfChanges(): boolean {
    if (this.raftLog.applied >= this.raftLog.committed) return false;
    const ents = this.raftLog.slice(this.raftLog.applied + 1, this.raftLog.committed + 1, Infinity);
    return ents.some((e) => e.type === EntryType.ConfChange);
  }

  private campaign(t: CampaignType): void {
    let voteType: MessageType;
    let term: number;
    if (t === 'pre-election') {
      this.becomePreCandidate();
      voteType = MessageType.PreVote;
      term = this.term + 1; // ask for the next term without moving to it
    } else {
      this.becomeCandidate();
      voteType = MessageType.Vote;
      term = this.term;
    }
    const respType = voteType === MessageType.PreVote ? MessageType.PreVoteResp : MessageType.VoteResp;
    const lastIndex = this.raftLog.lastIndex();
    const lastTerm = this.raftLog.lastTerm();
    for (const id of this.trk.voterIds()) {
      if (id === this.id) {
        // Our own vote counts only once the term and vote are durable (stepped in advance()).
        this.send({ type: respType, to: id, term });
        continue;
      }
      this.send({ type: voteType, to: id, term, index: lastIndex, logTerm: lastTerm, context: t === 'transfer' ? TRANSFER_CONTEXT : undefined });
    }
  }

  /** Records a vote (the first answer of each node counts) and tallies it. */
  protected poll(from: NodeId, type: MessageType, granted: boolean): 'won' | 'lost' | 'pending' {
    this.cfg.logger.info(`raft ${this.id} received ${granted ? 'grant' : 'rejection'} ${MessageType[type]} from ${from} at term ${this.term}`);
    this.trk.recordVote(from, granted);
    return this.trk.tallyVotes().result;
  }

  /** Answers MsgVote / MsgPreVote: lease rule, term rules, one vote per term, log up to date. */
  protected handleVoteRequest(m: Message): void {
    const pre = m.type === MessageType.PreVote;
    const respType = pre ? MessageType.PreVoteResp : MessageType.VoteResp;
    if (m.term > this.term) {
      // CheckQuorum lease: while we hear from a live leader, a disruptive node can't win us over.
      const inLease = this.cfg.checkQuorum && this.lead !== NONE && this.electionElapsed < this.electionTimeout;
      if (inLease && !isTransfer(m.context)) {
        this.cfg.logger.info(`raft ${this.id} ignores ${MessageType[m.type]} from ${m.from} at term ${m.term}: leader ${this.lead} is live (lease)`);
        return;
      }
      if (!pre) this.becomeFollower(m.term, NONE);
    } else if (m.term < this.term) {
      // A pre-candidate with a stale term must learn ours, or it could never catch up.
      if (pre) this.send({ type: respType, to: m.from, term: this.term, reject: true });
      return;
    }
    const canVote =
      this.vote === m.from ||
      (this.vote === NONE && this.lead === NONE) ||
      (pre && m.term > this.term);
    if (canVote && this.raftLog.isUpToDate(m.index, m.logTerm)) {
      this.send({ type: respType, to: m.from, term: m.term });
      if (!pre) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: respType, to: m.from, term: this.term, reject: true });
    }
  }

  // ---- step -------------------------------------------------------------------------------------

  step(m: Message): void {
    if ((m.type === MessageType.Vote || m.type === MessageType.PreVote) && m.term !== 0) {
      this.handleVoteRequest(m);
      return;
    }
    if (m.term === 0) {
      // local message (or a term-less forwarded proposal / read request)
    } else if (m.term > this.term) {
      if (m.type === MessageType.PreVoteResp && !m.reject) {
        // A granted pre-vote is for term+1; we move there only after winning the pre-election.
      } else if (m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, NONE);
      }
    } else if (m.term < this.term) {
      if (m.type === MessageType.App || m.type === MessageType.Heartbeat) {
        // A leader of an older term must learn ours and step down (Raft §5.1), in every mode.
        // etcd answers only under CheckQuorum or PreVote and otherwise counts on our higher-term
        // MsgVote reaching the leader's voters; it does not when we campaign in a configuration
        // the cluster has left (we never learnt a joint change): our votes go only to removed
        // nodes and, unanswered, the leader would keep its term and never bring us up to date
        // (raft/sim FINDINGS #4b, seed 5354).
        this.send({ type: MessageType.AppResp, to: m.from });
      } else {
        this.cfg.logger.info(`raft ${this.id} ignores stale ${MessageType[m.type]} from ${m.from} (term ${m.term} < ${this.term})`);
      }
      return;
    }

    switch (m.type) {
      case MessageType.Hup:
        this.hup(this.cfg.preVote ? 'pre-election' : 'election');
        return;
      case MessageType.ReadIndexResp: {
        // Only the answer to a read this node forwarded and still waits for counts; anything else
        // was settled here already (failed when the leader changed, or expired).
        const k = contextKey(m.context ?? EMPTY);
        if (!this.forwardedReads.delete(k)) {
          this.cfg.logger.info(`raft ${this.id} ignores MsgReadIndexResp from ${m.from}: no forwarded read with that context is waiting`);
          return;
        }
        // Valid in any role: the index was confirmed by the leader that answered.
        if (m.reject) this.dropRead(m, `node ${m.from} dropped the read (no leader known there, an election in progress, leadership lost before confirming it, or the context was already pending); retry`);
        else this.readStates.push({ index: m.index, context: m.context ?? EMPTY });
        return;
      }
    }
    switch (this.state) {
      case Role.Leader:
        this.stepLeader(m);
        return;
      case Role.Candidate:
      case Role.PreCandidate:
        this.stepCandidate(m);
        return;
      case Role.Follower:
        this.stepFollower(m);
        return;
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case MessageType.Beat:
        this.bcastHeartbeat(this.readOnly.lastPendingContext());
        return;
      case MessageType.CheckQuorum:
        if (!this.trk.quorumActive(this.id)) {
          this.cfg.logger.warn(`raft ${this.id} steps down at term ${this.term}: a quorum was not active within the election timeout`);
          this.becomeFollower(this.term, NONE);
        }
        for (const [id, pr] of this.trk.progress) if (id !== this.id) pr.recentActive = false;
        return;
      case MessageType.Prop:
        this.leaderPropose(m);
        return;
      case MessageType.ReadIndex:
        if (this.trk.isSingleton() && this.isVoter()) {
          this.respondToReadIndex(m, this.raftLog.committed);
          return;
        }
        // Until an entry of this term commits, our commit index may lag the true one (§6.4).
        if (!this.committedEntryInCurrentTerm()) {
          this.pendingReadIndex.push(m);
          return;
        }
        this.serveReadIndex(m);
        return;
    }

    const pr = this.trk.progress.get(m.from);
    if (!pr) {
      if (m.type === MessageType.TransferLeader) this.cfg.logger.warn(`raft ${this.id} refuses leadership transfer to ${m.from}: not a member`);
      return;
    }
    switch (m.type) {
      case MessageType.AppResp:
        this.handleAppendResponse(m, pr);
        return;
      case MessageType.HeartbeatResp: {
        pr.recentActive = true;
        pr.msgAppFlowPaused = false;
        if (pr.match < this.raftLog.lastIndex() || pr.state === 'probe') this.sendAppend(m.from);
        if (this.cfg.readOnly !== 'safe' || !m.context || m.context.length === 0) return;
        const acks = this.readOnly.recvAck(m.from, m.context);
        if (!acks) return;
        acks.set(this.id, true);
        if (this.trk.voteResult(acks) === 'won') {
          for (const rs of this.readOnly.advance(m.context)) this.respondToReadIndex(rs.req, rs.index);
        }
        return;
      }
      case MessageType.SnapStatus:
        if (pr.state !== 'snapshot') return;
        if (m.reject) pr.pendingSnapshot = 0;
        pr.becomeProbe();
        // Wait for an AppResp or heartbeat answer before the next probe.
        pr.msgAppFlowPaused = true;
        return;
      case MessageType.Unreachable:
        if (pr.state === 'replicate') pr.becomeProbe();
        return;
      case MessageType.TransferLeader: {
        if (pr.isLearner) {
          this.cfg.logger.warn(`raft ${this.id} refuses leadership transfer to learner ${m.from}`);
          return;
        }
        const to = m.from;
        if (this.leadTransferee !== NONE) {
          if (this.leadTransferee === to) return;
          this.abortLeaderTransfer();
        }
        if (to === this.id) return;
        this.electionElapsed = 0; // the transfer gets one election timeout
        this.leadTransferee = to;
        this.cfg.logger.info(`raft ${this.id} starts leadership transfer to ${to}`);
        if (pr.match === this.raftLog.lastIndex()) this.sendTimeoutNow(to);
        else this.sendAppend(to);
        return;
      }
    }
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    if (m.reject) {
      let next = m.rejectHint;
      // The follower told us its term at rejectHint: skip every entry of ours above it with a
      // larger term in one go.
      if (m.logTerm > 0) next = this.raftLog.findConflictByTerm(m.rejectHint, m.logTerm).index;
      if (pr.maybeDecrTo(m.index, next)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(m.from);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    if (pr.maybeUpdate(m.index) || (pr.match === m.index && pr.state === 'probe')) {
      if (pr.state === 'probe') pr.becomeReplicate();
      else if (pr.state === 'snapshot' && pr.match + 1 >= this.raftLog.firstIndex()) {
        // The follower caught up past our compaction point: entries can flow again.
        pr.becomeProbe();
        pr.becomeReplicate();
      } else if (pr.state === 'replicate') pr.inflights.freeLE(m.index);

      if (this.maybeCommit()) {
        this.releasePendingReadIndex();
        this.bcastAppend();
        if (this.maybeRetire()) return;
      } else if (m.from !== this.id && wasPaused) {
        this.sendAppend(m.from);
      }
      if (m.from !== this.id) while (this.maybeSendAppend(m.from, false)) { /* fill the window */ }
      if (m.from === this.leadTransferee && pr.match === this.raftLog.lastIndex()) {
        this.cfg.logger.info(`raft ${this.id} sends MsgTimeoutNow to ${m.from}: its log is up to date`);
        this.sendTimeoutNow(m.from);
      }
    }
  }

  private leaderPropose(m: Message): void {
    invariant(m.entries.length > 0, `stepped empty MsgProp from ${m.from}`);
    const fwd = m.from !== this.id && m.from !== NONE ? ` (forwarded from ${m.from})` : '';
    if (!this.isVoter()) {
      this.dropProposal(m.entries, `this leader is not a voter (removed, demoted, or a learner handing over) and is stepping down${fwd}`);
      return;
    }
    if (this.leadTransferee !== NONE) {
      this.dropProposal(m.entries, `leadership transfer to node ${this.leadTransferee} is in progress${fwd}`);
      return;
    }
    const accepted: Entry[] = [];
    let confIndex = 0;
    for (const e of m.entries) {
      if (e.type === EntryType.ConfChange) {
        const refused = this.refuseConfChange(e);
        if (refused) {
          this.dropProposal([e], refused + fwd);
          continue;
        }
        confIndex = this.raftLog.lastIndex() + accepted.length + 1;
      }
      accepted.push(e);
    }
    if (accepted.length === 0) return;
    if (!this.appendEntry(accepted)) {
      this.dropProposal(accepted, `too many uncommitted bytes at the leader (maxUncommittedBytes ${this.cfg.maxUncommittedBytes})${fwd}`);
      return;
    }
    if (confIndex) this.pendingConfIndex = confIndex;
    this.bcastAppend();
  }

  /** Why a conf change proposal can't be appended now, or undefined if it can. */
  private refuseConfChange(e: Entry): string | undefined {
    let cc: ConfChange;
    try {
      cc = decodeConfChange(e.data);
    } catch (err) {
      return `invalid conf change entry: ${(err as Error).message}`;
    }
    if (this.pendingConfIndex > this.raftLog.applied) {
      return `conf change at index ${this.pendingConfIndex} is not applied yet (applied ${this.raftLog.applied}); only one may be pending`;
    }
    try {
      applyChange(this.trk.config, this.trk.progress, cc, { lastIndex: this.raftLog.lastIndex(), maxInflight: this.cfg.maxInflightMsgs });
    } catch (err) {
      if (err instanceof ConfChangeError) return `conf change refused: ${err.message}`;
      throw err;
    }
    return undefined;
  }

  private stepCandidate(m: Message): void {
    const myResp = this.state === Role.PreCandidate ? MessageType.PreVoteResp : MessageType.VoteResp;
    switch (m.type) {
      case MessageType.Prop:
        this.dropProposal(m.entries, 'no leader: an election is in progress');
        return;
      case MessageType.ReadIndex:
        // A read forwarded to us is answered to its asker, whose host alone knows the context.
        this.rejectRead(m, 'no leader: an election is in progress');
        return;
      case MessageType.App:
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case myResp: {
        const res = this.poll(m.from, m.type, !m.reject);
        if (res === 'won') {
          if (this.state === Role.PreCandidate) this.campaign('election');
          else {
            this.becomeLeader();
            this.bcastAppend();
          }
        } else if (res === 'lost') {
          // Pre-vote and vote rejections with a higher term moved our term already in step().
          this.becomeFollower(this.term, NONE);
        }
        return;
      }
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.Prop:
        if (this.lead === NONE) {
          this.dropProposal(m.entries, 'no leader is known');
        } else if (this.cfg.disableProposalForwarding) {
          this.dropProposal(m.entries, `proposal forwarding is disabled; propose at the leader (node ${this.lead})`);
        } else {
          this.send({ ...m, to: this.lead, term: 0 });
        }
        return;
      case MessageType.App:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case MessageType.TransferLeader:
        if (this.lead === NONE) {
          this.cfg.logger.warn(`raft ${this.id} has no leader to forward the transfer request of ${m.from} to`);
          return;
        }
        this.send({ ...m, to: this.lead, term: 0 });
        return;
      case MessageType.TimeoutNow:
        this.cfg.logger.info(`raft ${this.id} received MsgTimeoutNow from ${m.from}: campaigning for leadership transfer`);
        // A transfer never uses pre-vote: the leader itself asked for it.
        this.hup('transfer');
        return;
      case MessageType.ReadIndex:
        if (this.lead === NONE) {
          // A read forwarded here (our leader just stepped down, or a stale leader hint) goes
          // back to its asker, whose host alone knows the context (raft/sim FINDINGS #4b).
          this.rejectRead(m, 'no leader is known');
          return;
        }
        if (m.from === this.id) this.forwardOwnRead(m);
        else this.send({ ...m, to: this.lead, term: 0 }); // its asker tracks it
        return;
    }
  }

  // ---- replication ------------------------------------------------------------------------------

  private appendEntry(es: Entry[]): boolean {
    let li = this.raftLog.lastIndex();
    const ents = es.map((e, i) => ({ term: this.term, index: li + 1 + i, type: e.type, data: e.data }));
    if (!this.increaseUncommittedSize(ents)) return false;
    li = this.raftLog.append(ents);
    // Self-ack, delivered only once these entries are durable.
    this.send({ type: MessageType.AppResp, to: this.id, index: li });
    return true;
  }

  private increaseUncommittedSize(ents: Entry[]): boolean {
    const s = payloadBytes(ents);
    const max = this.cfg.maxUncommittedBytes;
    // Always admit one proposal into an empty budget, however large, so progress is possible.
    if (max > 0 && this.uncommittedSize > 0 && s > 0 && this.uncommittedSize + s > max) return false;
    this.uncommittedSize += s;
    return true;
  }

  reduceUncommittedSize(ents: Entry[]): void {
    if (this.state !== Role.Leader) return;
    const s = payloadBytes(ents);
    this.uncommittedSize = s > this.uncommittedSize ? 0 : this.uncommittedSize - s;
  }

  private bcastAppend(): void {
    for (const id of this.trk.progress.keys()) if (id !== this.id) this.sendAppend(id);
  }

  private sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  /** Sends entries (or, if sendIfEmpty, an empty MsgApp carrying commit) unless paused. */
  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.trk.progress.get(to);
    if (!pr || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    let prevTerm: number;
    let ents: Entry[] = [];
    try {
      prevTerm = this.raftLog.term(prevIndex);
      // A throttled replicate stream only sends empty MsgApps, so lost acks cannot stall it.
      if (pr.state !== 'replicate' || !pr.inflights.full()) ents = this.raftLog.entries(pr.next, this.cfg.maxSizePerMsg);
    } catch (e) {
      if (e instanceof CompactedError) return this.maybeSendSnapshot(to, pr);
      if (e instanceof UnavailableError) throw new RaftInvariantError(`progress of ${to} has next ${pr.next} beyond lastIndex ${this.raftLog.lastIndex()} + 1`);
      throw e;
    }
    if (ents.length === 0 && !sendIfEmpty) return false;
    this.send({ type: MessageType.App, to, index: prevIndex, logTerm: prevTerm, entries: ents, commit: this.raftLog.committed });
    let bytes = 0;
    for (const e of ents) bytes += entryBytes(e);
    pr.sentEntries(ents.length, bytes);
    return true;
  }

  private maybeSendSnapshot(to: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) {
      this.cfg.logger.info(`raft ${this.id} skips sending a snapshot to ${to}: not recently active`);
      return false;
    }
    const snap = this.raftLog.snapshot();
    invariant(
      snap.meta.index > 0,
      `node ${to} needs entry ${pr.next} which is compacted, but storage has no snapshot (call createSnapshot before compact)`,
    );
    pr.becomeSnapshot(snap.meta.index);
    this.cfg.logger.info(`raft ${this.id} sends snapshot ${snap.meta.index}/${snap.meta.term} to ${to}`);
    this.send({ type: MessageType.Snap, to, snapshot: snap });
    return true;
  }

  private bcastHeartbeat(ctx: Uint8Array | undefined): void {
    for (const [id, pr] of this.trk.progress) {
      if (id === this.id) continue;
      // Never tell a follower to commit beyond what it is known to hold.
      const commit = Math.min(pr.match, this.raftLog.committed);
      this.send({ type: MessageType.Heartbeat, to: id, commit, context: ctx });
    }
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send({ type: MessageType.TimeoutNow, to });
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = NONE;
  }

  /** Advances commit to what a quorum holds, but only for an entry of the current term (§5.4.2). */
  protected maybeCommit(): boolean {
    return this.raftLog.maybeCommit(this.trk.committed(), this.term);
  }

  /** Follower side of MsgApp: check (index, logTerm), append, advance commit, answer. */
  protected handleAppendEntries(m: Message): void {
    if (m.index < this.raftLog.committed) {
      // Everything up to commit is known to match: just say how far we are.
      this.send({ type: MessageType.AppResp, to: m.from, index: this.raftLog.committed });
      return;
    }
    const last = this.raftLog.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (last !== undefined) {
      this.send({ type: MessageType.AppResp, to: m.from, index: last });
      return;
    }
    // Mismatch: hint the largest index whose term is <= the leader's term at m.index, so the
    // leader can skip a whole run of conflicting entries per round trip.
    const hint = this.raftLog.findConflictByTerm(Math.min(m.index, this.raftLog.lastIndex()), m.logTerm);
    this.cfg.logger.info(`raft ${this.id} rejects MsgApp ${m.logTerm}/${m.index} from ${m.from}; hint ${hint.index}/${hint.term}`);
    this.send({ type: MessageType.AppResp, to: m.from, index: m.index, reject: true, rejectHint: hint.index, logTerm: hint.term });
  }

  private handleHeartbeat(m: Message): void {
    this.raftLog.commitTo(m.commit);
    this.send({ type: MessageType.HeartbeatResp, to: m.from, context: m.context });
  }

  /** Follower receiving MsgSnap: restore from it if it is newer than our commit, then answer. */
  protected handleSnapshot(m: Message): void {
    invariant(m.snapshot, `MsgSnap from ${m.from} carries no snapshot`);
    const s = m.snapshot;
    if (this.restore(s)) {
      this.cfg.logger.info(`raft ${this.id} restored snapshot ${s.meta.index}/${s.meta.term} from ${m.from}`);
      this.send({ type: MessageType.AppResp, to: m.from, index: this.raftLog.lastIndex() });
    } else {
      this.send({ type: MessageType.AppResp, to: m.from, index: this.raftLog.committed });
    }
  }

  private restore(s: Snapshot): boolean {
    if (s.meta.index <= this.raftLog.committed) return false;
    if (this.state !== Role.Follower) {
      // Only a follower restores; anything else is a bug that we recover from by stepping down.
      this.cfg.logger.warn(`raft ${this.id} as ${this.state} got a snapshot; stepping down to term ${this.term + 1}`);
      this.becomeFollower(this.term + 1, NONE);
      return false;
    }
    const cs = s.meta.conf;
    // Unlike etcd we install a snapshot whose config does not list us: that is a node that joined
    // after the snapshot was taken, and it learns its membership from the entries that follow.
    // Nothing here needs us in the config (we cannot campaign until we are a voter).
    if (![cs.voters, cs.learners, cs.votersOutgoing].some((l) => l.includes(this.id))) {
      this.cfg.logger.info(`raft ${this.id} installs snapshot ${s.meta.index} that predates its own membership`);
    }
    if (this.raftLog.matchTerm(s.meta.index, s.meta.term)) {
      // We already have the entry: fast-forward commit instead of replacing the log.
      this.raftLog.commitTo(s.meta.index);
      return false;
    }
    if (this.raftLog.applying > this.raftLog.applied) {
      // The host is applying committed entries we handed out (possibly a ConfChange it must pass
      // to applyConfChange against the current config). Replacing the state now would pull the
      // config from under it; answer as for a stale snapshot and let the leader send it again.
      this.cfg.logger.info(`raft ${this.id} defers snapshot ${s.meta.index}: entries up to ${this.raftLog.applying} are being applied`);
      return false;
    }
    const conf = configFromConfState(cs);
    this.raftLog.restore(s);
    const progress = new Map<NodeId, Progress>();
    const last = this.raftLog.lastIndex();
    for (const id of [...conf.incoming, ...conf.outgoing, ...conf.learners, ...conf.learnersNext]) {
      if (!progress.has(id)) progress.set(id, new ProgressClass(0, last + 1, this.cfg.maxInflightMsgs, conf.learners.has(id)));
    }
    this.switchToConfig(conf, progress);
    return true;
  }

  // ---- ReadIndex --------------------------------------------------------------------------------

  private committedEntryInCurrentTerm(): boolean {
    return this.raftLog.termOrZero(this.raftLog.committed) === this.term;
  }

  private releasePendingReadIndex(): void {
    if (this.pendingReadIndex.length === 0 || !this.committedEntryInCurrentTerm()) return;
    const waiting = this.pendingReadIndex;
    this.pendingReadIndex = [];
    for (const m of waiting) this.serveReadIndex(m);
  }

  private serveReadIndex(m: Message): void {
    if (this.cfg.readOnly === 'safe') {
      if (!this.readOnly.addRequest(this.raftLog.committed, m)) {
        // Answering it with the pending one's (older) index could miss a write that completed
        // in between, so it is refused: read contexts must be unique across the cluster.
        this.rejectRead(m, 'a read with the same context is already pending at the leader; use contexts unique across the cluster');
        return;
      }
      this.readOnly.recvAck(this.id, m.context);
      this.bcastHeartbeat(m.context);
    } else {
      // Lease: CheckQuorum guarantees no other leader exists within our election timeout.
      this.respondToReadIndex(m, this.raftLog.committed);
    }
  }

  private respondToReadIndex(req: Message, index: number): void {
    if (req.from === NONE || req.from === this.id) {
      this.readStates.push({ index, context: req.context ?? EMPTY });
    } else {
      this.send({ type: MessageType.ReadIndexResp, to: req.from, index, context: req.context });
    }
  }

  // ---- membership -------------------------------------------------------------------------------

  /** Applies a committed ConfChange; throws ConfChangeError (state untouched) if it is invalid here. */
  applyConfChange(cc: ConfChange): CoreConfState {
    const r = applyChange(this.trk.config, this.trk.progress, cc, { lastIndex: this.raftLog.lastIndex(), maxInflight: this.cfg.maxInflightMsgs });
    return this.switchToConfig(r.config, r.progress);
  }

  private switchToConfig(config: TrackerConfig, progress: Map<NodeId, Progress>): CoreConfState {
    this.trk.config = config;
    this.trk.progress = progress;
    const cs = toConfState(config);
    const pr = progress.get(this.id);
    this.isLearner = !!pr && pr.isLearner;
    if (this.state !== Role.Leader || config.incoming.size === 0) return cs;
    // A leader removed (or demoted) by this change steps down once nothing in its log awaits
    // commit; until then it keeps replicating (refusing proposals) so the remaining voters learn
    // that the change committed (stepping down at once could leave them unable to elect anyone).
    if (this.maybeRetire()) return cs;
    // The quorum changed: commit may move, and new members need their first MsgApp.
    if (this.maybeCommit()) {
      this.releasePendingReadIndex();
      this.bcastAppend();
      if (this.maybeRetire()) return cs;
    } else {
      for (const id of progress.keys()) if (id !== this.id) this.maybeSendAppend(id, false);
    }
    if (this.leadTransferee !== NONE && !this.trk.isVoter(this.leadTransferee)) this.abortLeaderTransfer();
    return cs;
  }

  /** Called after the host applied entries up to raftLog.applied (RawNode.advance). */
  afterApplied(): void {
    if (this.state === Role.Leader && this.trk.config.autoLeave && this.raftLog.applied >= this.pendingConfIndex) {
      const leave = encodeConfChange({ transition: ConfChangeTransition.Auto, changes: [], context: EMPTY });
      const ok = this.appendEntry([{ term: 0, index: 0, type: EntryType.ConfChange, data: leave }]);
      invariant(ok, 'the empty auto-leave conf change was refused');
      this.pendingConfIndex = this.raftLog.lastIndex();
      this.cfg.logger.info(`raft ${this.id} proposes leaving the joint config at index ${this.pendingConfIndex}`);
      this.bcastAppend();
    }
  }

  // ---- status -----------------------------------------------------------------------------------

  status(): Status {
    const s: Status = {
      id: this.id,
      term: this.term,
      vote: this.vote,
      commit: this.raftLog.committed,
      applied: this.raftLog.applied,
      lead: this.lead,
      role: this.state,
      conf: toConfState(this.trk.config),
      leadTransferee: this.leadTransferee,
    };
    if (this.state === Role.Leader) {
      s.progress = new Map();
      for (const [id, pr] of this.trk.progress) {
        s.progress.set(id, {
          match: pr.match,
          next: pr.next,
          state: pr.state,
          isLearner: pr.isLearner,
          recentActive: pr.recentActive,
          inflight: pr.inflights.count,
        });
      }
    }
    return s;
  }
}

