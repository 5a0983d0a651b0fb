// After a new raft group was started from a survivor's data or a backup: this manager is the only
// raft member, so the node objects are made to say so. Every other manager is turned back into a
// worker (its certificate acts as a worker's from now on, and when it comes back it renews as one
// and drops its old raft data); promote it again to make it a manager of the new group, with a
// fresh raft membership. Workers keep their identities and reconnect as before.
import { updateNode, type Manager } from '../control/manager.js';
import { nodeInput } from '../control/model.js';

export async function adoptNewGroup(mgr: Manager, raftAddr: string, reason: string, log: (m: string) => void): Promise<void> {
  await mgr.waitLeader(60_000);
  await mgr.raft.linearizableRead();
  const me = mgr.o.nodeId;
  await updateNode(mgr, me, (n) => (n.status.raft?.id === mgr.raftId && n.status.raft.addr === raftAddr ? undefined : nodeInput(n, { status: { raft: { id: mgr.raftId, addr: raftAddr } } })));
  for (const n of mgr.nodes()) {
    if (n.id === me || (!n.status.raft && n.spec.desiredRole !== 'manager')) continue;
    await updateNode(mgr, n.id, (fresh) => nodeInput(fresh, {
      spec: { desiredRole: 'worker' },
      status: { raft: undefined, message: `was a manager before ${reason}; promote it again ("shoal node promote ${fresh.status.hostname}") to make it a manager of the new cluster` },
    }));
    log(`recovery: node ${n.status.hostname} (${n.id}) is no longer a manager (${reason}); promote it again to make it one`);
  }
}
