// A deterministic virtual network of GossipCores. One seeded PRNG drives
// latency, loss and every core's randomness; one event heap is the clock. A
// run replays bit-for-bit from (seed, options). It stands in for real hosts
// only so that 1,000 members and 10 minutes can be studied in seconds; the
// real-process tests (gossip/*.real.test.ts) run the same core over sockets.

import { GossipCore } from '../core.js';
import type { GossipConfig } from '../config.js';
import { seededRng, type Rng } from '../prng.js';
import type { MemberEvent } from '../state.js';
import { TimerQueue } from '../timer-queue.js';

export interface NetworkModel {
  /** One-way latency: base + uniform[0, jitter) ms. */
  latencyMs: number;
  jitterMs: number;
  /** Independent loss probability per datagram and per TCP segment. */
  loss: number;
}

export interface SimOptions {
  seed: number;
  net: NetworkModel;
  /** Bytes the real transport adds per datagram (AES-GCM: 1 + 12 + 16). Counted in traffic figures. */
  packetOverhead: number;
}

export interface SimNode {
  name: string;
  core: GossipCore;
  crashed: boolean;
  wakeAt: number;
}

export interface ObservedEvent {
  observer: string;
  ev: MemberEvent;
}

export class SimCluster {
  now = 0;
  readonly nodes = new Map<string, SimNode>();
  readonly rng: Rng;
  /** Total bytes put on the wire (datagrams with overhead + stream payloads). */
  bytesSent = 0;
  packetsSent = 0;
  private readonly events = new TimerQueue();
  private group = new Map<string, number>();
  private listeners: ((o: ObservedEvent) => void)[] = [];

  constructor(readonly opts: SimOptions) {
    this.rng = seededRng(opts.seed);
  }

  onEvent(fn: (o: ObservedEvent) => void): void {
    this.listeners.push(fn);
  }

  /** Add and start a member (its address is its name); optionally join `seeds`. */
  addNode(cfg: GossipConfig, joinTo: string[] = [], meta?: Uint8Array): SimNode {
    if (this.nodes.has(cfg.name)) throw new Error(`sim: member ${cfg.name} already exists`);
    const core = new GossipCore(cfg, {
      addr: cfg.name,
      rng: seededRng(Math.floor(this.rng.next() * 2 ** 31)),
      packetOverhead: this.opts.packetOverhead,
      ...(meta ? { meta } : {}),
    });
    const node: SimNode = { name: cfg.name, core, crashed: false, wakeAt: Infinity };
    this.nodes.set(cfg.name, node);
    core.start(this.now);
    if (joinTo.length) core.join(joinTo, this.now);
    this.pump(node);
    return node;
  }

  /** Crash: the member stops at once, sends nothing more, answers nothing. */
  kill(name: string): void {
    const n = this.mustGet(name);
    n.crashed = true;
    n.core.stop();
  }

  /** Members in different groups cannot reach each other; unlisted members are in group 0. */
  partition(groups: string[][]): void {
    this.group = new Map();
    groups.forEach((g, i) => g.forEach((name) => this.group.set(name, i + 1)));
  }

  heal(): void {
    this.group = new Map();
  }

  /** Run something on a member at the current time and route what it produced. */
  act(name: string, fn: (core: GossipCore, now: number) => void): void {
    const n = this.mustGet(name);
    fn(n.core, this.now);
    this.pump(n);
  }

  runUntil(t: number): void {
    for (;;) {
      const next = this.events.nextAt();
      if (next === undefined || next > t) break;
      const ev = this.events.popNext();
      if (!ev) break;
      this.now = ev.at;
      ev.fn();
    }
    this.now = Math.max(this.now, t);
  }

  /** Run until `pred` holds (checked after each event) or `t` passes; returns whether it held. */
  runUntilCondition(pred: () => boolean, t: number): boolean {
    if (pred()) return true;
    for (;;) {
      const next = this.events.nextAt();
      if (next === undefined || next > t) break;
      const ev = this.events.popNext();
      if (!ev) break;
      this.now = ev.at;
      ev.fn();
      if (pred()) return true;
    }
    this.now = Math.max(this.now, t);
    return false;
  }

  liveNodes(): SimNode[] {
    return [...this.nodes.values()].filter((n) => !n.crashed);
  }

  private mustGet(name: string): SimNode {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`sim: no member named ${name}`);
    return n;
  }

  private reachable(a: string, b: string): boolean {
    return (this.group.get(a) ?? 0) === (this.group.get(b) ?? 0);
  }

  private latency(): number {
    return this.opts.net.latencyMs + this.rng.next() * this.opts.net.jitterMs;
  }

  private lost(): boolean {
    return this.opts.net.loss > 0 && this.rng.next() < this.opts.net.loss;
  }

  /** Route a node's outbox and keep its wake-up scheduled. */
  private pump(node: SimNode): void {
    const out = node.core.drain();
    for (const ev of out.events) for (const l of this.listeners) l({ observer: node.name, ev });
    if (node.crashed) return;
    for (const p of out.packets) {
      this.packetsSent++;
      this.bytesSent += p.data.length + this.opts.packetOverhead;
      if (!this.reachable(node.name, p.to) || this.lost()) continue;
      const dst = this.nodes.get(p.to);
      if (!dst) continue;
      this.events.schedule(this.now + this.latency(), () => {
        if (dst.crashed) return;
        dst.core.handlePacket(node.name, p.data, this.now);
        this.pump(dst);
      });
    }
    for (const s of out.streams) this.stream(node, s.id, s.to, s.data, s.timeoutMs);
    const next = node.core.nextTimerAt();
    if (next !== undefined && next < node.wakeAt) {
      node.wakeAt = next;
      this.events.schedule(next, () => {
        if (node.wakeAt === next) node.wakeAt = Infinity;
        if (node.crashed) return;
        node.core.tick(this.now);
        this.pump(node);
      });
    }
  }

  /**
   * A TCP exchange (connect, request, reply) over the lossy network. Each lost
   * segment costs a retransmission: 1 s for SYN/SYN-ACK (Linux's initial
   * RTO), 200 ms for data (its minimum RTO). Past the timeout, or across a
   * partition, or to a crashed host, the caller sees a failure at the timeout.
   */
  private stream(src: SimNode, id: number, to: string, data: Uint8Array, timeoutMs: number): void {
    const deadline = this.now + timeoutMs;
    const fail = (): void => {
      this.events.schedule(deadline, () => {
        if (src.crashed) return;
        src.core.streamDone(id, undefined, this.now);
        this.pump(src);
      });
    };
    const dst = this.nodes.get(to);
    if (!dst || dst.crashed || !this.reachable(src.name, to)) return fail();
    const seg = (rto: number): number => {
      let t = this.latency();
      while (this.lost()) t += rto;
      return t;
    };
    const arrive = this.now + seg(1000) + seg(1000) + seg(200);
    this.bytesSent += data.length + 120; // + TCP/IP handshake and headers, roughly
    if (arrive > deadline) return fail();
    this.events.schedule(arrive, () => {
      if (dst.crashed || !this.reachable(src.name, to)) return fail();
      const reply = dst.core.handleStream(src.name, data, this.now);
      this.pump(dst);
      if (!reply) return fail();
      this.bytesSent += reply.length;
      const back = this.now + seg(200);
      if (back > deadline) return fail();
      this.events.schedule(back, () => {
        if (src.crashed) return;
        src.core.streamDone(id, reply, this.now);
        this.pump(src);
      });
    });
  }
}
