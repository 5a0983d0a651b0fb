// The SWIM protocol engine: probing (direct, indirect with nacks, TCP
// fallback), gossip rounds, push/pull, join, leave, metadata updates.
//
// Pure and deterministic: it owns no socket and no timer and never reads the
// clock or Math.random. Every entry point takes `now`; randomness comes from
// the injected Rng; effects are collected in an outbox the driver drains:
// datagrams to send, TCP streams to open, member events. The simulator and
// the real UDP/TCP adapter drive the same code.

import { Awareness } from './awareness.js';
import { BroadcastQueue } from './broadcast-queue.js';
import { type GossipConfig, validateConfig } from './config.js';
import { kRandom, shuffle, type Rng } from './prng.js';
import { MemberTable, type Member, type MemberEvent } from './state.js';
import { TimerQueue } from './timer-queue.js';
import { pushPullIntervalFor, retransmitLimit } from './timing.js';
import {
  COMPOUND_HEADER, COMPOUND_PER_PART, MsgType, PROTOCOL_CURRENT, PROTOCOL_MAX, PROTOCOL_MIN, WireError,
  decodeMessage, encodeMessage, packPacket, unpackPacket,
  type Message,
} from './wire.js';

export interface OutPacket { to: string; data: Uint8Array }
export interface OutStream { id: number; to: string; data: Uint8Array; timeoutMs: number }
export interface Outbox { packets: OutPacket[]; streams: OutStream[]; events: MemberEvent[] }

export interface CoreOptions {
  /** Address others reach us at ("host:port" for the real transport). */
  addr: string;
  meta?: Uint8Array;
  rng: Rng;
  /** Bytes the transport adds to each datagram (encryption, label), taken off the MTU budget. */
  packetOverhead?: number;
  /** Starting incarnation (default 0; a restarted member learns and refutes its old one). */
  incarnation?: number;
  /** Told the round trip of each timely direct probe (ping to ack), for metrics. */
  onProbeRtt?(ms: number): void;
}

export interface CoreStats {
  packetsSent: number;
  bytesSent: number;
  packetsReceived: number;
  bytesReceived: number;
  malformed: number;
  misrouted: number;
  probes: number;
  probesFailed: number;
  tcpFallbackSaves: number;
  streamsOpened: number;
  streamsFailed: number;
}

interface Probe {
  seq: number;
  target: string;
  acked: boolean;
  direct: boolean;
  nacks: number;
  expectedNacks: number;
}

interface AckHandler { onAck(): void; onNack(): void }

type StreamKind =
  | { kind: 'push-pull'; join: boolean }
  | { kind: 'tcp-ping'; seq: number; probe: Probe };

/** Relays answer "could not reach it" after this fraction of the probe timeout. */
const NACK_FRACTION = 0.8;

export type StreamResult = { ok: true } | { ok: false; error: string };

export class GossipCore {
  readonly cfg: GossipConfig;
  readonly table: MemberTable;
  readonly awareness: Awareness;
  readonly broadcasts = new BroadcastQueue();
  readonly stats: CoreStats = {
    packetsSent: 0, bytesSent: 0, packetsReceived: 0, bytesReceived: 0, malformed: 0, misrouted: 0,
    probes: 0, probesFailed: 0, tcpFallbackSaves: 0, streamsOpened: 0, streamsFailed: 0,
  };

  private nowMs = 0;
  private readonly rng: Rng;
  private readonly timers = new TimerQueue();
  private readonly packetLimit: number;
  private outbox: Outbox = { packets: [], streams: [], events: [] };
  private seq = 0;
  private streamId = 0;
  private readonly ackHandlers = new Map<number, AckHandler>();
  private readonly pendingStreams = new Map<number, StreamKind>();
  private probeList: string[] = [];
  private probeIndex = 0;
  /** Members others suspect that we have not probed since: they go first. */
  private suspectsToProbe: string[] = [];
  private leaving = false;
  private gossipScheduled = false;
  private lastGossipAt = -Infinity;
  private started = false;
  private stopped = false;
  private readonly onProbeRtt: ((ms: number) => void) | undefined;

