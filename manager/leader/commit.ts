// Commits a pass's decisions: many changes per raft entry (one transaction per chunk, not one
// entry per task), the chunks proposed together so raft batches them. Ops come in groups that
// must share a transaction (a task and its replacement); a group is never split across chunks.
import type { ReplicatedNode } from '../raftnode/node.js';
import type { TxnOp } from '../store/types.js';
import { decisions } from '../metrics.js';
import { UnknownOutcomeError } from '../raftnode/errors.js';

/** Ops per transaction: well under the store's limit, and a few hundred KiB per raft entry. */
export const CHUNK = 500;

/** Packs groups of ops into transactions of at most `chunk` ops (a larger group gets its own). */
export function chunkGroups(groups: TxnOp[][], chunk = CHUNK): TxnOp[][] {
  const parts: TxnOp[][] = [];
  let cur: TxnOp[] = [];
  for (const g of groups) {
    if (cur.length > 0 && cur.length + g.length > chunk) {
      parts.push(cur);
      cur = [];
    }
    for (const op of g) cur.push(op);
  }
  if (cur.length > 0) parts.push(cur);
  return parts;
}

/** Some transactions of a pass failed; `unknownOutcome`: some may still commit (raft's timeout). */
export class CommitError extends Error {
  constructor(msg: string, readonly unknownOutcome: boolean) {
    super(msg);
    this.name = 'CommitError';
  }
}

export async function commitOps(raft: Pick<ReplicatedNode, 'propose'>, ops: TxnOp[] | TxnOp[][], chunk = CHUNK): Promise<void> {
  if (ops.length === 0) return;
  const groups = Array.isArray(ops[0]) ? (ops as TxnOp[][]) : (ops as TxnOp[]).map((op) => [op]);
  const parts = chunkGroups(groups, chunk);
  const results = await Promise.allSettled(parts.map((p) => raft.propose(p)));
  results.forEach((r, i) => {
    if (r.status === 'fulfilled') decisions.inc(parts[i]!.length);
  });
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed.length > 0) {
    throw new CommitError(`${failed.length} of ${parts.length} transaction(s) failed, first: ${(failed[0]!.reason as Error).message}`, failed.some((r) => r.reason instanceof UnknownOutcomeError));
  }
}
