// The few parts of DNS messages (RFC 1035) the node resolver needs: parse a query's header and
// question, build an answer with A records, or an error (NXDOMAIN, REFUSED, FORMERR, SERVFAIL).
export const TYPE_A = 1;
export const CLASS_IN = 1;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

export interface Query {
  id: number;
  flags: number;
  name: string;        // as asked, without the trailing dot
  qtype: number;
  qclass: number;
  /** The question section's bytes (name, type, class), echoed in the answer. */
  question: Buffer;
}

export class DnsFormatError extends Error {}

/** Reads the name at `off`; follows compression pointers (bounded, so a loop cannot hang us). */
function readName(buf: Buffer, off: number): { name: string; end: number } {
  const labels: string[] = [];
  let end = -1;
  let hops = 0;
  let total = 0;
  for (;;) {
    if (off >= buf.length) throw new DnsFormatError('name runs past the end of the message');
    const len = buf[off]!;
    if ((len & 0xc0) === 0xc0) {
      if (off + 1 >= buf.length) throw new DnsFormatError('truncated compression pointer');
      if (++hops > 16) throw new DnsFormatError('too many compression pointers');
      if (end < 0) end = off + 2;
      off = ((len & 0x3f) << 8) | buf[off + 1]!;
      continue;
    }
    if (len & 0xc0) throw new DnsFormatError('unsupported label type');
    if (len === 0) {
      if (end < 0) end = off + 1;
      break;
    }
    if (off + 1 + len > buf.length) throw new DnsFormatError('label runs past the end of the message');
    total += len + 1;
    if (total > 255) throw new DnsFormatError('name longer than 255 bytes');
    labels.push(buf.toString('latin1', off + 1, off + 1 + len));
    off += 1 + len;
  }
  return { name: labels.join('.'), end };
}

export function parseQuery(buf: Buffer): Query {
  if (buf.length < 12) throw new DnsFormatError('message shorter than a DNS header');
  const id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  if (flags & 0x8000) throw new DnsFormatError('not a query (QR set)');
  const qd = buf.readUInt16BE(4);
  if (qd !== 1) throw new DnsFormatError(`expected one question, got ${qd}`);
  const { name, end } = readName(buf, 12);
  if (end + 4 > buf.length) throw new DnsFormatError('question truncated');
  const qtype = buf.readUInt16BE(end);
  const qclass = buf.readUInt16BE(end + 2);
  return { id, flags, name, qtype, qclass, question: buf.subarray(12, end + 4) };
}

/** An answer to `q`: A records for `addrs` (empty: no data), with `rcode`. Over UDP the answer
 * is cut to 512 bytes with TC set, so the client asks again over TCP. */
export function buildAnswer(q: Pick<Query, 'id' | 'flags' | 'question'>, addrs: string[], rcode: number, ttl: number, udp: boolean): Buffer {
  const opcode = (q.flags >> 11) & 0xf;
  const rd = q.flags & 0x0100;
  let count = addrs.length;
  if (udp) count = Math.min(count, Math.floor((512 - 12 - q.question.length) / 16));
  const tc = count < addrs.length ? 0x0200 : 0;
  // QR, opcode, AA (we are the authority for cluster names), TC, RD echoed, RA, rcode.
  const flags = 0x8000 | (opcode << 11) | 0x0400 | tc | rd | 0x0080 | (rcode & 0xf);
  const out = Buffer.alloc(12 + q.question.length + count * 16);
  out.writeUInt16BE(q.id, 0);
  out.writeUInt16BE(flags, 2);
  out.writeUInt16BE(q.question.length ? 1 : 0, 4);
  out.writeUInt16BE(count, 6);
  q.question.copy(out, 12);
  let off = 12 + q.question.length;
  for (let i = 0; i < count; i++) {
    out.writeUInt16BE(0xc00c, off); // pointer to the question's name
    out.writeUInt16BE(TYPE_A, off + 2);
    out.writeUInt16BE(CLASS_IN, off + 4);
    out.writeUInt32BE(ttl, off + 6);
    out.writeUInt16BE(4, off + 10);
    const parts = addrs[i]!.split('.').map(Number);
    for (let j = 0; j < 4; j++) out[off + 12 + j] = parts[j]!;
    off += 16;
  }
  return out;
}

/** A FORMERR answer for a message we could not parse (only its id, if it has one). */
export function formErr(buf: Buffer): Buffer | undefined {
  if (buf.length < 2) return undefined;
  return buildAnswer({ id: buf.readUInt16BE(0), flags: 0, question: Buffer.alloc(0) }, [], RCODE.FORMERR, 0, true);
}

/** Builds a query (used by tests and by the resolver's own checks). */
export function buildQuery(id: number, name: string, qtype = TYPE_A): Buffer {
  const labels = name.replace(/\.$/, '').split('.').filter(Boolean);
  const parts: Buffer[] = [];
  for (const l of labels) parts.push(Buffer.from([l.length]), Buffer.from(l, 'latin1'));
  parts.push(Buffer.from([0]));
  const qn = Buffer.concat(parts);
  const out = Buffer.alloc(12 + qn.length + 4);
  out.writeUInt16BE(id, 0);
  out.writeUInt16BE(0x0100, 2);
  out.writeUInt16BE(1, 4);
  qn.copy(out, 12);
  out.writeUInt16BE(qtype, 12 + qn.length);
  out.writeUInt16BE(CLASS_IN, 14 + qn.length);
  return out;
}

/** Reads an answer's rcode and A records (tests and the resolver's forwarding checks). */
export function parseAnswer(buf: Buffer): { id: number; rcode: number; tc: boolean; addrs: string[] } {
  if (buf.length < 12) throw new DnsFormatError('answer shorter than a DNS header');
  const flags = buf.readUInt16BE(2);
  const qd = buf.readUInt16BE(4);
  const an = buf.readUInt16BE(6);
  let off = 12;
  for (let i = 0; i < qd; i++) off = readName(buf, off).end + 4;
  const addrs: string[] = [];
  for (let i = 0; i < an; i++) {
    off = readName(buf, off).end;
    const type = buf.readUInt16BE(off);
    const rdlen = buf.readUInt16BE(off + 8);
    if (type === TYPE_A && rdlen === 4) addrs.push([...buf.subarray(off + 10, off + 14)].join('.'));
    off += 10 + rdlen;
  }
  return { id: buf.readUInt16BE(0), rcode: flags & 0xf, tc: !!(flags & 0x0200), addrs };
}
