// The alive / suspect / dead rules, one by one, on a single core fed with
// hand-made messages (no network: the core is pure, its clock is ours).
import t from 'tap';
import { GossipCore } from './core.js';
import { makeConfig } from './config.js';
import { seededRng } from './prng.js';
import type { MemberEvent } from './state.js';
import { decodeMessage, encodeMessage, MAX_MEMBERS, MAX_PUSH_PULL_BYTES, MsgType, unpackPacket, type Message } from './wire.js';

const V: [number, number, number] = [1, 1, 1];
const meta = (s: string): Uint8Array => new TextEncoder().encode(s);

function harness(name = 'me', preset: 'lan' | 'serf-lan' = 'lan') {
  const core = new GossipCore(makeConfig(name, preset), { addr: `${name}:1`, rng: seededRng(42) });
  let now = 0;
  const events: MemberEvent[] = [];
  const sent: { to: string; msgs: Message[] }[] = [];
  // Members answer our direct pings at once unless listed in `down`
  // (they stand in for peers; the rules under test are ours).
  const down = new Set<string>();
  const collect = (): void => {
    for (let round = 0; round < 10; round++) {
      const out = core.drain();
      events.push(...out.events);
      const acks: Message[] = [];
      for (const p of out.packets) {
        const msgs = unpackPacket(p.data).map(decodeMessage);
        sent.push({ to: p.to, msgs });
        for (const m of msgs) if (m.type === MsgType.Ping && !down.has(m.node) && p.to === `${m.node}:1`) acks.push({ type: MsgType.Ack, seq: m.seq });
      }
      if (acks.length === 0) return;
      for (const a of acks) core.handlePacket('peer:1', encodeMessage(a), now);
    }
  };
  core.start(now);
  collect();
  const h = {
    core, events, sent, down,
    get now() { return now; },
    feed(...msgs: Message[]): void {
      for (const m of msgs) core.handlePacket('peer:1', encodeMessage(m), now);
      collect();
    },
    /** Step 1 ms at a time until `pred` holds (at most `max` ms). */
    advanceUntil(pred: () => boolean, max: number): void {
      for (let i = 0; i < max && !pred(); i++) h.advance(1);
    },
    advance(ms: number): void {
      const until = now + ms;
      for (;;) {
        const next = core.nextTimerAt();
        if (next === undefined || next > until) break;
        now = Math.max(now, next);
        core.tick(now);
        collect();
      }
      now = until;
    },
    alive(node: string, inc: number, m = '', addr = `${node}:1`): void {
      h.feed({ type: MsgType.Alive, inc, node, addr, meta: meta(m), vsn: V });
    },
    suspect(node: string, inc: number, from: string): void {
      h.feed({ type: MsgType.Suspect, inc, node, from });
    },
    dead(node: string, inc: number, from: string): void {
      h.feed({ type: MsgType.Dead, inc, node, from });
    },
    state(node: string) {
      return core.members().find((m) => m.name === node);
    },
    last(type: string, node: string) {
      return events.filter((e) => e.type === type && e.name === node).at(-1);
    },
    count(type: string, node: string): number {
      return events.filter((e) => e.type === type && e.name === node).length;
    },
  };
  return h;
}

t.test('a new alive member joins; a same-incarnation repeat changes nothing', async (t) => {
  const h = harness();
  h.alive('x', 1, 'role=worker');
  t.equal(h.count('join', 'x'), 1);
  t.equal(h.state('x')?.state, 'alive');
  h.alive('x', 1, 'role=worker');
  h.alive('x', 0, 'role=old');
  t.equal(h.events.length, 1, 'no event for stale or repeated alive');
  t.same([...(h.state('x')?.meta ?? [])], [...meta('role=worker')]);
});

t.test('refutation (alive, higher incarnation) beats a suspicion of an older incarnation', async (t) => {
  const h = harness();
  h.alive('x', 1);
  h.suspect('x', 1, 'y');
  t.equal(h.state('x')?.state, 'suspect');
  t.equal(h.last('suspect', 'x')?.from, 'y');
  h.alive('x', 1);
  t.equal(h.state('x')?.state, 'suspect', 'same incarnation does not refute');
  h.alive('x', 2);
  t.equal(h.state('x')?.state, 'alive');
  t.equal(h.count('alive', 'x'), 1, 'an "alive" event marks the recovery');
  h.advance(60_000);
  t.equal(h.count('dead', 'x'), 0, 'the cancelled suspicion never fires');
});

