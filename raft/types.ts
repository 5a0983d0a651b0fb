// The data types of shoal's Raft: what the pure core consumes and produces, what storage persists
// and what the transport carries. They are interface facts shared by raft/core, raft/storage,
// raft/transport and manager/store: change them only additively.
//
// Conventions (as in etcd-io/raft): node ids are positive integers and 0 means "none"; log
// indexes start at 1 and index 0 / term 0 is the empty log's sentinel.

export type NodeId = number;
export const NONE: NodeId = 0;

export enum EntryType {
  /** An application command (data may be empty: the no-op a new leader appends). */
  Normal = 0,
  /** A membership change: data is an encoded ConfChange (see raft/confchange codec). */
  ConfChange = 1,
}

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  data: Uint8Array;
}

/** What must be on disk before a node may vote, acknowledge or report a commit. */
export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

/**
 * The membership. In a joint configuration `votersOutgoing` is non-empty and decisions need a
 * majority of both `voters` and `votersOutgoing`. `learnersNext` are voters of the outgoing
 * config that become learners when the joint config is left.
 */
export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
  votersOutgoing: NodeId[];
  learnersNext: NodeId[];
  /** Leave the joint config automatically once it is committed. */
  autoLeave: boolean;
  /** Ids removed from the cluster, never to be reused (the core refuses to re-add them). */
  removed?: NodeId[];
}

export interface SnapshotMeta {
  index: number;
  term: number;
  conf: ConfState;
}

export interface Snapshot {
  meta: SnapshotMeta;
  /** The application's state machine at meta.index, opaque to raft. */
  data: Uint8Array;
}

export enum ConfChangeType {
  AddVoter = 0,
  AddLearner = 1,
  RemoveNode = 2,
}

export interface ConfChangeSingle {
  type: ConfChangeType;
  nodeId: NodeId;
}

export enum ConfChangeTransition {
  /** One single-voter change is applied directly; anything larger goes through joint consensus and leaves it automatically. */
  Auto = 0,
  /** Always joint; leave automatically. */
  JointImplicit = 1,
  /** Always joint; the application proposes an empty ConfChange to leave. */
  JointExplicit = 2,
}

/** A membership change proposal. An empty `changes` list means "leave the joint config". */
export interface ConfChange {
  transition: ConfChangeTransition;
  changes: ConfChangeSingle[];
  /** Opaque to raft; e.g. the new member's address. */
  context: Uint8Array;
}

export enum MessageType {
  // Local messages: stepped by the host into its own node, never sent on the wire.
  Hup = 0,
  Beat = 1,
  /** A proposal: stepped locally, and also sent on the wire when a follower forwards it to the leader. */
  Prop = 2,
  CheckQuorum = 3,
  Unreachable = 4,
  SnapStatus = 5,
  // Wire messages. Append-only: the numeric values are protocol.
  App = 10,
  AppResp = 11,
  Vote = 12,
  VoteResp = 13,
  PreVote = 14,
  PreVoteResp = 15,
  Snap = 16,
  Heartbeat = 17,
  HeartbeatResp = 18,
  TransferLeader = 19,
  TimeoutNow = 20,
  ReadIndex = 21,
  ReadIndexResp = 22,
}

export interface Message {
  type: MessageType;
  to: NodeId;
  from: NodeId;
  term: number;
  /** App: term of the entry before `entries`; Vote/PreVote: the candidate's last log term. */
  logTerm: number;
  /** App: index of the entry before `entries`; AppResp: the acknowledged (or rejected) index; Vote: candidate's last index. */
  index: number;
  entries: Entry[];
  commit: number;
  snapshot?: Snapshot;
  reject: boolean;
  /** AppResp on reject: the follower's hint for where the leader should probe next. */
  rejectHint: number;
  /** ReadIndex/Heartbeat: the read request's id, echoed back. */
  context?: Uint8Array;
}

/** A linearizable read may be served once the local applied index reaches `index`. */
export interface ReadState {
  index: number;
  context: Uint8Array;
}

export enum Role {
  Follower = 'follower',
  PreCandidate = 'pre-candidate',
  Candidate = 'candidate',
  Leader = 'leader',
}

export interface SoftState {
  lead: NodeId;
  role: Role;
}

/** A proposal the core refused or lost (not leader and no leader known, transfer in progress...). */
export interface DroppedProposal {
  /** The proposal's data, so the host can match it to a waiting client. */
  data: Uint8Array;
  /** Normal or ConfChange: tells the host how to read `data`. */
  type: EntryType;
  reason: string;
  /** Where to retry, when a leader is known. */
  leader: NodeId;
}

/** A ReadIndex request the core could not serve; `context` is the caller's request id. */
export interface DroppedRead {
  context: Uint8Array;
  reason: string;
  /** Where to retry, when a leader is known (0 otherwise). */
  leader: NodeId;
}

/**
 * What the host must do, in this order:
 *  1. send `messages` (they do not depend on this batch being durable; the leader's MsgApps go
 *     out while it writes its own copy);
 *  2. persist `snapshot`, then `entries` (an entry at index i replaces any persisted entry >= i),
 *     then `hardState`; fsync once if `mustSync`;
 *  3. only then send `messagesAfterPersist` (vote grants, append acks, ...);
 *  4. apply `snapshot` and then `committedEntries` to the state machine;
 *  5. call `advance()`.
 *
 * Relaxation (as etcd's server does): `committedEntries` may be applied, and their clients
 * answered, as soon as the Ready is received, concurrently with step 2. They are committed, so
 * they are already on a quorum of fsynced disks (the leader counts its own ack only after
 * `advance()`), and a crash rebuilds the state machine from snapshot + log. This holds for the
 * entries, `readStates` and dropped proposals/reads only: a received `snapshot` must be persisted
 * before it is applied (the core hands out no committed entries alongside one), and
 * `messagesAfterPersist` still wait for the fsync; `advance()` still comes after everything.
 * A host that applies early must not make applied state durable on its own ahead of the log
 * (e.g. a snapshot of applied state at an index the local log does not hold durably yet).
 */
export interface Ready {
  softState?: SoftState;
  hardState?: HardState;
  entries: Entry[];
  snapshot?: Snapshot;
  committedEntries: Entry[];
  messages: Message[];
  messagesAfterPersist: Message[];
  readStates: ReadState[];
  droppedProposals: DroppedProposal[];
  /** ReadIndex requests that cannot be served (no leader, lost leadership, ...): fail their callers. */
  droppedReads: DroppedRead[];
  mustSync: boolean;
}

/**
 * Stable storage as the core reads it. The core never writes: the host persists each Ready and
 * then updates the storage it handed in.
 */
export interface Storage {
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries [lo, hi), at least one, at most ~maxBytes in total. Throws CompactedError below firstIndex. */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /** Term of entry i; for i = firstIndex - 1 the snapshot's term. Throws CompactedError / UnavailableError. */
  term(i: number): number;
  firstIndex(): number;
  lastIndex(): number;
  /** The latest snapshot (for lagging followers). */
  snapshot(): Snapshot;
}

export class CompactedError extends Error {
  constructor(index: number) {
    super(`raft log index ${index} is compacted into a snapshot; send the snapshot instead`);
    this.name = 'CompactedError';
  }
}

export class UnavailableError extends Error {
  constructor(index: number) {
    super(`raft log index ${index} is not in storage yet`);
    this.name = 'UnavailableError';
  }
}

export function emptyConfState(): ConfState {
  return { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
}
