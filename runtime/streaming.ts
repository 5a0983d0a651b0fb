// The streaming server behind CRI Exec, Attach and PortForward: each answers a one-time URL on
// 127.0.0.1 (valid 60 s), which a client opens with an HTTP upgrade to either of the protocols
// kubelet's clients speak:
// - WebSocket (`Upgrade: websocket`, Sec-WebSocket-Protocol v5.channel.k8s.io / v4.channel.k8s.io,
//   port forwarding v4.channel.k8s.io / portforward.k8s.io / none);
// - SPDY/3.1 (`Upgrade: SPDY/3.1`, X-Stream-Protocol-Version v4.channel.k8s.io, v3, v2 or
//   channel.k8s.io; port forwarding portforward.k8s.io), as crictl 1.29 and kubectl before 1.29.
// The transports are in stream-io.ts and stream-portforward.ts, the commands in stream-exec.ts.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Runc } from './runc.js';
import type { Containers } from './container.js';
import { acceptKey } from './websocket.js';
import { SpdySession } from './spdy.js';
import { serveSpdyExec, serveWebSocketExec, type ExecHandler } from './stream-io.js';
import { runAttach, runExec, runTtyExec, type ExecRequest } from './stream-exec.js';
import { spdyPortForward, webSocketPortForward } from './stream-portforward.js';

export type { ExecRequest };

const TOKEN_TTL_MS = 60_000;
const WS_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io'];
const WS_PORTFORWARD_PROTOCOLS = ['v4.channel.k8s.io', 'portforward.k8s.io'];
/** SPDY remote command protocols, as the kubelet serves them. */
const SPDY_PROTOCOLS = ['v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io'];
const SPDY_PORTFORWARD_PROTOCOLS = ['portforward.k8s.io'];

export class StreamingServer {
  private server?: Server;
  private port = 0;
  private readonly pending = new Map<string, ExecRequest>();

  constructor(private readonly runc: Runc, private readonly containers: Containers, private readonly shimBin: () => string) {}

  async start(): Promise<void> {
    this.server = createServer((_req, res) => {
      res.writeHead(400, { 'Content-Type': 'text/plain' });
      res.end('upgrade the connection: WebSocket (v5.channel.k8s.io / v4.channel.k8s.io) or SPDY/3.1 (X-Stream-Protocol-Version v4.channel.k8s.io)\n');
    });
    this.server.on('upgrade', (req, sock, head) => this.upgrade(req, sock, head));
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

  private upgrade(req: IncomingMessage, sock: Duplex, head: Buffer): void {
    const fail = (code: number, reason: string, msg: string) => { sock.end(`HTTP/1.1 ${code} ${reason}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${msg}\n`); };
    sock.on('error', () => {});
    const url = new URL(req.url ?? '/', 'http://x');
    const m = /^\/(?:exec|attach|portforward)\/([a-f0-9]{32})$/.exec(url.pathname);
    const r = m ? this.pending.get(m[1]!) : undefined;
    if (!r || r.expires < Date.now()) return fail(404, 'Not Found', 'unknown or expired exec URL; call Exec again');
    this.pending.delete(m![1]!);
    if (/^spdy\/3\.1$/i.test(String(req.headers.upgrade ?? ''))) return this.spdyUpgrade(req, sock, head, r, fail);
    if (String(req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return fail(400, 'Bad Request', `unable to upgrade: Upgrade must be websocket or SPDY/3.1, not ${JSON.stringify(req.headers.upgrade ?? '')}`);
    const key = req.headers['sec-websocket-key'];
    const offered = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    // Port forwarding speaks kubelet's websocket port-forward protocol (binary v4 channels, or
    // no subprotocol at all, as kubelet accepts); exec and attach the channel protocol.
    const accepted = r.kind === 'portforward' ? WS_PORTFORWARD_PROTOCOLS : WS_PROTOCOLS;
    const proto = accepted.find((p) => offered.includes(p)) ?? (r.kind === 'portforward' && !req.headers['sec-websocket-protocol'] ? '' : undefined);
    if (typeof key !== 'string' || proto === undefined) return fail(400, 'Bad Request', `a WebSocket upgrade with protocol ${accepted.join(' or ')} is required`);
    sock.write(['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade',
      `Sec-WebSocket-Accept: ${acceptKey(key)}`, ...(proto ? [`Sec-WebSocket-Protocol: ${proto}`] : []), '', ''].join('\r\n'));
    if (r.kind === 'portforward') {
      const q = url.searchParams.getAll('port').map(Number);
      webSocketPortForward(this.shimBin(), r.netns, q.length ? q : r.ports ?? [], sock);
      return;
    }
    serveWebSocketExec(sock, proto, this.handler(r));
  }

  /**
   * The SPDY handshake as the kubelet does it: the protocol is the first of the client's
   * X-Stream-Protocol-Version values the server supports (none given: the oldest protocol);
   * none in common is 403; then 101 with `Upgrade: SPDY/3.1`.
   */
  private spdyUpgrade(req: IncomingMessage, sock: Duplex, head: Buffer, r: ExecRequest, fail: (code: number, reason: string, msg: string) => void): void {
    const offered = (req.headersDistinct['x-stream-protocol-version'] ?? []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
    const supported = r.kind === 'portforward' ? SPDY_PORTFORWARD_PROTOCOLS : SPDY_PROTOCOLS;
    const proto = offered.length === 0 ? '' : offered.find((p) => supported.includes(p));
    if (proto === undefined) return fail(403, 'Forbidden', `unable to upgrade: unable to negotiate protocol: client supports ${JSON.stringify(offered)}, server supports ${JSON.stringify(supported)}`);
    sock.write(['HTTP/1.1 101 Switching Protocols', 'Connection: Upgrade', 'Upgrade: SPDY/3.1',
      ...(proto ? [`X-Stream-Protocol-Version: ${proto}`] : []), '', ''].join('\r\n'));
    const session = new SpdySession(sock, 'server', head);
    if (r.kind === 'portforward') { spdyPortForward(this.shimBin(), r.containerId, r.netns, session); return; }
    serveSpdyExec(session, proto, { stdin: r.stdin, stdout: r.stdout, stderr: r.stderr, tty: !!r.tty }, this.handler(r));
  }

  private handler(r: ExecRequest): ExecHandler {
    if (r.kind === 'attach') return (io) => runAttach(this.containers, r, io);
    if (r.tty) return (io) => runTtyExec(this.runc, this.containers, this.shimBin(), r, io);
    return (io) => runExec(this.runc, this.containers, r, io);
  }
}
