// A new leader writes its term into its own node object, so a change of leader is in the store
// like every other change: `shoal events` tells it, and any manager can say who led from when.
// Written after the leader has caught up (components.ts), with the node's version checked.
import { nodeInput, type NodeObject } from '../control/model.js';
import type { ReplicatedNode } from '../raftnode/node.js';

export interface Leadership {
  /** The raft term this manager leads. */
  term: number;
  /** When it took over (ms, its own clock). */
  since: number;
}

export async function recordLeadership(raft: ReplicatedNode, log: (m: string) => void): Promise<void> {
  let waits = 0;
  for (let attempt = 0; attempt < 5; attempt++) {
    if (!raft.isLeader()) return;
    const term = raft.status().term;
    const n = (raft.store.list('node') as NodeObject[]).find((x) => x.status?.raft?.id === raft.id);
    if (!n) {
      // The first leader of a new cluster leads before `init` has written its node object.
      if (++waits > 60) return;
      attempt--;
      await new Promise((r) => setTimeout(r, 500));
      continue;
    }
    const cur = n.status.leadership;
    if (cur && cur.term >= term) return;
    try {
      await raft.propose([{ op: 'update', object: nodeInput(n, { status: { leadership: { term, since: Date.now() } satisfies Leadership } }), expectVersion: n.version }]);
      return;
    } catch (e) {
      if (attempt === 4) log(`leader: could not record the leadership of term ${term}: ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
    }
  }
}
