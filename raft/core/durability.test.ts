// The durability rule: nothing that vouches for this node's disk leaves before the Ready that
// made it true was persisted. Vote grants, pre-vote answers, append acks and rejections are in
// Ready.messagesAfterPersist; a candidate's own vote and a leader's own ack count only after
// advance().
import t from 'tap';
import { MessageType, Role } from '../types.js';
import { newMessage } from './raft.js';
import { MemoryStorage } from './memory-storage.js';
import { RawNode } from './rawnode.js';
import { Network, elect, enc, types } from './test-network.js';

const conf3 = { voters: [1, 2, 3], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };

function node(id: number, extra = {}) {
  const storage = MemoryStorage.withConf(conf3);
  return { storage, raw: new RawNode({ id, storage, random: () => 0.5, ...extra }) };
}

t.test('a vote grant leaves only after the vote is persisted', (t) => {
  const { raw } = node(2);
  raw.step(newMessage({ type: MessageType.Vote, from: 1, to: 2, term: 1, index: 0, logTerm: 0 }));
  const rd = raw.ready();
  t.same(rd.messages, [], 'nothing to send before persisting');
  t.same(types(rd.messagesAfterPersist), ['VoteResp 2->1'], 'the grant waits for the persist');
  t.equal(rd.messagesAfterPersist[0].reject, false);
  t.same(rd.hardState, { term: 1, vote: 1, commit: 0 }, 'the vote to persist');
  t.equal(rd.mustSync, true, 'and it must be fsynced');
  raw.advance();
  t.end();
});

t.test('pre-vote answers and vote rejections are also held back', (t) => {
  const { raw } = node(2);
  raw.step(newMessage({ type: MessageType.PreVote, from: 1, to: 2, term: 1, index: 0, logTerm: 0 }));
  let rd = raw.ready();
  t.same(types(rd.messagesAfterPersist), ['PreVoteResp 2->1']);
  t.same(rd.messages, []);
  raw.advance();
  raw.step(newMessage({ type: MessageType.Vote, from: 1, to: 2, term: 1, index: 0, logTerm: 0 }));
  raw.ready();
  raw.advance();
  raw.step(newMessage({ type: MessageType.Vote, from: 3, to: 2, term: 1, index: 0, logTerm: 0 }));
  rd = raw.ready();
  t.same(types(rd.messagesAfterPersist), ['VoteResp 2->3'], 'a rejection (already voted for 1) also waits');
  t.equal(rd.messagesAfterPersist[0].reject, true);
  raw.advance();
  t.end();
});

t.test('append acks and rejections leave only after the entries are persisted', (t) => {
  const { raw, storage } = node(2);
  const e = (index: number) => ({ term: 1, index, type: 0, data: enc(`e${index}`) });
  raw.step(newMessage({ type: MessageType.App, from: 1, to: 2, term: 1, index: 0, logTerm: 0, entries: [e(1), e(2)], commit: 0 }));
  let rd = raw.ready();
  t.equal(rd.entries.length, 2, 'entries to persist');
  t.same(rd.messages, []);
  t.same(types(rd.messagesAfterPersist), ['AppResp 2->1']);
  t.equal(rd.messagesAfterPersist[0].index, 2, 'the ack names the last appended index');
  t.equal(rd.mustSync, true);
  storage.append(rd.entries);
  raw.advance();
  raw.step(newMessage({ type: MessageType.App, from: 1, to: 2, term: 1, index: 7, logTerm: 1, entries: [], commit: 0 }));
  rd = raw.ready();
  t.same(types(rd.messagesAfterPersist), ['AppResp 2->1'], 'a rejection waits too');
  t.equal(rd.messagesAfterPersist[0].reject, true);
  t.equal(rd.messagesAfterPersist[0].rejectHint, 2, 'hinting our last index');
  raw.advance();
  t.end();
});

t.test('a candidate counts its own vote only after advance()', (t) => {
  const { raw } = node(1, { preVote: false });
  raw.campaign();
  const rd = raw.ready();
  t.same(types(rd.messages), ['Vote 1->2', 'Vote 1->3'], 'vote requests go out at once');
  t.same(rd.messagesAfterPersist, [], 'the self-vote is not on the wire');
  t.same(rd.hardState, { term: 1, vote: 1, commit: 0 });
  raw.step(newMessage({ type: MessageType.VoteResp, from: 2, to: 1, term: 1 }));
  t.equal(raw.status().role, Role.Candidate, 'one grant without its own durable vote is not a majority');
  raw.advance();
  t.equal(raw.status().role, Role.Leader, 'after advance() its own vote counts and it wins');
  t.end();
});

t.test('a single-node leader commits only after its own write is persisted', (t) => {
  const storage = MemoryStorage.withConf({ ...conf3, voters: [1] });
  const raw = new RawNode({ id: 1, storage, random: () => 0 });
  const loop = () => {
    while (raw.hasReady()) {
      const rd = raw.ready();
      storage.append(rd.entries);
      if (rd.hardState) storage.setHardState(rd.hardState);
      raw.advance();
    }
  };
  raw.campaign();
  loop();
  t.equal(raw.status().role, Role.Leader);
  raw.propose(enc('x'));
  const rd = raw.ready();
  t.equal(rd.entries.length, 1);
  t.equal(rd.committedEntries.length, 0, 'not committed in the Ready that carries it');
  t.equal(raw.status().commit, 1, 'commit did not move before persisting');
  storage.append(rd.entries);
  raw.advance();
  t.equal(raw.status().commit, 2, 'advance() acknowledged the durable entry and committed it');
  const rd2 = raw.ready();
  t.same(rd2.committedEntries.map((e) => e.index), [2], 'the next Ready applies it');
  raw.advance();
  t.end();
});

