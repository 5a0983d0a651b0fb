// Commits a pass's decisions: many changes per raft entry (one transaction per chunk, not one
// entry per task), the chunks proposed together so raft batches them. Each update and delete
// carries the version it was decided from, so a decision made on a state that changed meanwhile
// fails instead of overwriting; the next pass decides again from the new state.
import type { ReplicatedNode } from '../raftnode/node.js';
import type { TxnOp } from '../store/types.js';

/** Ops per transaction: well under the store's limit, and a few hundred KiB per raft entry. */
export const CHUNK = 500;

export async function commitOps(raft: ReplicatedNode, ops: TxnOp[], chunk = CHUNK): Promise<void> {
  if (ops.length === 0) return;
  const parts: TxnOp[][] = [];
  for (let i = 0; i < ops.length; i += chunk) parts.push(ops.slice(i, i + chunk));
  const results = await Promise.allSettled(parts.map((p) => raft.propose(p)));
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed.length > 0) {
    throw new Error(`${failed.length} of ${parts.length} transaction(s) failed, first: ${(failed[0]!.reason as Error).message}`);
  }
}
