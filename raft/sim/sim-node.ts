// One simulated host: the RawNode (null while crashed or shut down), its stable storage, the
// KV state machine it applies to, the Ready it is persisting, and the client requests waiting
// on it. The simulator drives it; this is just its state.

import type { CoreReady, MemoryStorage, RawNode } from '../core/index.js';
import { Role, type ConfState, type NodeId } from '../types.js';
import type { ClientRequest } from './clients.js';
import { KvStateMachine } from './kv.js';

export class SimNode {
  rn: RawNode | null = null;
  inc = 0;
  sm = new KvStateMachine();
  conf: ConfState;
  inflight: CoreReady | null = null;
  crashOnPersist = false;
  /** A conf change was applied since the last snapshot: cut a new one (a joiner refuses a snapshot whose conf lacks it). */
  confDirty = false;
  lastCommit = 0;
  retired = false;
  role: Role = Role.Follower;
  term = 0;
  lead: NodeId = 0;
  waitingWrites = new Map<string, ClientRequest>();
  pendingReads = new Map<string, ClientRequest>();
  readyReads: { index: number; req: ClientRequest }[] = [];

  constructor(
    readonly id: NodeId,
    public storage: MemoryStorage,
    readonly tickMs: number,
  ) {
    this.conf = storage.initialState().confState;
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
