// Membership changes: bootstrap and joiners, learners (added, never counted, promoted), single
// changes with at most one pending, joint consensus (auto and explicit leave), a removed leader
// stepping down, and removed ids that can never come back.
import t from 'tap';
import { ConfChangeTransition, ConfChangeType, EntryType, MessageType, Role, type ConfChange } from '../types.js';
import { encodeConfChange } from './confchange-codec.js';
import { ConfChangeError } from './errors.js';
import { MemoryStorage } from './memory-storage.js';
import { RawNode } from './rawnode.js';
import { newMessage } from './raft.js';
import { Network, elect, enc, single } from './test-network.js';

const { AddVoter, AddLearner, RemoveNode } = ConfChangeType;

function cc(transition: ConfChangeTransition, changes: [ConfChangeType, number][]): ConfChange {
  return { transition, changes: changes.map(([type, nodeId]) => ({ type, nodeId })), context: new Uint8Array(0) };
}

/** Adds node `id` as a learner from an empty log and lets it catch up. */
function addLearner(net: Network, leader: number, id: number) {
  net.addEmptyNode(id);
  net.proposeConfChange(leader, single(AddLearner, id));
  net.tickAll(3);
  return net.node(id);
}

t.test('bootstrap puts the membership in the log; a joiner with an empty log learns it by replay', (t) => {
  const net = new Network([1, 2, 3], { bootstrap: true });
  t.same(net.node(2).conf.voters, [1, 2, 3], 'each founding node applied the bootstrap entries');
  elect(net, 1);
  net.propose(1, 'a');
  const n4 = addLearner(net, 1, 4);
  t.same(n4.conf.voters, [1, 2, 3], 'the joiner knows the founding voters');
  t.same(n4.conf.learners, [4], 'and itself as a learner');
  t.same(n4.appliedData(), ['a']);
  t.throws(() => n4.raw.bootstrap([4]), /already has state/, 'a node with state cannot be bootstrapped');
  t.end();
});

t.test('a learner receives the log, never counts for commit or elections, and is promoted once caught up', (t) => {
  const net = new Network([1, 2, 3], { bootstrap: true });
  elect(net, 1);
  const n4 = addLearner(net, 1, 4);
  const pr = net.node(1).status().progress!.get(4)!;
  t.equal(pr.isLearner, true, 'the leader tracks node 4 as a learner');
  t.equal(pr.match, net.node(1).status().commit, 'and it is caught up');
  // Two voters down: leader + learner are no majority.
  net.stop(2);
  net.stop(3);
  net.propose(1, 'needs-voters');
  t.same(n4.appliedData(), [], 'the learner holds the entry but it does not commit');
  t.equal(net.node(1).status().progress!.get(4)!.match, net.node(1).raw.raft.raftLog.lastIndex(), 'the learner acknowledged it');
  net.restart(2);
  net.restart(3);
  net.tickAll(3);
  t.same(n4.appliedData(), ['needs-voters'], 'with the voters back it commits');
  // A learner never campaigns, however long it hears nothing.
  net.isolate(4);
  net.log = [];
  net.tickAll(60);
  t.notOk(net.log.some((m) => m.from === 4 && (m.type === MessageType.PreVote || m.type === MessageType.Vote)), 'the learner never asked for votes');
  t.equal(n4.status().role, Role.Follower);
  net.heal();
  net.tickAll(2);
  // Promote with AddVoter, once caught up (the host decides that from status().progress).
  net.proposeConfChange(1, single(AddVoter, 4));
  net.tickAll(2);
  t.same(net.node(1).conf.voters, [1, 2, 3, 4], 'node 4 is a voter');
  t.equal(net.node(1).status().progress!.get(4)!.isLearner, false);
  net.stop(2);
  net.propose(1, 'with-4'); // 1, 3, 4 are a majority of 4 voters
  t.same(n4.appliedData(), ['needs-voters', 'with-4'], 'the promoted node counts for commit');
  t.end();
});

t.test('at most one conf change may be pending; the second is dropped and reported', (t) => {
  const net = new Network([1, 2, 3], { bootstrap: true });
  elect(net, 1);
  net.addEmptyNode(4);
  net.addEmptyNode(5);
  const raw = net.node(1).raw;
  raw.proposeConfChange(single(AddLearner, 4));
  raw.proposeConfChange(single(AddLearner, 5)); // before the first is applied
  net.stabilize();
  const d = net.node(1).dropped;
  t.equal(d.length, 1, 'one proposal dropped');
  t.match(d[0].reason, /not applied yet.*only one may be pending/);
  t.equal(d[0].leader, 1);
  t.same(net.node(1).conf.learners, [4], 'only the first change took effect');
  net.proposeConfChange(1, single(AddLearner, 5));
  t.same(net.node(1).conf.learners, [4, 5], 'once applied, the next change is accepted');
  t.end();
});

