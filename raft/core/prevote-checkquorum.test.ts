// Stories about partitions: pre-vote keeps a cut-off node from inflating its term, CheckQuorum
// makes a cut-off leader step down, stale-term leaders learn the new term, and followers with a
// live leader ignore disruptive vote requests.
import t from 'tap';
import { MessageType, Role, type Message } from '../types.js';
import { newMessage } from './raft.js';
import { Network, elect, types } from './test-network.js';

t.test('pre-vote: a partitioned node does not inflate its term and rejoins without disruption', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  net.isolate(3);
  net.tickAll(100);
  t.equal(net.node(3).status().term, 1, 'after 100 ticks alone node 3 is still at term 1');
  t.equal(net.node(3).status().vote, 1, 'and its vote is unchanged (pre-votes are not votes)');
  t.ok(net.log.some((m) => m.type === MessageType.PreVote && m.from === 3), 'it did keep asking for pre-votes');
  t.notOk(net.log.some((m) => m.type === MessageType.Vote && m.from === 3), 'but never started a real election');
  net.heal();
  net.tickAll(5);
  t.equal(net.leader()?.id, 1, 'node 1 is still leader after the partition heals');
  t.equal(net.node(1).status().term, 1, 'at term 1');
  net.propose(1, 'after');
  t.same(net.node(3).appliedData(), ['after'], 'node 3 follows again');
  t.end();
});

t.test('without pre-vote the same partition inflates the term and disrupts the leader on heal', (t) => {
  const net = new Network([1, 2, 3], { config: { preVote: false } });
  elect(net, 1);
  net.isolate(3);
  net.tickAll(100);
  t.ok(net.node(3).status().term > 3, `node 3 climbed to term ${net.node(3).status().term}`);
  net.heal();
  net.tickAll(2);
  t.ok(net.node(1).status().term > 1, 'the leader was forced onto the higher term (this is what pre-vote prevents)');
  t.end();
});

t.test('check-quorum: a leader cut off from the majority steps down; the new leader corrects it on heal', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  net.isolate(1);
  let ticks = 0;
  while (net.node(1).status().role === Role.Leader && ticks < 100) {
    net.tickAll();
    ticks++;
  }
  t.equal(net.node(1).status().role, Role.Follower, `the isolated leader stepped down after ${ticks} ticks`);
  t.ok(ticks <= 2 * 10, 'within two election timeouts of ticks');
  t.equal(net.node(1).status().term, 1, 'stepping down does not change its term');
  for (let i = 0; i < 100 && !(net.leader() && net.leader()!.id !== 1); i++) net.tickAll();
  const nl = net.leader()!;
  t.ok(nl.id === 2 || nl.id === 3, `the majority elected node ${nl.id}`);
  t.equal(nl.status().term, 2);
  net.heal();
  net.tickAll(2);
  t.equal(net.node(1).status().term, 2, 'the old leader learned term 2');
  t.equal(net.node(1).status().lead, nl.id, 'and follows the new leader');
  t.end();
});

t.test('a stale leader (no check-quorum) learns the new term from the answer to its MsgApp', (t) => {
  const net = new Network([1, 2, 3], { config: { checkQuorum: false } });
  elect(net, 1);
  net.isolate(1);
  net.tickAll(50);
  t.equal(net.node(1).status().role, Role.Leader, 'without check-quorum the isolated leader stays leader');
  const nl = net.leader()!;
  t.not(nl.id, 1, 'while the majority elected another leader');
  net.heal();
  net.log = [];
  net.node(1).raw.propose(new TextEncoder().encode('stale'));
  net.stabilize();
  const answer = net.log.find((m) => m.type === MessageType.AppResp && m.to === 1 && m.term === 2);
  t.ok(answer, 'a follower answered the term-1 MsgApp with an MsgAppResp carrying term 2');
  t.equal(net.node(1).status().role, Role.Follower, 'the stale leader stepped down');
  t.equal(net.node(1).status().term, 2);
  net.propose(nl.id, 'fresh');
  net.tickAll(1); // the leader's probe of node 1 resumes with the next heartbeat answer
  t.same(net.node(1).appliedData(), ['fresh'], 'its uncommitted stale entry was replaced by the new leader\'s log');
  t.end();
});