  constructor(cfg: GossipConfig, opts: CoreOptions) {
    validateConfig(cfg);
    this.cfg = cfg;
    this.rng = opts.rng;
    this.onProbeRtt = opts.onProbeRtt;
    const meta = opts.meta ?? new Uint8Array(0);
    this.checkMeta(meta);
    this.packetLimit = cfg.udpBufferSize - (opts.packetOverhead ?? 0);
    if (this.packetLimit < 200) {
      throw new Error(`gossip: udpBufferSize ${cfg.udpBufferSize} leaves only ${this.packetLimit} bytes after transport overhead; raise it`);
    }
    this.awareness = new Awareness(cfg.awarenessMaxMultiplier);
    const self: Member = {
      name: cfg.name, addr: opts.addr, meta, inc: opts.incarnation ?? 0, state: 'alive', stateChangeMs: 0,
      vsn: [PROTOCOL_MIN, PROTOCOL_MAX, PROTOCOL_CURRENT],
    };
    this.table = new MemberTable(
      {
        cfg,
        now: () => this.nowMs,
        isLeaving: () => this.leaving,
        broadcast: (key, msg) => this.enqueue(key, encodeMessage(msg)),
        emit: (ev) => this.outbox.events.push(ev),
        schedule: (at, fn) => this.timers.schedule(at, fn),
        onRefute: () => this.awareness.applyDelta(1),
        hasPendingBroadcast: (key) => this.broadcasts.transmitsOf(key) !== undefined,
        onSuspicion: (name) => this.onSuspicionHint(name),
        onNewMember: (name) => {
          // Like memberlist, slot a new member into the current pass at a
          // random place: otherwise nobody probes it until the next full pass
          // (N probe intervals), and if it dies early its death goes unseen.
          const at = this.probeIndex + this.rng.int(this.probeList.length - this.probeIndex + 1);
          this.probeList.splice(at, 0, name);
        },
      },
      self,
    );
  }

  // ---- driver interface -------------------------------------------------

  /** Begin probing, gossiping and syncing; announce ourselves. */
  start(now: number): void {
    if (this.started) throw new Error('gossip: start() called twice');
    this.started = true;
    this.advance(now);
    this.table.self.stateChangeMs = now;
    this.enqueue(this.cfg.name, encodeMessage(this.table.selfAlive()));
    // Stagger the loops so members started together do not beat in phase.
    this.timers.schedule(now + this.rng.next() * this.cfg.probeIntervalMs, () => this.probeTick());
    if (this.cfg.pushPullIntervalMs > 0) {
      this.timers.schedule(now + this.rng.next() * this.cfg.pushPullIntervalMs, () => this.pushPullTick());
    }
    if (this.cfg.reconnectIntervalMs > 0) {
      this.timers.schedule(now + this.cfg.reconnectIntervalMs * (1 + this.rng.next()), () => this.reconnectTick());
    }
  }

  /** Run due timers. */
  tick(now: number): void {
    this.advance(now);
    if (this.stopped) return;
    this.timers.runDue(this.nowMs);
  }

  /** When the driver must call tick() next (undefined: nothing scheduled). */
  nextTimerAt(): number | undefined {
    return this.stopped ? undefined : this.timers.nextAt();
  }

  drain(): Outbox {
    const out = this.outbox;
    this.outbox = { packets: [], streams: [], events: [] };
    return out;
  }

  /** A datagram arrived (already authenticated/decrypted by the transport). */
  handlePacket(from: string, data: Uint8Array, now: number): void {
    this.advance(now);
    if (this.stopped) return;
    this.stats.packetsReceived++;
    this.stats.bytesReceived += data.length;
    let parts: Uint8Array[];
    try {
      parts = unpackPacket(data);
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      this.stats.malformed++;
      return;
    }
    for (const p of parts) {
      let msg: Message;
      try {
        msg = decodeMessage(p);
      } catch (e) {
        if (!(e instanceof WireError)) throw e;
        this.stats.malformed++;
        continue;
      }
      this.handleMessage(from, msg);
    }
  }

