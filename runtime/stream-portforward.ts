// PortForward (TCP) for the streaming server, in kubelet's two protocols:
// - WebSocket (v4.channel.k8s.io, portforward.k8s.io or none): for the i-th port of the request,
//   channel 2i carries data both ways and 2i+1 errors; the server's first frame on each channel
//   is the port (16-bit little-endian). One TCP connection per port for the session.
// - SPDY/3.1 (portforward.k8s.io): for each connection the client opens a pair of streams with
//   the same `requestid` and `port` headers, `streamtype` error and data; errors are written as
//   text on the error stream. Any number of pairs per session.
// The connection is made inside the pod's network namespace by `shoal-shim portfwd` (a process
// per connection that enters the namespace; Node cannot), or on the host for host-network pods.
import { spawn } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import { Duplex as DuplexBase, type Duplex, type Readable, type Writable } from 'node:stream';
import { encodeFrame, FrameReader, sendClose } from './websocket.js';
import { RST, type SpdySession, type SpdyStream } from './spdy.js';

/** A child process's stdin + stdout as one duplex stream (the port-forward relay); the caller ends the readable side. */
class PassThroughDuplex extends DuplexBase {
  constructor(private readonly w: Writable, private readonly r: Readable) {
    super();
    r.on('data', (b: Buffer) => { if (!this.push(b)) r.pause(); });
  }
  override _read(): void { this.r.resume(); }
  // A write the shim can no longer take (it exited: the connection was refused or closed) is
  // dropped, not an error: the shim's exit status and message say what happened (connectPod),
  // and an EPIPE raced ahead of them and hid "Connection refused" from the client.
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void { this.w.write(chunk, () => cb()); }
  override _final(cb: () => void): void { this.w.end(); cb(); }
  override _destroy(e: Error | null, cb: (e: Error | null) => void): void { this.w.destroy(); this.r.destroy(); cb(e); }
}

