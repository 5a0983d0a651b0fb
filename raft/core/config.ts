// RaftConfig and its defaults, in one place. The defaults follow etcd (DESIGN.md §7): a tick is
// the host's heartbeat interval (100 ms in shoal), so heartbeatTick 1 and electionTick 10 give a
// randomized 10–20 tick (1–2 s) election timeout.
import type { NodeId, Storage } from '../types.js';

export interface RaftConfig {
  /** This node's id, > 0. */
  id: NodeId;
  /** Read-only for the core; the host updates it after persisting each Ready. */
  storage: Storage;
  /** PRNG in [0,1), injected so runs are deterministic. */
  random: () => number;
  /** Election timeout in ticks; the effective timeout is drawn from [electionTick, 2*electionTick-1]. */
  electionTick?: number;
  /** Leader heartbeat interval in ticks; must be < electionTick. */
  heartbeatTick?: number;
  /** Run a pre-vote round (term+1 without bumping the term) before a real election. */
  preVote?: boolean;
  /** The leader steps down when it has not heard from a quorum within an election timeout. */
  checkQuorum?: boolean;
  /** 'safe': ReadIndex with a heartbeat round; 'lease': answer from the leader's lease (needs checkQuorum). */
  readOnly?: 'safe' | 'lease';
  /** Bytes of entries per MsgApp (see entryBytes); at least one entry is always sent. */
  maxSizePerMsg?: number;
  /** In-flight MsgApps per follower in replicate state. */
  maxInflightMsgs?: number;
  /** Leader: bytes of uncommitted entry data above which proposals are dropped. 0 = unlimited. */
  maxUncommittedBytes?: number;
  /** Followers drop proposals instead of forwarding them to the leader. */
  disableProposalForwarding?: boolean;
  /** Last applied index on restart. */
  applied?: number;
  logger?: { info(msg: string): void; warn(msg: string): void };
}

export type Tunables = Required<Omit<RaftConfig, 'id' | 'storage' | 'random' | 'applied' | 'logger'>>;

export const DEFAULTS: Tunables = Object.freeze({
  electionTick: 10,
  heartbeatTick: 1,
  preVote: true,
  checkQuorum: true,
  readOnly: 'safe',
  maxSizePerMsg: 1024 * 1024,
  maxInflightMsgs: 256,
  maxUncommittedBytes: 0,
  disableProposalForwarding: false,
}) as Tunables;

export interface ResolvedConfig extends Tunables {
  id: NodeId;
  storage: Storage;
  random: () => number;
  applied: number;
  logger: { info(msg: string): void; warn(msg: string): void };
}

const silent = { info() {}, warn() {} };

function isInt(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n);
}

/** Fills in defaults and throws a clear error for any invalid setting. */
export function resolveConfig(c: RaftConfig): ResolvedConfig {
  if (c === null || typeof c !== 'object') throw new TypeError('raft config must be an object');
  const r: ResolvedConfig = {
    ...DEFAULTS,
    ...Object.fromEntries(Object.entries(c).filter(([, v]) => v !== undefined)),
    id: c.id,
    storage: c.storage,
    random: c.random,
    applied: c.applied ?? 0,
    logger: c.logger ?? silent,
  } as ResolvedConfig;
  if (!isInt(r.id) || r.id <= 0) throw new RangeError(`raft config: id must be a positive integer, got ${String(c.id)}`);
  if (!r.storage || typeof r.storage.initialState !== 'function') throw new TypeError('raft config: storage must implement Storage (e.g. new MemoryStorage())');
  if (typeof r.random !== 'function') throw new TypeError('raft config: random must be a function returning a number in [0,1)');
  if (!isInt(r.heartbeatTick) || r.heartbeatTick <= 0) throw new RangeError(`raft config: heartbeatTick must be a positive integer, got ${String(r.heartbeatTick)}`);
  if (!isInt(r.electionTick) || r.electionTick <= r.heartbeatTick) {
    throw new RangeError(`raft config: electionTick (${String(r.electionTick)}) must be an integer greater than heartbeatTick (${r.heartbeatTick}); etcd suggests 10x`);
  }
  if (!isInt(r.maxSizePerMsg) || r.maxSizePerMsg < 0) throw new RangeError(`raft config: maxSizePerMsg must be an integer >= 0, got ${String(r.maxSizePerMsg)}`);
  if (!isInt(r.maxInflightMsgs) || r.maxInflightMsgs <= 0) throw new RangeError(`raft config: maxInflightMsgs must be a positive integer, got ${String(r.maxInflightMsgs)}`);
  if (!isInt(r.maxUncommittedBytes) || r.maxUncommittedBytes < 0) throw new RangeError(`raft config: maxUncommittedBytes must be an integer >= 0 (0 = unlimited), got ${String(r.maxUncommittedBytes)}`);
  if (!isInt(r.applied) || r.applied < 0) throw new RangeError(`raft config: applied must be an integer >= 0, got ${String(r.applied)}`);
  if (r.readOnly !== 'safe' && r.readOnly !== 'lease') throw new RangeError(`raft config: readOnly must be 'safe' or 'lease', got ${String(r.readOnly)}`);
  if (r.readOnly === 'lease' && !r.checkQuorum) {
    throw new RangeError("raft config: readOnly 'lease' requires checkQuorum: true (a lease is only safe if a leader that lost its quorum steps down)");
  }
  return r;
}
