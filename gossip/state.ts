// The member table and the alive / suspect / dead rules (SWIM + Lifeguard, as
// memberlist applies them). Pure: time comes from the host, effects go to the
// host (broadcast, emit, schedule). The prober and gossiper live in core.ts.

import type { GossipConfig } from './config.js';
import { Suspicion } from './suspicion.js';
import { suspicionBounds, suspicionConfirmationsNeeded } from './timing.js';
import {
  MAX_MEMBERS, MsgType, PROTOCOL_MAX, PROTOCOL_MIN,
  type Alive, type Dead, type MemberStateName, type Message, type PushNodeState, type Suspect,
} from './wire.js';

export interface Member {
  name: string;
  addr: string;
  meta: Uint8Array;
  inc: number;
  state: MemberStateName;
  /** Host time of the last state change. */
  stateChangeMs: number;
  vsn: [number, number, number];
}

export type MemberEventType = 'join' | 'update' | 'suspect' | 'alive' | 'dead' | 'leave' | 'conflict';

export interface MemberEvent {
  type: MemberEventType;
  name: string;
  addr: string;
  meta: Uint8Array;
  inc: number;
  atMs: number;
  /** suspect/dead: who accused. conflict: the address that lost. */
  from?: string;
}

export interface Counters {
  refutes: number;
  conflicts: number;
  incompatible: number;
  suspicionsRaised: number;
  deadDeclared: number;
  /** Alive messages for new members refused because the table holds MAX_MEMBERS already. */
  tableFull: number;
}

export interface StateHost {
  readonly cfg: GossipConfig;
  now(): number;
  isLeaving(): boolean;
  /** Queue an update for dissemination (keyed by the member it is about). */
  broadcast(key: string, msg: Message): void;
  emit(ev: MemberEvent): void;
  schedule(at: number, fn: () => void): void;
  /** Lifeguard: we had to refute an accusation, so we are probably slow. */
  onRefute(): void;
  hasPendingBroadcast(key: string): boolean;
  /** A suspicion about `name` began here: the prober should check it soon. */
  onSuspicion(name: string): void;
  /** A member we did not know: the prober should include it in its current pass. */
  onNewMember(name: string): void;
}

export class MemberTable {
  readonly byName = new Map<string, Member>();
  /** Same members as an array, for cheap random choice. */
  list: Member[] = [];
  readonly suspicions = new Map<string, Suspicion>();
  readonly counters: Counters = { refutes: 0, conflicts: 0, incompatible: 0, suspicionsRaised: 0, deadDeclared: 0, tableFull: 0 };

  constructor(private readonly host: StateHost, readonly self: Member) {
    this.byName.set(self.name, self);
    this.list.push(self);
  }

  get size(): number {
    return this.list.length;
  }

  /** Forget members left for longer than `leftMs` or dead for longer than `deadMs` (never self). */
  reap(leftMs: number, deadMs: number): void {
    const now = this.host.now();
    const keep = this.list.filter(
      (m) => m === this.self || m.state === 'alive' || m.state === 'suspect' ||
        now - m.stateChangeMs <= (m.state === 'left' ? leftMs : deadMs),
    );
    if (keep.length === this.list.length) return;
    for (const m of this.list) if (!keep.includes(m)) this.byName.delete(m.name);
    this.list = keep;
  }

  /** Bump our incarnation past `accusedInc` and announce we are alive. */
  refute(accusedInc: number): void {
    const self = this.self;
    self.inc = Math.max(self.inc + 1, accusedInc + 1);
    this.counters.refutes++;
    this.host.onRefute();
    this.host.broadcast(self.name, this.selfAlive());
  }

  /**
   * Someone still spreads an accusation we already refuted: they missed our
   * alive. Queue it again (unless it is still pending) so the very next
   * packet we send, typically the ack to the accuser's buddy ping, carries it.
   */
  private reassert(): void {
    if (this.host.isLeaving() || this.host.hasPendingBroadcast(this.self.name)) return;
    this.host.broadcast(this.self.name, this.selfAlive());
  }

  selfAlive(): Alive {
    const s = this.self;
    return { type: MsgType.Alive, inc: s.inc, node: s.name, addr: s.addr, meta: s.meta, vsn: s.vsn };
  }

  aliveNode(a: Alive): void {
    const host = this.host;
    const isLocal = a.node === this.self.name;
    if (isLocal && host.isLeaving()) return;
    if (a.vsn[1] < PROTOCOL_MIN || a.vsn[0] > PROTOCOL_MAX) {
      // No protocol version in common: admitting it would only produce noise.
      this.counters.incompatible++;
      return;
    }
    const now = host.now();
    const m = this.byName.get(a.node);
    if (!m) {
      // A full table takes no one new: a push/pull of it must stay within the stream frame
      // limit (wire.ts), and the dead are reaped in time to make room.
      if (this.list.length >= MAX_MEMBERS) {
        this.counters.tableFull++;
        return;
      }
      const fresh: Member = { name: a.node, addr: a.addr, meta: a.meta, inc: a.inc, state: 'alive', stateChangeMs: now, vsn: a.vsn };
      this.byName.set(fresh.name, fresh);
      this.list.push(fresh);
      host.onNewMember(fresh.name);
      host.broadcast(a.node, a);
      this.emit('join', fresh);
      return;
    }
    let reclaim = false;
    if (m.addr !== a.addr) {
      if (isLocal) {
        // Someone else is using our name from another address. We keep our
        // name and out-vote the impostor's claim with a newer incarnation.
        this.conflict(m, a.addr);
        this.refute(Math.max(a.inc, m.inc));
        return;
      }
      const canReclaim = m.state === 'left' || (m.state === 'dead' && now - m.stateChangeMs >= host.cfg.deadNodeReclaimMs);
      if (!canReclaim) {
        // Two live members claim one name: keep the one we know, report it.
        this.conflict(m, a.addr);
        return;
      }
      reclaim = true;
    }
    if (isLocal) {
      if (a.inc < m.inc) return;
      if (a.inc === m.inc && bytesEqual(a.meta, m.meta)) return; // our own update echoed back
      // A newer claim about us that we did not make (e.g. our previous
      // process's state): take over with a higher incarnation.
      this.refute(a.inc);
      return;
    }
    if (a.inc <= m.inc && !reclaim) return;
    this.suspicions.delete(m.name);
    host.broadcast(a.node, a);
    const oldState = m.state;
    const metaChanged = !bytesEqual(a.meta, m.meta);
    m.inc = a.inc;
    m.meta = a.meta;
    m.addr = a.addr;
    m.vsn = a.vsn;
    if (oldState !== 'alive') {
      m.state = 'alive';
      m.stateChangeMs = now;
    }
    if (oldState === 'dead' || oldState === 'left') this.emit('join', m);
    else if (oldState === 'suspect') {
      this.emit('alive', m);
      if (metaChanged) this.emit('update', m);
    } else if (metaChanged) this.emit('update', m);
  }

