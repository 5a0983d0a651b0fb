// The deterministic simulator: the same core as the real member, on a
// virtual network (it stands in for hosts only so that 100 members and 10
// minutes run in seconds). Properties, not timings, are asserted.
import t from 'tap';
import { makeConfig } from '../config.js';
import { SimCluster } from './cluster.js';
import { runScenario } from './scenario.js';

t.test('a run replays exactly from its seed', async (t) => {
  const o = { members: 20, seed: 7, preset: 'lan' as const, net: { latencyMs: 0.5, jitterMs: 1, loss: 0.05 }, durationS: 130 };
  t.same(runScenario(o), runScenario(o));
  t.notSame(runScenario({ ...o, seed: 8 }), runScenario(o), 'another seed, another run');
});

t.test('N = 100 at 10 % packet loss for 10 simulated minutes: no live member declared dead, the crashed one found by all', async (t) => {
  const r = runScenario({ members: 100, seed: 1, preset: 'lan', net: { latencyMs: 0.5, jitterMs: 1, loss: 0.1 }, durationS: 600 });
  t.ok(r.converged, 'all 100 joined');
  t.ok(r.falseSuspicions > 0, `loss does cause suspicions (${r.falseSuspicions}), so the test has teeth`);
  t.equal(r.falseDeadEvents, 0, 'no "dead" event about a running member, at any member');
  t.ok(Number.isFinite(r.detectLastS), 'every live member marked the crashed member dead');
  t.ok(Number.isFinite(r.disseminationS), 'a metadata update reached every member');
});

t.test('N = 10, no loss: crash detected by all, update disseminated to all', async (t) => {
  for (const preset of ['lan', 'serf-lan', 'local'] as const) {
    const r = runScenario({ members: 10, seed: 3, preset, net: { latencyMs: 0.5, jitterMs: 1, loss: 0 }, durationS: 140 });
    t.ok(r.converged, `${preset}: converged`);
    t.ok(Number.isFinite(r.detectLastS), `${preset}: all marked the crashed member dead`);
    t.equal(r.falseDeadEvents, 0, `${preset}: no false dead`);
    t.ok(r.detectFirstS <= r.detectLastS);
  }
});

t.test('a partition long enough to declare the other side dead heals through push/pull and refutation', async (t) => {
  const sim = new SimCluster({ seed: 11, net: { latencyMs: 0.5, jitterMs: 1, loss: 0 }, packetOverhead: 29 });
  const names = Array.from({ length: 12 }, (_, i) => `m${i}`);
  // push/pull every 5 s so healing does not wait for the 30 s default
  names.forEach((n, i) => sim.addNode(makeConfig(n, 'lan', { pushPullIntervalMs: 5000 }), i ? ['m0'] : []));
  sim.runUntil(10_000);
  const aliveCount = (name: string): number => sim.nodes.get(name)?.core.members().filter((m) => m.state === 'alive').length ?? 0;
  t.ok(names.every((n) => aliveCount(n) === 12), 'formed');
  sim.partition([names.slice(0, 6), names.slice(6)]);
  sim.runUntil(40_000);
  t.equal(aliveCount('m0'), 6, 'each side declared the other dead');
  t.equal(aliveCount('m11'), 6);
  sim.heal();
  const healed = sim.runUntilCondition(() => names.every((n) => aliveCount(n) === 12), 120_000);
  t.ok(healed, 'after healing, every member sees all 12 alive again');
});

t.test('graceful leave is seen as "leave", not "dead", and a rejoin is a "join"', async (t) => {
  const sim = new SimCluster({ seed: 5, net: { latencyMs: 0.5, jitterMs: 1, loss: 0 }, packetOverhead: 0 });
  const seen: string[] = [];
  sim.onEvent(({ observer, ev }) => { if (observer === 'm1' && ev.name === 'm3') seen.push(ev.type); });
  for (let i = 0; i < 5; i++) sim.addNode(makeConfig(`m${i}`, 'lan'), i ? ['m0'] : []);
  sim.runUntil(5_000);
  sim.act('m3', (c, now) => c.leave(now));
  sim.runUntil(20_000);
  t.same(seen, ['join', 'leave']);
  sim.act('m3', (c, now) => { c.join(['m0'], now); });
  sim.runUntil(25_000);
  t.same(seen, ['join', 'leave', 'join']);
  t.equal(sim.nodes.get('m1')?.core.members().find((m) => m.name === 'm3')?.inc, 1, 'with a new incarnation');
});

t.test('a member restarted after a crash (fresh process, incarnation 0) takes its name back', async (t) => {
  const sim = new SimCluster({ seed: 9, net: { latencyMs: 0.5, jitterMs: 1, loss: 0 }, packetOverhead: 0 });
  for (let i = 0; i < 5; i++) sim.addNode(makeConfig(`m${i}`, 'lan'), i ? ['m0'] : []);
  sim.runUntil(5_000);
  sim.kill('m4');
  sim.runUntil(30_000);
  t.equal(sim.nodes.get('m0')?.core.members().find((m) => m.name === 'm4')?.state, 'dead');
  // same name, same address (the sim keys by name): a new process
  sim.nodes.delete('m4');
  sim.addNode(makeConfig('m4', 'lan'), ['m1']);
  const back = sim.runUntilCondition(() => ['m0', 'm1', 'm2', 'm3'].every((n) => sim.nodes.get(n)?.core.members().find((m) => m.name === 'm4')?.state === 'alive'), 40_000);
  t.ok(back, 'every member sees the restarted m4 alive (it refuted its old "dead" with a higher incarnation)');
  t.ok((sim.nodes.get('m4')?.core.localMember().inc ?? 0) > 0);
});
