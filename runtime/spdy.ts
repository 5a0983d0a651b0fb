// SPDY/3.1, the framing Kubernetes' streaming clients (kubectl before 1.29, crictl 1.29 and
// older, every client built on moby/spdystream) speak over an upgraded HTTP connection: control
// frames (SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE),
// DATA frames, and header blocks compressed with one zlib stream per direction that starts from
// the spec's dictionary. A session carries many streams; each is a Duplex here.
//
// Flow control: this side sends WINDOW_UPDATE for what it has received (as SPDY/3.1 asks) but
// does not hold its own DATA back for the peer's window, as spdystream (the only peer Kubernetes
// has) neither sends nor reads WINDOW_UPDATE; waiting for one would stall every stream after
// 64 KiB. Backpressure comes from TCP: a stream whose reader is full pauses the socket.
import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';
import * as zlib from 'node:zlib';

export const SYN_STREAM = 1;
export const SYN_REPLY = 2;
export const RST_STREAM = 3;
export const SETTINGS = 4;
export const PING = 6;
export const GOAWAY = 7;
export const HEADERS = 8;
export const WINDOW_UPDATE = 9;
export const FLAG_FIN = 0x01;
export const FLAG_UNIDIRECTIONAL = 0x02;

/** RST_STREAM status codes. */
export const RST = { PROTOCOL_ERROR: 1, INVALID_STREAM: 2, REFUSED_STREAM: 3, UNSUPPORTED_VERSION: 4, CANCEL: 5, INTERNAL_ERROR: 6, FLOW_CONTROL_ERROR: 7, STREAM_IN_USE: 8, STREAM_ALREADY_CLOSED: 9, FRAME_TOO_LARGE: 11 } as const;
/** GOAWAY status codes. */
export const GOAWAY_OK = 0;
export const GOAWAY_PROTOCOL_ERROR = 1;
export const GOAWAY_INTERNAL_ERROR = 2;

const VERSION = 3;
const MAX_FRAME = (1 << 24) - 1;
const DATA_CHUNK = 64 * 1024;
/** A WINDOW_UPDATE goes out once this much was received since the last one (half the default window). */
const WINDOW_ACK = 32 * 1024;

// The header compression dictionary of SPDY/3 (section 2.6.10.1): length-prefixed header names
// and values, then a run of common strings. Both ends must use it byte for byte (the zlib stream
// names it by its Adler-32, 0xe3c6a7c2, checked in spdy.test.ts; 1423 bytes).
const DICT_WORDS = [
  'options', 'head', 'post', 'put', 'delete', 'trace', 'accept', 'accept-charset', 'accept-encoding', 'accept-language',
  'accept-ranges', 'age', 'allow', 'authorization', 'cache-control', 'connection', 'content-base', 'content-encoding',
  'content-language', 'content-length', 'content-location', 'content-md5', 'content-range', 'content-type', 'date', 'etag',
  'expect', 'expires', 'from', 'host', 'if-match', 'if-modified-since', 'if-none-match', 'if-range', 'if-unmodified-since',
  'last-modified', 'location', 'max-forwards', 'pragma', 'proxy-authenticate', 'proxy-authorization', 'range', 'referer',
  'retry-after', 'server', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'user-agent', 'vary', 'via', 'warning',
  'www-authenticate', 'method', 'get', 'status', '200 OK', 'version', 'HTTP/1.1', 'url', 'public', 'set-cookie', 'keep-alive', 'origin',
];
const DICT_TAIL = '100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505'
  + '203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized'
  + '403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable'
  + 'Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT'
  + 'chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,'
  + 'publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.';

export const SPDY_DICTIONARY: Buffer = Buffer.concat([
  ...DICT_WORDS.flatMap((w) => { const n = Buffer.alloc(4); n.writeUInt32BE(w.length); return [n, Buffer.from(w, 'latin1')]; }),
  Buffer.from(DICT_TAIL, 'latin1'),
]);

export class SpdyProtocolError extends Error {}

export type Frame =
  | { control: true; version: number; type: number; flags: number; data: Buffer }
  | { control: false; streamId: number; flags: number; data: Buffer };

export function controlFrame(type: number, flags: number, data: Buffer): Buffer {
  if (data.length > MAX_FRAME) throw new SpdyProtocolError(`control frame of ${data.length} bytes is too large`);
  const h = Buffer.alloc(8);
  h.writeUInt16BE(0x8000 | VERSION, 0);
  h.writeUInt16BE(type, 2);
  h.writeUInt32BE(data.length, 4);
  h[4] = flags;
  return Buffer.concat([h, data]);
}

