// The measurement scenario the simulator table reports: bootstrap N members,
// measure steady traffic, spread a metadata update, crash one member, and
// count false "dead" declarations over the whole run.

import { makeConfig, type GossipConfig, type PresetName } from '../config.js';
import type { MemberEvent } from '../state.js';
import { SimCluster, type NetworkModel } from './cluster.js';

export interface ScenarioOptions {
  members: number;
  seed: number;
  preset: PresetName;
  overrides?: Partial<Omit<GossipConfig, 'name'>>;
  net: NetworkModel;
  /** Total virtual run time, seconds (false positives are counted over all of it after bootstrap). */
  durationS: number;
  /** Called with every member event after bootstrap (debugging, tests). */
  trace?: (nowMs: number, observer: string, ev: MemberEvent) => void;
}

export interface ScenarioResult {
  members: number;
  loss: number;
  seed: number;
  preset: string;
  converged: boolean;
  /** Crash → first member to mark it dead / last live member to do so (s). NaN: never. */
  detectFirstS: number;
  detectLastS: number;
  /** Crash → first suspicion (s). */
  suspectFirstS: number;
  /** Metadata update → last live member to see it (s). NaN: not all did. */
  disseminationS: number;
  /** "dead" events about members that were running, summed over observers. */
  falseDeadEvents: number;
  /** Members ever declared dead (by anyone) while they were running. */
  falseDeadMembers: number;
  /** Suspicions raised about running members (refuted ones included). */
  falseSuspicions: number;
  /** At rest (no changes), bytes sent per member per second, incl. 29 B/packet encryption overhead. */
  bytesPerMemberPerS: number;
  virtualS: number;
}

const BOOT_S = 30;
const REST_S = 30;

export function runScenario(o: ScenarioOptions): ScenarioResult {
  if (!Number.isInteger(o.members) || o.members < 3) throw new Error(`sim: --members must be an integer >= 3, got ${o.members}`);
  const minDuration = BOOT_S + REST_S + 70;
  if (o.durationS < minDuration) throw new Error(`sim: duration must be at least ${minDuration} s for this scenario, got ${o.durationS}`);
  const sim = new SimCluster({ seed: o.seed, net: o.net, packetOverhead: 29 });
  const names = Array.from({ length: o.members }, (_, i) => `m${i}`);
  const cfg = (name: string): GossipConfig => makeConfig(name, o.preset, o.overrides ?? {});

  const crashed = new Set<string>();
  let bootDone = false;
  let falseDeadEvents = 0;
  let falseSuspicions = 0;
  const falseDead = new Set<string>();
  let victim = '';
  let crashAt = 0;
  let firstSuspect = NaN;
  const deadSeen = new Map<string, number>();
  let updater = '';
  let updateAt = 0;
  const updateSeen = new Map<string, number>();
  sim.onEvent(({ observer, ev }) => {
    if (!bootDone) return;
    o.trace?.(sim.now, observer, ev);
    if (ev.type === 'dead' && !crashed.has(ev.name)) {
      falseDeadEvents++;
      falseDead.add(ev.name);
    }
    if (ev.type === 'suspect' && !crashed.has(ev.name) && ev.from === observer) falseSuspicions++;
    if (ev.name === victim) {
      if (ev.type === 'suspect' && Number.isNaN(firstSuspect)) firstSuspect = sim.now - crashAt;
      if (ev.type === 'dead' && !deadSeen.has(observer)) deadSeen.set(observer, sim.now - crashAt);
    }
    if (ev.name === updater && ev.type === 'update' && !updateSeen.has(observer)) updateSeen.set(observer, sim.now - updateAt);
  });

  // Bootstrap: members start over 2 s and join m0 (as operators would).
  names.forEach((name, i) => {
    sim.runUntil((i / o.members) * 2000);
    sim.addNode(cfg(name), i === 0 ? [] : ['m0']);
  });
  sim.runUntil(BOOT_S * 1000);
  const converged = sim.liveNodes().every((n) => n.core.table.list.filter((m) => m.state === 'alive' || m.state === 'suspect').length === o.members);
  bootDone = true;

  // Traffic at rest.
  const b0 = sim.bytesSent;
  sim.runUntil((BOOT_S + REST_S) * 1000);
  const bytesPerMemberPerS = (sim.bytesSent - b0) / o.members / REST_S;

  // Dissemination of a metadata update.
  updater = names[1 + sim.rng.int(o.members - 1)] as string;
  updateAt = sim.now;
  sim.act(updater, (core, now) => core.updateMeta(new TextEncoder().encode('role=worker;v=2'), now));
  sim.runUntil(sim.now + 10_000);
  const othersLive = (): number => sim.liveNodes().filter((n) => n.name !== updater).length;
  const disseminationS = updateSeen.size === othersLive() ? Math.max(...updateSeen.values()) / 1000 : NaN;

  // Crash one member at a random phase of the probe cycle.
  sim.runUntil(sim.now + sim.rng.next() * 1000);
  do victim = names[1 + sim.rng.int(o.members - 1)] as string; while (victim === updater);
  crashAt = sim.now;
  crashed.add(victim);
  sim.kill(victim);
  const live = sim.liveNodes().length;
  sim.runUntilCondition(() => deadSeen.size === live, sim.now + 60_000);
  const times = [...deadSeen.values()];
  const detectFirstS = times.length ? Math.min(...times) / 1000 : NaN;
  const detectLastS = times.length === live ? Math.max(...times) / 1000 : NaN;

  sim.runUntil(o.durationS * 1000);
  return {
    members: o.members, loss: o.net.loss, seed: o.seed, preset: o.preset, converged,
    detectFirstS, detectLastS, suspectFirstS: firstSuspect / 1000, disseminationS,
    falseDeadEvents, falseDeadMembers: falseDead.size, falseSuspicions, bytesPerMemberPerS,
    virtualS: sim.now / 1000,
  };
}

export function median(xs: number[]): number {
  const v = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0 || v.length < xs.length) return NaN; // a failed run makes the median meaningless
  const mid = v.length >> 1;
  return v.length % 2 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
}
