// Leadership transfer: to an up-to-date node at once, to a lagging node after catching it up,
// proposals dropped while it runs, abort after an election timeout, refusals for learners and
// unknown nodes, and a follower asking for leadership.
import t from 'tap';
import { ConfChangeType, MessageType, Role } from '../types.js';
import { Network, elect, enc, single } from './test-network.js';

t.test('transfer to an up-to-date follower: MsgTimeoutNow, an election without pre-vote, a new leader', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  net.propose(1, 'a');
  net.log = [];
  net.node(1).raw.transferLeader(2);
  net.stabilize();
  t.ok(net.log.some((m) => m.type === MessageType.TimeoutNow && m.from === 1 && m.to === 2), 'the leader told node 2 to campaign now');
  t.notOk(net.log.some((m) => m.type === MessageType.PreVote), 'a transfer skips pre-vote');
  t.equal(net.node(2).status().role, Role.Leader, 'node 2 leads');
  t.equal(net.node(2).status().term, 2);
  t.equal(net.node(1).status().role, Role.Follower, 'node 1 follows');
  t.equal(net.node(3).status().lead, 2, 'node 3 voted despite its lease on node 1 (transfer votes override it)');
  net.propose(2, 'b');
  t.same(net.node(1).appliedData(), ['a', 'b']);
  t.end();
});

t.test('transfer to a lagging follower: the leader catches it up first', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  net.isolate(3);
  for (let i = 0; i < 10; i++) net.node(1).raw.propose(enc(`e${i}`));
  net.stabilize();
  net.heal();
  net.log = [];
  net.node(1).raw.transferLeader(3);
  net.stabilize();
  const i = net.log.findIndex((m) => m.type === MessageType.TimeoutNow);
  const lastAck = net.log.findIndex((m) => m.type === MessageType.AppResp && m.from === 3 && !m.reject && m.index === 11);
  t.ok(lastAck >= 0 && i > lastAck, 'MsgTimeoutNow went out only after node 3 acknowledged the last entry');
  t.equal(net.node(3).status().role, Role.Leader);
  t.equal(net.node(3).appliedData().length, 10, 'the new leader has every committed entry');
  t.end();
});

t.test('proposals are dropped (reported) during a transfer; the transfer aborts after an election timeout', (t) => {
  const net = new Network([1, 2, 3], { config: { electionTick: 10 } });
  elect(net, 1);
  net.stop(3); // the transferee never answers
  net.node(1).raw.transferLeader(3);
  net.stabilize();
  t.equal(net.node(1).status().leadTransferee, 3, 'transfer in progress');
  net.propose(1, 'during');
  t.match(net.node(1).dropped.at(-1), { reason: /leadership transfer to node 3 is in progress/, leader: 1 });
  net.propose(2, 'forwarded-during');
  t.match(net.node(1).dropped.at(-1)?.reason, /forwarded from 2/, 'a forwarded proposal is dropped at the leader too');
  for (let i = 0; i < 9; i++) net.tick(1);
  t.equal(net.node(1).status().leadTransferee, 3, 'still trying after 9 ticks');
  net.tick(1);
  t.equal(net.node(1).status().leadTransferee, 0, 'aborted after electionTick ticks');
  t.equal(net.node(1).status().role, Role.Leader, 'node 1 is still leader');
  net.propose(1, 'after');
  t.same(net.node(1).appliedData(), ['after'], 'proposals are accepted again');
  t.end();
});

t.test('transfer to a learner, an unknown node or the leader itself is refused', (t) => {
  const net = new Network([1, 2, 3], { bootstrap: true });
  elect(net, 1);
  net.addEmptyNode(4);
  net.proposeConfChange(1, single(ConfChangeType.AddLearner, 4));
  net.tickAll(2);
  for (const to of [4, 9, 1]) {
    net.node(1).raw.transferLeader(to);
    net.stabilize();
    t.equal(net.node(1).status().leadTransferee, 0, `no transfer to ${to}`);
    t.equal(net.node(1).status().role, Role.Leader);
  }
  net.propose(1, 'still-works');
  t.same(net.node(1).appliedData(), ['still-works'], 'proposals are not blocked');
  t.end();
});

t.test('a follower asking for leadership is forwarded to the leader', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  net.node(2).raw.transferLeader(2);
  net.stabilize();
  t.equal(net.node(2).status().role, Role.Leader);
  t.end();
});

t.test('a second transfer request to another node replaces the first', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  net.stop(3);
  net.node(1).raw.transferLeader(3);
  net.stabilize();
  t.equal(net.node(1).status().leadTransferee, 3);
  net.node(1).raw.transferLeader(2);
  net.stabilize();
  t.equal(net.node(2).status().role, Role.Leader, 'the transfer to node 2 went through');
  t.end();
});
