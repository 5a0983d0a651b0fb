// Snapshots: a follower that lags behind the leader's compaction gets a MsgSnap and resumes
// normal replication; a snapshot that arrives while an append is being persisted wins; a failed
// snapshot is retried; a joiner catches up from a snapshot that carries the config.
import t from 'tap';
import { ConfChangeTransition, ConfChangeType, EntryType, MessageType, Role } from '../types.js';
import { decodeConfChange, encodeConfChange } from './confchange-codec.js';
import { newMessage } from './raft.js';
import { MemoryStorage } from './memory-storage.js';
import { RawNode } from './rawnode.js';
import { Network, elect, enc, single } from './test-network.js';

t.test('a follower behind the compaction point is sent the snapshot, then replication resumes', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  net.isolate(3);
  for (let i = 0; i < 20; i++) net.propose(1, `e${i}`);
  net.compact(1, 2); // snapshot at the applied index, keep a 2-entry tail
  const first = net.node(1).storage.firstIndex();
  t.ok(first > 2, `the leader's log now starts at ${first}`);
  net.heal();
  net.log = [];
  net.tickAll(1);
  const snaps = net.log.filter((m) => m.type === MessageType.Snap);
  t.equal(snaps.length, 1, 'one MsgSnap was sent');
  t.equal(snaps[0].to, 3);
  t.equal(snaps[0].snapshot!.meta.index, 21, 'the snapshot at the leader\'s applied index');
  const rd = net.node(3).readys.find((r) => r.snapshot);
  t.ok(rd, 'node 3 got a Ready with the snapshot to persist and apply');
  t.equal(rd!.committedEntries.length, 0, 'no entries are applied in the same Ready as a snapshot');
  t.same(net.node(3).appliedData(), Array.from({ length: 20 }, (_, i) => `e${i}`), 'node 3 has the state machine of the snapshot');
  t.equal(net.node(3).storage.firstIndex(), 22, 'its log starts after the snapshot');
  t.same(net.node(3).conf.voters, [1, 2, 3], 'its config came from the snapshot');
  t.equal(net.node(1).status().progress!.get(3)!.state, 'replicate', 'the leader resumed replicating after the ack');
  net.propose(1, 'after');
  t.equal(net.node(3).appliedData().at(-1), 'after', 'and new entries flow');
  t.end();
});

t.test('a snapshot that arrives while an append is being persisted replaces it', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  for (let i = 0; i < 10; i++) net.propose(1, `e${i}`);
  net.compact(1);
  const snap = net.node(1).storage.snapshot();
  // A fresh follower (empty log) receives an MsgApp and starts persisting it ...
  const storage = MemoryStorage.withConf(snap.meta.conf);
  const raw = new RawNode({ id: 4, storage, random: () => 0.5 });
  const old = [1, 2, 3].map((index) => ({ term: 1, index, type: EntryType.Normal, data: enc(`old${index}`) }));
  raw.step(newMessage({ type: MessageType.App, from: 1, to: 4, term: 1, index: 0, logTerm: 0, entries: old, commit: 0 }));
  const rd1 = raw.ready();
  t.equal(rd1.entries.length, 3);
  // ... when the snapshot arrives, before advance().
  raw.step(newMessage({ type: MessageType.Snap, from: 1, to: 4, term: 1, snapshot: snap }));
  storage.append(rd1.entries);
  if (rd1.hardState) storage.setHardState(rd1.hardState);
  raw.advance();
  t.equal(raw.raft.raftLog.unstable.snapshot?.meta.index, snap.meta.index, 'the snapshot is still to be persisted');
  t.equal(raw.raft.raftLog.lastIndex(), snap.meta.index, 'the log now ends at the snapshot');
  const rd2 = raw.ready();
  t.equal(rd2.snapshot?.meta.index, snap.meta.index, 'the next Ready carries the snapshot');
  t.same(rd2.committedEntries, [], 'and nothing to apply from the old append');
  t.same(rd2.messagesAfterPersist.map((m) => [m.type, m.index]), [[MessageType.AppResp, snap.meta.index]], 'the ack names the snapshot index, after persisting');
  storage.applySnapshot(rd2.snapshot!);
  raw.advance();
  t.equal(raw.status().commit, snap.meta.index);
  t.equal(raw.status().applied, snap.meta.index);
  t.equal(storage.lastIndex(), snap.meta.index, 'the stale appended entries are gone from storage');
  t.equal(storage.firstIndex(), snap.meta.index + 1);
  t.end();
});

