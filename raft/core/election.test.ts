// Stories about becoming leader: a single node, a three-node election with pre-vote, split
// votes resolved by randomized timeouts, and the randomized timeout range itself.
import t from 'tap';
import { MessageType, Role } from '../types.js';
import { MemoryStorage } from './memory-storage.js';
import { RawNode } from './rawnode.js';
import { Network, elect, enc, seeded } from './test-network.js';

t.test('a single node elects itself and commits its proposals', (t) => {
  const net = new Network([1]);
  net.campaign(1);
  t.equal(net.node(1).status().role, Role.Leader, 'the only voter becomes leader');
  t.equal(net.node(1).status().term, 1, 'after one election the term is 1');
  net.propose(1, 'a');
  net.propose(1, 'b');
  t.same(net.node(1).appliedData(), ['a', 'b'], 'both proposals are committed and applied in order');
  t.equal(net.node(1).status().commit, 3, 'commit covers the empty leader entry and two proposals');
  t.end();
});

t.test('a single node becomes leader by ticking alone', (t) => {
  const net = new Network([1]);
  net.tick(1, 20);
  t.equal(net.node(1).status().role, Role.Leader);
  t.end();
});

t.test('three nodes: a pre-vote round, then an election, then replication to all', (t) => {
  const net = new Network([1, 2, 3]);
  net.campaign(1);
  const pre = net.log.filter((m) => m.type === MessageType.PreVote);
  t.same(pre.map((m) => [m.to, m.term]), [[2, 1], [3, 1]], 'pre-votes ask for term 1 while the term is still 0');
  const votes = net.log.filter((m) => m.type === MessageType.Vote);
  t.same(votes.map((m) => m.to), [2, 3], 'after winning the pre-vote the real vote follows');
  for (const id of [1, 2, 3]) {
    t.equal(net.node(id).status().term, 1, `node ${id} is at term 1`);
    t.equal(net.node(id).status().lead, 1, `node ${id} knows leader 1`);
  }
  net.propose(1, 'x');
  for (const id of [1, 2, 3]) t.same(net.node(id).appliedData(), ['x'], `node ${id} applied x`);
  t.end();
});

t.test('a node with a shorter log cannot win: the others refuse their votes', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  net.isolate(3);
  net.propose(1, 'a'); // committed by 1 and 2 only
  net.heal();
  net.stop(1); // the leader dies
  net.campaign(3);
  t.not(net.node(3).status().role, Role.Leader, 'node 3 lacks a committed entry and loses');
  net.campaign(2);
  t.equal(net.node(2).status().role, Role.Leader, 'node 2 has the entry and wins');
  t.end();
});

t.test('split votes: randomized timeouts eventually elect exactly one leader', (t) => {
  // Without pre-vote, two candidates at once split a 4-node cluster (2 vs 2).
  const net = new Network([1, 2, 3, 4], { config: { preVote: false } });
  // Node 2 hears node 1 first and node 4 hears node 3 first.
  net.filter = (m) => m.type === MessageType.Vote && ((m.from === 1 && m.to === 4) || (m.from === 3 && m.to === 2));
  net.node(1).raw.campaign();
  net.node(3).raw.campaign();
  net.stabilize();
  t.equal(net.node(1).status().role, Role.Candidate, 'node 1 is stuck as candidate');
  t.equal(net.node(3).status().role, Role.Candidate, 'node 3 is stuck as candidate');
  t.equal(net.node(1).status().term, 1);
  net.heal();
  let ticks = 0;
  while (!net.leader() && ticks < 100) {
    net.tickAll();
    ticks++;
  }
  const leaders = [...net.nodes.values()].filter((n) => n.status().role === Role.Leader);
  t.equal(leaders.length, 1, 'one leader emerges');
  t.ok(leaders[0].status().term >= 2, 'in a later term');
  t.end();
});

t.test('the randomized election timeout lies in [electionTick, 2*electionTick-1]', (t) => {
  const seen = new Set<number>();
  const rand = seeded(42);
  for (let i = 0; i < 300; i++) {
    const raw = new RawNode({ id: 1, storage: MemoryStorage.withConf({ voters: [1, 2], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false }), random: rand, electionTick: 10 });
    seen.add(raw.raft.randomizedElectionTimeout);
  }
  t.ok([...seen].every((x) => x >= 10 && x <= 19), `all in range: ${[...seen].sort((a, b) => a - b)}`);
  t.equal(seen.size, 10, 'every value of the range is drawn');
  t.end();
});

t.test('a follower campaigns only after its randomized timeout', (t) => {
  const net = new Network([1, 2, 3], { config: { electionTick: 10 } });
  const n = net.node(1);
  const timeout = n.raw.raft.randomizedElectionTimeout;
  for (let i = 1; i < timeout; i++) n.raw.tick();
  t.equal(n.status().role, Role.Follower, `still follower after ${timeout - 1} ticks`);
  n.raw.tick();
  t.equal(n.status().role, Role.PreCandidate, `pre-candidate at tick ${timeout}`);
  t.end();
});

t.test('the leader heartbeats every heartbeatTick and followers stay quiet', (t) => {
  const net = new Network([1, 2, 3], { config: { heartbeatTick: 2 } });
  elect(net, 1);
  net.log = [];
  net.tickAll(1);
  t.equal(net.log.filter((m) => m.type === MessageType.Heartbeat).length, 0, 'no heartbeat after one tick');
  net.tickAll(1);
  t.equal(net.log.filter((m) => m.type === MessageType.Heartbeat).length, 2, 'one heartbeat per follower after two ticks');
  net.tickAll(30);
  t.equal(net.leader()?.id, 1, 'heartbeats keep the leader in place');
  t.equal(net.node(2).status().term, 1, 'no follower started an election');
  t.end();
});

t.test('proposing to a fresh node without leader is reported, not lost', (t) => {
  const net = new Network([1, 2, 3]);
  net.node(2).raw.propose(enc('lost?'));
  net.stabilize();
  t.equal(net.node(2).dropped.length, 1);
  t.match(net.node(2).dropped[0], { reason: /no leader/, leader: 0 });
  t.end();
});
