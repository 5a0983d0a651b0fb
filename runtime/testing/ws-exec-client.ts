// Test helper: the client side of a CRI Exec stream (WebSocket, Kubernetes channel protocol),
// as kubectl / crictl speak it.
import { request } from 'node:http';
import { randomBytes } from 'node:crypto';
import { acceptKey, encodeFrame, FrameReader, sendClose } from '../websocket.js';

export interface ExecStreamResult { stdout: string; stderr: string; status: Record<string, unknown> | undefined; protocol: string; channels: Record<number, Buffer> }

/**
 * `send`: frames sent in order once the stream is open ([channel, data], e.g. [4, '{"Width":100,
 * "Height":40}'] for a terminal size); `closeWhen`: the client closes the stream once this
 * returns true for what arrived (port forwarding has no end of its own).
 */
export function execStream(url: string, opts: { protocol?: string; stdin?: string; closeStdin?: boolean; onOpen?: () => void; disconnect?: Promise<unknown>; send?: [number, string | Buffer][]; closeWhen?: (channels: Record<number, Buffer>) => boolean; react?: (channels: Record<number, Buffer>, send: (channel: number, data: string | Buffer) => void) => void } = {}): Promise<ExecStreamResult> {
  return new Promise((resolve, reject) => {
    const key = randomBytes(16).toString('base64');
    const req = request(url, { headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': key, 'sec-websocket-version': '13', 'sec-websocket-protocol': opts.protocol ?? 'v5.channel.k8s.io, v4.channel.k8s.io' } });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (b: Buffer) => { body += b.toString(); });
      res.on('end', () => reject(Object.assign(new Error(`exec URL answered HTTP ${res.statusCode}: ${body.trim()}`), { statusCode: res.statusCode })));
    });
    req.on('error', reject);
    req.on('upgrade', (res, sock, head) => {
      if (res.headers['sec-websocket-accept'] !== acceptKey(key)) { sock.destroy(); reject(new Error('bad Sec-WebSocket-Accept')); return; }
      const out = { stdout: '', stderr: '', status: undefined as Record<string, unknown> | undefined, protocol: String(res.headers['sec-websocket-protocol']), channels: {} as Record<number, Buffer> };
      let closing = false;
      const reader = new FrameReader((f) => {
        if (f.opcode === 8) { sock.end(); return; }
        if (f.opcode !== 2 || f.payload.length === 0) return;
        const ch = f.payload[0]!;
        out.channels[ch] = Buffer.concat([out.channels[ch] ?? Buffer.alloc(0), f.payload.subarray(1)]);
        if (!closing && opts.closeWhen?.(out.channels)) { closing = true; sendClose(sock, true); }
        opts.react?.(out.channels, (c, d) => { if (!sock.destroyed) sock.write(encodeFrame(2, Buffer.concat([Buffer.from([c]), Buffer.from(d)]), true)); });
        const data = f.payload.subarray(1).toString();
        if (f.payload[0] === 1) out.stdout += data;
        else if (f.payload[0] === 2) out.stderr += data;
        else if (f.payload[0] === 3) out.status = JSON.parse(data) as Record<string, unknown>;
      });
      if (head.length) reader.push(head);
      opts.onOpen?.();
      // A client that goes away without closing the stream (kubectl killed, network gone).
      opts.disconnect?.then(() => sock.destroy(), () => sock.destroy());
      sock.on('data', (b: Buffer) => reader.push(b));
      sock.on('close', () => resolve(out));
      sock.on('error', reject);
      for (const [ch, data] of opts.send ?? []) sock.write(encodeFrame(2, Buffer.concat([Buffer.from([ch]), Buffer.from(data)]), true));
      if (opts.stdin !== undefined) sock.write(encodeFrame(2, Buffer.concat([Buffer.from([0]), Buffer.from(opts.stdin)]), true));
      if (opts.closeStdin) {
        if (out.protocol === 'v5.channel.k8s.io') sock.write(encodeFrame(2, Buffer.from([255, 0]), true));
        else sendClose(sock, true);
      }
    });
    req.end();
  });
}