t.test('a new leader refuses conf changes until its whole log is applied', (t) => {
  const net = new Network([1, 2, 3], { bootstrap: true, config: { checkQuorum: false } });
  elect(net, 1);
  net.filter = (m) => m.type === MessageType.AppResp; // entries replicate but never commit
  net.propose(1, 'a');
  net.stop(1);
  elect(net, 2); // node 2 leads with 'a' uncommitted in its log
  net.proposeConfChange(2, single(AddLearner, 4));
  t.match(net.node(2).dropped.at(-1)?.reason, /only one may be pending/, 'refused: unapplied entries might hold a conf change');
  net.heal();
  net.tickAll(2);
  t.same(net.node(2).appliedData(), ['a'], 'the new term commits and applies the old entry');
  net.addEmptyNode(4);
  net.proposeConfChange(2, single(AddLearner, 4));
  t.same(net.node(2).conf.learners, [4], 'now the change is accepted');
  t.end();
});

t.test('a leader removed from the config steps down and never campaigns again', (t) => {
  const net = new Network([1, 2, 3], { bootstrap: true });
  elect(net, 1);
  net.proposeConfChange(1, single(RemoveNode, 1));
  t.equal(net.node(1).status().role, Role.Follower, 'the removed leader stepped down when it applied its removal');
  t.same(net.node(1).conf.voters, [2, 3]);
  t.same(net.node(1).conf.learners, []);
  net.log = [];
  net.tickAll(60);
  const nl = net.leader()!;
  t.ok(nl && nl.id !== 1, `the remaining voters elected node ${nl?.id}`);
  t.notOk(net.log.some((m) => m.from === 1 && (m.type === MessageType.PreVote || m.type === MessageType.Vote)), 'node 1 never campaigned');
  net.propose(nl.id, 'after');
  t.same(net.node(nl.id).appliedData(), ['after']);
  t.end();
});

t.test('joint consensus replaces two voters at once and leaves the joint config automatically', (t) => {
  const net = new Network([1, 2, 3], { bootstrap: true });
  elect(net, 1);
  addLearner(net, 1, 4);
  addLearner(net, 1, 5);
  net.log = [];
  net.proposeConfChange(1, cc(ConfChangeTransition.JointImplicit, [[AddVoter, 4], [AddVoter, 5], [RemoveNode, 2], [RemoveNode, 3]]));
  net.tickAll(3);
  for (const id of [1, 4, 5]) {
    t.same(net.node(id).conf.voters, [1, 4, 5], `node ${id}: voters are 1, 4, 5`);
    t.same(net.node(id).conf.votersOutgoing, [], `node ${id}: the joint config was left`);
  }
  const leaves = net.node(1).storage.entries(1, net.node(1).storage.lastIndex() + 1, Infinity).filter((e) => e.type === EntryType.ConfChange && e.data.length === 12);
  t.equal(leaves.length, 1, 'the leader proposed the empty leave entry itself');
  t.equal(net.node(1).status().role, Role.Leader);
  t.same((net.node(1).conf as { removed?: number[] }).removed, [2, 3], 'nodes 2 and 3 are recorded as removed');
  net.stop(2);
  net.stop(3);
  net.propose(1, 'new-config');
  t.same(net.node(4).appliedData(), ['new-config'], 'the new voters commit without the old ones');
  t.end();
});

t.test('in a joint config commit needs a majority of both halves; an explicit leave ends it', (t) => {
  const net = new Network([1, 2, 3], { bootstrap: true });
  elect(net, 1);
  addLearner(net, 1, 4);
  addLearner(net, 1, 5);
  net.proposeConfChange(1, cc(ConfChangeTransition.JointExplicit, [[AddVoter, 4], [AddVoter, 5], [RemoveNode, 2], [RemoveNode, 3]]));
  net.tickAll(2);
  t.same(net.node(1).conf.voters, [1, 4, 5]);
  t.same(net.node(1).conf.votersOutgoing, [1, 2, 3], 'still joint: the leave is explicit');
  t.equal(net.node(1).conf.autoLeave, false);
  net.stop(4);
  net.stop(5);
  net.propose(1, 'x');
  t.same(net.node(2).appliedData(), [], 'all old voters acked, yet no majority of the new half: not committed');
  net.restart(4);
  net.restart(5);
  net.tickAll(3);
  t.same(net.node(1).appliedData(), ['x'], 'with the new half back it commits');
  net.proposeConfChange(1, cc(ConfChangeTransition.JointExplicit, [[AddLearner, 6]]));
  t.match(net.node(1).dropped.at(-1)?.reason, /already joint/, 'entering a joint config from a joint config is refused');
  net.proposeConfChange(1, cc(ConfChangeTransition.Auto, [])); // the explicit leave
  net.tickAll(2);
  t.same(net.node(1).conf.votersOutgoing, [], 'left the joint config');
  t.same(net.node(1).conf.voters, [1, 4, 5]);
  net.proposeConfChange(1, cc(ConfChangeTransition.Auto, []));
  t.match(net.node(1).dropped.at(-1)?.reason, /not joint/, 'leaving when not joint is refused');
  t.end();
});

