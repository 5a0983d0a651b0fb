// Real I/O for the core: one UDP socket for packets and a TCP listener on the
// same port for streams (join, push/pull, TCP fallback ping). Every payload
// goes through security.ts; failures are dropped, counted and logged (rate-limited) here.
// Streams carry one request and one reply per connection, each a frame of
// stream-frame.ts: label and an authenticated length first, so a sender without
// the key is dropped before its body is read. What an inbound stream can hold is
// bounded: streams open at once (in all and per host), bytes buffered by all
// streams together, the frame size, and the time to deliver the request.

import dgram from 'node:dgram';
import net from 'node:net';
import { DropLog } from './drop-log.js';
import { overhead, protect, SecurityError, unprotect, type DropReason, type Protection } from './security.js';
import { bodySize, ByteBudget, encodeFrame, FrameDecoder, FrameError } from './stream-frame.js';
import { MAX_PUSH_PULL_BYTES } from './wire.js';

export interface TransportLimits {
  /** Inbound streams open at once; more are closed as they are accepted. */
  maxInboundStreams: number;
  /** Of those, from one address: one host cannot take every slot. */
  maxInboundStreamsPerHost: number;
  /** Largest stream payload accepted: a push/pull of the largest pool (wire.ts). */
  maxPayload: number;
  /** Bytes all streams, in and out, may buffer at once. */
  bufferBudget: number;
  /** An inbound stream must deliver its whole request, and take its reply, within this. */
  streamTimeoutMs: number;
}

/**
 * A push/pull needs one inbound stream per member pushing to us at that moment (a handful,
 * more while many members join at once); 8 per host leaves room for a host's join, push/pull
 * and TCP ping together. The budget holds two push/pulls of the largest pool at once.
 */
export const DEFAULT_LIMITS: TransportLimits = {
  maxInboundStreams: 64,
  maxInboundStreamsPerHost: 8,
  maxPayload: MAX_PUSH_PULL_BYTES,
  bufferBudget: 2 * MAX_PUSH_PULL_BYTES,
  streamTimeoutMs: 10_000,
};

export type StreamDropReason = DropReason | 'frame' | 'oversize' | 'busy' | 'timeout';

export interface TransportStats {
  packetsIn: number;
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Streams accepted (inbound). */
  streamsIn: number;
  /** Inbound streams open now, and the most open at once. */
  streamsOpen: number;
  streamsOpenMax: number;
  /** Bytes reserved by stream bodies now, and the most at once. */
  bufferedBytes: number;
  bufferedBytesMax: number;
  dropped: Record<StreamDropReason, number>;
}

export interface TransportHandlers {
  packet(from: string, data: Uint8Array): void;
  stream(from: string, data: Uint8Array): Uint8Array | undefined;
}

export function splitAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  const host = addr.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(addr.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error(`gossip: bad address "${addr}"; expected host:port, e.g. 127.0.0.1:7946`);
  }
  return { host, port };
}

