// RaftMembership.Join on the leader: a manager-certificate holder enters raft as a learner, and is
// made a voter once its log has caught up with the leader's commit index (so adding it never
// stalls the quorum on a node that is still receiving a snapshot).
import type { MethodSpec } from '../security/authz.js';
import { denied, invalid, precondition } from '../security/errors.js';
import { peerHost } from '../security/peer.js';
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
      unary: async (req: { raft_addr: string; raft_id: number }, ctx) => {
        const id = ctx.identity!;
        const n = mgr.node(id.nodeId);
        if (!n) throw denied(`node ${id.nodeId} is unknown`);
        if (n.spec.desiredRole !== 'manager') throw denied(`node ${id.nodeId} is not meant to be a manager (it was demoted); it cannot join raft`);
        const addr = String(req.raft_addr ?? '');
        if (!/^[^\s:]+:\d+$/.test(addr) && !/^\[[0-9a-fA-F:]+\]:\d+$/.test(addr)) throw invalid(`raft_addr must be host:port, got ${JSON.stringify(addr)}`);
        // The address must be the caller's own: where it connects from (through a follower: where
        // it connected to that follower from, as the follower saw it).
        const from = peerHost(id.peer ?? ctx.peer);
        if (from && !(id.peer ?? ctx.peer).startsWith('unix:') && peerHost(addr) !== from) {
          throw denied(`node ${n.id} asks to be reached at ${addr} but connects from ${from}: a manager's raft address must be its own`);
        }
        const raftId = Number(req.raft_id) || raftIdOf(n.id);
        const conf = mgr.raft.confState();
        const isMember = (r: number) => conf.voters.includes(r) || conf.learners.includes(r);
        const other = mgr.nodes().find((x) => x.id !== n.id && x.status.raft?.id === raftId);
        if (other) throw denied(`raft id ${raftId} belongs to node ${other.id}; a joining manager must choose a fresh one`);
        const mine = n.status.raft;
        if (mine && mine.id !== raftId && isMember(mine.id)) {
          throw precondition(`node ${n.id} is already raft member ${mine.id}; it cannot join again as ${raftId} (demote and promote it to start a new membership)`);
        }
        // A voter's address changes only deliberately (demote, then promote), never by a join.
        if (mine && mine.id === raftId && conf.voters.includes(raftId) && mine.addr !== addr) {
          throw precondition(`node ${n.id} is a voter at ${mine.addr}; its raft address cannot be changed to ${addr} by a join (demote and promote it to move it)`);
        }
        if (!isMember(raftId)) {
          try {
            await mgr.raft.addLearner(raftId, { raft: addr, api: n.status.addr });
          } catch (e) {
            if (e instanceof ProposalDroppedError && /removed/.test(e.message)) {
              throw precondition(`raft id ${raftId} of node ${n.id} was removed from the cluster and can never be re-added: the node must start a new membership with a fresh id (its shoald does so when promoted again)`);
            }
            throw e;
          }
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