t.test('joint consensus can replace the leader: it leads the joint phase and steps down when it is left', (t) => {
  const net = new Network([1, 2, 3], { bootstrap: true });
  elect(net, 1);
  addLearner(net, 1, 4);
  net.proposeConfChange(1, cc(ConfChangeTransition.Auto, [[AddVoter, 4], [RemoveNode, 1]])); // two changes: joint, auto-leave
  t.equal(net.node(1).status().role, Role.Follower, 'after leaving the joint config node 1 is no member and stepped down');
  t.same(net.node(2).conf.voters, [2, 3, 4]);
  net.tickAll(60);
  const nl = net.leader()!;
  t.ok([2, 3, 4].includes(nl.id), `node ${nl.id} leads the new config`);
  t.end();
});

t.test('a removed id can never be re-added: the proposal is dropped, applyConfChange throws', (t) => {
  const net = new Network([1, 2, 3], { bootstrap: true });
  elect(net, 1);
  net.proposeConfChange(1, single(RemoveNode, 3));
  t.same(net.node(1).conf.voters, [1, 2]);
  net.proposeConfChange(1, single(AddVoter, 3));
  t.match(net.node(1).dropped.at(-1), { reason: /node id 3 was removed from the cluster and can never be re-added/, leader: 1 });
  net.proposeConfChange(1, single(AddLearner, 3));
  t.match(net.node(1).dropped.at(-1)?.reason, /can never be re-added/, 'not as a learner either');
  t.same(net.node(1).conf.voters, [1, 2], 'membership unchanged');
  const before = net.node(2).status().conf;
  t.throws(() => net.node(2).raw.applyConfChange(single(AddVoter, 3)), ConfChangeError, 'a host applying such a change by hand gets a ConfChangeError');
  t.same(net.node(2).status().conf, before, 'and the config is untouched');
  // The removed set survives a snapshot and a restart.
  net.propose(1, 'x');
  net.compact(2);
  const n2 = net.restart(2);
  t.same(n2.status().conf.removed, [3], 'restored from the snapshot\'s ConfState');
  t.throws(() => n2.raw.applyConfChange(single(AddVoter, 3)), /can never be re-added/);
  t.end();
});

t.test('malformed conf change proposals are dropped with a reason', (t) => {
  const net = new Network([1, 2, 3], { bootstrap: true });
  elect(net, 1);
  net.node(1).raw.raft.step(newMessage({ type: MessageType.Prop, from: 1, entries: [{ term: 0, index: 0, type: EntryType.ConfChange, data: enc('garbage') }] }));
  net.stabilize();
  t.match(net.node(1).dropped.at(-1)?.reason, /invalid conf change entry/);
  net.proposeConfChange(1, cc(ConfChangeTransition.Auto, [[RemoveNode, 1], [RemoveNode, 2], [RemoveNode, 3]]));
  t.match(net.node(1).dropped.at(-1)?.reason, /removes all voters/);
  t.end();
});