t.test('a suspicion of an older incarnation is ignored', async (t) => {
  const h = harness();
  h.alive('x', 5);
  h.suspect('x', 4, 'y');
  t.equal(h.state('x')?.state, 'alive');
  t.equal(h.count('suspect', 'x'), 0);
});

t.test('an unconfirmed suspicion becomes dead after the max timeout; a confirmed one sooner', async (t) => {
  // 10 members so the timeouts are the N ≤ 10 ones: lan min 1.5 s, max 9 s, k = 1.
  const lone = harness();
  for (let i = 0; i < 9; i++) lone.alive(`n${i}`, 1);
  lone.suspect('n0', 1, 'n1');
  lone.advance(8_900);
  t.equal(lone.state('n0')?.state, 'suspect', 'still suspect just before max');
  lone.advance(200);
  t.equal(lone.state('n0')?.state, 'dead', 'dead at max (9 s)');

  const confirmed = harness();
  for (let i = 0; i < 9; i++) confirmed.alive(`n${i}`, 1);
  confirmed.suspect('n0', 1, 'n1');
  confirmed.advance(500);
  confirmed.suspect('n0', 1, 'n1');
  confirmed.advance(100);
  t.equal(confirmed.state('n0')?.state, 'suspect', 'the same accuser again is no confirmation');
  confirmed.suspect('n0', 1, 'n2');
  confirmed.advance(1_000);
  t.ok(confirmed.sent.some((s) => s.msgs.some((m) => m.type === MsgType.Suspect && m.from === 'n2')), 'a new confirmation is re-gossiped');
  t.equal(confirmed.state('n0')?.state, 'dead', 'one independent confirmation: dead at min (1.5 s)');
  t.equal(confirmed.last('dead', 'n0')?.from, 'me', 'we declared it');
});

t.test('a dead member that comes back with a higher incarnation is alive again (join)', async (t) => {
  const h = harness();
  h.alive('x', 1);
  h.dead('x', 1, 'y');
  t.equal(h.state('x')?.state, 'dead');
  t.equal(h.last('dead', 'x')?.from, 'y');
  h.alive('x', 1);
  t.equal(h.state('x')?.state, 'dead', 'same incarnation stays dead');
  h.alive('x', 2);
  t.equal(h.state('x')?.state, 'alive');
  t.equal(h.count('join', 'x'), 2);
});

t.test('dead from the member itself is a graceful leave; rejoin needs a new incarnation', async (t) => {
  const h = harness();
  h.alive('x', 3);
  h.dead('x', 3, 'x');
  t.equal(h.state('x')?.state, 'left');
  t.equal(h.count('leave', 'x'), 1);
  t.equal(h.count('dead', 'x'), 0);
  h.suspect('x', 3, 'y');
  t.equal(h.state('x')?.state, 'left', 'no suspicion of a member that left');
  h.alive('x', 4);
  t.equal(h.state('x')?.state, 'alive');
  t.equal(h.count('join', 'x'), 2);
});

t.test('we refute accusations about ourselves with a higher incarnation and slow down', async (t) => {
  const h = harness();
  h.alive('a', 1);
  h.alive('b', 1);
  h.suspect('me', 0, 'y');
  const self = h.core.localMember();
  t.equal(self.inc, 1, 'incarnation bumped past the accusation');
  t.equal(h.core.awareness.getScore(), 1, 'Lifeguard: refuting raises our health score');
  t.equal(h.core.table.counters.refutes, 1);
  h.dead('me', 7, 'y');
  t.equal(h.core.localMember().inc, 8);
  t.equal(h.core.localMember().state, 'alive');
  h.advance(300);
  const alives = h.sent.flatMap((s) => s.msgs).filter((m) => m.type === MsgType.Alive && m.node === 'me');
  t.ok(alives.some((m) => m.type === MsgType.Alive && m.inc === 8), 'the refutation is gossiped');
});

