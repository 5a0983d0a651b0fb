// Flow control: the in-flight window pauses a follower's stream, MsgApps respect
// maxSizePerMsg, a probing follower gets one MsgApp per round trip, and the leader drops
// proposals above maxUncommittedBytes (reporting them).
import t from 'tap';
import { MessageType } from '../types.js';
import { entryBytes } from './entries.js';
import { Network, elect, enc } from './test-network.js';

const appsTo = (net: Network, to: number) => net.log.filter((m) => m.type === MessageType.App && m.to === to && m.entries.length > 0);

t.test('a full inflights window pauses replication until acks come back', (t) => {
  const net = new Network([1, 2, 3], { config: { maxInflightMsgs: 3 } });
  elect(net, 1);
  net.filter = (m) => m.type === MessageType.AppResp && m.from === 2; // node 2's acks are lost
  net.log = [];
  for (let i = 0; i < 10; i++) net.propose(1, `p${i}`);
  t.equal(appsTo(net, 2).length, 3, 'only 3 MsgApps with entries went to node 2');
  t.equal(appsTo(net, 3).length, 10, 'node 3, whose acks arrive, got one per proposal (pipelined)');
  const pr2 = net.node(1).status().progress!.get(2)!;
  t.equal(pr2.state, 'replicate');
  t.equal(pr2.inflight, 3, 'the window is full');
  t.equal(net.node(1).status().commit, 11, 'node 3 alone lets the leader commit');
  net.heal();
  net.tickAll(3);
  t.equal(net.node(2).appliedData().length, 10, 'after the acks flow again node 2 got everything');
  t.equal(net.node(1).status().progress!.get(2)!.inflight, 0, 'and the window drained');
  t.end();
});

t.test('MsgApp batches never exceed maxSizePerMsg (but always carry at least one entry)', (t) => {
  const max = 350;
  const net = new Network([1, 2, 3], { config: { maxSizePerMsg: max } });
  elect(net, 1);
  net.isolate(3);
  for (let i = 0; i < 20; i++) net.node(1).raw.propose(enc('x'.repeat(100)));
  net.node(1).raw.propose(enc('y'.repeat(1000))); // bigger than a whole message
  net.stabilize();
  net.heal();
  net.log = [];
  net.tickAll(5);
  const apps = appsTo(net, 3);
  t.ok(apps.length >= 7, `the catch-up of 21 entries took ${apps.length} MsgApps`);
  for (const m of apps) {
    const bytes = m.entries.reduce((s, e) => s + entryBytes(e), 0);
    if (m.entries.length > 1) t.ok(bytes <= max, `a batch of ${m.entries.length} entries is ${bytes} <= ${max} bytes`);
  }
  t.ok(apps.some((m) => m.entries.length === 1 && m.entries[0].data.length === 1000), 'the oversized entry went alone');
  t.equal(net.node(3).appliedData().length, 21);
  t.end();
});

t.test('a follower in probe state gets one MsgApp per round trip', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  net.node(1).raw.reportUnreachable(2); // replicate -> probe
  t.equal(net.node(1).status().progress!.get(2)!.state, 'probe');
  net.stop(2); // node 2 receives nothing for now
  net.log = [];
  for (let i = 0; i < 5; i++) net.propose(1, `p${i}`);
  t.equal(net.log.filter((m) => m.type === MessageType.App && m.to === 2).length, 1, 'one probe while unanswered');
  net.restart(2);
  net.tickAll(3);
  t.equal(net.node(2).appliedData().length, 5, 'the heartbeat answer resumed the probe and then replication');
  t.equal(net.node(1).status().progress!.get(2)!.state, 'replicate');
  t.end();
});

t.test('proposals above maxUncommittedBytes are dropped and reported, and accepted again after commit', (t) => {
  const net = new Network([1, 2, 3], { config: { maxUncommittedBytes: 250 } });
  elect(net, 1);
  net.isolate(1);
  const leader = net.node(1);
  for (let i = 0; i < 3; i++) leader.raw.propose(enc(`${i}`.repeat(100)));
  net.stabilize();
  t.equal(leader.dropped.length, 1, 'the third 100-byte proposal exceeds 250 uncommitted bytes');
  t.match(leader.dropped[0].reason, /uncommitted bytes/);
  t.equal(leader.dropped[0].leader, 1);
  t.equal(leader.dropped[0].data.length, 100, 'the report carries the proposal\'s data');
  net.heal();
  net.tickAll(2);
  t.equal(leader.appliedData().length, 2, 'the two admitted proposals commit');
  net.propose(1, 'z'.repeat(200));
  t.equal(leader.dropped.length, 1, 'the budget was released by the commit');
  t.equal(leader.appliedData().length, 3);
  t.end();
});