t.test('a removed node holding the only copy of entries the voters need can still get a leader elected', (t) => {
  // Replace voters 2 (leader) and 3 by 4 and 5. The leave entry commits and node 3 applies it
  // (so it is no member any more), but 1, 4 and 5 never hear of the commit; the leader also
  // wrote an entry X that only node 3 got, then crashed. Nodes 1, 4, 5 still think the config is
  // joint and need a vote of 2 or 3; node 3 refuses (its log is longer). Without help no
  // election could ever succeed (openraft#2091, braft#432): node 3 must be allowed to campaign.
  const net = new Network([1, 2, 3], { bootstrap: true, configFor: (id) => (id === 2 ? { maxSizePerMsg: 1 } : {}) });
  elect(net, 2);
  addLearner(net, 2, 4);
  addLearner(net, 2, 5);
  net.proposeConfChange(2, cc(ConfChangeTransition.JointExplicit, [[AddVoter, 4], [AddVoter, 5], [RemoveNode, 2], [RemoveNode, 3]]));
  net.tickAll(2);
  t.same(net.node(1).conf.votersOutgoing, [1, 2, 3], 'everyone is in the joint config');
  const leaveIdx = net.node(2).raw.raft.raftLog.lastIndex() + 1;
  const hidden = new Set([1, 4, 5]);
  net.filter = (m) =>
    m.from === 2 && hidden.has(m.to) && ((m.type === MessageType.App && (m.commit >= leaveIdx || m.entries.some((e) => e.index > leaveIdx))) || (m.type === MessageType.Heartbeat && m.commit >= leaveIdx));
  net.node(2).raw.proposeConfChange(cc(ConfChangeTransition.Auto, [])); // leave, at leaveIdx
  net.node(2).raw.propose(enc('X')); // at leaveIdx + 1
  net.stabilize();
  net.tick(2);
  t.equal(net.node(3).status().commit, leaveIdx, 'node 3 knows the leave committed');
  t.same(net.node(3).conf.voters, [1, 4, 5], 'and applied it: it is no member');
  t.equal(net.node(3).raw.raft.raftLog.lastIndex(), leaveIdx + 1, 'it holds X');
  for (const id of [1, 4, 5]) t.ok(net.node(id).status().commit < leaveIdx, `node ${id} does not know the leave committed`);
  t.equal(net.node(2).status().role, Role.Leader, 'the removed leader keeps leading while X is uncommitted');
  net.stop(2);
  net.filter = undefined;
  for (let i = 0; i < 200 && ![1, 4, 5].some((id) => net.node(id).status().role === Role.Leader); i++) net.tickAll();
  const nl = [1, 4, 5].find((id) => net.node(id).status().role === Role.Leader);
  t.ok(nl, `a voter of the new config leads (${nl})`);
  for (const id of [1, 4, 5]) t.same(net.node(id).conf.votersOutgoing, [], `node ${id} left the joint config`);
  t.equal(net.node(3).status().role, Role.Follower, 'node 3 handed over');
  t.ok(net.log.some((m) => m.from === 3 && m.type === MessageType.Vote), 'node 3 did campaign to get there');
  t.same(net.node(nl!).appliedData(), ['X'], 'X, which only node 3 had, is committed');
  net.propose(nl!, 'after');
  t.same(net.node(4).appliedData(), ['X', 'after']);
  t.end();
});

t.test('a node campaigns only once its committed conf changes are applied, then in the new config (apply-time rule; raft/sim FINDINGS #4)', (t) => {
  // Node 3 holds the joint entry {3,4,5}&{1,2,3} (2) and its leave (3), knows both committed and
  // has applied neither: its tracker still says {1,2,3}. Campaigning now would ask 1 and 2 (both
  // removed) for votes. It must wait until the host has applied them, then ask 4 and 5 only.
  const storage = new MemoryStorage();
  storage.applySnapshot({ meta: { index: 1, term: 1, conf: { voters: [1, 2, 3], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } }, data: new Uint8Array(0) });
  const joint = cc(ConfChangeTransition.Auto, [[AddVoter, 4], [AddVoter, 5], [RemoveNode, 1], [RemoveNode, 2]]);
  const leave = cc(ConfChangeTransition.Auto, []);
  storage.append([
    { term: 1, index: 2, type: EntryType.ConfChange, data: encodeConfChange(joint) },
    { term: 1, index: 3, type: EntryType.ConfChange, data: encodeConfChange(leave) },
  ]);
  storage.setHardState({ term: 1, vote: 0, commit: 3 });
  let seed = 7;
  const random = () => ((seed = (seed * 48271) % 2147483647) / 2147483647);
  const rn = new RawNode({ id: 3, storage, random, applied: 1, electionTick: 5, preVote: false });
  const campaignTo = (): number[] => {
    const to: number[] = [];
    while (rn.hasReady()) {
      const rd = rn.ready();
      for (const m of rd.messages) if (m.type === MessageType.Vote) to.push(m.to);
      rn.advance();
    }
    return to.sort((a, b) => a - b);
  };
  // Take the Ready that hands out entries 2 and 3, but do not apply them yet.
  const rd = rn.ready();
  t.same(rd.committedEntries.map((e) => e.index), [2, 3], 'the conf changes are handed out for applying');
  for (let i = 0; i < 20; i++) rn.tick();
  rn.step(newMessage({ type: MessageType.TimeoutNow, from: 4, to: 3, term: 1 }));
  t.equal(rn.status().role, Role.Follower, 'no campaign on election timeout or MsgTimeoutNow while they are unapplied');
  t.same(rn.raft.msgs.filter((m) => m.type === MessageType.Vote || m.type === MessageType.PreVote), [], 'no vote request waits to be sent');
  t.same(rn.applyConfChange(joint).votersOutgoing, [1, 2, 3], 'joint applied');
  t.same(rn.applyConfChange(leave).voters, [3, 4, 5], 'leave applied');
  rn.advance();
  t.same(campaignTo(), [], 'nothing sent before the next timeout');
  for (let i = 0; i < 20 && rn.status().role !== Role.Candidate; i++) rn.tick();
  t.equal(rn.status().role, Role.Candidate, 'campaigns once they are applied');
  t.same(campaignTo(), [4, 5], 'asks the voters of {3,4,5} only, never removed 1 and 2');
  t.end();
});
