// Stories about log replication: a follower's conflicting suffix is overwritten with fast
// backtracking, heartbeats carry a safe commit index, the leader writes its own copy in
// parallel with its followers, and a lagging follower is caught up.
import t from 'tap';
import { MessageType, Role } from '../types.js';
import { Network, elect, enc, types } from './test-network.js';

/** Ticks only `ids` until one of them leads (their leader lease must expire first). */
function electAmong(net: Network, ids: number[]): number {
  for (let i = 0; i < 200; i++) {
    for (const id of ids) net.node(id).raw.tick();
    net.stabilize();
    const l = ids.find((id) => net.node(id).status().role === Role.Leader);
    if (l) return l;
  }
  throw new Error(`none of ${ids} became leader`);
}

/** Builds: node 1 led term 1 and wrote `stale` uncommitted entries alone; node 2 leads term 2 with `fresh` entries. */
function divergedCluster(stale: number, fresh: number) {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  net.propose(1, 'shared');
  net.isolate(1);
  for (let i = 0; i < stale; i++) net.node(1).raw.propose(enc(`stale-${i}`));
  net.stabilize();
  const first = electAmong(net, [2, 3]);
  for (let i = 0; i < fresh; i++) net.node(first).raw.propose(enc(`fresh-${i}`));
  net.stabilize();
  // Hand leadership to the other node: a new leader probes node 1 at its own (long) last index,
  // where node 1 holds a stale term-1 entry.
  const nl = first === 2 ? 3 : 2;
  net.node(first).raw.transferLeader(nl);
  net.stabilize();
  if (net.node(nl).status().role !== Role.Leader) throw new Error(`transfer to ${nl} failed`);
  return { net, nl };
}

t.test('a conflicting suffix is overwritten, finding the fork point in one round trip', (t) => {
  const { net, nl } = divergedCluster(50, 30);
  t.equal(net.node(1).status().term, 1, 'node 1 is still at term 1 with its stale entries');
  t.equal(net.node(1).storage.lastIndex(), 52, '1 empty + 1 shared + 50 stale');
  net.heal();
  net.log = [];
  net.tickAll(3);
  const rejects = net.log.filter((m) => m.type === MessageType.AppResp && m.from === 1 && m.reject);
  t.equal(rejects.length, 1, `one rejection suffices (naive backtracking would need ~30): ${JSON.stringify(rejects.map((m) => [m.index, m.rejectHint, m.logTerm]))}`);
  t.equal(rejects[0].logTerm, 1, 'the rejection names the term of the follower\'s entry at the hint');
  t.equal(rejects[0].to, nl);
  const l1 = net.node(1).storage;
  const l2 = net.node(nl).storage;
  t.equal(l1.lastIndex(), l2.lastIndex(), 'same length as the leader\'s log');
  t.same(l1.entries(1, l1.lastIndex() + 1, Infinity), l2.entries(1, l2.lastIndex() + 1, Infinity), 'identical entries');
  t.same(net.node(1).appliedData(), ['shared', ...Array.from({ length: 30 }, (_, i) => `fresh-${i}`)], 'node 1 applied the new leader\'s entries, never the stale ones');
  t.end();
});

t.test('a follower with a short log is probed at its last index (hint) instead of one by one', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  net.isolate(3);
  for (let i = 0; i < 40; i++) net.node(1).raw.propose(enc(`e${i}`));
  net.stabilize();
  // A new leader (node 2, by transfer) knows nothing of node 3 and probes at its own last index.
  net.node(1).raw.transferLeader(2);
  net.stabilize();
  t.equal(net.node(2).status().role, Role.Leader);
  net.heal();
  net.log = [];
  net.tickAll(3);
  const rejects = net.log.filter((m) => m.type === MessageType.AppResp && m.from === 3 && m.reject);
  t.ok(rejects.length <= 1, `at most one rejection (${rejects.length})`);
  t.equal(net.node(3).appliedData().length, 40, 'node 3 caught up on all 40 entries');
  t.end();
});

