// Errors a caller of the replicated node can get, each telling whether the write may still have
// happened (only UnknownOutcomeError leaves that open).
import type { NodeId } from '../../raft/types.js';

export class NotLeaderError extends Error {
  constructor(readonly leader: NodeId) {
    super(leader ? `this manager is not the raft leader; send writes to manager ${leader}` : 'the cluster has no raft leader right now (election in progress or no quorum); retry shortly');
    this.name = 'NotLeaderError';
  }
}

/** The proposal was refused before it entered the log: it will never apply. */
export class ProposalDroppedError extends Error {
  constructor(reason: string, readonly leader: NodeId) {
    super(`the proposal was dropped by raft (${reason}); it was not applied, retry it`);
    this.name = 'ProposalDroppedError';
  }
}

/** The proposal may or may not commit later (timeout, leadership lost after it was appended). */
export class UnknownOutcomeError extends Error {
  constructor(why: string) {
    super(`the write's outcome is unknown (${why}); read the object to find out before retrying`);
    this.name = 'UnknownOutcomeError';
  }
}

export class ReadTimeoutError extends Error {
  constructor(ms: number, reason?: string) {
    super(reason ? `the linearizable read was dropped by raft (${reason}); retry, or ask for a stale read` : `no linearizable read point within ${ms} ms (no leader or no quorum); retry, or ask for a stale read`);
    this.name = 'ReadTimeoutError';
  }
}

export class StoppedError extends Error {
  constructor() {
    super('the manager is shutting down');
    this.name = 'StoppedError';
  }
}