  /** An inbound TCP stream delivered one request; returns the reply to write, if any. */
  handleStream(from: string, data: Uint8Array, now: number): Uint8Array | undefined {
    this.advance(now);
    if (this.stopped) return undefined;
    let msg: Message;
    try {
      msg = decodeMessage(data);
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      this.stats.malformed++;
      return undefined;
    }
    switch (msg.type) {
      case MsgType.PushPull: {
        const reply = encodeMessage({ type: MsgType.PushPull, join: false, nodes: this.table.localState() });
        this.table.mergeRemoteState(msg.nodes);
        return reply;
      }
      case MsgType.Ping:
        if (msg.node !== this.cfg.name) {
          this.stats.misrouted++;
          return undefined;
        }
        return encodeMessage({ type: MsgType.Ack, seq: msg.seq });
      default:
        this.stats.malformed++;
        return undefined;
    }
  }

  /** The outcome of a stream we asked for: its reply, or undefined if it failed or timed out. */
  streamDone(id: number, reply: Uint8Array | undefined, now: number): StreamResult {
    this.advance(now);
    const kind = this.pendingStreams.get(id);
    if (!kind) return { ok: false, error: `unknown stream ${id}` };
    this.pendingStreams.delete(id);
    if (this.stopped) return { ok: false, error: 'member is shut down' };
    if (!reply) {
      this.stats.streamsFailed++;
      return { ok: false, error: 'no reply (connection failed, timed out or was refused)' };
    }
    let msg: Message;
    try {
      msg = decodeMessage(reply);
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      this.stats.malformed++;
      return { ok: false, error: `malformed reply: ${e.message}` };
    }
    if (kind.kind === 'push-pull') {
      if (msg.type !== MsgType.PushPull) return { ok: false, error: 'reply is not a push/pull state' };
      this.table.mergeRemoteState(msg.nodes);
      return { ok: true };
    }
    if (msg.type === MsgType.Ack && msg.seq === kind.seq) {
      if (!kind.probe.acked) this.stats.tcpFallbackSaves++;
      kind.probe.acked = true;
      return { ok: true };
    }
    return { ok: false, error: 'tcp ping: unexpected reply' };
  }

  // ---- public operations --------------------------------------------------

  /** Full-state sync with each address. Returns the stream ids to await via streamDone. */
  join(addrs: string[], now: number): number[] {
    this.advance(now);
    if (this.leaving) {
      // Rejoin after a graceful leave: a new incarnation beats our "left".
      this.leaving = false;
      const self = this.table.self;
      self.inc++;
      self.state = 'alive';
      self.stateChangeMs = now;
      this.enqueue(self.name, encodeMessage(this.table.selfAlive()));
    }
    const req = encodeMessage({ type: MsgType.PushPull, join: true, nodes: this.table.localState() });
    return addrs.map((a) => this.openStream(a, req, this.cfg.tcpTimeoutMs, { kind: 'push-pull', join: true }));
  }

  /** Graceful leave: announce "left" to a few members now and by gossip after. */
  leave(now: number): void {
    this.advance(now);
    if (this.leaving) return;
    this.leaving = true;
    const self = this.table.self;
    this.table.deadNode({ type: MsgType.Dead, inc: self.inc, node: self.name, from: self.name });
    const targets = kRandom(this.rng, this.table.list, Math.max(3, this.cfg.gossipNodes), (m) => m !== self && m.state === 'alive');
    const msg = encodeMessage({ type: MsgType.Dead, inc: self.inc, node: self.name, from: self.name });
    for (const t of targets) this.sendPacket(t.addr, [msg]);
  }

  isLeaving(): boolean {
    return this.leaving;
  }

  /** Replace our metadata; spread with a new incarnation. */
  updateMeta(meta: Uint8Array, now: number): void {
    this.advance(now);
    this.checkMeta(meta);
    const self = this.table.self;
    self.meta = meta;
    self.inc++;
    this.enqueue(self.name, encodeMessage(this.table.selfAlive()));
  }

  /** Stop all loops; later inputs are ignored. */
  stop(): void {
    this.stopped = true;
    this.timers.clear();
    this.ackHandlers.clear();
  }

  members(): Member[] {
    return this.table.list.map((m) => ({ ...m }));
  }

  localMember(): Member {
    return { ...this.table.self };
  }

  // ---- internals ------------------------------------------------------------

