// The sending side towards one peer: one long-lived client stream for ordinary raft messages and
// one call per snapshot. Messages queued while a write is in flight go out together as the next
// batch. A peer that fails is left alone for an exponentially growing back-off; meanwhile its
// messages are dropped at once (raft retransmits) so it costs nothing and blocks nobody.
import * as grpc from '@grpc/grpc-js';
import { MessageType, type Message, type NodeId } from '../types.js';
import { encodeMessage, WIRE_FORMAT } from './codec.js';

export interface PeerOptions {
  sendTimeoutMs: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  maxQueue: number;
  maxBatchBytes: number;
  snapshotChunkBytes: number;
  snapshotStallMs: number;
}

export interface PeerEvents {
  unreachable(id: NodeId): void;
  snapshotStatus(id: NodeId, ok: boolean): void;
  log(msg: string): void;
}

type Ctor = new (addr: string, creds: grpc.ChannelCredentials, opts: grpc.ChannelOptions) => grpc.Client & {
  Stream(cb: (err: grpc.ServiceError | null) => void): grpc.ClientWritableStream<unknown>;
  SendSnapshot(cb: (err: grpc.ServiceError | null, ack?: { accepted: boolean; error: string }) => void): grpc.ClientWritableStream<unknown>;
};

export const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  // Notice a silent peer (partition, dead host) within a few seconds, and come back fast after.
  'grpc.keepalive_time_ms': 2000,
  'grpc.keepalive_timeout_ms': 2000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 2000,
  'grpc.max_send_message_length': 64 << 20,
  'grpc.max_receive_message_length': 64 << 20,
};

/** How a peer's client is built: credentials are asked for anew each time (renewed certificates). */
export interface PeerChannel {
  credentials(): grpc.ChannelCredentials;
  options: grpc.ChannelOptions;
}

export class Peer {
  private client: InstanceType<Ctor>;
  private call?: grpc.ClientWritableStream<unknown>;
  /** The peer answered the stream's headers: it is really there (not a black hole). */
  private established = false;
  private queue: Uint8Array[] = [];
  private queuedBytes = 0;
  private inFlight = false;
  private timer?: NodeJS.Timeout;
  private backoffMs = 0;
  private downUntil = 0;
  private snapshotBusy = false;
  private closed = false;
  /** Counters for tests and metrics. */
  readonly stats = { batches: 0, messages: 0, dropped: 0, failures: 0, snapshots: 0 };

  constructor(readonly id: NodeId, readonly selfId: NodeId, readonly addr: string, private readonly ctor: Ctor, private readonly o: PeerOptions, private readonly channel: PeerChannel, private readonly ev: PeerEvents) {
    this.client = new ctor(addr, channel.credentials(), channel.options);
  }

  /**
   * Replaces the client (its connection keeps the credentials it was made with) by one built with
   * the current credentials. The stream is reopened on it with the next message; a snapshot under
   * way finishes on the old connection, which closes once it is idle.
   */
  renewClient(): void {
    if (this.closed) return;
    const old = this.client;
    this.client = new this.ctor(this.addr, this.channel.credentials(), this.channel.options);
    clearTimeout(this.timer);
    const call = this.call;
    this.call = undefined;
    this.established = false;
    this.inFlight = false;
    call?.cancel();
    old.close();
    // Back-off earned with the old credentials says nothing about the new ones.
    this.backoffMs = 0;
    this.downUntil = 0;
    this.pump();
  }

  get isDown(): boolean {
    return Date.now() < this.downUntil;
  }

  send(m: Message): void {
    if (this.closed) return;
    if (m.type === MessageType.Snap) {
      void this.sendSnapshot(m);
      return;
    }
    if (this.isDown || this.queue.length >= this.o.maxQueue || this.queuedBytes >= 16 * this.o.maxBatchBytes) {
      this.stats.dropped++;
      // Raft slows down towards an unreachable follower (probe state) instead of piling up.
      this.ev.unreachable(this.id);
      return;
    }
    const b = encodeMessage(m);
    this.queue.push(b);
    this.queuedBytes += b.length;
    this.pump();
  }

  private open(): grpc.ClientWritableStream<unknown> {
    const call = this.client.Stream((err) => {
      if (this.call !== call) return;
      this.fail(err ? `stream ended: ${err.message}` : 'stream closed by the peer');
    });
    call.on('error', () => {}); // reported through the callback above
    // Until the receiver sends its headers nothing is known to arrive: grpc-js would buffer
    // writes to a peer that accepted the connection but never answers. Wait, and give up after
    // the send timeout; once established, keepalive pings catch a peer that goes silent.
    this.established = false;
    this.timer = setTimeout(() => this.fail(`no answer from ${this.addr} within ${this.o.sendTimeoutMs} ms`), this.o.sendTimeoutMs);
    call.on('metadata', () => {
      if (this.call !== call) return;
      clearTimeout(this.timer);
      this.established = true;
      this.pump();
    });
    this.call = call;
    return call;
  }