t.test('heartbeats carry min(match, commit) so a follower never commits what it may not hold', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  net.isolate(3);
  const match3 = net.node(1).status().progress!.get(3)!.match;
  for (let i = 0; i < 5; i++) net.propose(1, `p${i}`);
  const commit = net.node(1).status().commit;
  t.ok(commit > match3, `the leader committed ${commit}, beyond node 3's match ${match3}`);
  net.heal();
  net.filter = (m) => m.type === MessageType.App; // only heartbeats get through
  net.log = [];
  net.tickAll(1);
  const hb3 = net.log.find((m) => m.type === MessageType.Heartbeat && m.to === 3)!;
  const hb2 = net.log.find((m) => m.type === MessageType.Heartbeat && m.to === 2)!;
  t.equal(hb3.commit, match3, 'the heartbeat to the lagging node carries its match');
  t.equal(hb2.commit, commit, 'the heartbeat to the up-to-date node carries the commit index');
  t.equal(net.node(3).status().commit, match3, 'node 3 did not commit beyond its log');
  t.end();
});

t.test('the leader sends MsgApp before its own write is durable; followers alone can commit', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  const leader = net.node(1);
  leader.raw.propose(enc('parallel'));
  const rd = leader.raw.ready();
  t.equal(rd.entries.length, 1, 'the Ready holds the entry to persist');
  t.same(types(rd.messages), ['App 1->2', 'App 1->3'], 'and, in the same Ready, the MsgApps to send right away');
  t.equal(rd.messagesAfterPersist.length, 0, 'the leader\'s self-ack is not on the wire');
  // Deliver to the followers and back before the leader has persisted or advanced.
  for (const m of rd.messages) net.node(m.to).raw.step(m);
  for (const id of [2, 3]) {
    const frd = net.node(id).raw.ready();
    net.node(id).storage.append(frd.entries);
    if (frd.hardState) net.node(id).storage.setHardState(frd.hardState);
    for (const m of frd.messagesAfterPersist) leader.raw.step(m);
    net.node(id).raw.advance();
  }
  t.equal(leader.status().commit, 2, 'the two follower acks committed the entry');
  t.equal(leader.status().progress!.get(1)!.match, 1, 'while the leader\'s own match still waits for its disk');
  leader.storage.append(rd.entries);
  if (rd.hardState) leader.storage.setHardState(rd.hardState);
  leader.raw.advance();
  t.equal(leader.status().progress!.get(1)!.match, 2, 'after advance() the leader acked itself');
  net.stabilize();
  t.same(leader.appliedData(), ['parallel']);
  t.end();
});

t.test('a leader that persisted but whose followers did not answer does not commit (needs a quorum)', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  net.isolate(1);
  net.propose(1, 'alone');
  t.equal(net.node(1).status().commit, 1, 'commit stays at the empty entry of the term');
  t.same(net.node(1).appliedData(), []);
  t.end();
});

t.test('a follower moves from probe to replicate after its first successful answer', (t) => {
  const net = new Network([1, 2, 3]);
  net.campaign(1);
  const st = net.node(1).status().progress!;
  t.equal(st.get(2)!.state, 'replicate');
  t.equal(st.get(3)!.state, 'replicate');
  t.end();
});

t.test('a leader never commits an entry of an older term by counting its replicas (§5.4.2)', (t) => {
  // No check-quorum (so no leader lease to wait out) and one entry per MsgApp.
  const net = new Network([1, 2, 3], { config: { maxSizePerMsg: 1, checkQuorum: false } });
  elect(net, 1);
  net.isolate(1);
  net.node(1).raw.propose(enc('old')); // index 2, term 1, only on node 1
  net.stabilize();
  net.restart(1); // node 1 crashes and comes back as a follower with its term-1 entry
  net.heal();
  // The first probe (prev 2, entry 3) is rejected by the followers, which lack index 2; after
  // that let the term-1 entry through but never the leader's own term-2 entry.
  const probed = new Set<number>();
  net.filter = (m) => {
    if (m.type !== MessageType.App || !m.entries.some((e) => e.index === 3)) return false;
    if (!probed.has(m.to)) {
      probed.add(m.to);
      return false;
    }
    return true;
  };
  elect(net, 1);
  t.equal(net.node(1).status().term, 2);
  t.equal(net.node(1).status().progress!.get(2)!.match, 2, 'node 2 holds the term-1 entry at index 2');
  t.equal(net.node(1).status().commit, 1, 'a majority holds index 2 yet it is not committed: its term is 1, not 2');
  net.heal();
  net.tickAll(2);
  t.equal(net.node(1).status().commit, 3, 'once the term-2 entry is on a majority, both commit');
  t.same(net.node(2).appliedData(), ['old']);
  t.end();
});