export function dataFrame(streamId: number, flags: number, data: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32BE(streamId & 0x7fffffff, 0);
  h.writeUInt32BE(data.length, 4);
  h[4] = flags;
  return Buffer.concat([h, data]);
}

const u32 = (...v: number[]) => { const b = Buffer.alloc(4 * v.length); v.forEach((x, i) => b.writeUInt32BE(x >>> 0, 4 * i)); return b; };

/** Splits a byte stream into frames. */
export class FrameParser {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly onFrame: (f: Frame) => void) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= 8) {
      const len = this.buf.readUInt32BE(4) & 0xffffff;
      if (this.buf.length < 8 + len) return;
      const flags = this.buf[4]!;
      const data = this.buf.subarray(8, 8 + len);
      const first = this.buf.readUInt32BE(0);
      this.buf = this.buf.subarray(8 + len);
      if (first & 0x80000000) this.onFrame({ control: true, version: (first >>> 16) & 0x7fff, type: first & 0xffff, flags, data });
      else this.onFrame({ control: false, streamId: first, flags, data });
    }
  }
}

export type Headers = Record<string, string[]>;

/** A name/value header block (before compression): names lowercased, several values NUL-joined. */
export function encodeHeaderBlock(h: Record<string, string | string[]>): Buffer {
  const entries = Object.entries(h);
  const parts: Buffer[] = [u32(entries.length)];
  for (const [name, v] of entries) {
    const n = Buffer.from(name.toLowerCase());
    const val = Buffer.from((Array.isArray(v) ? v : [v]).join('\0'));
    parts.push(u32(n.length), n, u32(val.length), val);
  }
  return Buffer.concat(parts);
}

export function decodeHeaderBlock(b: Buffer): Headers {
  const need = (off: number, n: number) => { if (off + n > b.length) throw new SpdyProtocolError('header block is truncated'); };
  need(0, 4);
  const count = b.readUInt32BE(0);
  // Each pair takes at least 8 bytes: a count beyond that is a lie, not a reason to loop.
  if (count > (b.length - 4) / 8) throw new SpdyProtocolError(`header block claims ${count} pairs in ${b.length} bytes`);
  const out: Headers = {};
  let off = 4;
  for (let i = 0; i < count; i++) {
    need(off, 4); const nl = b.readUInt32BE(off); off += 4;
    if (nl === 0) throw new SpdyProtocolError('header block has an empty name');
    need(off, nl); const name = b.subarray(off, off + nl).toString().toLowerCase(); off += nl;
    need(off, 4); const vl = b.readUInt32BE(off); off += 4;
    need(off, vl); const value = b.subarray(off, off + vl).toString(); off += vl;
    (out[name] ??= []).push(...value.split('\0'));
  }
  return out;
}

/** One zlib stream (deflate or inflate) used block by block, each block sync-flushed, in order. */
class ZlibChain {
  private chain: Promise<unknown> = Promise.resolve();
  constructor(private readonly z: zlib.Deflate | zlib.Inflate) { z.on('error', () => {}); }

  run(input: Buffer): Promise<Buffer> {
    const p = this.chain.then(() => new Promise<Buffer>((resolve, reject) => {
      const out: Buffer[] = [];
      const onData = (b: Buffer) => out.push(b);
      const onErr = (e: Error) => { done(); reject(new SpdyProtocolError(`header block: ${e.message}`)); };
      const done = () => { this.z.off('data', onData); this.z.off('error', onErr); };
      this.z.on('data', onData);
      this.z.once('error', onErr);
      this.z.write(input);
      // Output of the flush is emitted before its callback; setImmediate lets queued 'data' run too.
      this.z.flush(zlib.constants.Z_SYNC_FLUSH, () => setImmediate(() => { done(); resolve(Buffer.concat(out)); }));
    }));
    this.chain = p.catch(() => {});
    return p;
  }

  close(): void { this.z.close(); }
}

export class SpdyStream extends Duplex {
  /** Headers of the SYN_STREAM (peer-initiated) or the SYN_REPLY (ours, once answered). */
  headers: Headers = {};
  /** The RST_STREAM status if the stream was reset (by either side). */
  resetStatus?: number;
  remoteEnded = false;
  private received = 0;

  constructor(readonly session: SpdySession, readonly id: number) {
    super({ allowHalfOpen: true });
  }