t.test('a snapshot for entries the follower already has only fast-forwards its commit', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  net.filter = (m) => m.type === MessageType.Heartbeat || (m.type === MessageType.App && m.to === 3 && m.entries.length === 0);
  for (let i = 0; i < 5; i++) net.propose(1, `e${i}`);
  net.compact(1);
  const snap = net.node(1).storage.snapshot();
  const raw = net.node(3).raw;
  const commitBefore = raw.status().commit;
  t.ok(commitBefore < snap.meta.index, `node 3's commit ${commitBefore} lags`);
  raw.step(newMessage({ type: MessageType.Snap, from: 1, to: 3, term: 1, snapshot: snap }));
  const rd = raw.ready();
  t.equal(rd.snapshot, undefined, 'no restore');
  t.equal(rd.hardState?.commit, snap.meta.index, 'commit fast-forwarded');
  raw.advance();
  t.end();
});

t.test('a failed snapshot (reportSnapshot false) is retried after the next heartbeat answer', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  net.isolate(3);
  for (let i = 0; i < 5; i++) net.propose(1, `e${i}`);
  net.compact(1);
  net.heal();
  net.filter = (m) => m.type === MessageType.Snap; // the transport fails to deliver it
  net.tickAll(1);
  t.equal(net.node(1).status().progress!.get(3)!.state, 'snapshot', 'waiting for the snapshot');
  net.tickAll(3);
  t.equal(net.node(1).status().progress!.get(3)!.state, 'snapshot', 'nothing else is sent while a snapshot is in flight');
  net.node(1).raw.reportSnapshot(3, false);
  t.equal(net.node(1).status().progress!.get(3)!.state, 'probe', 'back to probing');
  net.heal();
  net.log = [];
  net.tickAll(2);
  t.equal(net.log.filter((m) => m.type === MessageType.Snap).length, 1, 'the snapshot was sent again');
  t.equal(net.node(3).appliedData().length, 5);
  t.equal(net.node(1).status().progress!.get(3)!.state, 'replicate');
  t.end();
});

t.test('a learner joining after compaction catches up from a snapshot that carries the config', (t) => {
  const net = new Network([1, 2, 3], { bootstrap: true });
  elect(net, 1);
  for (let i = 0; i < 5; i++) net.propose(1, `e${i}`);
  net.compact(1);
  net.addEmptyNode(4);
  net.proposeConfChange(1, single(ConfChangeType.AddLearner, 4));
  net.tickAll(3);
  const n4 = net.node(4);
  t.ok(n4.readys.some((r) => r.snapshot), 'node 4 installed a snapshot');
  t.same(n4.conf.voters, [1, 2, 3], 'the founding voters came with the snapshot (taken before node 4 was added)');
  t.same(n4.conf.learners, [4]);
  t.equal(n4.appliedData().length, 5);
  t.equal(n4.status().role, Role.Follower);
  t.end();
});


t.test('a snapshot arriving while committed entries are being applied is deferred (raft/sim FINDINGS #2)', (t) => {
  // Node 3 is in a joint config and has been handed the leave-joint entry to apply. A snapshot
  // whose config has already left arrives before advance(): installing it would make the host's
  // applyConfChange(leave) run against a non-joint config and throw.
  const joint = { voters: [1, 2, 3], learners: [], votersOutgoing: [1, 2, 4], learnersNext: [], autoLeave: false };
  const storage = MemoryStorage.withConf(joint);
  const raw = new RawNode({ id: 3, storage, random: () => 0.5 });
  const leave = { term: 1, index: 1, type: EntryType.ConfChange, data: encodeConfChange({ transition: ConfChangeTransition.Auto, changes: [], context: new Uint8Array(0) }) };
  raw.step(newMessage({ type: MessageType.App, from: 1, to: 3, term: 1, index: 0, logTerm: 0, entries: [leave], commit: 1 }));
  const rd = raw.ready();
  t.same(rd.committedEntries.map((e) => e.index), [1], 'the leave entry is handed out for applying');
  storage.append(rd.entries);
  if (rd.hardState) storage.setHardState(rd.hardState);
  const snap = { meta: { index: 5, term: 1, conf: { ...joint, votersOutgoing: [] } }, data: enc('state@5') };
  raw.step(newMessage({ type: MessageType.Snap, from: 1, to: 3, term: 1, snapshot: snap }));
  t.doesNotThrow(() => raw.applyConfChange(decodeConfChange(rd.committedEntries[0].data)), 'the host can apply the leave entry');
  t.same(raw.status().conf.votersOutgoing, [], 'the joint config was left');
  raw.advance();
  const rd2 = raw.ready();
  t.equal(rd2.snapshot, undefined, 'the snapshot was not installed');
  t.same(rd2.messagesAfterPersist.map((m) => [m.type, m.index]), [[MessageType.AppResp, 1]], 'the leader is told how far we are');
  raw.advance();
  raw.step(newMessage({ type: MessageType.Snap, from: 1, to: 3, term: 1, snapshot: snap }));
  const rd3 = raw.ready();
  t.equal(rd3.snapshot?.meta.index, 5, 'sent again after the apply, it is installed');
  storage.applySnapshot(rd3.snapshot!);
  raw.advance();
  t.equal(raw.status().applied, 5);
  t.end();
});
