// The node's resolver for pods: UDP and TCP on the DNS address (on every shoal bridge). Who asks
// is known by the query's source address (a pod's address on this node), so each pod sees only
// the services of its own networks. Names outside the cluster go to the configured upstreams,
// or get NXDOMAIN when there are none: nothing is forwarded unless configured.
import dgram from 'node:dgram';
import net from 'node:net';
import { RCODE, TYPE_A, buildAnswer, formErr, parseQuery, type Query } from './dns-message.js';

export interface LookupResult {
  /** false: not a cluster name (forward it, or NXDOMAIN). */
  known: boolean;
  addrs: string[];
}

export interface ResolverOptions {
  address: string;
  port?: number;
  /** Answers `name` for the pod at `clientIp`; undefined when the client is no pod we know. */
  lookup(clientIp: string, name: string): LookupResult | undefined;
  upstreams(): string[];
  log(msg: string): void;
}

const TTL = 5; // seconds: task addresses change as tasks come and go
const FORWARD_TIMEOUT_MS = 2000;

export class Resolver {
  private udp?: dgram.Socket;
  private tcp?: net.Server;
  private binding?: Promise<void>;

  constructor(private readonly o: ResolverOptions) {}

  get bound(): boolean {
    return !!this.udp && !!this.tcp;
  }

  /** Binds once the address exists (it lives on the bridges); a failure is retried next call. */
  async ensureBound(): Promise<void> {
    if (this.bound) return;
    this.binding ??= this.bind().finally(() => { this.binding = undefined; });
    return this.binding;
  }

  private async bind(): Promise<void> {
    const port = this.o.port ?? 53;
    const udp = dgram.createSocket({ type: 'udp4' });
    try {
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind({ address: this.o.address, port, exclusive: true }, () => { udp.off('error', reject); resolve(); });
      });
    } catch (e) {
      udp.close();
      throw new Error(`DNS resolver cannot bind udp ${this.o.address}:${port}: ${(e as Error).message}`);
    }
    udp.on('error', (e) => this.o.log(`dns udp: ${e.message}`));
    udp.on('message', (msg, rinfo) => {
      void this.answer(msg, rinfo.address, true).then((out) => { if (out) udp.send(out, rinfo.port, rinfo.address); });
    });
    const tcp = net.createServer((sock) => this.serveTcp(sock));
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen({ host: this.o.address, port, exclusive: true }, () => { tcp.off('error', reject); resolve(); });
      });
    } catch (e) {
      udp.close();
      tcp.close();
      throw new Error(`DNS resolver cannot listen on tcp ${this.o.address}:${port}: ${(e as Error).message}`);
    }
    this.udp = udp;
    this.tcp = tcp;
  }

  private serveTcp(sock: net.Socket): void {
    let buf = Buffer.alloc(0);
    sock.setTimeout(10_000, () => sock.destroy());
    sock.on('error', () => sock.destroy());
    sock.on('data', (b: Buffer) => {
      buf = Buffer.concat([buf, b]);
      if (buf.length > 65537) { sock.destroy(); return; }
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        void this.answer(Buffer.from(msg), sock.remoteAddress?.replace(/^::ffff:/, '') ?? '', false).then((out) => {
          if (!out || sock.destroyed) return;
          const len = Buffer.alloc(2);
          len.writeUInt16BE(out.length);
          sock.write(Buffer.concat([len, out]));
        });
      }
    });
  }

  /** The answer to one message from `client`, or undefined to drop it. */
  async answer(msg: Buffer, client: string, udp: boolean): Promise<Buffer | undefined> {
    let q: Query;
    try {
      q = parseQuery(msg);
    } catch {
      return formErr(msg);
    }
    if (((q.flags >> 11) & 0xf) !== 0) return buildAnswer(q, [], RCODE.NOTIMP, 0, udp);
    const name = q.name.toLowerCase();
    const r = this.o.lookup(client, name);
    if (!r) return buildAnswer(q, [], RCODE.REFUSED, 0, udp);
    if (r.known) return buildAnswer(q, q.qtype === TYPE_A ? r.addrs : [], RCODE.NOERROR, TTL, udp);
    const ups = this.o.upstreams();
    if (ups.length === 0) return buildAnswer(q, [], RCODE.NXDOMAIN, TTL, udp);
    for (const up of ups) {
      const out = await forward(msg, up).catch(() => undefined);
      if (out) return out;
    }
    return buildAnswer(q, [], RCODE.SERVFAIL, 0, udp);
  }

  async close(): Promise<void> {
    const u = this.udp;
    const t = this.tcp;
    this.udp = undefined;
    this.tcp = undefined;
    if (u) u.close();
    if (t) await new Promise<void>((r) => t.close(() => r()));
  }
}

/** One query to an upstream resolver (`ip` or `ip:port`) over UDP; rejects after a timeout. */
function forward(msg: Buffer, upstream: string): Promise<Buffer> {
  const [host, portS] = upstream.includes(':') ? upstream.split(':') as [string, string] : [upstream, '53'];
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    const timer = setTimeout(() => { s.close(); reject(new Error('upstream timeout')); }, FORWARD_TIMEOUT_MS);
    s.on('error', (e) => { clearTimeout(timer); s.close(); reject(e); });
    s.on('message', (out) => {
      if (out.length < 2 || out.readUInt16BE(0) !== msg.readUInt16BE(0)) return;
      clearTimeout(timer);
      s.close();
      resolve(out);
    });
    s.send(msg, Number(portS), host);
  });
}
