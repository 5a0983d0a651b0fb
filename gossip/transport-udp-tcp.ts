// Real I/O for the core: one UDP socket for packets and a TCP listener on the
// same port for streams (join, push/pull, TCP fallback ping). Every payload
// goes through security.ts; failures are dropped and counted here.
// Stream framing: one request and one reply per connection, each a 4-byte
// big-endian length followed by the protected payload.

import dgram from 'node:dgram';
import net from 'node:net';
import { overhead, protect, SecurityError, unprotect, type DropReason, type Protection } from './security.js';

/** Largest stream frame accepted (memberlist caps push/pull state at 20 MB too). */
export const MAX_FRAME = 20 * 1024 * 1024;

export interface TransportStats {
  packetsIn: number;
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
  dropped: Record<DropReason | 'frame', number>;
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
    dropped: { label: 0, decrypt: 0, short: 0, frame: 0 },
  };
  private handlers: TransportHandlers | undefined;
  private readonly sockets = new Set<net.Socket>();
  private closed = false;

  private constructor(
    private readonly udp: dgram.Socket,
    private readonly tcp: net.Server,
    readonly addr: string,
    private readonly prot: Protection,
  ) {}

  /**
   * Bind UDP and TCP on the same port. Port 0 picks a free one (UDP first,
   * then TCP on that number; retried if TCP finds it taken).
   */
  static async listen(host: string, port: number, prot: Protection): Promise<UdpTcpTransport> {
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
      const t = new UdpTcpTransport(udp, tcp, joinAddr(host, actual), prot);
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
      let settled = false;
      const done = (v: Uint8Array | undefined): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.sockets.delete(sock);
        sock.destroy();
        resolve(v);
      };
      const timer = setTimeout(() => done(undefined), timeoutMs);
      sock.on('error', () => done(undefined));
      sock.on('close', () => done(undefined));
      sock.on('connect', () => {
        const body = protect(this.prot, data);
        const hdr = Buffer.alloc(4);
        hdr.writeUInt32BE(body.length);
        this.stats.bytesOut += body.length + 4;
        sock.write(Buffer.concat([hdr, body]));
      });
      readFrame(sock, (err, frame) => {
        if (err || !frame) {
          if (err) this.count(err);
          return done(undefined);
        }
        this.stats.bytesIn += frame.length + 4;
        try {
          done(unprotect(this.prot, frame));
        } catch (e) {
          this.count(e);
          done(undefined);
        }
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

  private count(e: unknown): void {
    if (e instanceof SecurityError) this.stats.dropped[e.reason]++;
    else this.stats.dropped.frame++;
  }

  private wire(): void {
    this.udp.on('message', (msg, rinfo) => {
      this.stats.packetsIn++;
      this.stats.bytesIn += msg.length;
      let plain: Buffer;
      try {
        plain = unprotect(this.prot, msg);
      } catch (e) {
        this.count(e);
        return;
      }
      this.handlers?.packet(joinAddr(rinfo.address, rinfo.port), plain);
    });
    this.udp.on('error', () => { /* a UDP socket error is a lost packet to SWIM */ });
    this.tcp.on('connection', (sock) => {
      this.sockets.add(sock);
      sock.setTimeout(10_000, () => sock.destroy());
      sock.on('error', () => {});
      sock.on('close', () => this.sockets.delete(sock));
      const from = joinAddr(sock.remoteAddress ?? '?', sock.remotePort ?? 0);
      readFrame(sock, (err, frame) => {
        if (err || !frame) {
          if (err) this.count(err);
          return sock.destroy();
        }
        this.stats.bytesIn += frame.length + 4;
        let reply: Uint8Array | undefined;
        try {
          reply = this.handlers?.stream(from, unprotect(this.prot, frame));
        } catch (e) {
          this.count(e);
          return sock.destroy();
        }
        if (!reply) return sock.destroy();
        const body = protect(this.prot, reply);
        const hdr = Buffer.alloc(4);
        hdr.writeUInt32BE(body.length);
        this.stats.bytesOut += body.length + 4;
        sock.end(Buffer.concat([hdr, body]));
      });
    });
  }
}

/** Read one length-prefixed frame; cb(undefined, undefined) if the peer closed early. */
function readFrame(sock: net.Socket, cb: (err: Error | undefined, frame: Buffer | undefined) => void): void {
  const chunks: Buffer[] = [];
  let have = 0;
  let need = -1;
  let finished = false;
  const finish = (err: Error | undefined, frame: Buffer | undefined): void => {
    if (finished) return;
    finished = true;
    sock.off('data', onData);
    cb(err, frame);
  };
  const onData = (chunk: Buffer): void => {
    chunks.push(chunk);
    have += chunk.length;
    if (need < 0 && have >= 4) {
      need = Buffer.concat(chunks).readUInt32BE(0);
      if (need > MAX_FRAME) return finish(new Error(`stream frame of ${need} bytes exceeds ${MAX_FRAME}`), undefined);
    }
    if (need >= 0 && have >= 4 + need) {
      finish(undefined, Buffer.concat(chunks).subarray(4, 4 + need));
    }
  };
  sock.on('data', onData);
  sock.on('end', () => finish(undefined, undefined));
}
