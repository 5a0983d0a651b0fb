// Framing of gossip's TCP exchanges (join, push/pull, TCP ping): one request and one reply per
// connection, each one frame:
//
//   label header  0xF4 | length (1) | label          only when a cluster label is set
//   head          keyring: 0x02 | nonce (12) | sealed u32 body length (4) | GCM tag (16)
//                 no keyring: u32 body length (big-endian)
//   body          keyring: the payload sealed as a packet is (security.ts), its additional
//                 data the label followed by the head; no keyring: the payload
//
// The head is sealed on its own (additional data: HEAD_AAD and the label) so a receiver checks
// the label and authenticates the length before it takes a single body byte: a sender without
// the key makes it hold at most the few hundred bytes of the two headers. An authenticated length
// is still capped (`maxBody`) and the body's bytes are reserved from a budget shared by every
// stream, so even members cannot make it buffer more than that budget at once. The body's
// additional data binds it to its head: a head cannot be replayed in front of another body.

import type { Keyring } from './keyring.js';
import { ENCRYPTION_OVERHEAD, LABEL_MAGIC, open, seal, SecurityError, type Protection } from './security.js';

/** First byte of a sealed head: not ENCRYPTION_VERSION, so a packet's sealing never passes for one. */
export const STREAM_HEAD_VERSION = 2;
const HEAD_AAD = Buffer.from('shoal-gossip-stream-head/');

/** Why a frame was refused: the transport counts each. */
export type FrameDropReason = 'label' | 'decrypt' | 'short' | 'oversize' | 'busy';

export class FrameError extends Error {
  constructor(readonly reason: FrameDropReason, message: string) {
    super(message);
  }
}

/** Bytes buffered by all streams together, reserved before a body is read. */
export class ByteBudget {
  private used = 0;
  constructor(readonly limit: number) {}

  take(n: number): boolean {
    if (this.used + n > this.limit) return false;
    this.used += n;
    return true;
  }

  give(n: number): void {
    this.used = Math.max(0, this.used - n);
  }

  get inUse(): number {
    return this.used;
  }
}

export function headSize(p: Protection): number {
  return p.keyring ? ENCRYPTION_OVERHEAD + 4 : 4;
}

/** The most bytes of a frame before its body: label header and head. */
export function preambleSize(p: Protection): number {
  return (p.label ? 2 + Buffer.byteLength(p.label) : 0) + headSize(p);
}

/** Body bytes a payload of `n` bytes takes on the wire. */
export function bodySize(p: Protection, n: number): number {
  return p.keyring ? n + ENCRYPTION_OVERHEAD : n;
}

function labelHeader(p: Protection): Buffer {
  if (!p.label) return Buffer.alloc(0);
  const l = Buffer.from(p.label);
  return Buffer.concat([Buffer.from([LABEL_MAGIC, l.length]), l]);
}

/** One whole frame carrying `payload`. */
export function encodeFrame(p: Protection, payload: Uint8Array): Buffer {
  const label = Buffer.from(p.label);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(bodySize(p, payload.length));
  if (!p.keyring) return Buffer.concat([labelHeader(p), len, payload]);
  const key = p.keyring.primary();
  const head = seal(key, len, Buffer.concat([HEAD_AAD, label]), STREAM_HEAD_VERSION);
  const body = seal(key, payload, Buffer.concat([label, head]));
  return Buffer.concat([labelHeader(p), head, body]);
}

function openHead(keyring: Keyring, head: Buffer, label: Buffer): number {
  try {
    return open(keyring, head, Buffer.concat([HEAD_AAD, label]), STREAM_HEAD_VERSION).readUInt32BE(0);
  } catch (e) {
    if (e instanceof SecurityError) throw new FrameError(e.reason, `stream head: ${e.message}`);
    throw e;
  }
}

/**
 * Reads one frame from chunks as they arrive. `push` returns the payload once the frame is
 * complete, undefined while more is needed, and throws FrameError the moment the input is
 * refused: a wrong label, a head that does not authenticate, a body over `maxBody`, no budget
 * left. Call `release()` when done with the frame (or the connection) to give its bytes back.
 */