  suspectNode(s: Suspect): void {
    const host = this.host;
    const m = this.byName.get(s.node);
    if (!m) return;
    if (s.inc < m.inc) {
      if (m === this.self) this.reassert();
      return;
    }
    const existing = this.suspicions.get(s.node);
    if (existing) {
      if (existing.confirm(s.from)) {
        // A new independent confirmation: spread it so others shorten too.
        host.broadcast(s.node, s);
        host.schedule(existing.deadline(), () => this.suspicionExpired(s.node, existing));
      }
      return;
    }
    if (m.state !== 'alive') return;
    if (m === this.self) {
      if (!host.isLeaving()) this.refute(s.inc);
      return;
    }
    host.broadcast(s.node, s);
    m.inc = s.inc;
    m.state = 'suspect';
    m.stateChangeMs = host.now();
    this.counters.suspicionsRaised++;
    this.emit('suspect', m, s.from);
    const n = this.list.length;
    const k = suspicionConfirmationsNeeded(host.cfg.suspicionMult, n);
    const { minMs, maxMs } = suspicionBounds(host.cfg.suspicionMult, host.cfg.suspicionMaxTimeoutMult, n, host.cfg.probeIntervalMs);
    const susp = new Suspicion(s.from, k, minMs, maxMs, host.now());
    this.suspicions.set(s.node, susp);
    if (s.from !== this.self.name) this.host.onSuspicion(s.node);
    host.schedule(susp.deadline(), () => this.suspicionExpired(s.node, susp));
  }

  private suspicionExpired(name: string, susp: Suspicion): void {
    if (this.suspicions.get(name) !== susp) return; // refuted or superseded
    const now = this.host.now();
    const due = susp.deadline();
    if (now < due) {
      this.host.schedule(due, () => this.suspicionExpired(name, susp));
      return;
    }
    const m = this.byName.get(name);
    if (!m || m.state !== 'suspect') return;
    this.counters.deadDeclared++;
    this.deadNode({ type: MsgType.Dead, inc: m.inc, node: name, from: this.self.name });
  }

  deadNode(d: Dead): void {
    const host = this.host;
    const m = this.byName.get(d.node);
    if (!m) return;
    if (d.inc < m.inc) {
      if (m === this.self) this.reassert();
      return;
    }
    this.suspicions.delete(d.node);
    if (m.state === 'dead' || m.state === 'left') return;
    if (m === this.self && !host.isLeaving()) {
      this.refute(d.inc);
      return;
    }
    host.broadcast(d.node, d);
    m.inc = d.inc;
    m.state = d.from === d.node ? 'left' : 'dead';
    m.stateChangeMs = host.now();
    if (m !== this.self) this.emit(m.state === 'left' ? 'leave' : 'dead', m, d.from);
  }

  /** Merge a push/pull peer's full state. */
  mergeRemoteState(nodes: PushNodeState[]): void {
    for (const n of nodes) {
      switch (n.state) {
        case 'alive':
          this.aliveNode({ type: MsgType.Alive, inc: n.inc, node: n.name, addr: n.addr, meta: n.meta, vsn: n.vsn });
          break;
        case 'left':
          this.deadNode({ type: MsgType.Dead, inc: n.inc, node: n.name, from: n.name });
          break;
        default:
          // A peer's "dead" becomes our suspicion: the member gets a chance
          // to refute instead of being declared dead on hearsay.
          this.suspectNode({ type: MsgType.Suspect, inc: n.inc, node: n.name, from: this.self.name });
      }
    }
  }

  localState(): PushNodeState[] {
    return this.list.map((m) => ({ name: m.name, addr: m.addr, meta: m.meta, inc: m.inc, state: m.state, vsn: m.vsn }));
  }

  private conflict(m: Member, otherAddr: string): void {
    this.counters.conflicts++;
    this.host.emit({ type: 'conflict', name: m.name, addr: m.addr, meta: m.meta, inc: m.inc, atMs: this.host.now(), from: otherAddr });
  }

  private emit(type: MemberEventType, m: Member, from?: string): void {
    const ev: MemberEvent = { type, name: m.name, addr: m.addr, meta: m.meta, inc: m.inc, atMs: this.host.now() };
    if (from !== undefined) ev.from = from;
    this.host.emit(ev);
  }
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
