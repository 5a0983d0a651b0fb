// The streaming server behind CRI Exec, Attach and PortForward: each answers a one-time URL on
// 127.0.0.1, and a client that opens it as a WebSocket with the Kubernetes channel protocol
// (v5.channel.k8s.io or v4.channel.k8s.io: each binary message starts with a channel byte,
// 0 stdin, 1 stdout, 2 stderr, 3 status, 4 terminal size) runs the command in the container with
// `runc exec` (with a TTY through shoal-shim), follows a container's output, or forwards ports.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect as netConnect } from 'node:net';
import { Duplex as DuplexBase, type Duplex, type Readable, type Writable } from 'node:stream';
import type { Runc } from './runc.js';
import type { Containers } from './container.js';
import { acceptKey, encodeFrame, FrameReader, sendClose } from './websocket.js';

interface ExecRequest { kind: 'exec' | 'attach' | 'portforward'; containerId: string; cmd: string[]; stdin: boolean; stdout: boolean; stderr: boolean; tty?: boolean; expires: number;
  /** portforward: the pod's network namespace (empty: host network) and the ports asked for. */
  netns?: string; ports?: number[] }

const TOKEN_TTL_MS = 60_000;

/** A child process's stdin + stdout as one duplex stream (the port-forward relay). */
class PassThroughDuplex extends DuplexBase {
  constructor(private readonly w: Writable, private readonly r: Readable) {
    super();
    r.on('data', (b: Buffer) => { if (!this.push(b)) r.pause(); });
    r.on('end', () => this.push(null));
  }
  override _read(): void { this.r.resume(); }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void { this.w.write(chunk, cb); }
  override _final(cb: () => void): void { this.w.end(); cb(); }
  override _destroy(e: Error | null, cb: (e: Error | null) => void): void { this.w.destroy(); this.r.destroy(); cb(e); }
}
const PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io'];

export class StreamingServer {
  private server?: Server;
  private port = 0;
  private readonly pending = new Map<string, ExecRequest>();

  constructor(private readonly runc: Runc, private readonly containers: Containers, private readonly shimBin: () => string) {}

  async start(): Promise<void> {
    this.server = createServer((_req, res) => { res.writeHead(400); res.end('use a WebSocket (v4.channel.k8s.io / v5.channel.k8s.io)\n'); });
    this.server.on('upgrade', (req, sock) => this.upgrade(req, sock));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
  }

  close(): void { this.server?.close(); }

  /** Registers an exec and returns its single-use URL. */
  execUrl(r: Omit<ExecRequest, 'expires'>): string {
    const now = Date.now();
    for (const [k, v] of this.pending) if (v.expires < now) this.pending.delete(k);
    const token = randomBytes(16).toString('hex');
    this.pending.set(token, { ...r, expires: now + TOKEN_TTL_MS });
    return `http://127.0.0.1:${this.port}/${r.kind}/${token}`;
  }

  private upgrade(req: IncomingMessage, sock: Duplex): void {
    const fail = (code: number, msg: string) => { sock.end(`HTTP/1.1 ${code} ${msg}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${msg}\n`); };
    const url = new URL(req.url ?? '/', 'http://x');
    const m = /^\/(?:exec|attach|portforward)\/([a-f0-9]{32})$/.exec(url.pathname);
    const r = m ? this.pending.get(m[1]!) : undefined;
    if (!r || r.expires < Date.now()) return fail(404, 'unknown or expired exec URL; call Exec again');
    this.pending.delete(m![1]!);
    const key = req.headers['sec-websocket-key'];
    const offered = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    // Port forwarding speaks kubelet's websocket port-forward protocol (binary v4 channels, or
    // no subprotocol at all, as kubelet accepts); exec and attach the channel protocol.
    const accepted = r.kind === 'portforward' ? ['v4.channel.k8s.io', 'portforward.k8s.io'] : PROTOCOLS;
    const proto = accepted.find((p) => offered.includes(p)) ?? (r.kind === 'portforward' && !req.headers['sec-websocket-protocol'] ? '' : undefined);
    if (typeof key !== 'string' || proto === undefined) return fail(400, `a WebSocket upgrade with protocol ${accepted.join(' or ')} is required`);
    sock.write(['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade',
      `Sec-WebSocket-Accept: ${acceptKey(key)}`, ...(proto ? [`Sec-WebSocket-Protocol: ${proto}`] : []), '', ''].join('\r\n'));
    if (r.kind === 'attach') this.attach(r, sock);
    else if (r.kind === 'portforward') {
      const q = url.searchParams.getAll('port').map(Number);
      this.portForward(r, q.length ? q : r.ports ?? [], sock);
    } else if (r.tty) this.runTty(r, sock);
    else this.run(r, sock, proto === 'v5.channel.k8s.io');
  }

