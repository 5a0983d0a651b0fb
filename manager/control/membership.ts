// RaftMembership.Join on the leader: a manager-certificate holder enters raft as a learner, and is
// made a voter once its log has caught up with the leader's commit index (so adding it never
// stalls the quorum on a node that is still receiving a snapshot).
import type { MethodSpec } from '../security/authz.js';
import { denied, invalid } from '../security/errors.js';
import { ProposalDroppedError } from '../raftnode/errors.js';
import { updateNode, type Manager } from './manager.js';
import { nodeInput, raftIdOf } from './model.js';

const CATCH_UP_TIMEOUT_MS = 60_000;

export function raftMembershipTable(mgr: Manager, log: (m: string) => void): Record<string, MethodSpec> {
  const promoting = new Set<number>();

  const promoteWhenCaughtUp = async (raftId: number, nodeId: string) => {
    if (promoting.has(raftId)) return;
    promoting.add(raftId);
    try {
      const end = Date.now() + CATCH_UP_TIMEOUT_MS;
      while (Date.now() < end && mgr.isLeader()) {
        const st = mgr.raft.status();
        const match = st.progress?.get(raftId)?.match ?? 0;
        if (match >= st.commit) {
          try {
            await mgr.raft.promote(raftId);
            log(`membership: raft member ${raftId} (node ${nodeId}) caught up at ${match} and is now a voter`);
            return;
          } catch (e) {
            // Another membership change is pending (e.g. a second manager joining): try again.
            if (!(e instanceof ProposalDroppedError)) throw e;
          }
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      log(`membership: raft member ${raftId} (node ${nodeId}) did not catch up; it stays a learner until it joins again`);
    } catch (e) {
      log(`membership: promoting raft member ${raftId} failed: ${(e as Error).message}`);
    } finally {
      promoting.delete(raftId);
    }
  };

  return {
    Join: {
      roles: ['manager'],
      leader: true,
      unary: async (req: { raft_addr: string }, ctx) => {
        const id = ctx.identity!;
        const n = mgr.node(id.nodeId);
        if (!n) throw denied(`node ${id.nodeId} is unknown`);
        if (n.spec.desiredRole !== 'manager') throw denied(`node ${id.nodeId} is not meant to be a manager (it was demoted); it cannot join raft`);
        const addr = String(req.raft_addr ?? '');
        if (!/^[^\s:]+:\d+$/.test(addr) && !/^\[[0-9a-fA-F:]+\]:\d+$/.test(addr)) throw invalid(`raft_addr must be host:port, got ${JSON.stringify(addr)}`);
        const raftId = raftIdOf(n.id);
        const conf = mgr.raft.confState();
        const member = conf.voters.includes(raftId) || conf.learners.includes(raftId);
        if (!member) {
          await mgr.raft.addLearner(raftId, { raft: addr, api: n.status.addr });
          log(`membership: node ${n.id} joined raft as learner ${raftId} at ${addr}`);
        }
        await updateNode(mgr, n.id, (fresh) => (fresh.status.raft?.addr === addr && fresh.status.raft?.id === raftId ? undefined : nodeInput(fresh, { status: { raft: { id: raftId, addr } } })));
        if (!mgr.raft.confState().voters.includes(raftId)) void promoteWhenCaughtUp(raftId, n.id);
        const members = mgr.nodes().filter((x) => x.status.raft).map((x) => ({ raft_id: x.status.raft!.id, node_id: x.id, addr: x.status.raft!.addr }));
        return { raft_id: raftId, members };
      },
    },
  };
}
