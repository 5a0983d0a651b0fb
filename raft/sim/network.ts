// The simulated network between raft nodes: every message gets its own latency (so reordering
// falls out of the delays), may be dropped or duplicated, and may be cut by a partition. Links
// are directed, so one-way partitions are just a set of blocked (from, to) pairs.

import type { NodeId } from '../types.js';
import type { Prng } from './prng.js';

export interface Weather {
  /** Probability that a message is lost. */
  drop: number;
  /** Probability that a message is delivered twice. */
  duplicate: number;
  /** Probability of a latency spike (a message arriving long after later ones). */
  spike: number;
  /**
   * Probability that a message is held for 1–6 election timeouts before it is delivered: a vote,
   * append or answer from an old term or round that lands after the next election.
   */
  late?: number;
  /** Probability that a message is also delivered again, 1–6 election timeouts later. */
  lateDuplicate?: number;
}

export const CALM: Weather = Object.freeze({ drop: 0, duplicate: 0, spike: 0, late: 0, lateDuplicate: 0 });

export class Partition {
  private constructor(
    readonly description: string,
    private readonly blocked: (from: NodeId, to: NodeId) => boolean,
  ) {}

  blocks(from: NodeId, to: NodeId): boolean {
    return from !== to && this.blocked(from, to);
  }

  /** Two halves that cannot talk to each other at all. */
  static symmetric(a: NodeId[], b: NodeId[]): Partition {
    const sa = new Set(a);
    const sb = new Set(b);
    return new Partition(`split {${a.join(',')}} | {${b.join(',')}}`, (f, t) => (sa.has(f) && sb.has(t)) || (sb.has(f) && sa.has(t)));
  }

  /** Messages from `from` to `to` are lost; the other direction still works. */
  static oneWay(from: NodeId[], to: NodeId[]): Partition {
    const sf = new Set(from);
    const st = new Set(to);
    return new Partition(`one-way {${from.join(',')}} -/-> {${to.join(',')}}`, (f, t) => sf.has(f) && st.has(t));
  }

  /** One node cut off from everyone. */
  static isolate(node: NodeId, others: NodeId[]): Partition {
    const p = Partition.symmetric([node], others);
    return new Partition(`isolate ${node}`, (f, t) => p.blocks(f, t));
  }

  /** Two halves that only the bridge node can reach both of. */
  static bridge(a: NodeId[], b: NodeId[], bridge: NodeId): Partition {
    const p = Partition.symmetric(a, b);
    return new Partition(`bridge ${bridge} between {${a.join(',')}} and {${b.join(',')}}`, (f, t) => f !== bridge && t !== bridge && p.blocks(f, t));
  }
}

export class Network {
  weather: Weather = CALM;
  partition: Partition | null = null;
  /** Nodes cut off from everyone, on top of `partition` (each with the id of its isolation). */
  readonly isolated = new Map<NodeId, number>();

  constructor(
    private readonly rng: Prng,
    /** Base one-way latency range in virtual ms. */
    readonly minLatency = 1,
    readonly maxLatency = 8,
    /** An election timeout in virtual ms: the unit of late deliveries. */
    readonly lateUnit = 100,
  ) {}

  /**
   * The delivery delays for one message sent now: [] when it is lost, two delays when it is
   * duplicated. Partitions are checked at delivery (see `cut`), so a message in flight when a
   * partition starts is lost too.
   */
  delays(): number[] {
    const w = this.weather;
    if (w.drop > 0 && this.rng.chance(w.drop)) return [];
    const one = (): number => {
      let d = this.minLatency + this.rng.float() * (this.maxLatency - this.minLatency);
      if (w.spike > 0 && this.rng.chance(w.spike)) d += this.rng.float() * 20 * this.maxLatency;
      return d;
    };
    const held = (): number => this.lateUnit * (1 + this.rng.float() * 5);
    const out = [w.late && this.rng.chance(w.late) ? one() + held() : one()];
    if (w.duplicate > 0 && this.rng.chance(w.duplicate)) out.push(one());
    if (w.lateDuplicate && this.rng.chance(w.lateDuplicate)) out.push(out[0] + held());
    return out;
  }

  cut(from: NodeId, to: NodeId): boolean {
    if (from !== to && (this.isolated.has(from) || this.isolated.has(to))) return true;
    return this.partition !== null && this.partition.blocks(from, to);
  }
}
