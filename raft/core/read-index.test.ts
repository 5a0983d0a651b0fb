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
