// Linearizable reads: ReadIndex (safe) confirms leadership with a heartbeat round before
// answering, waits for the leader's first commit in its term, is forwarded by followers, and is
// reported as dropped when it can't be served. Lease reads answer at once and need check-quorum.
import t from 'tap';
import { MessageType } from '../types.js';
import { MemoryStorage } from './memory-storage.js';
import { RawNode } from './rawnode.js';
import { Network, dec, elect, enc } from './test-network.js';

t.test('a ReadIndex at the leader is answered after a quorum acknowledged a heartbeat round', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  net.propose(1, 'a');
  const commit = net.node(1).status().commit;
  const leader = net.node(1);
  leader.raw.readIndex(enc('req-1'));
  net.processReady(leader);
  t.same(leader.readStates, [], 'no answer before the heartbeat round');
  const hbs = net.pending().filter((m) => m.type === MessageType.Heartbeat);
  t.equal(hbs.length, 2, 'a heartbeat to each follower');
  t.ok(hbs.every((m) => dec(m.context!) === 'req-1'), 'carrying the request context');
  net.stabilize();
  t.equal(leader.readStates.length, 1);
  t.equal(leader.readStates[0].index, commit, 'the read index is the commit index at request time');
  t.equal(dec(leader.readStates[0].context), 'req-1');
  t.end();
});

t.test('a follower forwards ReadIndex to the leader and gets the index back', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  net.propose(1, 'a');
  net.log = [];
  net.node(3).raw.readIndex(enc('from-3'));
  net.stabilize();
  t.ok(net.log.some((m) => m.type === MessageType.ReadIndex && m.from === 3 && m.to === 1), 'forwarded');
  t.ok(net.log.some((m) => m.type === MessageType.ReadIndexResp && m.to === 3), 'answered');
  t.same(net.node(3).readStates.map((r) => [r.index, dec(r.context)]), [[net.node(1).status().commit, 'from-3']]);
  t.end();
});

t.test('a new leader answers reads only after committing an entry of its own term', (t) => {
  const net = new Network([1, 2, 3]);
  net.filter = (m) => m.type === MessageType.AppResp && m.to === 1 && m.from !== 1; // no commit yet
  elect(net, 1);
  t.equal(net.node(1).status().commit, 0, 'the empty entry of term 1 is not committed');
  net.node(1).raw.readIndex(enc('early'));
  net.stabilize();
  t.same(net.node(1).readStates, [], 'the read waits');
  net.heal();
  net.tickAll(2);
  t.same(net.node(1).readStates.map((r) => [r.index, dec(r.context)]), [[1, 'early']], 'served once the term\'s entry committed');
  t.end();
});

t.test('an isolated leader cannot confirm a read; it is reported dropped when the leader steps down', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  net.isolate(1);
  net.node(1).raw.readIndex(enc('local'));
  net.stabilize();
  t.same(net.node(1).readStates, [], 'no quorum: no answer');
  net.tickAll(25); // check-quorum steps the leader down
  t.not(net.node(1).status().role, 'leader');
  t.same(net.node(1).droppedReads.map((d) => dec(d.context)), ['local'], 'the local read is reported dropped');
  t.match(net.node(1).droppedReads[0].reason, /changed role/);
  t.end();
});

t.test('a follower learns that the leader dropped its forwarded read', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  net.cut(1, 3); // the leader cannot confirm with node 3 ...
  net.filter = (m) => m.type === MessageType.HeartbeatResp && m.from === 2; // ... nor with node 2
  net.node(2).raw.readIndex(enc('r2'));
  net.stabilize();
  net.tickAll(25);
  t.same(net.node(2).droppedReads.map((d) => dec(d.context)), ['r2'], 'the follower got the rejection');
  t.match(net.node(2).droppedReads[0].reason, /dropped the read/);
  t.end();
});

t.test('reads without a known leader are reported dropped', (t) => {
  const net = new Network([1, 2, 3]);
  net.node(2).raw.readIndex(enc('nobody'));
  net.stabilize();
  t.same(net.node(2).droppedReads.map((d) => [dec(d.context), d.leader]), [['nobody', 0]]);
  t.match(net.node(2).droppedReads[0].reason, /no leader/);
  t.end();
});