  private pump(): void {
    if (this.inFlight || this.queue.length === 0 || this.closed) return;
    if (!this.call) this.open();
    if (!this.established) return;
    const call = this.call!;
    // Take what is queued, up to the batch size (always at least one message).
    let n = 0;
    let bytes = 0;
    while (n < this.queue.length && (n === 0 || bytes + this.queue[n]!.length <= this.o.maxBatchBytes)) bytes += this.queue[n++]!.length;
    const messages = this.queue.splice(0, n);
    this.queuedBytes -= bytes;
    this.inFlight = true;
    this.stats.batches++;
    this.stats.messages += messages.length;
    this.timer = setTimeout(() => this.fail(`no progress sending to ${this.addr} for ${this.o.sendTimeoutMs} ms`), this.o.sendTimeoutMs);
    call.write({ format: WIRE_FORMAT, from: this.selfId, to: this.id, messages }, () => {
      if (this.call !== call) return;
      clearTimeout(this.timer);
      this.inFlight = false;
      this.backoffMs = 0;
      this.pump();
    });
  }

  private fail(why: string): void {
    clearTimeout(this.timer);
    const call = this.call;
    this.call = undefined;
    this.established = false;
    this.inFlight = false;
    if (call) call.cancel();
    if (this.closed) return;
    this.stats.failures++;
    this.stats.dropped += this.queue.length;
    this.queue = [];
    this.queuedBytes = 0;
    this.backoffMs = Math.min(this.o.backoffMaxMs, this.backoffMs === 0 ? this.o.backoffMinMs : this.backoffMs * 2);
    // Jitter so peers that failed together do not retry together.
    this.downUntil = Date.now() + this.backoffMs * (0.5 + Math.random() / 2);
    this.ev.log(`raft transport: peer ${this.id} (${this.addr}) failed: ${why}; retrying after ${Math.round(this.downUntil - Date.now())} ms`);
    this.ev.unreachable(this.id);
  }

  private async sendSnapshot(m: Message): Promise<void> {
    const snap = m.snapshot;
    if (!snap) return;
    if (this.snapshotBusy || this.isDown) {
      this.ev.snapshotStatus(this.id, false);
      return;
    }
    this.snapshotBusy = true;
    this.stats.snapshots++;
    const data = snap.data;
    let stall: NodeJS.Timeout | undefined;
    let call: grpc.ClientWritableStream<unknown> | undefined;
    try {
      const ack = await new Promise<{ accepted: boolean; error: string }>((resolve, reject) => {
        call = this.client.SendSnapshot((err, ack) => (err ? reject(err) : resolve(ack ?? { accepted: false, error: 'no answer' })));
        call.on('error', () => {});
        const c = call;
        const arm = () => {
          clearTimeout(stall);
          stall = setTimeout(() => {
            c.cancel();
            reject(new Error(`snapshot to ${this.addr} made no progress for ${this.o.snapshotStallMs} ms`));
          }, this.o.snapshotStallMs);
        };
        arm();
        const header = encodeMessage(m);
        let offset = 0;
        // Write chunks as long as the stream accepts them; wait for 'drain' when it is full.
        const writeMore = () => {
          arm();
          do {
            const end = Math.min(data.length, offset + this.o.snapshotChunkBytes);
            const chunk = { format: WIRE_FORMAT, from: this.selfId, to: this.id, header: offset === 0 ? header : Buffer.alloc(0), offset, total: data.length, data: data.subarray(offset, end) };
            offset = end;
            if (!c.write(chunk)) {
              if (offset < data.length) c.once('drain', writeMore);
              else c.end();
              return;
            }
          } while (offset < data.length);
          c.end();
        };
        writeMore();
      });
      clearTimeout(stall);
      if (!ack.accepted) this.ev.log(`raft transport: peer ${this.id} refused a snapshot: ${ack.error}`);
      this.ev.snapshotStatus(this.id, ack.accepted);
    } catch (e) {
      clearTimeout(stall);
      this.ev.log(`raft transport: snapshot to peer ${this.id} failed: ${(e as Error).message}`);
      this.ev.snapshotStatus(this.id, false);
      this.ev.unreachable(this.id);
    } finally {
      this.snapshotBusy = false;
    }
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.call?.cancel();
    this.call = undefined;
    this.client.close();
  }
}
