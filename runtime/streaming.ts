// The streaming server behind CRI Exec: Exec answers a one-time URL on 127.0.0.1, and a client
// that opens it as a WebSocket with the Kubernetes channel protocol (v5.channel.k8s.io or
// v4.channel.k8s.io: each binary message starts with a channel byte, 0 stdin, 1 stdout,
// 2 stderr, 3 status) runs the command in the container with `runc exec`. Without a TTY.
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Runc } from './runc.js';
import type { Containers } from './container.js';
import { acceptKey, encodeFrame, FrameReader, sendClose } from './websocket.js';

interface ExecRequest { kind: 'exec' | 'attach'; containerId: string; cmd: string[]; stdin: boolean; stdout: boolean; stderr: boolean; expires: number }

const TOKEN_TTL_MS = 60_000;
const PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io'];

export class StreamingServer {
  private server?: Server;
  private port = 0;
  private readonly pending = new Map<string, ExecRequest>();

  constructor(private readonly runc: Runc, private readonly containers: Containers) {}

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
    const m = /^\/(?:exec|attach)\/([a-f0-9]{32})$/.exec(new URL(req.url ?? '/', 'http://x').pathname);
    const r = m ? this.pending.get(m[1]!) : undefined;
    if (!r || r.expires < Date.now()) return fail(404, 'unknown or expired exec URL; call Exec again');
    this.pending.delete(m![1]!);
    const key = req.headers['sec-websocket-key'];
    const offered = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    const proto = PROTOCOLS.find((p) => offered.includes(p));
    if (typeof key !== 'string' || !proto) return fail(400, `a WebSocket upgrade with protocol ${PROTOCOLS.join(' or ')} is required`);
    sock.write(['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade',
      `Sec-WebSocket-Accept: ${acceptKey(key)}`, `Sec-WebSocket-Protocol: ${proto}`, '', ''].join('\r\n'));
    if (r.kind === 'attach') this.attach(r, sock);
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
