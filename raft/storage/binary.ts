// A tiny binary writer/reader: unsigned LEB128 varints for indexes, terms and lengths (integers up
// to 2^53 - 1, handled with arithmetic because JS bit operators are 32-bit), plus raw bytes.

export class CorruptDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CorruptDataError';
  }
}

/** Bytes a varint of `n` takes. */
export function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

export class Writer {
  readonly buf: Buffer;
  pos: number;

  constructor(capacity: number, start = 0) {
    this.buf = Buffer.allocUnsafe(capacity);
    this.pos = start;
  }

  u8(v: number): void {
    this.buf[this.pos++] = v;
  }

  varint(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`cannot encode ${n}: expected a non-negative safe integer`);
    while (n >= 0x80) {
      this.buf[this.pos++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    this.buf[this.pos++] = n;
  }

  bytes(b: Uint8Array): void {
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  u32(v: number): void {
    this.buf.writeUInt32LE(v >>> 0, this.pos);
    this.pos += 4;
  }
}

export class Reader {
  pos: number;

  constructor(readonly buf: Uint8Array, start = 0, readonly end = buf.length) {
    this.pos = start;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  u8(): number {
    if (this.pos >= this.end) throw new CorruptDataError('truncated: expected one more byte');
    return this.buf[this.pos++]!;
  }

  varint(): number {
    let n = 0;
    let mul = 1;
    for (let i = 0; ; i++) {
      if (i >= 8) throw new CorruptDataError('varint longer than 8 bytes');
      const b = this.u8();
      n += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) break;
      mul *= 128;
    }
    if (!Number.isSafeInteger(n)) throw new CorruptDataError(`varint ${n} is not a safe integer`);
    return n;
  }

  /** A copy, so decoded values never pin the (possibly 64 MiB) file buffer they came from. */
  bytesCopy(len: number): Uint8Array {
    if (len > this.remaining) throw new CorruptDataError(`truncated: ${len} bytes announced, ${this.remaining} left`);
    const out = new Uint8Array(len);
    out.set(this.buf.subarray(this.pos, this.pos + len));
    this.pos += len;
    return out;
  }

  bytesView(len: number): Uint8Array {
    if (len > this.remaining) throw new CorruptDataError(`truncated: ${len} bytes announced, ${this.remaining} left`);
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }

  u32(): number {
    if (this.remaining < 4) throw new CorruptDataError('truncated: expected 4 more bytes');
    const b = this.buf;
    const p = this.pos;
    this.pos += 4;
    return (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;
  }
}