  private advance(now: number): void {
    if (now > this.nowMs) this.nowMs = now;
  }

  private checkMeta(meta: Uint8Array): void {
    if (!(meta instanceof Uint8Array)) throw new Error('gossip: metadata must be a Uint8Array');
    if (meta.length > this.cfg.metaMaxSize) {
      throw new Error(`gossip: metadata is ${meta.length} bytes, over metaMaxSize ${this.cfg.metaMaxSize}; keep it to a few hundred bytes`);
    }
  }

  private retransmits(): number {
    return retransmitLimit(this.cfg.retransmitMult, this.table.size);
  }

  /** Send `msgs` in one datagram, filling the rest of the budget with pending updates. */
  private sendPacket(to: string, msgs: Uint8Array[]): void {
    let used = COMPOUND_HEADER;
    for (const m of msgs) used += m.length + COMPOUND_PER_PART;
    const extra = this.broadcasts.getBroadcasts(COMPOUND_PER_PART, this.packetLimit - used, this.retransmits());
    const data = packPacket(extra.length ? [...msgs, ...extra] : msgs);
    this.stats.packetsSent++;
    this.stats.bytesSent += data.length;
    this.outbox.packets.push({ to, data });
  }

  private openStream(to: string, data: Uint8Array, timeoutMs: number, kind: StreamKind): number {
    const id = ++this.streamId;
    this.pendingStreams.set(id, kind);
    this.stats.streamsOpened++;
    this.outbox.streams.push({ id, to, data, timeoutMs });
    return id;
  }

  private handleMessage(from: string, msg: Message): void {
    switch (msg.type) {
      case MsgType.Ping:
        if (msg.node !== this.cfg.name) {
          // Meant for a member that used to live at this address.
          this.stats.misrouted++;
          return;
        }
        this.sendPacket(from, [encodeMessage({ type: MsgType.Ack, seq: msg.seq })]);
        return;
      case MsgType.IndirectPing:
        this.relayPing(from, msg.seq, msg.target, msg.targetAddr, msg.nack);
        return;
      case MsgType.Ack:
        this.ackHandlers.get(msg.seq)?.onAck();
        return;
      case MsgType.Nack:
        this.ackHandlers.get(msg.seq)?.onNack();
        return;
      case MsgType.Alive:
        this.table.aliveNode(msg);
        return;
      case MsgType.Suspect:
        this.table.suspectNode(msg);
        return;
      case MsgType.Dead:
        this.table.deadNode(msg);
        return;
      default:
        // Push/pull belongs on a stream.
        this.stats.malformed++;
    }
  }

  /** Probe `target` for a requester; ack back on success, nack on timeout. */
  private relayPing(requester: string, origSeq: number, target: string, targetAddr: string, nack: boolean): void {
    const seq = ++this.seq;
    let done = false;
    this.ackHandlers.set(seq, {
      onAck: () => {
        if (done) return;
        done = true;
        this.ackHandlers.delete(seq);
        this.sendPacket(requester, [encodeMessage({ type: MsgType.Ack, seq: origSeq })]);
      },
      onNack: () => {},
    });
    this.sendPacket(targetAddr, [encodeMessage({ type: MsgType.Ping, seq, node: target })]);
    // Nack a little before our own probe timeout: the requester asked us one
    // probe timeout into its interval and decides at the end of it, so a nack
    // sent after a full timeout would land just too late to count and the
    // requester would wrongly blame itself (Lifeguard's health score).
    this.timers.schedule(this.nowMs + NACK_FRACTION * this.cfg.probeTimeoutMs, () => {
      if (done) return;
      done = true;
      this.ackHandlers.delete(seq);
      if (nack) this.sendPacket(requester, [encodeMessage({ type: MsgType.Nack, seq: origSeq })]);
    });
  }

  private onSuspicionHint(name: string): void {
    if (!this.suspectsToProbe.includes(name)) this.suspectsToProbe.push(name);
  }

  private probeTick(): void {
    if (this.stopped) return;
    const interval = this.awareness.scale(this.cfg.probeIntervalMs);
    this.timers.schedule(this.nowMs + interval, () => this.probeTick());
    if (this.leaving) return;
    const target = this.nextProbeTarget();
    if (target) this.probeNode(target, interval);
  }

