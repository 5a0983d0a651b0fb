// The leader pass decides from the store, so it must not decide again while a write of its own
// may still commit: a pass whose proposal timed out (raft's UnknownOutcomeError) but commits after
// the next pass decided without it would have its new tasks' addresses given again (and its
// slots filled twice). After such a failure the next pass first proposes a write that changes
// nothing and waits for it to apply: raft applies a leader's entries in log order, so by then
// the earlier write has applied or is gone for good. (A new leader needs none of this: it starts
// deciding only once every entry of earlier terms is applied.)
import type { ReplicatedNode } from '../raftnode/node.js';
import type { TxnOp } from '../store/types.js';
import { CommitError, commitOps } from './commit.js';

/**
 * A status patch of a task id no task has: the store skips it (result null, no event), so the
 * entry changes nothing on any manager; it only marks a point in the log.
 */
export const BARRIER: TxnOp = { op: 'status', kind: 'task', id: 'leader-pass-barrier', status: { state: 'new' } };

export class OutcomeGate {
  private unsettled = false;

  constructor(private readonly raft: Pick<ReplicatedNode, 'propose'>) {}

  /** commitOps, remembering a failure whose outcome is unknown. */
  async commit(ops: TxnOp[] | TxnOp[][]): Promise<void> {
    try {
      await commitOps(this.raft, ops);
    } catch (e) {
      if (e instanceof CommitError && e.unknownOutcome) this.unsettled = true;
      throw e;
    }
  }

  /** Resolves once no earlier write of this leader can still commit (at once when none failed so). */
  async settled(): Promise<void> {
    if (!this.unsettled) return;
    await this.raft.propose([BARRIER]);
    this.unsettled = false;
  }
}