  header(name: string): string | undefined { return this.headers[name.toLowerCase()]?.[0]; }

  /** Accepts a peer-initiated stream (SYN_REPLY). */
  reply(headers: Record<string, string | string[]> = {}, fin = false): void {
    this.session.sendHeaders(SYN_REPLY, fin ? FLAG_FIN : 0, u32(this.id), headers);
    if (fin) this.end();
  }

  /** Ends the stream at once both ways (RST_STREAM). */
  reset(status: number = RST.CANCEL): void {
    if (this.resetStatus !== undefined || this.destroyed) return;
    this.resetStatus = status;
    this.session.sendControl(RST_STREAM, 0, u32(this.id, status));
    this.destroy();
  }

  /** @internal a DATA frame arrived */
  onData(data: Buffer, fin: boolean): void {
    if (data.length) {
      this.received += data.length;
      if (this.received >= WINDOW_ACK) { this.session.sendControl(WINDOW_UPDATE, 0, u32(this.id, this.received)); this.received = 0; }
      if (!this.push(data)) this.session.pauseInput();
    }
    if (fin) this.onRemoteEnd();
  }

  /** @internal */
  onRemoteEnd(): void {
    if (this.remoteEnded) return;
    this.remoteEnded = true;
    this.push(null);
  }

  /** @internal the peer reset it */
  onReset(status: number): void {
    this.resetStatus = status;
    this.remoteEnded = true;
    this.destroy();
  }

  override _read(): void { this.session.resumeInput(); }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.session.sendData(this.id, chunk, false).then(() => cb(), cb);
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.session.sendData(this.id, Buffer.alloc(0), true).then(() => cb(), cb);
  }

  override _destroy(e: Error | null, cb: (e: Error | null) => void): void {
    this.session.forget(this);
    cb(e);
  }
}

/**
 * A SPDY/3.1 session over a connected socket. `role` decides stream ids (client odd, server even)
 * and which PINGs are answered. Peer-initiated streams come as 'stream' events (answer with
 * reply() or reset()); 'close' when the socket is gone.
 */
export class SpdySession extends EventEmitter {
  private readonly streams = new Map<number, SpdyStream>();
  private readonly pendingOpen = new Map<number, { resolve: (s: SpdyStream) => void; reject: (e: Error) => void }>();
  private readonly pings = new Map<number, () => void>();
  private readonly parser: FrameParser;
  private readonly deflate = new ZlibChain(zlib.createDeflate({ dictionary: SPDY_DICTIONARY }));
  private readonly inflate = new ZlibChain(zlib.createInflate({ dictionary: SPDY_DICTIONARY }));
  private inQ: Promise<void> = Promise.resolve();
  private outQ: Promise<void> = Promise.resolve();
  private nextId: number;
  private nextPing: number;
  private lastPeerStream = 0;
  private receivedSession = 0;
  private paused = false;
  goneAway = false;
  peerGoneAway = false;
  closed = false;

  constructor(readonly sock: Duplex, readonly role: 'server' | 'client', head?: Buffer) {
    super();
    this.nextId = role === 'client' ? 1 : 2;
    this.nextPing = role === 'client' ? 1 : 2;
    this.parser = new FrameParser((f) => { this.inQ = this.inQ.then(() => this.handle(f)).catch((e: Error) => this.protocolError(e)); });
    sock.on('data', (b: Buffer) => { try { this.parser.push(b); } catch (e) { this.protocolError(e as Error); } });
    sock.on('error', () => {});
    // Frames already read are handled first (header blocks are inflated asynchronously).
    const gone = () => { this.inQ = this.inQ.then(() => this.onSocketGone()); };
    sock.on('end', gone);
    sock.on('close', gone);
    if (head?.length) this.parser.push(head);
  }

  /** Opens a stream (SYN_STREAM); resolves once the peer answered it (SYN_REPLY). */
  openStream(headers: Record<string, string | string[]>, fin = false): Promise<SpdyStream> {
    if (this.closed || this.goneAway || this.peerGoneAway) return Promise.reject(new Error('the SPDY session is closing; open a new connection'));
    const id = this.nextId;
    this.nextId += 2;
    const s = new SpdyStream(this, id);
    this.streams.set(id, s);
    if (fin) s.end();
    return new Promise((resolve, reject) => {
      this.pendingOpen.set(id, { resolve, reject });
      // stream id, associated stream id (none), priority 0 and slot 0
      this.sendHeaders(SYN_STREAM, fin ? FLAG_FIN : 0, Buffer.concat([u32(id, 0), Buffer.alloc(2)]), headers);
    });
  }

