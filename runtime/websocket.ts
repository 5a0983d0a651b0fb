// Minimal RFC 6455 WebSocket framing (server and client side), enough for the Kubernetes
// streaming protocol (v4.channel.k8s.io) that CRI Exec URLs speak.
import { createHash, randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export function acceptKey(key: string): string {
  return createHash('sha1').update(key + GUID).digest('base64');
}

export function encodeFrame(opcode: number, payload: Buffer, mask: boolean): Buffer {
  const len = payload.length;
  const head: number[] = [0x80 | opcode];
  const m = mask ? 0x80 : 0;
  if (len < 126) head.push(m | len);
  else if (len < 65536) head.push(m | 126, len >> 8, len & 0xff);
  else {
    head.push(m | 127);
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(len));
    head.push(...b);
  }
  if (!mask) return Buffer.concat([Buffer.from(head), payload]);
  const key = randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i]! ^= key[i & 3]!;
  return Buffer.concat([Buffer.from(head), key, body]);
}

export interface Frame { opcode: number; payload: Buffer }

/** Parses frames from a socket; reassembles fragmented messages. */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  private fragments: Buffer[] = [];
  private fragOpcode = 0;
  constructor(private readonly onFrame: (f: Frame) => void, private readonly maxMessage = 16 << 20) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    for (;;) {
      if (this.buf.length < 2) return;
      const b0 = this.buf[0]!; const b1 = this.buf[1]!;
      let len = b1 & 0x7f;
      let off = 2;
      if (len === 126) { if (this.buf.length < 4) return; len = this.buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (this.buf.length < 10) return; len = Number(this.buf.readBigUInt64BE(2)); off = 10; }
      if (len > this.maxMessage) throw new Error(`websocket frame of ${len} bytes is too large`);
      const masked = (b1 & 0x80) !== 0;
      const need = off + (masked ? 4 : 0) + len;
      if (this.buf.length < need) return;
      let payload = Buffer.from(this.buf.subarray(off + (masked ? 4 : 0), need));
      if (masked) {
        const key = this.buf.subarray(off, off + 4);
        for (let i = 0; i < payload.length; i++) payload[i]! ^= key[i & 3]!;
      }
      this.buf = this.buf.subarray(need);
      const fin = (b0 & 0x80) !== 0;
      const opcode = b0 & 0x0f;
      if (opcode >= 8) { this.onFrame({ opcode, payload }); continue; } // control frames are never fragmented
      if (opcode !== 0) this.fragOpcode = opcode;
      this.fragments.push(payload);
      if (!fin) continue;
      payload = Buffer.concat(this.fragments);
      this.fragments = [];
      this.onFrame({ opcode: this.fragOpcode, payload });
    }
  }
}

export function sendClose(sock: Duplex, mask: boolean, code = 1000): void {
  const p = Buffer.alloc(2);
  p.writeUInt16BE(code);
  if (!sock.destroyed) sock.end(encodeFrame(8, p, mask));
}