t.test('a single-node cluster answers reads at once', (t) => {
  const net = new Network([1]);
  net.campaign(1);
  net.propose(1, 'a');
  net.node(1).raw.readIndex(enc('solo'));
  net.stabilize();
  t.same(net.node(1).readStates.map((r) => [r.index, dec(r.context)]), [[2, 'solo']]);
  t.end();
});

t.test('lease reads are answered without a heartbeat round', (t) => {
  const net = new Network([1, 2, 3], { config: { readOnly: 'lease' } });
  elect(net, 1);
  net.propose(1, 'a');
  net.log = [];
  net.node(1).raw.readIndex(enc('lease'));
  net.stabilize();
  t.same(net.node(1).readStates.map((r) => dec(r.context)), ['lease']);
  t.notOk(net.log.some((m) => m.type === MessageType.Heartbeat), 'no heartbeat round was needed');
  net.node(2).raw.readIndex(enc('lease-2'));
  net.stabilize();
  t.same(net.node(2).readStates.map((r) => dec(r.context)), ['lease-2'], 'forwarded lease reads work too');
  t.end();
});

t.test('a new leader answers lease reads, too, only after committing an entry of its own term', (t) => {
  // Its lease says no other leader exists, not that its commit index is current (§6.4).
  const net = new Network([1, 2, 3], { config: { readOnly: 'lease' } });
  net.filter = (m) => m.type === MessageType.AppResp && m.to === 1 && m.from !== 1; // no commit yet
  elect(net, 1);
  net.node(1).raw.readIndex(enc('early-lease'));
  net.stabilize();
  t.same(net.node(1).readStates, [], 'the read waits');
  net.heal();
  net.tickAll(2);
  t.same(net.node(1).readStates.map((r) => [r.index, dec(r.context)]), [[1, 'early-lease']], "served once the term's entry committed");
  t.end();
});

t.test("readOnly 'lease' without checkQuorum is refused at construction", (t) => {
  t.throws(
    () => new RawNode({ id: 1, storage: new MemoryStorage(), random: Math.random, readOnly: 'lease', checkQuorum: false }),
    /readOnly 'lease' requires checkQuorum/,
  );
  t.end();
});

t.test('a read whose context is already pending is refused (contexts must be unique)', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  net.propose(1, 'a');
  net.node(1).raw.readIndex(enc('dup'));
  net.node(1).raw.readIndex(enc('dup'));
  net.node(2).raw.readIndex(enc('dup')); // forwarded, same context from another node
  net.stabilize();
  t.same(net.node(1).readStates.map((r) => dec(r.context)), ['dup'], 'the first one is served');
  t.same(net.node(1).droppedReads.map((d) => dec(d.context)), ['dup'], 'the local duplicate is reported');
  t.match(net.node(1).droppedReads[0].reason, /same context is already pending/);
  t.same(net.node(2).droppedReads.map((d) => dec(d.context)), ['dup'], 'the follower hears its read was refused');
  t.end();
});

// raft/sim FINDINGS #4b (seed 4324): a read in flight to a leader that steps down must come back
// to the node that asked, the only one whose host knows the context; reported at the node it
// reached, it was lost and the asker waited for ever.
t.test('a read forwarded to a node whose leader role just ended goes back to the asker', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  net.propose(1, 'a');
  net.node(2).raw.readIndex(enc('late'));
  net.processReady(net.node(2));
  const held = net.dropQueued().filter((m) => m.type === MessageType.ReadIndex);
  t.equal(held.length, 1, 'the read is on its way from 2 to leader 1');
  // Leader 1 loses its quorum (check-quorum) while node 2 still follows it.
  net.cut(1, 3);
  net.filter = (m) => m.to === 1 && m.from === 2 && (m.type === MessageType.HeartbeatResp || m.type === MessageType.AppResp);
  net.tick(1, 20); // check-quorum: the second check finds no quorum
  t.equal(net.node(1).status().role, 'follower', 'node 1 stepped down');
  t.equal(net.node(1).status().lead, 0, 'and knows no leader');
  t.equal(net.node(2).status().lead, 1, 'node 2 still takes 1 for its leader');
  net.node(1).raw.step(held[0]);
  net.stabilize();
  t.same(net.node(1).droppedReads.map((d) => dec(d.context)), [], "not reported to node 1's host, which never asked");
  t.same(net.node(2).droppedReads.map((d) => dec(d.context)), ['late'], 'the asker is told, so its host retries');
  t.match(net.node(2).droppedReads[0].reason, /node 1 dropped the read/);
  t.end();
});

