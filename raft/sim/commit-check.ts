// "A committed entry is final": checked at the moment a leader advances its commit index, instead
// of waiting for a later leader to overwrite the entry (which needs a rare run of faults, e.g.
// Figure 8 of the Raft paper). Raft's Leader Completeness argument says: once index c is
// committed, a quorum holds it durably, and every node that could still win an election holds it
// too (a voter holding c grants its vote only to a log at least as up to date as its own, and
// such a log contains c). So, when a leader commits c, for every node N whose log (durable, or
// in memory if it is up) lacks c: N must not be able to gather a quorum of its own configuration
// from voters whose logs are no more up to date than N's, taking each voter's least up-to-date
// log (what it may restart with, or what it holds now). If N could, c could be lost: a leader
// that committed by counting an old-term entry, its own unpersisted entries, a stale ack, a
// learner or too small a quorum is caught right there. Each log is paired with the configuration
// the node would campaign with when running that log (campaign-conf.ts): the one of its commit
// index, in memory or on disk, since the core applies committed conf changes before campaigning.
import type { ConfState, NodeId } from '../types.js';

/** A (term, index) position at the end of a log. */
export interface LogEnd {
  term: number;
  index: number;
}

export interface NodeLogs {
  id: NodeId;
  /** The configuration it would campaign with from its log on disk (of its durable commit index). */
  durableConf: ConfState;
  /** The configuration it would campaign with from its log in memory (of its commit index; unused if down). */
  volatileConf: ConfState;
  durable: LogEnd;
  /** Its log in memory (null if the node is down). */
  volatile: LogEnd | null;
  /** Whether each of its logs holds the committed entry (a snapshot at or past it counts). */
  durableHolds: boolean;
  volatileHolds: boolean;
}

function fmt(c: ConfState): string {
  const v = `{${c.voters.join(',')}}`;
  return c.votersOutgoing.length > 0 ? `${v} & {${c.votersOutgoing.join(',')}}` : v;
}

function le(a: LogEnd, b: LogEnd): boolean {
  return a.term < b.term || (a.term === b.term && a.index <= b.index);
}

function minEnd(n: NodeLogs): LogEnd {
  return n.volatile && le(n.volatile, n.durable) ? n.volatile : n.durable;
}

/** Could `cand` (a log ending at `end`) win an election in its configuration? Returns the voters it would win with. */
function couldWin(cand: NodeLogs, conf: ConfState, end: LogEnd, byId: Map<NodeId, NodeLogs>): NodeId[] | null {
  const halves = [conf.voters, conf.votersOutgoing].filter((h) => h.length > 0);
  if (conf.voters.length === 0) return null;
  const grants = new Set<NodeId>();
  for (const half of halves) {
    let yes = 0;
    for (const v of half) {
      const n = byId.get(v);
      const grant = v === cand.id || (n !== undefined && le(minEnd(n), end));
      if (grant) {
        yes++;
        grants.add(v);
      }
    }
    if (yes < Math.floor(half.length / 2) + 1) return null;
  }
  return [...grants].sort((a, b) => a - b);
}

/**
 * Returns undefined if the entry is final, or a description of a node that lacks it and could
 * still be elected. `nodes` are the nodes that may still run (not shut down for good).
 */
export function commitCouldBeLost(nodes: NodeLogs[]): string | undefined {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  for (const n of nodes) {
    const candidates: [string, LogEnd, ConfState][] = [];
    if (!n.durableHolds) candidates.push(['its durable log', n.durable, n.durableConf]);
    if (n.volatile && !n.volatileHolds) candidates.push(['its log in memory', n.volatile, n.volatileConf]);
    for (const [which, end, conf] of candidates) {
      const q = couldWin(n, conf, end, byId);
      if (q) return `node ${n.id} lacks it (${which} ends at ${end.index}/${end.term}) and could be elected by {${q.join(',')}} in ${fmt(conf)}`;
    }
  }
  return undefined;
}
