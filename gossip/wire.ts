// Wire format. A packet is one message or a compound of several; a message is
// one type byte followed by a msgpack array of its fields (positional, so
// fields may only be appended). Every decoder validates shape and types:
// malformed input throws WireError and the caller drops and counts it.

import { Packr } from 'msgpackr';

/** Message types. Only append: the values are protocol. */
export const MsgType = {
  Ping: 0,
  IndirectPing: 1,
  Ack: 2,
  Suspect: 3,
  Alive: 4,
  Dead: 5,
  PushPull: 6,
  Compound: 7,
  Nack: 8,
} as const;
export type MsgTypeValue = (typeof MsgType)[keyof typeof MsgType];

/** Protocol versions this build speaks: [min, max, current]. */
export const PROTOCOL_MIN = 1;
export const PROTOCOL_MAX = 1;
export const PROTOCOL_CURRENT = 1;

export type MemberStateName = 'alive' | 'suspect' | 'dead' | 'left';

/**
 * The largest pool gossip supports. The member table admits no member beyond it, so a push/pull
 * (a member's whole table) has at most this many entries, and the transport refuses any stream
 * frame larger than such a push/pull can be (MAX_PUSH_PULL_BYTES). 4x the largest pool measured
 * (1,000 members in the simulator).
 */
export const MAX_MEMBERS = 4096;
/** Member names, in characters (config.ts checks our own). */
export const MAX_NAME = 128;
/** Addresses, "host:port" in printable ASCII: a DNS name (253) with brackets and a port. */
export const MAX_ADDR = 261;
/** Metadata, in bytes: the ceiling config.ts allows for metaMaxSize. */
export const MAX_META = 1024;

/**
 * The largest encoded push/pull: MAX_MEMBERS entries, each at every field's limit, with the
 * widest msgpack header for each field (5 bytes), a name of 3 UTF-8 bytes per character, and
 * 9-byte integers. About 6.8 MiB; a pool of 1,000 shoal nodes (26-character ids, IPv4
 * addresses, no metadata) needs ~60 KB.
 */
export const MAX_PUSH_PULL_BYTES = 16 + MAX_MEMBERS * (5 + (5 + 3 * MAX_NAME) + (5 + MAX_ADDR) + (5 + MAX_META) + 9 + 1 + (5 + 3 * 9));

export interface Ping { type: 0; seq: number; node: string }
export interface IndirectPing { type: 1; seq: number; target: string; targetAddr: string; nack: boolean }
export interface Ack { type: 2; seq: number }
export interface Suspect { type: 3; inc: number; node: string; from: string }
export interface Alive { type: 4; inc: number; node: string; addr: string; meta: Uint8Array; vsn: [number, number, number] }
export interface Dead { type: 5; inc: number; node: string; from: string }
export interface PushNodeState { name: string; addr: string; meta: Uint8Array; inc: number; state: MemberStateName; vsn: [number, number, number] }
export interface PushPull { type: 6; join: boolean; nodes: PushNodeState[] }
export interface Nack { type: 8; seq: number }

export type Message = Ping | IndirectPing | Ack | Suspect | Alive | Dead | PushPull | Nack;

export class WireError extends Error {
  override name = 'WireError';
}

const packr = new Packr({ useRecords: false, moreTypes: false });

const STATES: MemberStateName[] = ['alive', 'suspect', 'dead', 'left'];

function fields(m: Message): unknown[] {
  switch (m.type) {
    case MsgType.Ping: return [m.seq, m.node];
    case MsgType.IndirectPing: return [m.seq, m.target, m.targetAddr, m.nack];
    case MsgType.Ack: return [m.seq];
    case MsgType.Nack: return [m.seq];
    case MsgType.Suspect: return [m.inc, m.node, m.from];
    case MsgType.Dead: return [m.inc, m.node, m.from];
    case MsgType.Alive: return [m.inc, m.node, m.addr, m.meta, m.vsn];
    case MsgType.PushPull:
      return [m.join, m.nodes.map((n) => [n.name, n.addr, n.meta, n.inc, STATES.indexOf(n.state), n.vsn])];
  }
}

export function encodeMessage(m: Message): Uint8Array {
  const body = packr.pack(fields(m));
  const out = new Uint8Array(body.length + 1);
  out[0] = m.type;
  out.set(body, 1);
  return out;
}

const uint = (v: unknown, what: string): number => {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new WireError(`${what}: expected a non-negative integer`);
  return v;
};
const str = (v: unknown, what: string, max = 1024): string => {
  if (typeof v !== 'string' || v.length > max) throw new WireError(`${what}: expected a string of at most ${max} characters`);
  return v;
};
const name = (v: unknown, what: string): string => {
  const s = str(v, what, MAX_NAME);
  if (s.length === 0) throw new WireError(`${what}: empty member name`);
  return s;
};
const addr = (v: unknown, what: string): string => {
  const s = str(v, what, MAX_ADDR);
  if (!/^[\x21-\x7e]*$/.test(s)) throw new WireError(`${what}: an address is printable ASCII (host:port)`);
  return s;
};
const bytes = (v: unknown, what: string, max = MAX_META): Uint8Array => {
  if (!(v instanceof Uint8Array)) throw new WireError(`${what}: expected bytes`);
  if (v.length > max) throw new WireError(`${what}: ${v.length} bytes, over the limit of ${max}`);
  return v;
};
const vsn = (v: unknown, what: string): [number, number, number] => {
  if (!Array.isArray(v) || v.length !== 3) throw new WireError(`${what}: expected [min, max, current]`);
  return [uint(v[0], what), uint(v[1], what), uint(v[2], what)];
};
const arr = (v: unknown, n: number, what: string): unknown[] => {
  if (!Array.isArray(v) || v.length < n) throw new WireError(`${what}: expected an array of at least ${n} fields`);
  return v;
};

