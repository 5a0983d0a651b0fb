// Quorum math for majority and joint configurations (etcd's quorum package, our own code).
// A joint configuration needs a majority of the incoming AND of the outgoing voters; an empty
// outgoing half is "no constraint", which is why an empty majority commits everything and wins
// every vote.
import type { NodeId } from '../types.js';

export type VoteResult = 'won' | 'lost' | 'pending';

/** The highest index a majority of `voters` has acknowledged (Infinity for an empty set). */
export function majorityCommitted(voters: ReadonlySet<NodeId>, matchOf: (id: NodeId) => number | undefined): number {
  if (voters.size === 0) return Infinity;
  const m: number[] = [];
  for (const id of voters) m.push(matchOf(id) ?? 0);
  m.sort((a, b) => b - a);
  // With n voters, the q-th largest (q = n/2+1) is acknowledged by at least q of them.
  return m[Math.floor(voters.size / 2)];
}

export function majorityVote(voters: ReadonlySet<NodeId>, votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  if (voters.size === 0) return 'won';
  let yes = 0;
  let missing = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === undefined) missing++;
    else if (v) yes++;
  }
  const q = Math.floor(voters.size / 2) + 1;
  if (yes >= q) return 'won';
  if (yes + missing >= q) return 'pending';
  return 'lost';
}

export interface JointVoters {
  incoming: ReadonlySet<NodeId>;
  outgoing: ReadonlySet<NodeId>;
}

export function jointCommitted(v: JointVoters, matchOf: (id: NodeId) => number | undefined): number {
  return Math.min(majorityCommitted(v.incoming, matchOf), majorityCommitted(v.outgoing, matchOf));
}

export function jointVote(v: JointVoters, votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  const a = majorityVote(v.incoming, votes);
  const b = majorityVote(v.outgoing, votes);
  if (a === b) return a;
  if (a === 'lost' || b === 'lost') return 'lost';
  return 'pending';
}