t.test('a crash before persisting loses the vote, and no grant ever left', (t) => {
  const net = new Network([1, 2, 3], { config: { preVote: false } });
  const n2 = net.node(2);
  n2.raw.step(newMessage({ type: MessageType.Vote, from: 1, to: 2, term: 1, index: 0, logTerm: 0 }));
  const rd = n2.raw.ready();
  t.equal(rd.messages.length, 0, 'nothing could have been sent before the crash');
  const restarted = net.restart(2); // storage never saw this Ready
  t.equal(restarted.status().vote, 0, 'after restart the vote is gone');
  t.equal(restarted.status().term, 0);
  t.end();
});

t.test('Ready/advance misuse is refused with a clear error', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  const raw = net.node(1).raw;
  t.throws(() => raw.advance(), /no outstanding Ready/);
  raw.propose(enc('a'));
  raw.ready();
  t.equal(raw.hasReady(), false, 'while a Ready is outstanding hasReady() is false');
  t.throws(() => raw.ready(), /previous Ready was not advanced/);
  raw.advance();
  t.throws(() => raw.step(newMessage({ type: MessageType.Hup, from: 1, to: 1 })), /local message type/);
  t.throws(() => raw.step(newMessage({ type: MessageType.App, from: 2, to: 3, term: 1 })), /addressed to node 3/);
  t.throws(() => raw.step(newMessage({ type: 99 as MessageType, from: 2, to: 1 })), /unknown message type/);
  const before = raw.status();
  const bad = (index: number, term: number) => ({ index, term, type: 0, data: enc('x') });
  t.throws(() => raw.step(newMessage({ type: MessageType.App, from: 2, to: 1, term: 1, index: 1, logTerm: 1, entries: [bad(3, 1)] })), /malformed entry at position 0 \(expected index 2/);
  t.throws(() => raw.step(newMessage({ type: MessageType.App, from: 2, to: 1, term: 1, index: 1, logTerm: 1, entries: [bad(2, 5)] })), /term in 1..1/);
  t.throws(() => raw.step(newMessage({ type: MessageType.Snap, from: 2, to: 1, term: 1 })), /carries no snapshot/);
  t.same(raw.status(), before, 'malformed messages change nothing');
  t.end();
});

t.test('an ack for entries replaced before the Ready was handed out is never sent', (t) => {
  // Found by raft/sim (seed 500122): a follower acked entries 1..3 of a term-1 leader, then,
  // before its next Ready, a term-2 leader replaced entries 2..3. The ack would have left after
  // persisting a log that no longer holds entries 2..3.
  const { raw, storage } = node(2);
  const e = (index: number, term: number) => ({ term, index, type: 0, data: enc(`e${index}t${term}`) });
  raw.step(newMessage({ type: MessageType.App, from: 1, to: 2, term: 1, index: 0, logTerm: 0, entries: [e(1, 1), e(2, 1), e(3, 1)], commit: 0 }));
  raw.step(newMessage({ type: MessageType.App, from: 3, to: 2, term: 2, index: 1, logTerm: 1, entries: [e(2, 2)], commit: 0 }));
  const rd = raw.ready();
  t.same(rd.entries.map((x) => [x.index, x.term]), [[1, 1], [2, 2]], 'what will be persisted: entry 1 and the new entry 2');
  t.same(rd.messagesAfterPersist.map((m) => [m.to, m.index, m.reject]), [[3, 2, false]], 'only the ack to the new leader; the stale ack of index 3 to node 1 is gone');
  storage.append(rd.entries);
  raw.advance();
  t.end();
});

t.test('an ack already handed out with its Ready stays valid when a later append replaces the entries', (t) => {
  const { raw, storage } = node(2);
  const e = (index: number, term: number) => ({ term, index, type: 0, data: enc(`e${index}t${term}`) });
  raw.step(newMessage({ type: MessageType.App, from: 1, to: 2, term: 1, index: 0, logTerm: 0, entries: [e(1, 1), e(2, 1)], commit: 0 }));
  const rd1 = raw.ready(); // entries 1..2 and their ack: persisted before the ack leaves
  raw.step(newMessage({ type: MessageType.App, from: 3, to: 2, term: 2, index: 1, logTerm: 1, entries: [e(2, 2)], commit: 0 }));
  t.same(rd1.messagesAfterPersist.map((m) => [m.to, m.index]), [[1, 2]], 'the handed-out ack is untouched');
  storage.append(rd1.entries);
  raw.advance();
  const rd2 = raw.ready();
  t.same(rd2.entries.at(-1) && [rd2.entries.at(-1)!.index, rd2.entries.at(-1)!.term], [2, 2], 'the replacement is persisted next (entry 1 may be written again: harmless)');
  t.same(rd2.messagesAfterPersist.map((m) => [m.to, m.index]), [[3, 2]]);
  storage.append(rd2.entries);
  raw.advance();
  t.equal(storage.term(2), 2);
  t.end();
});