export class FrameDecoder {
  private pre = Buffer.alloc(0);
  private phase: 'label' | 'head' | 'body' | 'done' = 'label';
  private head = Buffer.alloc(0);
  private body: Buffer | undefined;
  private got = 0;
  private reserved = 0;
  private readonly label: Buffer;

  constructor(private readonly p: Protection, private readonly maxBody: number, private readonly budget: ByteBudget) {
    this.label = Buffer.from(p.label);
    if (!p.label) this.phase = 'head';
  }

  /** Bytes held for this frame (body reserved up front). */
  get holding(): number {
    return this.pre.length + this.reserved;
  }

  push(chunk: Buffer): Buffer | undefined {
    let c = chunk;
    while (c.length > 0) {
      if (this.phase === 'done') throw new FrameError('short', `${c.length} bytes after the end of the frame`);
      if (this.phase === 'body') {
        const body = this.body!;
        const n = Math.min(c.length, body.length - this.got);
        c.copy(body, this.got, 0, n);
        this.got += n;
        c = c.subarray(n);
        if (this.got === body.length) {
          this.phase = 'done';
          if (c.length > 0) throw new FrameError('short', `${c.length} bytes after the end of the frame`);
          return this.finish(body);
        }
        continue;
      }
      // label or head: small, fixed-size pieces
      const want = this.phase === 'label' ? this.labelWant() : headSize(this.p);
      const n = Math.min(c.length, want - this.pre.length);
      this.pre = Buffer.concat([this.pre, c.subarray(0, n)]);
      c = c.subarray(n);
      if (this.phase === 'label') this.checkLabel();
      else {
        this.checkHeadStart();
        if (this.pre.length === want) this.startBody();
      }
    }
    return undefined;
  }

  release(): void {
    if (this.reserved > 0) this.budget.give(this.reserved);
    this.reserved = 0;
    this.body = undefined;
  }

  private labelWant(): number {
    return this.pre.length < 2 ? 2 : 2 + (this.pre[1] as number);
  }

  private checkLabel(): void {
    if (this.pre.length >= 1 && this.pre[0] !== LABEL_MAGIC) {
      throw new FrameError('label', `stream has no cluster label; expected "${this.p.label}"`);
    }
    if (this.pre.length < 2 || this.pre.length < this.labelWant()) return;
    const got = this.pre.subarray(2);
    if (!got.equals(this.label)) throw new FrameError('label', `stream cluster label "${got.toString()}" is not ours ("${this.p.label}")`);
    this.pre = Buffer.alloc(0);
    this.phase = 'head';
  }

  /** Refuse at the first byte what cannot be a head, rather than after reading it all. */
  private checkHeadStart(): void {
    const b = this.pre[0];
    if (b === LABEL_MAGIC) throw new FrameError('label', 'stream carries a cluster label but this member has none');
    if (this.p.keyring && b !== undefined && b !== STREAM_HEAD_VERSION) {
      throw new FrameError('decrypt', `stream head version ${b} is not ${STREAM_HEAD_VERSION} (a sender without this cluster's gossip key, or an older shoal)`);
    }
  }

  private startBody(): void {
    this.head = this.pre;
    this.pre = Buffer.alloc(0);
    const len = this.p.keyring ? openHead(this.p.keyring, this.head, this.label) : this.head.readUInt32BE(0);
    const min = bodySize(this.p, 1);
    if (len < min) throw new FrameError('short', `stream body of ${len} bytes is shorter than ${min}`);
    if (len > this.maxBody) throw new FrameError('oversize', `stream body of ${len} bytes exceeds the limit of ${this.maxBody}`);
    if (!this.budget.take(len)) {
      throw new FrameError('busy', `no room for a ${len}-byte stream body: ${this.budget.inUse} of ${this.budget.limit} bytes are held by other streams`);
    }
    this.reserved = len;
    this.body = Buffer.allocUnsafe(len);
    this.phase = 'body';
  }

  private finish(body: Buffer): Buffer {
    if (!this.p.keyring) return body;
    try {
      return open(this.p.keyring, body, Buffer.concat([this.label, this.head]));
    } catch (e) {
      if (e instanceof SecurityError) throw new FrameError(e.reason, `stream body: ${e.message}`);
      throw e;
    }
  }
}
