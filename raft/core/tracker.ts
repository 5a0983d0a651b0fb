// The membership as the core tracks it (incoming/outgoing voters, learners) plus one Progress
// per member, and the votes of the current election (etcd's tracker.ProgressTracker).
//
// `removed` is shoal's addition: ids that have left the cluster. They can never be re-added, so a
// stale process with an old id can never rejoin under it. It travels in ConfState as the extra
// field `removed` (see CoreConfState).
import type { ConfState, NodeId } from '../types.js';
import { Progress } from './progress.js';
import { jointCommitted, jointVote, type VoteResult } from './quorum.js';
import { ConfChangeError } from './errors.js';

/** ConfState plus the ids removed from the cluster (persist it with the rest of ConfState). */
export interface CoreConfState extends ConfState {
  removed?: NodeId[];
}

export interface TrackerConfig {
  incoming: Set<NodeId>;
  outgoing: Set<NodeId>;
  learners: Set<NodeId>;
  /** Outgoing voters that become learners when the joint config is left. */
  learnersNext: Set<NodeId>;
  autoLeave: boolean;
  removed: Set<NodeId>;
}

export function emptyTrackerConfig(): TrackerConfig {
  return { incoming: new Set(), outgoing: new Set(), learners: new Set(), learnersNext: new Set(), autoLeave: false, removed: new Set() };
}

export function cloneConfig(c: TrackerConfig): TrackerConfig {
  return {
    incoming: new Set(c.incoming),
    outgoing: new Set(c.outgoing),
    learners: new Set(c.learners),
    learnersNext: new Set(c.learnersNext),
    autoLeave: c.autoLeave,
    removed: new Set(c.removed),
  };
}

const sorted = (s: Iterable<NodeId>) => [...s].sort((a, b) => a - b);

export function isJoint(c: TrackerConfig): boolean {
  return c.outgoing.size > 0;
}

export function toConfState(c: TrackerConfig): CoreConfState {
  return {
    voters: sorted(c.incoming),
    learners: sorted(c.learners),
    votersOutgoing: sorted(c.outgoing),
    learnersNext: sorted(c.learnersNext),
    autoLeave: c.autoLeave,
    removed: sorted(c.removed),
  };
}

/** Builds the tracker config a ConfState describes, checking it is well formed. */
export function configFromConfState(cs: CoreConfState): TrackerConfig {
  const c = emptyTrackerConfig();
  const bad = (why: string) => new ConfChangeError(`invalid ConfState ${JSON.stringify(cs)}: ${why}`);
  for (const id of cs.voters ?? []) c.incoming.add(id);
  for (const id of cs.votersOutgoing ?? []) c.outgoing.add(id);
  for (const id of cs.learners ?? []) c.learners.add(id);
  for (const id of cs.learnersNext ?? []) c.learnersNext.add(id);
  for (const id of cs.removed ?? []) c.removed.add(id);
  c.autoLeave = !!cs.autoLeave;
  for (const id of [...c.incoming, ...c.outgoing, ...c.learners, ...c.learnersNext]) {
    if (!Number.isSafeInteger(id) || id <= 0) throw bad(`node id ${id} is not a positive integer`);
    if (c.removed.has(id)) throw bad(`node ${id} is a member and also listed as removed`);
  }
  for (const id of c.learners) if (c.incoming.has(id) || c.outgoing.has(id)) throw bad(`node ${id} is both a learner and a voter`);
  for (const id of c.learnersNext) {
    if (!c.outgoing.has(id)) throw bad(`learnersNext ${id} is not an outgoing voter`);
    if (c.incoming.has(id)) throw bad(`learnersNext ${id} is also an incoming voter`);
  }
  if (c.autoLeave && c.outgoing.size === 0) throw bad('autoLeave set outside a joint config');
  return c;
}

export class ProgressTracker {
  config: TrackerConfig = emptyTrackerConfig();
  progress = new Map<NodeId, Progress>();
  votes = new Map<NodeId, boolean>();

  constructor(readonly maxInflight: number) {}

  isVoter(id: NodeId): boolean {
    return this.config.incoming.has(id) || this.config.outgoing.has(id);
  }

  /** All voters of the (possibly joint) config, sorted. */
  voterIds(): NodeId[] {
    return sorted(new Set([...this.config.incoming, ...this.config.outgoing]));
  }

  isSingleton(): boolean {
    return this.config.incoming.size === 1 && this.config.outgoing.size === 0;
  }

  committed(): number {
    return jointCommitted(this.config, (id) => this.progress.get(id)?.match);
  }

  resetVotes(): void {
    this.votes = new Map();
  }

  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const [id, pr] of this.progress) {
      if (pr.isLearner) continue;
      const v = this.votes.get(id);
      if (v === undefined) continue;
      if (v) granted++;
      else rejected++;
    }
    return { granted, rejected, result: jointVote(this.config, this.votes) };
  }

  /** The (joint) vote result of an arbitrary set of answers, e.g. ReadIndex heartbeat acks. */
  voteResult(answers: ReadonlyMap<NodeId, boolean>): VoteResult {
    return jointVote(this.config, answers);
  }

  /** Whether a quorum of voters was recently active (the leader counts itself). */
  quorumActive(self: NodeId): boolean {
    const active = new Map<NodeId, boolean>();
    for (const [id, pr] of this.progress) if (!pr.isLearner) active.set(id, id === self || pr.recentActive);
    return jointVote(this.config, active) === 'won';
  }
}
