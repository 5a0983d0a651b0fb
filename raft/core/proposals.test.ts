// Proposals: followers forward them to the leader; when they can't be placed (no leader,
// forwarding disabled, candidate, removed leader) they are reported in Ready.droppedProposals
// with the reason and the leader to retry at — never silently lost.
import t from 'tap';
import { MessageType, Role } from '../types.js';
import { ProposalDroppedError } from './errors.js';
import { Network, dec, elect, enc } from './test-network.js';

t.test('a follower forwards a proposal to the leader on the wire', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  net.log = [];
  net.propose(3, 'from-3');
  const fwd = net.log.find((m) => m.type === MessageType.Prop);
  t.ok(fwd, 'an MsgProp went out');
  t.equal(fwd!.from, 3);
  t.equal(fwd!.to, 1);
  t.equal(dec(fwd!.entries[0].data), 'from-3');
  for (const id of [1, 2, 3]) t.same(net.node(id).appliedData(), ['from-3'], `node ${id} applied it`);
  t.end();
});

t.test('with forwarding disabled a follower reports the drop and names the leader', (t) => {
  const net = new Network([1, 2, 3], { config: { disableProposalForwarding: true } });
  elect(net, 1);
  net.propose(2, 'x');
  t.same(net.node(2).dropped.map((d) => [dec(d.data), d.leader]), [['x', 1]]);
  t.match(net.node(2).dropped[0].reason, /forwarding is disabled/);
  t.same(net.node(1).appliedData(), []);
  const err = new ProposalDroppedError(net.node(2).dropped[0].reason, net.node(2).dropped[0].leader);
  t.match(err.message, /retry there/, 'the convenience error tells where to retry');
  t.end();
});

t.test('a candidate drops proposals: no leader during an election', (t) => {
  const net = new Network([1, 2, 3], { config: { preVote: false } });
  net.isolate(2);
  net.campaign(2);
  t.equal(net.node(2).status().role, Role.Candidate);
  net.propose(2, 'c');
  t.match(net.node(2).dropped[0], { reason: /election is in progress/, leader: 0 });
  t.end();
});

t.test('a pre-candidate drops proposals too', (t) => {
  const net = new Network([1, 2, 3]);
  net.isolate(2);
  net.campaign(2);
  t.equal(net.node(2).status().role, Role.PreCandidate);
  net.propose(2, 'p');
  t.match(net.node(2).dropped[0].reason, /election is in progress/);
  t.end();
});

t.test('a proposal forwarded to a node that lost leadership is forwarded again or reported there', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  net.isolate(1);
  for (let i = 0; i < 60 && !(net.leader() && net.leader()!.id !== 1); i++) net.tickAll();
  net.heal();
  net.tickAll(2);
  const nl = net.leader()!.id;
  const other = [1, 2, 3].find((id) => id !== nl && id !== 3) ?? 3;
  net.propose(other, 'routed');
  t.same(net.node(nl).appliedData(), ['routed'], `the proposal reached leader ${nl}`);
  t.end();
});

t.test('propose() rejects non-binary data with a clear error', (t) => {
  const net = new Network([1]);
  t.throws(() => net.node(1).raw.propose('text' as unknown as Uint8Array), /Uint8Array/);
  t.throws(() => net.node(1).raw.readIndex([1, 2] as unknown as Uint8Array), /Uint8Array/);
  t.end();
});

t.test('empty proposals are fine (they commit like any entry)', (t) => {
  const net = new Network([1, 2, 3]);
  elect(net, 1);
  const before = net.node(1).status().commit;
  net.node(1).raw.propose(enc(''));
  net.stabilize();
  t.equal(net.node(1).status().commit, before + 1);
  t.end();
});