export function joinAddr(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export class UdpTcpTransport {
  readonly stats: TransportStats = {
    packetsIn: 0, packetsOut: 0, bytesIn: 0, bytesOut: 0,
    streamsIn: 0, streamsOpen: 0, streamsOpenMax: 0, bufferedBytes: 0, bufferedBytesMax: 0,
    dropped: { label: 0, decrypt: 0, short: 0, frame: 0, oversize: 0, busy: 0, timeout: 0 },
  };
  private handlers: TransportHandlers | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly inboundPerHost = new Map<string, number>();
  private readonly budget: ByteBudget;
  private readonly maxBody: number;
  private readonly drops: DropLog;
  private closed = false;

  private constructor(
    private readonly udp: dgram.Socket,
    private readonly tcp: net.Server,
    readonly addr: string,
    private readonly prot: Protection,
    private readonly limits: TransportLimits,
    log: ((msg: string) => void) | undefined,
  ) {
    this.budget = new ByteBudget(limits.bufferBudget);
    this.maxBody = bodySize(prot, limits.maxPayload);
    this.drops = new DropLog(`gossip ${addr}`, log);
  }

  /**
   * Bind UDP and TCP on the same port. Port 0 picks a free one (UDP first,
   * then TCP on that number; retried if TCP finds it taken).
   */
  static async listen(host: string, port: number, prot: Protection, opts: { limits?: Partial<TransportLimits>; log?: (msg: string) => void } = {}): Promise<UdpTcpTransport> {
    const limits = { ...DEFAULT_LIMITS, ...opts.limits };
    const family = net.isIPv6(host) ? 'udp6' : 'udp4';
    for (let attempt = 0; attempt < 20; attempt++) {
      const udp = dgram.createSocket({ type: family });
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(port, host, () => { udp.off('error', reject); resolve(); });
      }).catch((e: Error) => {
        udp.close();
        throw new Error(`gossip: cannot bind UDP ${joinAddr(host, port)}: ${e.message}`);
      });
      const actual = udp.address().port;
      const tcp = net.createServer();
      const ok = await new Promise<boolean>((resolve, reject) => {
        tcp.once('error', (e: NodeJS.ErrnoException) => {
          if (e.code === 'EADDRINUSE' && port === 0) resolve(false);
          else reject(new Error(`gossip: cannot bind TCP ${joinAddr(host, actual)}: ${e.message}`));
        });
        tcp.listen(actual, host, () => resolve(true));
      }).catch((e: Error) => { udp.close(); throw e; });
      if (!ok) { udp.close(); continue; }
      const t = new UdpTcpTransport(udp, tcp, joinAddr(host, actual), prot, limits, opts.log);
      t.wire();
      return t;
    }
    throw new Error(`gossip: could not find a port free for both UDP and TCP on ${host}`);
  }

  /** Bytes this transport adds to each datagram. */
  overhead(): number {
    return overhead(this.prot);
  }

  setHandlers(h: TransportHandlers): void {
    this.handlers = h;
  }

  sendPacket(to: string, data: Uint8Array): void {
    if (this.closed) return;
    let dst: { host: string; port: number };
    try { dst = splitAddr(to); } catch { return; }
    const buf = protect(this.prot, data);
    this.stats.packetsOut++;
    this.stats.bytesOut += buf.length;
    // Errors (e.g. ICMP unreachable surfacing as ECONNREFUSED) are just loss to SWIM.
    this.udp.send(buf, dst.port, dst.host, () => {});
  }

  /** One request/reply exchange; resolves undefined on any failure or timeout. */
  request(to: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array | undefined> {
    return new Promise((resolve) => {
      if (this.closed) return resolve(undefined);
      let dst: { host: string; port: number };
      try { dst = splitAddr(to); } catch { return resolve(undefined); }
      const sock = net.connect({ host: dst.host, port: dst.port });
      this.sockets.add(sock);
      const dec = new FrameDecoder(this.prot, this.maxBody, this.budget);
      let settled = false;
      const done = (v: Uint8Array | undefined): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.sockets.delete(sock);
        sock.destroy();
        dec.release();
        this.noteBuffered();
        resolve(v);
      };
      const timer = setTimeout(() => done(undefined), timeoutMs);
      sock.on('error', () => done(undefined));
      sock.on('close', () => done(undefined));
      sock.on('connect', () => {
        const frame = encodeFrame(this.prot, data);
        this.stats.bytesOut += frame.length;
        sock.write(frame);
      });
      sock.on('data', (chunk: Buffer) => {
        this.stats.bytesIn += chunk.length;
        let reply: Buffer | undefined;
        try {
          reply = dec.push(chunk);
        } catch (e) {
          this.drop(e, `the reply of ${to}`);
          return done(undefined);
        }
        this.noteBuffered();
        if (reply) done(reply);
      });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.sockets) s.destroy();
    await Promise.all([
      new Promise<void>((r) => this.udp.close(() => r())),
      new Promise<void>((r) => this.tcp.close(() => r())),
    ]);
  }

  /** Counts a refused packet or stream by reason and logs it (rate-limited). */
  private drop(e: unknown, from: string): void {
    const reason: StreamDropReason = e instanceof SecurityError || e instanceof FrameError ? e.reason : 'frame';
    this.dropFor(reason, from, (e as Error).message);
  }

  private dropFor(reason: StreamDropReason, from: string, message: string): void {
    this.stats.dropped[reason]++;
    this.drops.note(reason, from, message);
  }

  private noteBuffered(): void {
    this.stats.bufferedBytes = this.budget.inUse;
    if (this.budget.inUse > this.stats.bufferedBytesMax) this.stats.bufferedBytesMax = this.budget.inUse;
  }

  private wire(): void {
    this.udp.on('message', (msg, rinfo) => {
      this.stats.packetsIn++;
      this.stats.bytesIn += msg.length;
      let plain: Buffer;
      try {
        plain = unprotect(this.prot, msg);
      } catch (e) {
        this.drop(e, `udp ${joinAddr(rinfo.address, rinfo.port)}`);
        return;
      }
      this.handlers?.packet(joinAddr(rinfo.address, rinfo.port), plain);
    });
    this.udp.on('error', () => { /* a UDP socket error is a lost packet to SWIM */ });
    this.tcp.on('connection', (sock) => this.serveStream(sock));
  }

  /** One inbound stream: read its request frame (within the limits), answer, close. */
  private serveStream(sock: net.Socket): void {
    const host = sock.remoteAddress ?? '?';
    const from = joinAddr(host, sock.remotePort ?? 0);
    sock.on('error', () => {});
    const onHost = this.inboundPerHost.get(host) ?? 0;
    if (this.stats.streamsOpen >= this.limits.maxInboundStreams || onHost >= this.limits.maxInboundStreamsPerHost) {
      const why = onHost >= this.limits.maxInboundStreamsPerHost
        ? `${onHost} streams from ${host} are open already (limit ${this.limits.maxInboundStreamsPerHost} per host)`
        : `${this.stats.streamsOpen} streams are open already (limit ${this.limits.maxInboundStreams})`;
      this.dropFor('busy', from, `stream refused: ${why}`);
      sock.destroy();
      return;
    }
    this.stats.streamsIn++;
    this.stats.streamsOpen++;
    if (this.stats.streamsOpen > this.stats.streamsOpenMax) this.stats.streamsOpenMax = this.stats.streamsOpen;
    this.inboundPerHost.set(host, onHost + 1);
    this.sockets.add(sock);
    const dec = new FrameDecoder(this.prot, this.maxBody, this.budget);
    // One deadline for the whole exchange, not an idle timer: a sender trickling a byte at a
    // time would keep an idle timer from ever firing.
    const timer = setTimeout(() => {
      this.dropFor('timeout', from, `stream not completed within ${this.limits.streamTimeoutMs} ms (a slow or stalled sender)`);
      sock.destroy();
    }, this.limits.streamTimeoutMs);
    let answered = false;
    sock.on('close', () => {
      clearTimeout(timer);
      dec.release();
      this.noteBuffered();
      this.sockets.delete(sock);
      this.stats.streamsOpen--;
      const n = (this.inboundPerHost.get(host) ?? 1) - 1;
      if (n > 0) this.inboundPerHost.set(host, n);
      else this.inboundPerHost.delete(host);
    });
    sock.on('end', () => {
      if (!answered) sock.destroy(); // closed before a whole request: nothing to answer
    });
    sock.on('data', (chunk: Buffer) => {
      if (answered) return;
      this.stats.bytesIn += chunk.length;
      let req: Buffer | undefined;
      try {
        req = dec.push(chunk);
      } catch (e) {
        this.drop(e, from);
        sock.destroy();
        return;
      }
      this.noteBuffered();
      if (!req) return;
      answered = true;
      let reply: Uint8Array | undefined;
      try {
        reply = this.handlers?.stream(from, req);
      } catch (e) {
        this.drop(e, from);
      } finally {
        dec.release();
        this.noteBuffered();
      }
      if (!reply) return void sock.destroy();
      const frame = encodeFrame(this.prot, reply);
      this.stats.bytesOut += frame.length;
      sock.end(frame);
    });
  }
}