export function decodeMessage(buf: Uint8Array): Message {
  if (buf.length < 2) throw new WireError('message too short');
  const type = buf[0];
  let body: unknown;
  try {
    body = packr.unpack(buf.subarray(1));
  } catch (e) {
    throw new WireError(`message type ${type}: undecodable body (${(e as Error).message})`);
  }
  switch (type) {
    case MsgType.Ping: {
      const f = arr(body, 2, 'ping');
      return { type, seq: uint(f[0], 'ping.seq'), node: name(f[1], 'ping.node') };
    }
    case MsgType.IndirectPing: {
      const f = arr(body, 4, 'indirect-ping');
      if (typeof f[3] !== 'boolean') throw new WireError('indirect-ping.nack: expected a boolean');
      return { type, seq: uint(f[0], 'indirect-ping.seq'), target: name(f[1], 'indirect-ping.target'), targetAddr: addr(f[2], 'indirect-ping.targetAddr'), nack: f[3] };
    }
    case MsgType.Ack: return { type, seq: uint(arr(body, 1, 'ack')[0], 'ack.seq') };
    case MsgType.Nack: return { type, seq: uint(arr(body, 1, 'nack')[0], 'nack.seq') };
    case MsgType.Suspect:
    case MsgType.Dead: {
      const what = type === MsgType.Suspect ? 'suspect' : 'dead';
      const f = arr(body, 3, what);
      return { type, inc: uint(f[0], `${what}.inc`), node: name(f[1], `${what}.node`), from: name(f[2], `${what}.from`) };
    }
    case MsgType.Alive: {
      const f = arr(body, 5, 'alive');
      return { type, inc: uint(f[0], 'alive.inc'), node: name(f[1], 'alive.node'), addr: addr(f[2], 'alive.addr'), meta: bytes(f[3], 'alive.meta'), vsn: vsn(f[4], 'alive.vsn') };
    }
    case MsgType.PushPull: {
      const f = arr(body, 2, 'push-pull');
      if (typeof f[0] !== 'boolean') throw new WireError('push-pull.join: expected a boolean');
      if (!Array.isArray(f[1])) throw new WireError('push-pull.nodes: expected an array');
      if (f[1].length > MAX_MEMBERS) throw new WireError(`push-pull.nodes: ${f[1].length} members, over the limit of ${MAX_MEMBERS}`);
      const nodes = f[1].map((n: unknown, i: number): PushNodeState => {
        const g = arr(n, 6, `push-pull.nodes[${i}]`);
        const st = STATES[uint(g[4], `push-pull.nodes[${i}].state`)];
        if (!st) throw new WireError(`push-pull.nodes[${i}].state: unknown state ${String(g[4])}`);
        return { name: name(g[0], `push-pull.nodes[${i}].name`), addr: addr(g[1], `push-pull.nodes[${i}].addr`), meta: bytes(g[2], `push-pull.nodes[${i}].meta`), inc: uint(g[3], `push-pull.nodes[${i}].inc`), state: st, vsn: vsn(g[5], `push-pull.nodes[${i}].vsn`) };
      });
      return { type, join: f[0], nodes };
    }
    default:
      throw new WireError(`unknown message type ${type}`);
  }
}

/** Bytes a compound adds: type + count, then a u16 length per part. */
export const COMPOUND_HEADER = 2;
export const COMPOUND_PER_PART = 2;

/** One datagram: a single message as-is, or a compound of up to 255. */
export function packPacket(msgs: Uint8Array[]): Uint8Array {
  if (msgs.length === 0) throw new Error('packPacket: no messages');
  if (msgs.length === 1) return msgs[0] as Uint8Array;
  if (msgs.length > 255) throw new Error('packPacket: more than 255 messages in one compound');
  let total = COMPOUND_HEADER + COMPOUND_PER_PART * msgs.length;
  for (const m of msgs) {
    if (m.length > 0xffff) throw new Error('packPacket: message over 65535 bytes');
    total += m.length;
  }
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  out[0] = MsgType.Compound;
  out[1] = msgs.length;
  let off = COMPOUND_HEADER;
  for (const m of msgs) {
    dv.setUint16(off, m.length);
    off += 2;
  }
  for (const m of msgs) {
    out.set(m, off);
    off += m.length;
  }
  return out;
}

/** Split a datagram into its encoded messages (not yet decoded). */
export function unpackPacket(buf: Uint8Array): Uint8Array[] {
  if (buf.length === 0) throw new WireError('empty packet');
  if (buf[0] !== MsgType.Compound) return [buf];
  if (buf.length < COMPOUND_HEADER) throw new WireError('compound: truncated header');
  const n = buf[1] as number;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = COMPOUND_HEADER + COMPOUND_PER_PART * n;
  if (buf.length < off) throw new WireError('compound: truncated length table');
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const len = dv.getUint16(COMPOUND_HEADER + 2 * i);
    if (off + len > buf.length) throw new WireError(`compound: part ${i} runs past the packet end`);
    out.push(buf.subarray(off, off + len));
    off += len;
  }
  return out;
}