t.test('a stale accusation (older incarnation) re-queues our alive so the accuser learns it', async (t) => {
  const h = harness();
  h.suspect('me', 0, 'y');
  // drain our alive completely
  h.core.broadcasts.getBroadcasts(2, 1400, 1);
  t.equal(h.core.broadcasts.transmitsOf('me'), undefined);
  h.feed({ type: MsgType.Suspect, inc: 0, node: 'me', from: 'z' }, { type: MsgType.Ping, seq: 5, node: 'me' });
  const ack = h.sent.find((s) => s.msgs.some((m) => m.type === MsgType.Ack && m.seq === 5));
  t.ok(ack?.msgs.some((m) => m.type === MsgType.Alive && m.node === 'me' && m.inc === 1), 'the ack carries our current alive');
});

t.test('metadata updates spread with a new incarnation and arrive as "update"', async (t) => {
  const h = harness();
  h.alive('x', 1, 'a');
  h.alive('x', 2, 'b');
  t.equal(h.count('update', 'x'), 1);
  h.core.updateMeta(meta('zone=b'), h.now);
  t.equal(h.core.localMember().inc, 1);
  t.throws(() => h.core.updateMeta(new Uint8Array(600), h.now), /over metaMaxSize 512/);
});

t.test('same name, different address: refused while alive, reclaimed once dead or left', async (t) => {
  const h = harness();
  h.alive('x', 1, '', 'x:1');
  h.alive('x', 5, '', 'other:9');
  t.equal(h.state('x')?.addr, 'x:1', 'the live member keeps its address');
  t.equal(h.last('conflict', 'x')?.from, 'other:9', 'the conflict is reported with the losing address');
  h.dead('x', 1, 'y');
  h.alive('x', 1, '', 'other:9');
  t.equal(h.state('x')?.addr, 'other:9', 'a dead member can be reclaimed from a new address');
  t.equal(h.state('x')?.state, 'alive');
});

t.test('someone claiming our name from another address: we keep it and out-vote the claim', async (t) => {
  const h = harness();
  h.alive('me', 3, '', 'impostor:1');
  t.equal(h.core.localMember().addr, 'me:1');
  t.equal(h.core.localMember().inc, 4);
  t.equal(h.count('conflict', 'me'), 1);
});

t.test('buddy rule: a probe of a suspect carries the suspicion, before the ping', async (t) => {
  const h = harness();
  h.alive('x', 1);
  h.suspect('x', 1, 'y');
  h.advance(2_000);
  const probe = h.sent.find((s) => s.to === 'x:1' && s.msgs.some((m) => m.type === MsgType.Ping));
  t.ok(probe, 'the suspect was probed');
  t.equal(probe?.msgs[0]?.type, MsgType.Suspect, 'suspect first, so the refutation rides on the ack');
  t.equal(probe?.msgs[1]?.type, MsgType.Ping);
});

t.test('a failed probe goes indirect, tries TCP, then suspects; missing nacks raise our health score', async (t) => {
  const h = harness();
  for (const n of ['a', 'b', 'c', 'd']) { h.alive(n, 1); h.down.add(n); }
  h.advanceUntil(() => h.sent.some((s) => s.msgs.some((m) => m.type === MsgType.Ping)), 1000);
  const firstPing = h.sent.find((s) => s.msgs.some((m) => m.type === MsgType.Ping));
  t.ok(firstPing);
  const target = firstPing?.to.replace(':1', '') ?? '';
  h.advance(501);
  const ind = h.sent.filter((s) => s.msgs.some((m) => m.type === MsgType.IndirectPing && m.target === target));
  t.equal(ind.length, 3, '3 indirect probes');
  t.ok(h.core.stats.streamsOpened >= 1, 'TCP fallback probe opened');
  t.equal(h.last('suspect', target)?.from, 'me', 'target suspected at the end of the interval');
  t.equal(h.core.awareness.getScore(), 3, 'none of 3 helpers nacked: we doubt ourselves (+3)');
});