  /** Round trip of a PING, in milliseconds. */
  ping(): Promise<number> {
    const id = this.nextPing;
    this.nextPing += 2;
    const t0 = performance.now();
    return new Promise((resolve) => {
      this.pings.set(id, () => resolve(performance.now() - t0));
      this.sendControl(PING, 0, u32(id));
    });
  }

  /** Says no new streams will be accepted (GOAWAY), then ends the connection once everything queued is written. */
  goAway(status = GOAWAY_OK): Promise<void> {
    if (this.goneAway) return this.outQ;
    this.goneAway = true;
    this.sendControl(GOAWAY, 0, u32(this.lastPeerStream, status));
    return this.outQ.then(() => { this.sock.end(); });
  }

  destroy(): void { this.sock.destroy(); this.onSocketGone(); }

  /** @internal */
  sendControl(type: number, flags: number, data: Buffer): Promise<void> {
    return this.enqueue(() => controlFrame(type, flags, data));
  }

  /** @internal a control frame whose payload is `prefix` + a compressed header block */
  sendHeaders(type: number, flags: number, prefix: Buffer, headers: Record<string, string | string[]>): Promise<void> {
    const block = encodeHeaderBlock(headers);
    return this.enqueue(async () => controlFrame(type, flags, Buffer.concat([prefix, await this.deflate.run(block)])));
  }

  /** @internal */
  sendData(id: number, data: Buffer, fin: boolean): Promise<void> {
    if (data.length <= DATA_CHUNK) return this.enqueue(() => dataFrame(id, fin ? FLAG_FIN : 0, data));
    let p: Promise<void> = Promise.resolve();
    for (let off = 0; off < data.length; off += DATA_CHUNK) {
      const last = off + DATA_CHUNK >= data.length;
      p = this.enqueue(() => dataFrame(id, last && fin ? FLAG_FIN : 0, data.subarray(off, off + DATA_CHUNK)));
    }
    return p;
  }

  /** @internal */
  forget(s: SpdyStream): void {
    if (this.streams.get(s.id) === s) this.streams.delete(s.id);
    const p = this.pendingOpen.get(s.id);
    if (p) { this.pendingOpen.delete(s.id); p.reject(new Error(`stream ${s.id} was reset before it was answered (status ${s.resetStatus ?? 'none'})`)); }
    this.resumeInput();
  }

  /** @internal a stream's reader is full: stop reading the socket until it reads again */
  pauseInput(): void { if (!this.paused) { this.paused = true; this.sock.pause(); } }
  /** @internal */
  resumeInput(): void { if (this.paused) { this.paused = false; this.sock.resume(); } }

  /** Frames go out in order; a frame waits for the ones before it (headers are compressed in turn). */
  private enqueue(make: () => Buffer | Promise<Buffer>): Promise<void> {
    const p = this.outQ.then(async () => {
      if (this.closed || this.sock.destroyed || this.sock.writableEnded) return;
      const buf = await make();
      if (this.sock.destroyed || this.sock.writableEnded) return;
      if (!this.sock.write(buf)) {
        await new Promise<void>((resolve) => {
          const done = () => { this.sock.off('drain', done); this.sock.off('close', done); resolve(); };
          this.sock.on('drain', done);
          this.sock.on('close', done);
        });
      }
    });
    this.outQ = p.catch(() => {});
    return p;
  }

  private protocolError(e: Error): void {
    if (this.closed) return;
    this.emit('protocolError', e);
    if (!this.goneAway) {
      this.goneAway = true;
      this.sendControl(GOAWAY, 0, u32(this.lastPeerStream, GOAWAY_PROTOCOL_ERROR));
    }
    void this.outQ.then(() => this.destroy());
  }

