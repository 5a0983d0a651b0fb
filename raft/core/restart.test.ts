// Restart: a node rebuilt from what it persisted (MemoryStorage) keeps its term, vote, log and
// commit index, re-applies from `applied`, and rejoins; a vote given before a crash holds after it.
import t from 'tap';
import { MessageType, Role } from '../types.js';
import { newMessage } from './raft.js';
import { RawNode } from './rawnode.js';
import { Network, elect } from './test-network.js';

t.test('term, vote and commit survive a restart; the node rejoins and re-applies', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  for (let i = 0; i < 5; i++) net.propose(1, `e${i}`);
  const before = net.node(2).status();
  const n2 = net.restart(2);
  const after = n2.status();
  t.equal(after.term, before.term, 'term kept');
  t.equal(after.vote, before.vote, 'vote kept');
  t.equal(after.commit, before.commit, 'commit kept');
  t.equal(after.applied, 0, 'nothing applied yet (no snapshot)');
  t.equal(after.role, Role.Follower);
  net.stabilize();
  t.same(n2.appliedData(), ['e0', 'e1', 'e2', 'e3', 'e4'], 'the committed entries are handed out again for applying');
  net.propose(1, 'later');
  t.equal(n2.appliedData().at(-1), 'later', 'and it follows the leader again');
  t.end();
});

t.test('config.applied skips entries the application already has', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  for (let i = 0; i < 5; i++) net.propose(1, `e${i}`);
  const st = net.node(3).storage.clone();
  const raw = new RawNode({ id: 3, storage: st, random: () => 0.3, applied: 4 });
  const rd = raw.ready();
  t.same(rd.committedEntries.map((e) => e.index), [5, 6], 'only entries after applied 4');
  raw.advance();
  t.throws(() => new RawNode({ id: 3, storage: st, random: () => 0.3, applied: 99 }), /applied 99 is beyond the last log index 6/);
  // The stored commit may lag the applied index (a commit-only HardState need not be fsynced).
  st.setHardState({ ...st.hardState(), commit: 2 });
  const caught = new RawNode({ id: 3, storage: st, random: () => 0.3, applied: 5 });
  t.equal(caught.status().commit, 5, 'what was applied counts as committed');
  t.equal(caught.hasReady(), false, 'and nothing is handed out to apply twice');
  t.end();
});

t.test('a vote persisted before a crash is honoured after it: no second vote in the same term', (t) => {
  const net = new Network([1, 2, 3], { config: { preVote: false } });
  const n3 = net.node(3);
  n3.raw.step(newMessage({ type: MessageType.Vote, from: 1, to: 3, term: 1, index: 0, logTerm: 0 }));
  net.processReady(n3); // persisted and granted
  net.dropQueued();
  const r3 = net.restart(3);
  t.equal(r3.status().vote, 1);
  r3.raw.step(newMessage({ type: MessageType.Vote, from: 2, to: 3, term: 1, index: 0, logTerm: 0 }));
  const rd = r3.raw.ready();
  t.equal(rd.messagesAfterPersist[0].reject, true, 'node 2 is refused in term 1');
  r3.raw.advance();
  t.end();
});

t.test('a whole cluster restarts and elects a leader with every committed entry', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  for (let i = 0; i < 3; i++) net.propose(1, `e${i}`);
  net.compact(2);
  for (const id of [1, 2, 3]) net.restart(id);
  net.stabilize();
  for (let i = 0; i < 60 && !net.leader(); i++) net.tickAll();
  const l = net.leader()!;
  t.ok(l, `node ${l?.id} leads after the restart`);
  t.ok(l.status().term > 1);
  net.propose(l.id, 'e3');
  for (const id of [1, 2, 3]) t.same(net.node(id).appliedData(), ['e0', 'e1', 'e2', 'e3'], `node ${id} state is complete`);
  t.end();
});