t.test('a nack-ing helper keeps our health score down; an ack via a helper clears the probe', async (t) => {
  const h = harness();
  for (const n of ['a', 'b']) { h.alive(n, 1); h.down.add(n); }
  h.advanceUntil(() => h.sent.some((s) => s.msgs.some((m) => m.type === MsgType.Ping)), 1000);
  const ping = h.sent.find((s) => s.msgs.some((m) => m.type === MsgType.Ping));
  const target = ping?.to.replace(':1', '') ?? '';
  const seq = ping?.msgs.find((m) => m.type === MsgType.Ping)?.seq ?? -1;
  h.advance(300);
  t.ok(h.sent.some((s) => s.msgs.some((m) => m.type === MsgType.IndirectPing)), 'indirect probe sent');
  h.feed({ type: MsgType.Nack, seq });
  h.advance(250);
  t.equal(h.core.awareness.getScore(), 0, 'the one helper nacked: the target is the problem, not us');
  t.equal(h.last('suspect', target)?.from, 'me');

  const h2 = harness();
  for (const n of ['a', 'b']) { h2.alive(n, 1); h2.down.add(n); }
  h2.advanceUntil(() => h2.sent.some((s) => s.msgs.some((m) => m.type === MsgType.Ping)), 1000);
  const p2 = h2.sent.find((s) => s.msgs.some((m) => m.type === MsgType.Ping));
  const seq2 = p2?.msgs.find((m) => m.type === MsgType.Ping)?.seq ?? -1;
  h2.advance(300);
  h2.feed({ type: MsgType.Ack, seq: seq2 });
  h2.advance(250);
  t.equal(h2.events.filter((e) => e.type === 'suspect').length, 0, 'a late (relayed) ack counts');
});

t.test('we relay indirect pings: ack back on success, nack on timeout', async (t) => {
  const h = harness();
  h.down.add('t'); // we answer for t by hand below
  h.feed({ type: MsgType.IndirectPing, seq: 77, target: 't', targetAddr: 't:1', nack: true });
  const ping = h.sent.find((s) => s.to === 't:1');
  const relaySeq = ping?.msgs.find((m) => m.type === MsgType.Ping)?.seq ?? -1;
  h.feed({ type: MsgType.Ack, seq: relaySeq });
  t.ok(h.sent.some((s) => s.to === 'peer:1' && s.msgs.some((m) => m.type === MsgType.Ack && m.seq === 77)), 'ack relayed to the requester');
  h.feed({ type: MsgType.IndirectPing, seq: 78, target: 't', targetAddr: 't:1', nack: true });
  h.advance(300);
  t.ok(h.sent.some((s) => s.to === 'peer:1' && s.msgs.some((m) => m.type === MsgType.Nack && m.seq === 78)), 'nack after the probe timeout');
});

t.test('a ping meant for someone else is not acked (stale address)', async (t) => {
  const h = harness();
  h.feed({ type: MsgType.Ping, seq: 1, node: 'not-me' });
  t.notOk(h.sent.some((s) => s.msgs.some((m) => m.type === MsgType.Ack)));
  t.equal(h.core.stats.misrouted, 1);
});

t.test('push/pull merge: remote "dead" only makes a suspicion; remote "left" is a leave', async (t) => {
  const h = harness();
  h.alive('x', 1);
  h.alive('y', 1);
  const reply = h.core.handleStream('peer:1', encodeMessage({ type: MsgType.PushPull, join: true, nodes: [
    { name: 'x', addr: 'x:1', meta: new Uint8Array(0), inc: 1, state: 'dead', vsn: V },
    { name: 'y', addr: 'y:1', meta: new Uint8Array(0), inc: 1, state: 'left', vsn: V },
    { name: 'z', addr: 'z:1', meta: meta('new'), inc: 0, state: 'alive', vsn: V },
  ] }), h.now);
  h.feed();
  t.ok(reply, 'we answer with our state');
  const ours = decodeMessage(reply as Uint8Array);
  t.equal(ours.type, MsgType.PushPull);
  t.equal(h.state('x')?.state, 'suspect');
  t.equal(h.state('y')?.state, 'left');
  t.equal(h.state('z')?.state, 'alive');
});

t.test('members that speak no common protocol version are ignored; garbage is counted, not fatal', async (t) => {
  const h = harness();
  h.feed({ type: MsgType.Alive, inc: 1, node: 'future', addr: 'f:1', meta: new Uint8Array(0), vsn: [9, 9, 9] });
  t.equal(h.state('future'), undefined);
  t.equal(h.core.table.counters.incompatible, 1);
  h.core.handlePacket('peer:1', Uint8Array.from([1, 2, 3]), h.now);
  h.core.handlePacket('peer:1', new Uint8Array(0), h.now);
  t.equal(h.core.stats.malformed, 2);
  t.equal(h.core.handleStream('peer:1', Uint8Array.from([0xff]), h.now), undefined);
});

