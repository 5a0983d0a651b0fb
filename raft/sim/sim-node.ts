// One simulated host: the RawNode (null while crashed or shut down), its disk (raft/storage's
// rules, sim-disk.ts), the KV state machine it applies to, the Ready it is handling, and the
// client requests waiting on it. The simulator drives it; this is just its state.

import type { CoreReady, RawNode } from '../core/index.js';
import { Role, type ConfState, type NodeId, type Snapshot } from '../types.js';
import type { ClientRequest } from './clients.js';
import { KvStateMachine } from './kv.js';
import type { SimDisk } from './sim-disk.js';

export class SimNode {
  rn: RawNode | null = null;
  /** The host's life: bumped by a crash, a restart and a shutdown (stale completions are ignored). */
  inc = 0;
  /** Bumped to cancel the pending tick (a restart, a clock stall). */
  tickGen = 0;
  sm = new KvStateMachine();
  conf: ConfState;
  /** The Ready being handled (between ready() and advance()). */
  inflight: CoreReady | null = null;
  crashOnPersist = false;
  /** A conf change was applied since the last snapshot: cut a new one (a joiner refuses a snapshot whose conf lacks it). */
  confDirty = false;
  /** A snapshot of the applied state, taken while applying, to be saved after advance(). */
  dueSnapshot: Snapshot | null = null;
  /** A local snapshot is being written (one at a time, as manager/raftnode). */
  snapshotting = false;
  /** Index of the last local snapshot started. */
  snapStarted = 0;
  lastCommit = 0;
  /** Highest commit index checked by the "commit is final" check, per leader term. */
  checkedCommit = { term: 0, index: 0 };
  /** A leader's commit index as last observed, per term (the commit-own-term check). */
  leaderCommit = { term: 0, index: 0 };
  /** Leader ticks a leadership transfer has been pending (liveness bound). */
  transfer = { to: 0, term: 0, ticks: 0 };
  retired = false;
  role: Role = Role.Follower;
  term = 0;
  lead: NodeId = 0;
  waitingWrites = new Map<string, ClientRequest>();
  pendingReads = new Map<string, ClientRequest | ((ok: boolean) => void)>();
  readyReads: { index: number; req: ClientRequest | ((ok: boolean) => void) }[] = [];

  constructor(
    readonly id: NodeId,
    public disk: SimDisk,
    readonly tickMs: number,
  ) {
    this.conf = disk.store.initialState().confState;
  }

  get up(): boolean {
    return this.rn !== null;
  }
}

export function confMembers(c: ConfState): NodeId[] {
  return [...new Set([...c.voters, ...c.votersOutgoing, ...c.learners, ...c.learnersNext])].sort((a, b) => a - b);
}

export function fmtConf(c: ConfState): string {
  let s = `voters {${[...c.voters].sort((a, b) => a - b).join(',')}}`;
  if (c.votersOutgoing.length) s += ` & {${[...c.votersOutgoing].sort((a, b) => a - b).join(',')}} (joint)`;
  if (c.learners.length) s += ` learners {${[...c.learners].sort((a, b) => a - b).join(',')}}`;
  if (c.learnersNext.length) s += ` learners-next {${c.learnersNext.join(',')}}`;
  return s;
}