  /** Streams a running container's output until it exits or the client goes away. */
  private attach(r: ExecRequest, sock: Duplex): void {
    const send = (channel: number, data: Buffer) => { if (!sock.destroyed) sock.write(encodeFrame(2, Buffer.concat([Buffer.from([channel]), data]), false)); };
    const stop = this.containers.follow(r.containerId, {
      data: (stream, b) => { if (stream === 'stdout' ? r.stdout : r.stderr) send(stream === 'stdout' ? 1 : 2, b); },
      exit: () => { send(3, Buffer.from(JSON.stringify({ metadata: {}, status: 'Success' }))); sendClose(sock, false); },
    });
    const reader = new FrameReader((f) => { if (f.opcode === 8) { stop(); sendClose(sock, false); } });
    sock.on('data', (b: Buffer) => { try { reader.push(b); } catch { sock.destroy(); } });
    sock.on('end', stop);
    sock.on('close', stop);
    sock.on('error', () => {});
  }

  /** A TCP connection to `port` inside the pod's network namespace (through shoal-shim), or on the host's loopback. */
  private connectPod(netns: string | undefined, port: number): Duplex {
    if (!netns) return netConnect({ host: '127.0.0.1', port });
    const child = spawn(this.shimBin(), ['portfwd', netns, String(port)], { stdio: ['pipe', 'pipe', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
    const d = new PassThroughDuplex(child.stdin!, child.stdout!);
    child.stdin!.on('error', () => {});
    child.on('exit', (code) => { if (code !== 0) d.emit('error', new Error(err.trim() || `port forward to ${port} failed (exit ${code})`)); });
    child.on('error', (e) => d.emit('error', e));
    d.on('close', () => { if (child.exitCode === null) child.kill('SIGKILL'); });
    return d;
  }

  /**
   * PortForward over WebSocket (kubelet's protocol): for the i-th port, channel 2i carries data
   * both ways and 2i+1 errors; the server's first frame on each channel is the port number
   * (16-bit little-endian). One TCP connection per port for the session.
   */
  private portForward(r: ExecRequest, ports: number[], sock: Duplex): void {
    const send = (channel: number, data: Buffer) => { if (!sock.destroyed) sock.write(encodeFrame(2, Buffer.concat([Buffer.from([channel]), data]), false)); };
    if (ports.length === 0 || ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) {
      send(1, Buffer.from(`invalid port list ${JSON.stringify(ports)}: give each port (1-65535) as ?port=N`));
      sendClose(sock, false);
      return;
    }
    const conns = ports.map((port, i) => {
      const le = Buffer.alloc(2); le.writeUInt16LE(port);
      send(2 * i, le);
      send(2 * i + 1, le);
      const c = this.connectPod(r.netns, port);
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

  /**
   * Exec with a terminal: shoal-shim runs `runc exec -d --tty` and relays the pty it receives
   * (stdout and stderr are one stream on a terminal, channel 1); channel 4 carries window sizes
   * as {"Width":W,"Height":H}; the exit status comes on channel 3.
   */
  private runTty(r: ExecRequest, sock: Duplex): void {
    const send = (channel: number, data: Buffer) => { if (!sock.destroyed) sock.write(encodeFrame(2, Buffer.concat([Buffer.from([channel]), data]), false)); };
    try { this.containers.find(r.containerId); } catch (e) {
      send(3, Buffer.from(JSON.stringify({ metadata: {}, status: 'Failure', message: (e as Error).message })));
      sendClose(sock, false);
      return;
    }
    // runc's console socket: a Unix socket path must stay under 108 bytes, so not in the bundle.
    const sdir = mkdtempSync(join(tmpdir(), 'shoal-tty-'));
    const args = this.runc.args('exec', '-d', '--tty', '--console-socket', join(sdir, 'console.sock'), '--pid-file', join(sdir, 'exec.pid'), r.containerId, ...r.cmd);
    const child = spawn(this.shimBin(), ['tty-exec', sdir, this.runc.bin, ...args], { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
    const ctl = child.stdio[3] as Writable;
    ctl.on('error', () => {});
    let err = '';
    child.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
    child.stdout!.on('data', (b: Buffer) => send(1, b));
    child.stdin!.on('error', () => {});
    const reader = new FrameReader((f) => {
      if (f.opcode === 8) { child.stdin!.end(); sendClose(sock, false); return; }
      if (f.opcode === 9) { if (!sock.destroyed) sock.write(encodeFrame(10, f.payload, false)); return; }
      if (f.opcode !== 2 && f.opcode !== 1 || f.payload.length === 0) return;
      const ch = f.payload[0]!;
      if (ch === 0) child.stdin!.write(f.payload.subarray(1));
      else if (ch === 4) {
        try {
          const sz = JSON.parse(f.payload.subarray(1).toString()) as { Width?: number; Height?: number };
          if (sz.Width && sz.Height) ctl.write(`${Math.floor(sz.Width)} ${Math.floor(sz.Height)}\n`);
        } catch { /* not a size */ }
      } else if (ch === 255 && f.payload[1] === 0) child.stdin!.end();
    });
    sock.on('data', (b: Buffer) => { try { reader.push(b); } catch { sock.destroy(); } });
    const gone = () => {
      child.stdin!.end();
      if (child.exitCode !== null) return;
      // The client left: end the exec'd process (its pid is in exec.pid).
      try { const pid = Number(readFileSync(join(sdir, 'exec.pid'), 'utf8')); if (pid > 0) process.kill(pid, 'SIGKILL'); } catch { /* not started or gone */ }
    };
    sock.on('end', gone);
    sock.on('close', gone);
    sock.on('error', () => {});
    child.on('close', (code) => {
      rmSync(sdir, { recursive: true, force: true });
      const c = code ?? 255;
      const status = c === 0 ? { metadata: {}, status: 'Success' }
        : err && c === 255 ? { metadata: {}, status: 'Failure', message: err.trim() }
          : { metadata: {}, status: 'Failure', message: `command terminated with non-zero exit code: ${c}`, reason: 'NonZeroExitCode', details: { causes: [{ reason: 'ExitCode', message: String(c) }] } };
      send(3, Buffer.from(JSON.stringify(status)));
      sendClose(sock, false);
    });
  }

  private run(r: ExecRequest, sock: Duplex, v5: boolean): void {
    const send = (channel: number, data: Buffer) => { if (!sock.destroyed) sock.write(encodeFrame(2, Buffer.concat([Buffer.from([channel]), data]), false)); };
    // runc writes the exec'd process's pid here, so a client that goes away can have that
    // process killed (killing `runc exec` alone would leave it running in the container).
    let pidFile: string | undefined;
    try { pidFile = join(this.containers.find(r.containerId).dir, `exec-${randomBytes(8).toString('hex')}.pid`); } catch { /* removed meanwhile: runc exec fails below */ }
    const child = spawn(this.runc.bin, this.runc.args('exec', ...(pidFile ? ['--pid-file', pidFile] : []), r.containerId, ...r.cmd), { stdio: [r.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    let exited = false;
    const killExecd = () => {
      if (exited) return;
      // The pid file may not be written yet: look for it until runc exec is gone (checked every 50 ms).
      const tryKill = () => {
        if (exited) return;
        let pid = 0;
        try { pid = Number(readFileSync(pidFile!, 'utf8').trim()); } catch { /* not yet */ }
        if (pid > 0) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } return; }
        if (!pidFile) { child.kill('SIGKILL'); return; }
        setTimeout(tryKill, 50);
      };
      tryKill();
    };
    child.stdout!.on('data', (b: Buffer) => { if (r.stdout) send(1, b); });
    child.stderr!.on('data', (b: Buffer) => { if (r.stderr) send(2, b); });
    child.stdin?.on('error', () => {});
    const reader = new FrameReader((f) => {
      if (f.opcode === 8) { child.stdin?.end(); sendClose(sock, false); return; }
      if (f.opcode === 9) { if (!sock.destroyed) sock.write(encodeFrame(10, f.payload, false)); return; }
      if (f.opcode !== 2 && f.opcode !== 1 || f.payload.length === 0) return;
      const ch = f.payload[0]!;
      if (ch === 0 && child.stdin) child.stdin.write(f.payload.subarray(1));
      else if (v5 && ch === 255 && f.payload[1] === 0) child.stdin?.end(); // v5: close stdin
    });
    sock.on('data', (b: Buffer) => { try { reader.push(b); } catch { sock.destroy(); } });
    // The client is gone (disconnected, or sent garbage): nobody reads the output any more.
    // (The HTTP server's sockets are half-open capable: a client's FIN is 'end', not 'close'.)
    const gone = () => { child.stdin?.end(); killExecd(); };
    sock.on('end', gone);
    sock.on('close', gone);
    sock.on('error', () => {});
    child.on('error', (e) => { exited = true; send(3, Buffer.from(JSON.stringify({ metadata: {}, status: 'Failure', message: `cannot run runc exec: ${e.message}` }))); sendClose(sock, false); });
    // As in ExecSync: leftover background processes may hold the pipes, so the command's own
    // exit ends the session once buffered output had a moment to arrive.
    child.on('exit', (code, signal) => {
      exited = true;
      if (pidFile) rmSync(pidFile, { force: true });
      let pending = 2;
      const done = () => { if (--pending === 0) { clearTimeout(grace); finish(code ?? (signal ? 137 : 255)); } };
      const grace = setTimeout(() => { pending = 1; child.stdout!.destroy(); child.stderr!.destroy(); done(); }, 200);
      if (child.stdout!.readableEnded) done(); else child.stdout!.once('end', done);
      if (child.stderr!.readableEnded) done(); else child.stderr!.once('end', done);
    });
    const finish = (code: number) => {
      const status = code === 0
        ? { metadata: {}, status: 'Success' }
        : { metadata: {}, status: 'Failure', message: `command terminated with non-zero exit code: ${code}`, reason: 'NonZeroExitCode', details: { causes: [{ reason: 'ExitCode', message: String(code) }] } };
      send(3, Buffer.from(JSON.stringify(status)));
      sendClose(sock, false);
    };
  }
}
