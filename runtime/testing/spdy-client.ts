// Test helper: the client side of CRI streaming over SPDY/3.1, as kubectl before 1.29 and
// crictl 1.29 speak it (client-go's remotecommand and portforward over moby/spdystream): the
// HTTP upgrade with X-Stream-Protocol-Version, then one stream per channel, each opened and
// answered in turn (error first), stdin closed with a FIN, the status read from the error stream.
import { request } from 'node:http';
import { SpdySession, type SpdyStream } from '../spdy.js';

export const ALL_EXEC_PROTOCOLS = ['v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io'];

export class UpgradeRefused extends Error { constructor(readonly statusCode: number, readonly body: string) { super(`upgrade refused: HTTP ${statusCode}: ${body.trim()}`); } }

/** Upgrades `url` to SPDY/3.1 offering `protocols` (none: no header at all). */
export function spdyConnect(url: string, protocols: string[]): Promise<{ session: SpdySession; protocol: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | string[]> = { connection: 'Upgrade', upgrade: 'SPDY/3.1' };
    if (protocols.length) headers['x-stream-protocol-version'] = protocols;
    const req = request(url, { method: 'POST', headers });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (b: Buffer) => { body += b.toString(); });
      res.on('end', () => reject(new UpgradeRefused(res.statusCode ?? 0, body)));
    });
    req.on('error', reject);
    req.on('upgrade', (res, sock, head) => {
      if (String(res.headers.upgrade).toLowerCase() !== 'spdy/3.1') { sock.destroy(); reject(new Error(`upgraded to ${res.headers.upgrade}, not SPDY/3.1`)); return; }
      resolve({ session: new SpdySession(sock, 'client', head), protocol: String(res.headers['x-stream-protocol-version'] ?? '') });
    });
    req.end();
  });
}

export interface SpdyExecResult { protocol: string; stdout: string; stderr: string; errorText: string; status: Record<string, unknown> | undefined; stdoutBytes: Buffer }

export interface SpdyExecOptions {
  protocols?: string[];
  stdin?: boolean;
  stdout?: boolean;
  stderr?: boolean;
  tty?: boolean;
  /** Written to stdin once the streams are open. */
  input?: string | Buffer;
  /** Closes stdin (FIN) after `input`. */
  closeStdin?: boolean;
  /** Terminal sizes sent on the resize stream once it is open. */
  sizes?: [number, number][];
  /** Called with what arrived on stdout so far; may write to stdin, resize or close stdin. */
  react?: (stdout: string, ctl: { write(s: string): void; resize(w: number, h: number): void; closeStdin(): void; disconnect(): void }) => void;
}

/** Runs one exec/attach session over SPDY and resolves when the server has ended it (or the connection closed). */
export async function spdyExec(url: string, o: SpdyExecOptions = {}): Promise<SpdyExecResult> {
  const { session, protocol } = await spdyConnect(url, o.protocols ?? ALL_EXEC_PROTOCOLS);
  const open = (type: string) => session.openStream({ streamtype: type });
  // kubectl's order: error, stdin, stdout, stderr (not with a terminal), resize (v3 on, terminal).
  const error = await open('error');
  const stdin = o.stdin ? await open('stdin') : undefined;
  const stdout = o.stdout !== false ? await open('stdout') : undefined;
  const stderr = o.stderr && !o.tty ? await open('stderr') : undefined;
  const resize = o.tty && (protocol === 'v3.channel.k8s.io' || protocol === 'v4.channel.k8s.io') ? await open('resize') : undefined;
  const out = { protocol, stdout: '', stderr: '', errorText: '', status: undefined as Record<string, unknown> | undefined, stdoutBytes: Buffer.alloc(0) };
  const ended = (s: SpdyStream | undefined) => new Promise<void>((r) => { if (!s) { r(); return; } s.on('end', r); s.on('close', r); });
  const ctl = {
    write: (x: string) => { if (stdin && !stdin.writableEnded && !stdin.destroyed) stdin.write(x); },
    resize: (w: number, h: number) => { if (resize && !resize.destroyed) resize.write(JSON.stringify({ Width: w, Height: h }) + '\n'); },
    closeStdin: () => { if (stdin && !stdin.writableEnded && !stdin.destroyed) stdin.end(); },
    disconnect: () => session.destroy(),
  };
  for (const s of [error, stdin, resize]) s?.on('error', () => {});
  error.on('data', (b: Buffer) => { out.errorText += b.toString(); });
  stderr?.on('data', (b: Buffer) => { out.stderr += b.toString(); });
  stdout?.on('data', (b: Buffer) => {
    out.stdoutBytes = Buffer.concat([out.stdoutBytes, b]);
    out.stdout += b.toString();
    o.react?.(out.stdout, ctl);
  });
  stdin?.resume();
  resize?.resume();
  for (const [w, h] of o.sizes ?? []) ctl.resize(w, h);
  if (o.input !== undefined) stdin?.write(o.input);
  if (o.closeStdin) ctl.closeStdin();
  const closed = new Promise<void>((r) => session.on('close', r));
  await Promise.race([Promise.all([ended(error), ended(stdout), ended(stderr)]), closed]);
  if (out.errorText && (protocol === 'v4.channel.k8s.io' || protocol === 'v5.channel.k8s.io')) out.status = JSON.parse(out.errorText) as Record<string, unknown>;
  session.destroy();
  return out;
}

export interface ForwardResult { data: Buffer; error: string; reset?: number }

/**
 * One port-forward connection over an open session: a pair of streams (error, then data) with
 * the same request id; sends `send`, half-closes, and collects until the server ends both.
 */
export async function spdyForward(session: SpdySession, port: number | string, requestId: string, send: Buffer | string): Promise<ForwardResult> {
  const error = await session.openStream({ streamtype: 'error', port: String(port), requestid: requestId });
  const data = await session.openStream({ streamtype: 'data', port: String(port), requestid: requestId });
  const res: ForwardResult = { data: Buffer.alloc(0), error: '' };
  error.on('data', (b: Buffer) => { res.error += b.toString(); });
  data.on('data', (b: Buffer) => { res.data = Buffer.concat([res.data, b]); });
  for (const s of [error, data]) s.on('error', () => {});
  data.end(send);
  const ended = (s: SpdyStream) => new Promise<void>((r) => { s.on('end', r); s.on('close', r); });
  await Promise.all([ended(error), ended(data)]);
  return res;
}
