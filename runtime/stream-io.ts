// The two transports of Kubernetes' remote command protocol, behind one interface, so exec,
// TTY exec and attach (stream-exec.ts) do not care which one the client speaks:
// - WebSocket (v5.channel.k8s.io, v4.channel.k8s.io): each binary message starts with a channel
//   byte: 0 stdin, 1 stdout, 2 stderr, 3 status, 4 terminal size; v5's channel 255 closes stdin.
// - SPDY/3.1 (v4.channel.k8s.io and older): the client opens one stream per channel, named by its
//   `streamtype` header (error, stdin, stdout, stderr, resize); stdin ends with the stream's FIN.
// The status (error channel/stream) is a Kubernetes Status object in v4 and v5; before v4 only
// a failure's message is written.
import type { Duplex } from 'node:stream';
import { encodeFrame, FrameReader, sendClose } from './websocket.js';
import { RST, type SpdySession, type SpdyStream } from './spdy.js';

export interface K8sStatus { metadata: Record<string, never>; status: 'Success' | 'Failure'; message?: string; reason?: string; details?: { causes: { reason: string; message: string }[] } }

export const success = (): K8sStatus => ({ metadata: {}, status: 'Success' });
export const failure = (message: string): K8sStatus => ({ metadata: {}, status: 'Failure', message });
export const exitStatus = (code: number): K8sStatus => code === 0 ? success() : {
  metadata: {}, status: 'Failure', message: `command terminated with non-zero exit code: ${code}`, reason: 'NonZeroExitCode',
  details: { causes: [{ reason: 'ExitCode', message: String(code) }] },
};

/** What the command side sends to the client. */
export interface ExecIO {
  stdout(b: Buffer): void;
  stderr(b: Buffer): void;
  /** The status on the error channel, then the end of the session. */
  finish(status: K8sStatus): void;
}

/** What the client sends, handed to the command side. */
export interface ExecHandlers {
  stdin(b: Buffer): void;
  /** The client closed stdin (v5 close signal, SPDY FIN or reset). */
  stdinEnd(): void;
  resize(width: number, height: number): void;
  /** The client went away (connection closed or a WebSocket close frame). */
  gone(): void;
}

export type ExecHandler = (io: ExecIO) => ExecHandlers;

/** Streams which the request asked for, and so which the client must open (SPDY) or may use. */
export interface ExecStreams { stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean }

/** Parses {"Width":W,"Height":H} objects that follow each other on a byte stream (SPDY's resize stream). */
export class TerminalSizeReader {
  private buf = '';
  constructor(private readonly onSize: (w: number, h: number) => void) {}

  push(b: Buffer): void {
    this.buf += b.toString();
    if (this.buf.length > 65536) this.buf = ''; // not terminal sizes: nothing to recover
    for (;;) {
      const start = this.buf.indexOf('{');
      if (start < 0) { this.buf = ''; return; }
      let depth = 0; let inStr = false; let end = -1;
      for (let i = start; i < this.buf.length; i++) {
        const c = this.buf[i];
        if (inStr) { if (c === '\\') i++; else if (c === '"') inStr = false; continue; }
        if (c === '"') inStr = true;
        else if (c === '{') depth++;
        else if (c === '}' && --depth === 0) { end = i; break; }
      }
      if (end < 0) { this.buf = this.buf.slice(start); return; }
      const text = this.buf.slice(start, end + 1);
      this.buf = this.buf.slice(end + 1);
      applySize(text, this.onSize);
    }
  }
}

function applySize(text: string, onSize: (w: number, h: number) => void): void {
  try {
    const sz = JSON.parse(text) as { Width?: unknown; Height?: unknown };
    const w = Number(sz.Width); const h = Number(sz.Height);
    if (Number.isInteger(w) && Number.isInteger(h) && w > 0 && h > 0 && w < 65536 && h < 65536) onSize(w, h);
  } catch { /* not a size */ }
}