  /**
   * Randomized round-robin: a shuffled pass over all members, then reshuffle.
   * A member someone else suspects is probed first, out of turn: our probe
   * either confirms the suspicion independently (a true failure is declared
   * sooner) or, carrying the buddy suspect message, draws the member's
   * refutation onto its ack, so we cannot miss it and time out on a live member.
   */
  private nextProbeTarget(): Member | undefined {
    while (this.suspectsToProbe.length) {
      const m = this.table.byName.get(this.suspectsToProbe.shift() as string);
      if (m && m !== this.table.self && m.state === 'suspect') return m;
    }
    for (let tries = 0; tries <= this.table.size + 1; tries++) {
      if (this.probeIndex >= this.probeList.length) {
        this.table.reap(this.cfg.gossipToTheDeadMs, this.cfg.reconnectTimeoutMs);
        this.probeList = shuffle(this.rng, this.table.list.filter((m) => m !== this.table.self).map((m) => m.name));
        this.probeIndex = 0;
        if (this.probeList.length === 0) return undefined;
      }
      const m = this.table.byName.get(this.probeList[this.probeIndex++] as string);
      if (!m || m === this.table.self || m.state === 'dead' || m.state === 'left') continue;
      return m;
    }
    return undefined;
  }

  private probeNode(target: Member, interval: number): void {
    this.stats.probes++;
    const probe: Probe = { seq: ++this.seq, target: target.name, acked: false, direct: false, nacks: 0, expectedNacks: 0 };
    const sentAt = this.nowMs;
    const inc = target.inc;
    this.ackHandlers.set(probe.seq, {
      onAck: () => {
        if (!probe.acked && this.nowMs - sentAt <= this.cfg.probeTimeoutMs) {
          // A timely direct ack settles the probe now: drop its timers so an
          // idle member wakes once per probe, not three times.
          probe.direct = true;
          probe.acked = true;
          this.onProbeRtt?.(this.nowMs - sentAt);
          indirectTimer.cancel();
          finalTimer.cancel();
          this.finishProbe(probe, target.name);
          return;
        }
        probe.acked = true;
      },
      onNack: () => { probe.nacks++; },
    });
    const msgs = [encodeMessage({ type: MsgType.Ping, seq: probe.seq, node: target.name })];
    if (target.state === 'suspect') {
      // Lifeguard's buddy rule: tell the suspect, so it can refute at once.
      // Placed before the ping so the refutation is queued before the ack
      // is built and rides back on it.
      msgs.unshift(encodeMessage({ type: MsgType.Suspect, inc: target.inc, node: target.name, from: this.cfg.name }));
    }
    this.sendPacket(target.addr, msgs);

    const indirectTimer = this.timers.schedule(sentAt + this.cfg.probeTimeoutMs, () => {
      if (probe.acked) return;
      const helpers = kRandom(this.rng, this.table.list, this.cfg.indirectChecks,
        (m) => m !== this.table.self && m.name !== target.name && m.state === 'alive');
      probe.expectedNacks = helpers.length;
      const req = encodeMessage({ type: MsgType.IndirectPing, seq: probe.seq, target: target.name, targetAddr: target.addr, nack: true });
      for (const h of helpers) this.sendPacket(h.addr, [req]);
      if (this.cfg.tcpFallbackProbe) {
        const ping = encodeMessage({ type: MsgType.Ping, seq: probe.seq, node: target.name });
        this.openStream(target.addr, ping, Math.max(1, interval - this.cfg.probeTimeoutMs), { kind: 'tcp-ping', seq: probe.seq, probe });
      }
    });

    const finalTimer = this.timers.schedule(sentAt + interval, () => {
      if (probe.acked) {
        this.finishProbe(probe, target.name);
        return;
      }
      this.ackHandlers.delete(probe.seq);
      this.stats.probesFailed++;
      // Missing nacks mean our helpers did not even answer us: more likely we
      // are the slow one, so we slow down (Lifeguard local health).
      this.awareness.applyDelta(probe.expectedNacks > 0 ? Math.max(0, probe.expectedNacks - probe.nacks) : 1);
      this.table.suspectNode({ type: MsgType.Suspect, inc, node: target.name, from: this.cfg.name });
    });
  }