/** A TCP connection to `port` inside the pod's network namespace (through shoal-shim), or on the host's loopback. */
export function connectPod(shimBin: string, netns: string | undefined, port: number): Duplex {
  if (!netns) return netConnect({ host: '127.0.0.1', port });
  const child = spawn(shimBin, ['portfwd', netns, String(port)], { stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
  const d = new PassThroughDuplex(child.stdin!, child.stdout!);
  child.stdin!.on('error', () => {});
  // The end of the output counts once the shim's status is known: a failed connection is an
  // error (with the shim's message), never a plain end.
  let outEnded = false;
  let code: number | null | undefined;
  let settled = false;
  const settle = () => {
    if (settled || !outEnded || code === undefined) return;
    settled = true;
    if (code === 0) d.push(null);
    else d.emit('error', new Error(err.trim() || `port forward to ${port} failed (exit ${code})`));
  };
  child.stdout!.on('end', () => { outEnded = true; settle(); });
  child.on('close', (c) => { code = c; outEnded = true; settle(); });
  child.on('error', (e) => d.emit('error', e));
  d.on('close', () => { if (child.exitCode === null) child.kill('SIGKILL'); });
  return d;
}

export function validPort(p: number): boolean { return Number.isInteger(p) && p >= 1 && p <= 65535; }

export function webSocketPortForward(shimBin: string, netns: string | undefined, ports: number[], sock: Duplex): void {
  const send = (channel: number, data: Buffer) => { if (!sock.destroyed) sock.write(encodeFrame(2, Buffer.concat([Buffer.from([channel]), data]), false)); };
  if (ports.length === 0 || !ports.every(validPort)) {
    send(1, Buffer.from(`invalid port list ${JSON.stringify(ports)}: give each port (1-65535) as ?port=N`));
    sendClose(sock, false);
    return;
  }
  const conns = ports.map((port, i) => {
    const le = Buffer.alloc(2); le.writeUInt16LE(port);
    send(2 * i, le);
    send(2 * i + 1, le);
    const c = connectPod(shimBin, netns, port);
    c.on('data', (b: Buffer) => send(2 * i, b));
    c.on('error', (e: Error) => send(2 * i + 1, Buffer.from(`an error occurred forwarding ${port} -> ${port}: ${e.message}`)));
    c.on('end', () => {});
    return c;
  });
  const reader = new FrameReader((f) => {
    if (f.opcode === 8) { for (const c of conns) c.end(); sendClose(sock, false); return; }
    if (f.opcode === 9) { if (!sock.destroyed) sock.write(encodeFrame(10, f.payload, false)); return; }
    if (f.opcode !== 2 || f.payload.length === 0) return;
    const ch = f.payload[0]!;
    if (ch % 2 === 0 && conns[ch / 2]) conns[ch / 2]!.write(f.payload.subarray(1));
  });
  sock.on('data', (b: Buffer) => { try { reader.push(b); } catch { sock.destroy(); } });
  const gone = () => { for (const c of conns) c.destroy(); };
  sock.on('end', gone);
  sock.on('close', gone);
  sock.on('error', () => {});
}

const PAIR_TIMEOUT_MS = 30_000;

interface Pair { id: string; data?: SpdyStream; error?: SpdyStream; timer: NodeJS.Timeout }

/** SPDY port forwarding for pod `podId`: a TCP connection per pair of streams. */
export function spdyPortForward(shimBin: string, podId: string, netns: string | undefined, session: SpdySession): void {
  const pairs = new Map<string, Pair>();
  const conns = new Set<Duplex>();
  session.on('close', () => { for (const c of conns) c.destroy(); for (const p of pairs.values()) clearTimeout(p.timer); });
  session.on('stream', (s: SpdyStream) => {
    // As the kubelet: a stream without a valid port or type is refused before it is answered.
    const portText = s.header('port') ?? '';
    const type = s.header('streamtype') ?? '';
    const port = /^\d+$/.test(portText) ? Number(portText) : NaN;
    if (!validPort(port) || (type !== 'data' && type !== 'error')) { s.reset(RST.PROTOCOL_ERROR); return; }
    s.reply();
    s.on('error', () => {});
    // Clients before Kubernetes 1.4 send no request id: the pair is then error stream N, data N+2.
    const rid = s.header('requestid') ?? String(type === 'error' ? s.id : s.id - 2);
    let p = pairs.get(rid);
    if (!p) {
      const np: Pair = { id: rid, timer: setTimeout(() => {
        pairs.delete(rid);
        np.error?.end(`timed out waiting for the data and error streams of request ${rid}`);
        np.data?.end();
      }, PAIR_TIMEOUT_MS) };
      p = np;
      pairs.set(rid, p);
    }
    if (p[type as 'data' | 'error']) {
      if (p.error && !p.error.writableEnded) p.error.write(`error processing stream for request ${rid}: ${type} stream already assigned`);
      s.reset(RST.PROTOCOL_ERROR);
      return;
    }
    p[type as 'data' | 'error'] = s;
    if (!p.data || !p.error) return;
    clearTimeout(p.timer);
    pairs.delete(rid);
    forward(p.data, p.error, Number(p.data.header('port')));
  });

  const forward = (data: SpdyStream, error: SpdyStream, port: number) => {
    error.resume(); // the client writes nothing on it
    const c = connectPod(shimBin, netns, port);
    conns.add(c);
    let failed = false;
    c.on('error', (e: Error) => {
      if (failed) return;
      failed = true;
      if (!error.destroyed && !error.writableEnded) error.end(`error forwarding port ${port} to pod ${podId}: ${e.message}`);
      if (!data.destroyed && !data.writableEnded) data.end();
    });
    c.on('data', (b: Buffer) => { if (!data.destroyed && !data.writableEnded && !data.write(b)) { c.pause(); data.once('drain', () => c.resume()); } });
    c.on('end', () => { if (!data.destroyed && !data.writableEnded) data.end(); if (!error.destroyed && !error.writableEnded) error.end(); });
    c.on('close', () => conns.delete(c));
    data.on('data', (b: Buffer) => { c.write(b); });
    data.on('end', () => c.end());
    data.on('close', () => { if (data.resetStatus !== undefined) c.destroy(); });
  };
}