t.test('a message from a lower term is ignored', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  net.isolate(1);
  for (let i = 0; i < 100 && !(net.leader() && net.leader()!.id !== 1); i++) net.tickAll();
  const n2 = net.node(2);
  const before = n2.status();
  const stale: Message[] = [
    newMessage({ type: MessageType.Vote, from: 3, to: 2, term: 1, index: 100, logTerm: 1 }),
    newMessage({ type: MessageType.AppResp, from: 3, to: 2, term: 1, index: 50 }),
    newMessage({ type: MessageType.HeartbeatResp, from: 3, to: 2, term: 1 }),
  ];
  for (const m of stale) n2.raw.step(m);
  t.same(n2.status().term, before.term, 'term unchanged');
  t.same(n2.status().vote, before.vote, 'vote unchanged');
  t.same(n2.status().role, before.role, 'role unchanged');
  t.notOk(n2.raw.hasReady() && n2.raw.ready().messages.length > 0, 'nothing is sent in reply');
  t.end();
});

t.test('a follower with a live leader ignores higher-term votes (lease), until the leader is silent', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  const n2 = net.node(2);
  n2.raw.step(newMessage({ type: MessageType.Vote, from: 3, to: 2, term: 5, index: 100, logTerm: 5 }));
  t.equal(n2.status().term, 1, 'the vote at term 5 did not move node 2');
  t.notOk(n2.raw.hasReady(), 'and got no answer');
  n2.raw.step(newMessage({ type: MessageType.PreVote, from: 3, to: 2, term: 5, index: 100, logTerm: 5 }));
  t.notOk(n2.raw.hasReady(), 'a pre-vote gets no answer either');
  // After an election timeout without hearing from the leader the lease is over.
  net.isolate(2);
  for (let i = 0; i < 10; i++) n2.raw.raft.electionElapsed++;
  n2.raw.step(newMessage({ type: MessageType.PreVote, from: 3, to: 2, term: 2, index: 100, logTerm: 5 }));
  const rd = n2.raw.ready();
  t.same(types(rd.messagesAfterPersist), ['PreVoteResp 2->3'], 'now the pre-vote is answered');
  t.equal(rd.messagesAfterPersist[0].reject, false, 'and granted');
  t.equal(n2.status().term, 1, 'granting a pre-vote does not change the term');
  n2.raw.advance();
  t.end();
});

t.test('a pre-candidate that hears from the leader goes back to follower', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  net.isolate(3);
  net.tickAll(30);
  t.equal(net.node(3).status().role, Role.PreCandidate);
  net.heal();
  net.tickAll(1);
  t.equal(net.node(3).status().role, Role.Follower, 'the heartbeat brought it back');
  t.equal(net.node(3).status().lead, 1);
  t.end();
});

// raft/sim FINDINGS #4b (seed 5354): etcd answers a stale leader only under pre-vote or
// check-quorum; without them a node whose own votes reach nobody (it campaigns in a configuration
// the cluster has left) would be ignored by the leader, and ignore it, for good.
t.test('with neither pre-vote nor check-quorum, a stale leader is answered with the newer term and steps down', (t) => {
  const net = new Network([1, 2, 3], { config: { preVote: false, checkQuorum: false } });
  elect(net, 1);
  net.isolate(3);
  net.tick(3, 50);
  const t3 = net.node(3).status().term;
  t.ok(t3 > 1, `node 3 campaigned alone up to term ${t3}`);
  net.heal();
  net.filter = (m) => m.type === MessageType.Vote && m.from === 3; // its campaigns reach nobody
  net.log = [];
  net.tick(1); // the leader's heartbeat
  t.ok(net.log.some((m) => m.type === MessageType.AppResp && m.from === 3 && m.to === 1 && m.term === t3), 'node 3 answers the stale heartbeat with its term');
  t.equal(net.node(1).status().role, Role.Follower, 'the stale leader stepped down');
  t.equal(net.node(1).status().term, t3, 'to the newer term');
  net.tickAll(60);
  const l = net.leader();
  t.ok(l && l.id !== 3 && l.status().term > 1, `a leader of a newer term (${l?.status().term}) is elected`);
  net.propose(l!.id, 'after');
  t.same(net.node(3).appliedData(), ['after'], 'and node 3 follows it');
  t.end();
});