/** Runs `handler` over an upgraded WebSocket speaking the channel protocol `proto`. */
export function serveWebSocketExec(sock: Duplex, proto: string, handler: ExecHandler): void {
  const send = (channel: number, data: Buffer) => { if (!sock.destroyed && !sock.writableEnded) sock.write(encodeFrame(2, Buffer.concat([Buffer.from([channel]), data]), false)); };
  let finished = false;
  const h = handler({
    stdout: (b) => send(1, b),
    stderr: (b) => send(2, b),
    finish: (st) => { if (finished) return; finished = true; send(3, Buffer.from(JSON.stringify(st))); sendClose(sock, false); },
  });
  let gone = false;
  const goneOnce = () => { if (!gone) { gone = true; h.gone(); } };
  const reader = new FrameReader((f) => {
    if (f.opcode === 8) { goneOnce(); sendClose(sock, false); return; }
    if (f.opcode === 9) { if (!sock.destroyed) sock.write(encodeFrame(10, f.payload, false)); return; }
    if ((f.opcode !== 2 && f.opcode !== 1) || f.payload.length === 0) return;
    const ch = f.payload[0]!;
    if (ch === 0) h.stdin(f.payload.subarray(1));
    else if (ch === 4) applySize(f.payload.subarray(1).toString(), (w, ht) => h.resize(w, ht));
    else if (ch === 255 && proto === 'v5.channel.k8s.io' && f.payload[1] === 0) h.stdinEnd();
  });
  sock.on('data', (b: Buffer) => { try { reader.push(b); } catch { sock.destroy(); } });
  // The HTTP server's sockets are half-open capable: a client's FIN is 'end', not 'close'.
  sock.on('end', goneOnce);
  sock.on('close', goneOnce);
  sock.on('error', () => {});
}

const STREAM_CREATION_TIMEOUT_MS = 30_000;

/** The status as the negotiated protocol writes it on the error stream. */
function statusBytes(proto: string, st: K8sStatus): Buffer {
  if (proto === 'v4.channel.k8s.io' || proto === 'v5.channel.k8s.io') return Buffer.from(JSON.stringify(st));
  // v1-v3: nothing on success, a failure's message as text.
  return st.status === 'Success' ? Buffer.alloc(0) : Buffer.from(st.message ?? 'error');
}

/**
 * Runs `handler` over a SPDY session: waits (30 s, as the kubelet) for the client's streams
 * (error, and stdin/stdout/stderr as asked, resize with a TTY from v3 on), then wires them up.
 */
export function serveSpdyExec(session: SpdySession, proto: string, want: ExecStreams, handler: ExecHandler): void {
  const got = new Map<string, SpdyStream>();
  const known = new Set(['error', 'stdin', 'stdout', 'stderr', ...(proto === 'v2.channel.k8s.io' || proto === 'channel.k8s.io' || proto === '' ? [] : ['resize'])]);
  const needed = ['error', ...(want.stdin ? ['stdin'] : []), ...(want.stdout ? ['stdout'] : []), ...(want.stderr && !want.tty ? ['stderr'] : []), ...(want.tty && known.has('resize') ? ['resize'] : [])];
  let started = false;
  const abort = (msg: string) => {
    const err = got.get('error');
    if (err && !err.destroyed) err.end(statusBytes(proto, failure(msg)));
    void session.goAway();
  };
  const timer = setTimeout(() => { if (!started) abort(`timed out waiting for the client's streams (${needed.filter((n) => !got.has(n)).join(', ')} missing)`); }, STREAM_CREATION_TIMEOUT_MS);
  session.on('close', () => clearTimeout(timer));
  session.on('stream', (s: SpdyStream) => {
    const type = s.header('streamtype') ?? '';
    if (started || !known.has(type) || got.has(type)) {
      s.reset(RST.PROTOCOL_ERROR);
      if (!started) abort(got.has(type) ? `a second ${type} stream was opened` : `unexpected stream type ${JSON.stringify(type)}`);
      return;
    }
    s.reply();
    s.on('error', () => {});
    got.set(type, s);
    if (needed.every((n) => got.has(n))) { started = true; clearTimeout(timer); start(); }
  });

  const start = () => {
    const out = (name: string, b: Buffer) => { const s = got.get(name); if (s && !s.destroyed && !s.writableEnded) s.write(b); };
    let finished = false;
    const h = handler({
      stdout: (b) => out('stdout', b),
      stderr: (b) => out('stderr', b),
      finish: (st) => {
        if (finished) return;
        finished = true;
        const err = got.get('error')!;
        if (!err.destroyed && !err.writableEnded) err.end(statusBytes(proto, st));
        for (const n of ['stdout', 'stderr', 'resize', 'stdin']) { const s = got.get(n); if (s && !s.destroyed && !s.writableEnded) s.end(); }
        void session.goAway();
        // A client that never closes its side is cut off after 5 s.
        setTimeout(() => session.destroy(), 5000).unref();
      },
    });
    // Streams the client writes nothing useful on are still read, so they never block the socket.
    for (const n of ['error', 'stdout', 'stderr']) got.get(n)?.resume();
    const stdin = got.get('stdin');
    if (stdin) {
      let ended = false;
      const end = () => { if (!ended) { ended = true; h.stdinEnd(); } };
      stdin.on('data', (b: Buffer) => h.stdin(b));
      stdin.on('end', end);
      stdin.on('close', end);
    }
    const resize = got.get('resize');
    if (resize) {
      const r = new TerminalSizeReader((w, ht) => h.resize(w, ht));
      resize.on('data', (b: Buffer) => r.push(b));
    }
    session.on('close', () => h.gone());
  };
}
