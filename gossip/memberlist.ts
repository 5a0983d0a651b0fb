// The public API: a gossip member on real sockets. It drives the pure core
// (core.ts) with the monotonic clock, a timer for the core's next deadline,
// and the UDP/TCP transport; it emits the core's member events.
//
//   const ml = await Memberlist.create({ config: makeConfig('node-1', 'lan'), bindPort: 7946 });
//   ml.on('event', (ev) => ...);            // join, update, suspect, alive, dead, leave, conflict
//   await ml.join(['10.0.0.2:7946']);
//   ml.members(); ml.updateMeta(bytes); await ml.leave(); await ml.shutdown();

import { randomInt } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { GossipConfig } from './config.js';
import { GossipCore, type CoreStats } from './core.js';
import { Keyring } from './keyring.js';
import { seededRng } from './prng.js';
import type { Counters, Member, MemberEvent } from './state.js';
import { UdpTcpTransport, type TransportLimits, type TransportStats } from './transport-udp-tcp.js';

export interface MemberlistOptions {
  config: GossipConfig;
  /** Interface to bind (default 127.0.0.1). */
  bindAddr?: string;
  /** Port for both UDP and TCP (default 0: any free port). */
  bindPort?: number;
  meta?: Uint8Array;
  /** Encrypt and authenticate every packet and stream. */
  keyring?: Keyring;
  /** Told the round trip of each timely direct probe, in ms (metrics). */
  onProbeRtt?(ms: number): void;
  /** What the transport drops (bad label or key, oversize, over a limit, too slow), rate-limited. */
  log?: (msg: string) => void;
  /** Overrides of the transport's bounds on inbound streams (transport-udp-tcp.ts). */
  limits?: Partial<TransportLimits>;
}

export interface JoinResult {
  /** Members whose full state we exchanged. */
  contacted: number;
  errors: string[];
}

export class Memberlist extends EventEmitter {
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private readonly streamWaiters = new Map<number, (r: { ok: boolean; error?: string }) => void>();
  private down = false;

  private constructor(
    private readonly core: GossipCore,
    private readonly transport: UdpTcpTransport,
    readonly keyring: Keyring | undefined,
  ) {
    super();
  }

  static async create(opts: MemberlistOptions): Promise<Memberlist> {
    const port = opts.bindPort ?? 0;
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new Error(`gossip: bindPort must be an integer in 0..65535 (0 = any free port), got ${port}`);
    }
    const transport = await UdpTcpTransport.listen(opts.bindAddr ?? '127.0.0.1', port, {
      keyring: opts.keyring,
      label: opts.config.label,
    }, {
      limits: { streamTimeoutMs: opts.config.tcpTimeoutMs, ...opts.limits },
      ...(opts.log ? { log: opts.log } : {}),
    });
    let core: GossipCore;
    try {
      core = new GossipCore(opts.config, {
        addr: transport.addr,
        rng: seededRng(randomInt(2 ** 31)),
        packetOverhead: transport.overhead(),
        ...(opts.onProbeRtt ? { onProbeRtt: opts.onProbeRtt } : {}),
        ...(opts.meta ? { meta: opts.meta } : {}),
      });
    } catch (e) {
      await transport.close();
      throw e;
    }
    const ml = new Memberlist(core, transport, opts.keyring);
    transport.setHandlers({
      packet: (from, data) => {
        core.handlePacket(from, data, now());
        ml.flush();
      },
      stream: (from, data) => {
        const reply = core.handleStream(from, data, now());
        ml.flush();
        return reply;
      },
    });
    core.start(now());
    ml.flush();
    return ml;
  }

  /** "host:port" others reach us at. */
  get addr(): string {
    return this.transport.addr;
  }

  get name(): string {
    return this.core.cfg.name;
  }

  /** Exchange full state with each address; resolves when all have answered or failed. */
  async join(addrs: string[]): Promise<JoinResult> {
    this.assertUp();
    if (!Array.isArray(addrs) || addrs.length === 0) throw new Error('gossip join: give at least one host:port');
    const ids = this.core.join(addrs, now());
    const waits = ids.map((id) => new Promise<{ ok: boolean; error?: string }>((r) => this.streamWaiters.set(id, r)));
    this.flush();
    const results = await Promise.all(waits);
    const errors: string[] = [];
    results.forEach((r, i) => { if (!r.ok) errors.push(`${addrs[i]}: ${r.error ?? 'failed'}`); });
    return { contacted: results.filter((r) => r.ok).length, errors };
  }

  /** All known members (self included) with their state. */
  members(): Member[] {
    return this.core.members();
  }

  /** Members currently alive or suspect. */
  liveMembers(): Member[] {
    return this.core.members().filter((m) => m.state === 'alive' || m.state === 'suspect');
  }

  updateMeta(meta: Uint8Array): void {
    this.assertUp();
    this.core.updateMeta(meta, now());
    this.flush();
  }

  /** Announce a graceful leave, keep gossiping it for `propagateMs`, then stop probing. */
  async leave(propagateMs = 3 * this.core.cfg.gossipIntervalMs): Promise<void> {
    this.assertUp();
    this.core.leave(now());
    this.flush();
    await new Promise((r) => setTimeout(r, propagateMs));
  }

  stats(): { core: CoreStats; transport: TransportStats; awareness: number; counters: Counters } {
    return { core: { ...this.core.stats }, transport: structuredClone(this.transport.stats), awareness: this.core.awareness.getScore(), counters: { ...this.core.table.counters } };
  }

  /** Stop everything and close the sockets. Does not announce a leave (call leave() first for that). */
  async shutdown(): Promise<void> {
    if (this.down) return;
    this.down = true;
    this.core.stop();
    if (this.timer) clearTimeout(this.timer);
    for (const w of this.streamWaiters.values()) w({ ok: false, error: 'member shut down' });
    this.streamWaiters.clear();
    await this.transport.close();
  }

  private assertUp(): void {
    if (this.down) throw new Error(`gossip member ${this.name} is shut down`);
  }

  /** Route what the core produced and re-arm the timer for its next deadline. */
  private flush(): void {
    if (this.down) return;
    const out = this.core.drain();
    for (const p of out.packets) this.transport.sendPacket(p.to, p.data);
    for (const s of out.streams) {
      void this.transport.request(s.to, s.data, s.timeoutMs).then((reply) => {
        if (this.down) return;
        const r = this.core.streamDone(s.id, reply, now());
        this.streamWaiters.get(s.id)?.(r);
        this.streamWaiters.delete(s.id);
        this.flush();
      });
    }
    for (const ev of out.events) {
      this.emit('event', ev);
      this.emit(ev.type, ev);
    }
    const next = this.core.nextTimerAt();
    if (next === undefined) return;
    if (this.timer && next === this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = next;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.core.tick(now());
      this.flush();
    }, Math.max(0, next - now()));
  }
}

export type { Member, MemberEvent };

function now(): number {
  return performance.now();
}