  private onSocketGone(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pendingOpen.values()) p.reject(new Error('the SPDY connection closed before the stream was answered'));
    this.pendingOpen.clear();
    for (const s of [...this.streams.values()]) { s.remoteEnded = true; s.destroy(); }
    this.streams.clear();
    this.deflate.close();
    this.inflate.close();
    this.emit('close');
  }

  private isPeerId(id: number): boolean { return (id % 2 === 1) === (this.role === 'server'); }

  private async handle(f: Frame): Promise<void> {
    if (this.closed) return;
    if (!f.control) {
      const s = this.streams.get(f.streamId);
      if (!s) {
        if (f.streamId === 0) throw new SpdyProtocolError('DATA frame on stream 0');
        this.sendControl(RST_STREAM, 0, u32(f.streamId, RST.INVALID_STREAM));
        return;
      }
      if (s.remoteEnded) { s.reset(RST.STREAM_ALREADY_CLOSED); return; }
      this.receivedSession += f.data.length;
      if (this.receivedSession >= WINDOW_ACK) { this.sendControl(WINDOW_UPDATE, 0, u32(0, this.receivedSession)); this.receivedSession = 0; }
      s.onData(f.data, (f.flags & FLAG_FIN) !== 0);
      return;
    }
    if (f.version !== VERSION) {
      // Only streams can be refused by version; a session of another version is not ours.
      throw new SpdyProtocolError(`SPDY version ${f.version} is not supported (only 3)`);
    }
    const d = f.data;
    const need = (n: number) => { if (d.length < n) throw new SpdyProtocolError(`control frame type ${f.type} of ${d.length} bytes is too short`); };
    switch (f.type) {
      case SYN_STREAM: {
        need(10);
        const id = d.readUInt32BE(0) & 0x7fffffff;
        // Decompressed even if the stream is refused: the zlib stream must stay in step.
        const headers = decodeHeaderBlock(await this.inflate.run(d.subarray(10)));
        if (id === 0 || !this.isPeerId(id) || id <= this.lastPeerStream) {
          this.sendControl(RST_STREAM, 0, u32(id, RST.PROTOCOL_ERROR));
          return;
        }
        this.lastPeerStream = id;
        if (this.goneAway) { this.sendControl(RST_STREAM, 0, u32(id, RST.REFUSED_STREAM)); return; }
        const s = new SpdyStream(this, id);
        s.headers = headers;
        this.streams.set(id, s);
        if (f.flags & FLAG_UNIDIRECTIONAL) s.end();
        if (f.flags & FLAG_FIN) s.onRemoteEnd();
        if (this.listenerCount('stream') === 0) { s.reset(RST.REFUSED_STREAM); return; }
        this.emit('stream', s);
        return;
      }
      case SYN_REPLY: {
        need(4);
        const id = d.readUInt32BE(0) & 0x7fffffff;
        const headers = decodeHeaderBlock(await this.inflate.run(d.subarray(4)));
        const s = this.streams.get(id);
        const p = this.pendingOpen.get(id);
        if (!s || !p) { if (!s) this.sendControl(RST_STREAM, 0, u32(id, RST.INVALID_STREAM)); else s.reset(RST.STREAM_IN_USE); return; }
        this.pendingOpen.delete(id);
        s.headers = headers;
        p.resolve(s);
        if (f.flags & FLAG_FIN) s.onRemoteEnd();
        return;
      }
      case HEADERS: {
        need(4);
        const id = d.readUInt32BE(0) & 0x7fffffff;
        const headers = decodeHeaderBlock(await this.inflate.run(d.subarray(4)));
        const s = this.streams.get(id);
        if (!s) return;
        for (const [k, v] of Object.entries(headers)) (s.headers[k] ??= []).push(...v);
        if (f.flags & FLAG_FIN) s.onRemoteEnd();
        return;
      }
      case RST_STREAM: {
        need(8);
        const id = d.readUInt32BE(0) & 0x7fffffff;
        this.streams.get(id)?.onReset(d.readUInt32BE(4));
        return;
      }
      case SETTINGS: {
        need(4);
        const n = d.readUInt32BE(0);
        if (d.length !== 4 + 8 * n) throw new SpdyProtocolError(`SETTINGS frame with ${n} entries has ${d.length} bytes`);
        return; // nothing here depends on the peer's settings (see flow control above)
      }
      case PING: {
        need(4);
        const id = d.readUInt32BE(0);
        const mine = (id % 2 === 1) === (this.role === 'client');
        if (!mine) { this.sendControl(PING, 0, u32(id)); return; }
        const cb = this.pings.get(id);
        this.pings.delete(id);
        cb?.();
        return;
      }
      case GOAWAY: {
        need(4);
        this.peerGoneAway = true;
        this.emit('goaway', d.readUInt32BE(0) & 0x7fffffff, d.length >= 8 ? d.readUInt32BE(4) : 0);
        return;
      }
      case WINDOW_UPDATE:
        need(8);
        return; // see flow control above
      default:
        return; // unknown control frames are ignored (SPDY/3 section 2.2.1)
    }
  }
}
