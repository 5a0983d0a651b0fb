// Errors the core throws. A RaftInvariantError is etcd's Panicf: the core's own state or the
// host's use of it broke a rule that must never break; the node must not continue.

export class RaftInvariantError extends Error {
  constructor(invariant: string) {
    super(`raft invariant violated: ${invariant}`);
    this.name = 'RaftInvariantError';
  }
}

export function invariant(cond: unknown, what: string): asserts cond {
  if (!cond) throw new RaftInvariantError(what);
}

/** A membership change that cannot be applied to the current configuration. */
export class ConfChangeError extends Error {
  constructor(msg: string) {
    super(msg);
    this.name = 'ConfChangeError';
  }
}

/** Convenience for hosts that turn a Ready.droppedProposals entry into a rejected promise. */
export class ProposalDroppedError extends Error {
  constructor(readonly reason: string, readonly leader: number) {
    super(`raft proposal dropped: ${reason}${leader ? ` (leader is ${leader}; retry there)` : ''}`);
    this.name = 'ProposalDroppedError';
  }
}