t.test('graceful leave: "left" announced directly, no more probing; join again with a new incarnation', async (t) => {
  const h = harness();
  for (const n of ['a', 'b', 'c', 'd']) h.alive(n, 1);
  h.core.leave(h.now);
  h.feed();
  const announced = h.sent.filter((s) => s.msgs.some((m) => m.type === MsgType.Dead && m.node === 'me' && m.from === 'me'));
  t.equal(announced.length, 3, 'sent to 3 members at once');
  t.equal(h.core.localMember().state, 'left');
  const before = h.sent.length;
  h.advance(5_000);
  t.notOk(h.sent.slice(before).some((s) => s.msgs.some((m) => m.type === MsgType.Ping)), 'no probes after leaving');
  h.suspect('me', 0, 'a');
  t.equal(h.core.localMember().state, 'left', 'no refutation while leaving');
  h.core.join(['a:1'], h.now);
  t.equal(h.core.localMember().state, 'alive');
  t.equal(h.core.localMember().inc, 1, 'rejoin takes a new incarnation');
});

t.test('packets stay under the MTU budget even with many pending updates', async (t) => {
  const h = harness();
  for (let i = 0; i < 200; i++) h.alive(`member-with-a-longish-name-${i}`, 1, 'x'.repeat(200));
  h.advance(3_000);
  t.ok(h.sent.length > 10);
  t.ok(h.sent.some((s) => s.msgs.length > 2), 'updates were packed several to a datagram');
  t.ok(h.sent.every((s) => encodeSize(s.msgs) <= 1400), 'every datagram ≤ 1400 B');
});

function encodeSize(msgs: Message[]): number {
  const parts = msgs.map(encodeMessage);
  return parts.reduce((a, p) => a + p.length, 0) + (parts.length > 1 ? 2 + 2 * parts.length : 0);
}

t.test('a member that joins mid-pass is probed in the current round-robin pass', async (t) => {
  const h = harness();
  for (let i = 0; i < 40; i++) h.alive(`n${i}`, 1);
  const pings = (): Message[] => h.sent.flatMap((s) => s.msgs).filter((m) => m.type === MsgType.Ping);
  h.advanceUntil(() => pings().length >= 10, 60_000);
  h.alive('newbie', 1);
  // the pass holds 41 members now: newbie must be among pings 11..41
  h.advanceUntil(() => pings().length >= 41, 60_000);
  const probed = pings().slice(10, 41).map((m) => (m.type === MsgType.Ping ? m.node : ''));
  t.ok(probed.includes('newbie'), 'newbie probed before the pass ends');
  t.equal(new Set(pings().slice(0, 41).map((m) => (m.type === MsgType.Ping ? m.node : ''))).size, 41, 'each member exactly once per pass');
});

t.test('the member table stops at MAX_MEMBERS: newcomers beyond it are counted, not admitted', async (t) => {
  const h = harness();
  // One push/pull of MAX_MEMBERS others: the table (self included) fills at MAX_MEMBERS.
  const nodes = Array.from({ length: MAX_MEMBERS }, (_, i) => ({ name: `n${i}`, addr: `n${i}:1`, meta: new Uint8Array(0), inc: 1, state: 'alive' as const, vsn: V }));
  h.core.handleStream('peer:1', encodeMessage({ type: MsgType.PushPull, join: true, nodes }), h.now);
  t.equal(h.core.members().length, MAX_MEMBERS, `the table holds ${MAX_MEMBERS} members`);
  t.equal(h.core.table.counters.tableFull, 1, 'the one that did not fit is counted');
  h.alive('late', 1);
  t.notOk(h.core.members().some((m) => m.name === 'late'), 'a later newcomer is not admitted either');
  t.equal(h.core.table.counters.tableFull, 2);
  h.alive('n5', 2, 'new meta');
  t.equal(h.core.members().find((m) => m.name === 'n5')?.inc, 2, 'members already in the table are still updated');
  const reply = h.core.handleStream('peer:1', encodeMessage({ type: MsgType.PushPull, join: false, nodes: [] }), h.now)!;
  t.ok(reply.length <= MAX_PUSH_PULL_BYTES, `our push/pull of a full table (${reply.length} B) stays within the stream limit`);
});
