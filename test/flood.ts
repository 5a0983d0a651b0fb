// A hostile client for the listener flood tests (test/hostile-listeners.test.ts): run inside a
// lab host's network namespace, it holds connections and sends oversized or never-finished
// frames to one listener until it is killed. It keeps its own memory small (it writes only as
// fast as the target takes the bytes) and prints one JSON line of counts per second.
//
//   node flood.js gossip-tcp HOST:PORT --label L [--conns N] [--mb N]
//   node flood.js gossip-udp HOST:PORT --label L
//   node flood.js grpc HOST:PORT|unix:PATH --path /pkg.Svc/Method [--tls] [--held N] [--conns N]
//                 [--streams N] [--msg BYTES] [--handshakes N]
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';

const [mode, target, ...rest] = process.argv.slice(2);
const flags = new Map<string, string>();
for (let i = 0; i < rest.length; i++) {
  const k = rest[i]!;
  if (k === '--tls') flags.set('tls', '1');
  else flags.set(k.replace(/^--/, ''), rest[++i] ?? '');
}
const num = (k: string, d: number): number => (flags.has(k) ? Number(flags.get(k)) : d);
const counts: Record<string, number> = { connected: 0, closedByTarget: 0, refused: 0, bytesSent: 0, statuses: 0, streams: 0 };
setInterval(() => process.stdout.write(`${JSON.stringify(counts)}\n`), 1000).unref();
const keepAlive = setInterval(() => {}, 1 << 30);
void keepAlive;

function hostPort(t: string): { host: string; port: number } {
  const i = t.lastIndexOf(':');
  return { host: t.slice(0, i), port: Number(t.slice(i + 1)) };
}

/** Writes `total` bytes from `chunk`-sized pieces, only as fast as the socket drains. */
function pump(w: { write(b: Buffer): boolean; once(e: 'drain', f: () => void): unknown; destroyed?: boolean }, total: number, chunk = 64 << 10): void {
  const piece = randomBytes(chunk);
  let left = total;
  const go = (): void => {
    while (left > 0 && !w.destroyed) {
      const n = Math.min(left, chunk);
      left -= n;
      counts.bytesSent! += n;
      if (!w.write(n === chunk ? piece : piece.subarray(0, n))) return void w.once('drain', go);
    }
  };
  go();
}

function tcp(onConnect: (s: net.Socket) => void): void {
  const { host, port } = hostPort(target!);
  const s = net.connect({ host, port }, () => {
    counts.connected!++;
    onConnect(s);
  });
  s.on('error', () => counts.refused!++);
  s.on('close', () => counts.closedByTarget!++);
  s.resume();
}

function gossipTcp(): void {
  const label = Buffer.from(flags.get('label') ?? '');
  const conns = num('conns', 200);
  const mb = num('mb', 4);
  for (let i = 0; i < conns; i++) {
    tcp((s) => {
      switch (i % 3) {
        case 0: {
          // The old frame: a bare 20 MiB length, then the body, never finished.
          const len = Buffer.alloc(4);
          len.writeUInt32BE(20 * 1024 * 1024);
          s.write(len);
          pump(s, mb << 20);
          break;
        }
        case 1: {
          // The cluster's label (it is not secret), a head that looks sealed, then a body.
          s.write(Buffer.concat([Buffer.from([0xf4, label.length]), label, Buffer.from([2]), randomBytes(32)]));
          pump(s, mb << 20);
          break;
        }
        default:
          break; // connect and hold
      }
    });
  }
}

function gossipUdp(): void {
  const { host, port } = hostPort(target!);
  const label = Buffer.from(flags.get('label') ?? '');
  const sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  sock.on('error', () => {});
  const big = randomBytes(65_000);
  const send = (): void => {
    for (let i = 0; i < 50; i++) {
      const n = i % 5 === 0 ? 65_000 : 100 + (i * 37) % 1400;
      const body = i % 2 ? Buffer.concat([Buffer.from([0xf4, label.length]), label, big.subarray(0, n)]) : big.subarray(0, n);
      counts.bytesSent! += body.length;
      sock.send(body, port, host);
    }
    setTimeout(send, 5);
  };
  send();
}

/** A raw gRPC request: the 5-byte prefix announcing `size` bytes, then all but the last KiB. */
function halfRequest(session: http2.ClientHttp2Session, path: string, size: number, send: number): void {
  const st = session.request({ ':path': path, ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers' });
  counts.streams!++;
  st.on('error', () => {});
  st.on('response', (h) => { if (h['grpc-status'] !== undefined) counts.statuses!++; });
  st.on('trailers', () => counts.statuses!++);
  st.resume();
  const pre = Buffer.alloc(5);
  pre.writeUInt32BE(size >>> 0, 1);
  st.write(pre);
  pump(st, send);
}

function grpcFlood(): void {
  const unix = target!.startsWith('unix:');
  const useTls = flags.has('tls');
  const path = flags.get('path') ?? '/';
  const msg = num('msg', 4 << 20);
  const streams = num('streams', 16);
  const connect = (): net.Socket => (unix ? net.connect(target!.slice(5)) : net.connect(hostPort(target!)));
  // Whole TLS handshakes without a client certificate, over and over.
  const handshakes = num('handshakes', 0);
  const handshake = (): void => {
    const s = tls.connect({ ...hostPort(target!), rejectUnauthorized: false, ALPNProtocols: ['h2'] });
    s.on('error', () => counts.refused!++);
    s.on('close', () => setTimeout(handshake, 10));
    s.on('secureConnect', () => counts.connected!++);
    s.resume();
  };
  for (let i = 0; i < handshakes; i++) handshake();
  // Sessions that open streams of half-sent requests, and one over the limit each.
  for (let c = 0; c < num('conns', 8); c++) {
    const session = http2.connect(unix ? 'http://localhost' : `${useTls ? 'https' : 'http'}://${target}`, {
      createConnection: () => (unix ? net.connect(target!.slice(5)) : useTls ? tls.connect({ ...hostPort(target!), rejectUnauthorized: false, ALPNProtocols: ['h2'] }) : net.connect(hostPort(target!))),
    });
    session.on('error', () => counts.refused!++);
    session.on('close', () => counts.closedByTarget!++);
    session.on('connect', () => {
      counts.connected!++;
      for (let i = 0; i < streams; i++) halfRequest(session, path, msg, Math.max(0, msg - 1024));
      halfRequest(session, path, 0x7fffffff, 64 << 10);
    });
  }
  // Held connections, after the sessions are in: nothing at all, or (TLS) the first bytes of a
  // ClientHello and nothing more. One the target closes is opened again.
  const hold = (i: number): void => {
    const s = connect();
    s.on('connect', () => {
      counts.connected!++;
      if (useTls && i % 2) s.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]));
    });
    s.on('error', () => counts.refused!++);
    s.on('close', () => {
      counts.closedByTarget!++;
      setTimeout(() => hold(i), 50);
    });
    s.resume();
  };
  setTimeout(() => { for (let i = 0; i < num('held', 200); i++) hold(i); }, 1000);
}

switch (mode) {
  case 'gossip-tcp': gossipTcp(); break;
  case 'gossip-udp': gossipUdp(); break;
  case 'grpc': grpcFlood(); break;
  default:
    process.stderr.write(`flood: unknown mode ${mode}; use gossip-tcp, gossip-udp or grpc\n`);
    process.exit(2);
}