  /**
   * Queue an update and make sure a gossip round is coming. Rounds run only
   * while updates are pending, at most one per gossipInterval: a fresh update
   * goes out at once if the last round is older than the interval (instead of
   * waiting up to a full interval per hop, as a free-running ticker would), and
   * an idle member does not wake up five times a second for nothing.
   */
  private enqueue(key: string, msg: Uint8Array): void {
    this.broadcasts.queue({ key, msg });
    if (this.gossipScheduled || !this.started || this.stopped) return;
    this.gossipScheduled = true;
    const at = Math.max(this.nowMs, this.lastGossipAt + this.cfg.gossipIntervalMs);
    this.timers.schedule(at, () => this.gossipTick());
  }

  private finishProbe(probe: Probe, target: string): void {
    this.ackHandlers.delete(probe.seq);
    if (probe.direct) this.awareness.applyDelta(-1);
    // It answered, but only through a relay or TCP, so its refutation
    // (which rides on its own direct ack) has not reached us: ask again.
    else if (this.table.byName.get(target)?.state === 'suspect') this.onSuspicionHint(target);
  }

  private gossipTick(): void {
    this.gossipScheduled = false;
    if (this.stopped || this.broadcasts.length() === 0) return;
    this.lastGossipAt = this.nowMs;
    // No one to tell (alone, or everyone else dead): sleep until the next
    // update is queued, which is also what happens when someone joins.
    if (!this.gossipRound()) return;
    if (this.broadcasts.length() > 0) {
      this.gossipScheduled = true;
      this.timers.schedule(this.nowMs + this.cfg.gossipIntervalMs, () => this.gossipTick());
    }
  }

  /** One round to gossipNodes random members; false if there was no one to send to. */
  private gossipRound(): boolean {
    const self = this.table.self;
    const now = this.nowMs;
    const targets = kRandom(this.rng, this.table.list, this.cfg.gossipNodes, (m) =>
      m !== self && (m.state === 'alive' || m.state === 'suspect' || (m.state === 'dead' && now - m.stateChangeMs < this.cfg.gossipToTheDeadMs)));
    for (const t of targets) {
      const msgs = this.broadcasts.getBroadcasts(COMPOUND_PER_PART, this.packetLimit - COMPOUND_HEADER, this.retransmits());
      if (msgs.length === 0) break;
      const data = packPacket(msgs);
      this.stats.packetsSent++;
      this.stats.bytesSent += data.length;
      this.outbox.packets.push({ to: t.addr, data });
    }
    return targets.length > 0;
  }

  /**
   * Push/pull with one random dead member. If it is in fact alive (a healed
   * partition), each side learns the other holds it dead and refutes; the
   * refutations and the merged states then spread on both sides.
   */
  private reconnectTick(): void {
    if (this.stopped) return;
    this.timers.schedule(this.nowMs + this.cfg.reconnectIntervalMs, () => this.reconnectTick());
    if (this.leaving) return;
    const dead = this.table.list.filter((m) => m.state === 'dead');
    if (dead.length === 0) return;
    const peer = dead[this.rng.int(dead.length)] as Member;
    const req = encodeMessage({ type: MsgType.PushPull, join: false, nodes: this.table.localState() });
    this.openStream(peer.addr, req, this.cfg.tcpTimeoutMs, { kind: 'push-pull', join: false });
  }

  private pushPullTick(): void {
    if (this.stopped) return;
    const alive = this.table.list.filter((m) => m !== this.table.self && m.state === 'alive');
    this.timers.schedule(this.nowMs + pushPullIntervalFor(this.cfg.pushPullIntervalMs, alive.length + 1), () => this.pushPullTick());
    if (this.leaving || alive.length === 0) return;
    const peer = alive[this.rng.int(alive.length)] as Member;
    const req = encodeMessage({ type: MsgType.PushPull, join: false, nodes: this.table.localState() });
    this.openStream(peer.addr, req, this.cfg.tcpTimeoutMs, { kind: 'push-pull', join: false });
  }
}