t.test('a read forwarded to a candidate goes back to the asker', (t) => {
  const net = new Network([1, 2, 3], { config: { preVote: false } });
  elect(net, 1);
  net.node(2).raw.readIndex(enc('to-candidate'));
  net.processReady(net.node(2));
  const held = net.dropQueued().filter((m) => m.type === MessageType.ReadIndex);
  net.isolate(3);
  net.tick(3, 30);
  t.equal(net.node(3).status().role, 'candidate');
  net.heal();
  net.log = [];
  net.node(3).raw.step({ ...held[0], to: 3 }); // as if 2 had taken 3 for its leader
  net.processReady(net.node(3));
  t.same(net.node(3).droppedReads, [], 'the candidate does not report it to its own host');
  const back = net.log.filter((m) => m.type === MessageType.ReadIndexResp);
  t.same(back.map((m) => [m.from, m.to, m.reject, dec(m.context!)]), [[3, 2, true, 'to-candidate']], 'it rejects it back to node 2');
  t.end();
});

// The other half of seed 4324: the answer of a leader that has since been replaced carries its
// older term, which the asker (now in a newer term) ignores like any stale message.
t.test('a forwarded read is failed at the asker when its leader changes, and a late answer is not reported twice', (t) => {
  const net = new Network([1, 2, 3], { config: { preVote: false, checkQuorum: false } });
  elect(net, 1);
  net.propose(1, 'a');
  const oldTerm = net.node(1).status().term;
  net.node(2).raw.readIndex(enc('r'));
  net.processReady(net.node(2));
  t.equal(net.dropQueued().filter((m) => m.type === MessageType.ReadIndex).length, 1, 'the forwarded read is lost in flight');
  net.isolate(1);
  net.campaign(3);
  t.equal(net.node(3).status().role, 'leader', 'node 3 leads a newer term');
  t.equal(net.node(2).status().lead, 3);
  t.same(net.node(2).droppedReads.map((d) => dec(d.context)), ['r'], 'node 2 failed its read when its leader changed');
  t.match(net.node(2).droppedReads[0].reason, /leader changed/);
  // The old leader's answer, had it arrived: ignored, as it would be anyway for its old term.
  net.node(2).raw.step({ type: MessageType.ReadIndexResp, from: 1, to: 2, term: oldTerm, logTerm: 0, index: 2, entries: [], commit: 0, reject: false, rejectHint: 0, context: enc('r') });
  net.processReady(net.node(2));
  t.same(net.node(2).readStates, [], 'no answer for a read already failed');
  t.equal(net.node(2).droppedReads.length, 1, 'and no second report');
  t.end();
});

t.test('a forwarded read with no answer is failed after ten election timeouts', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  net.propose(1, 'a');
  net.filter = (m) => m.type === MessageType.ReadIndex; // the request is lost on the wire
  net.node(2).raw.readIndex(enc('lost'));
  net.stabilize();
  net.tickAll(99);
  t.same(net.node(2).droppedReads, [], 'not before ten election timeouts (100 ticks)');
  t.equal(net.node(2).status().lead, 1, 'the leader is alive all along');
  net.tickAll(1);
  t.same(net.node(2).droppedReads.map((d) => [dec(d.context), d.leader]), [['lost', 1]], 'then reported, with the leader to retry at');
  t.match(net.node(2).droppedReads[0].reason, /no answer from the leader within 10 election timeouts/);
  net.heal();
  net.node(2).raw.readIndex(enc('again'));
  net.stabilize();
  t.same(net.node(2).readStates.map((r) => dec(r.context)), ['again'], 'a retry is answered');
  t.end();
});

t.test('a follower refuses a second forwarded read with a context it is still waiting on', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  net.propose(1, 'a');
  net.node(2).raw.readIndex(enc('same'));
  net.node(2).raw.readIndex(enc('same'));
  net.stabilize();
  t.same(net.node(2).readStates.map((r) => dec(r.context)), ['same'], 'the first is answered once');
  t.same(net.node(2).droppedReads.map((d) => dec(d.context)), ['same'], 'the second is refused');
  t.match(net.node(2).droppedReads[0].reason, /already pending here/);
  t.end();
});
