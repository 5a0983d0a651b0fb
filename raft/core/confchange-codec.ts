// The byte form of a ConfChange inside a raft entry (EntryType.ConfChange). Ours, versioned:
//   'S' 'C' version(1) transition(u8) count(u32 BE) {type(u8) nodeId(u64 BE)}* contextLen(u32 BE) context
import { ConfChangeTransition, ConfChangeType, type ConfChange } from '../types.js';

const MAGIC0 = 0x53; // 'S'
const MAGIC1 = 0x43; // 'C'
const VERSION = 1;

export function encodeConfChange(cc: ConfChange): Uint8Array {
  if (!(cc.transition in ConfChangeTransition)) throw new RangeError(`encodeConfChange: unknown transition ${String(cc.transition)}`);
  const ctx = cc.context ?? new Uint8Array(0);
  const out = new Uint8Array(3 + 1 + 4 + cc.changes.length * 9 + 4 + ctx.length);
  const dv = new DataView(out.buffer);
  out[0] = MAGIC0;
  out[1] = MAGIC1;
  out[2] = VERSION;
  out[3] = cc.transition;
  dv.setUint32(4, cc.changes.length);
  let o = 8;
  for (const ch of cc.changes) {
    if (!(ch.type in ConfChangeType)) throw new RangeError(`encodeConfChange: unknown change type ${String(ch.type)}`);
    if (!Number.isSafeInteger(ch.nodeId) || ch.nodeId < 0) throw new RangeError(`encodeConfChange: node id ${ch.nodeId} is not a non-negative integer`);
    out[o] = ch.type;
    dv.setBigUint64(o + 1, BigInt(ch.nodeId));
    o += 9;
  }
  dv.setUint32(o, ctx.length);
  out.set(ctx, o + 4);
  return out;
}

export function decodeConfChange(b: Uint8Array): ConfChange {
  const fail = (why: string): never => {
    throw new RangeError(`decodeConfChange: ${why} (${b.length} bytes); the entry is not an encoded ConfChange`);
  };
  if (b.length < 12) fail('too short');
  if (b[0] !== MAGIC0 || b[1] !== MAGIC1) fail('bad magic');
  if (b[2] !== VERSION) fail(`unsupported version ${b[2]}`);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const transition = b[3];
  if (!(transition in ConfChangeTransition)) fail(`unknown transition ${transition}`);
  const n = dv.getUint32(4);
  if (b.length < 12 + n * 9) fail(`truncated: ${n} changes announced`);
  const changes = [];
  let o = 8;
  for (let i = 0; i < n; i++) {
    const type = b[o];
    if (!(type in ConfChangeType)) fail(`unknown change type ${type}`);
    const id = dv.getBigUint64(o + 1);
    if (id > BigInt(Number.MAX_SAFE_INTEGER)) fail(`node id ${id} too large`);
    changes.push({ type: type as ConfChangeType, nodeId: Number(id) });
    o += 9;
  }
  const len = dv.getUint32(o);
  if (b.length !== o + 4 + len) fail(`context length ${len} does not match`);
  return { transition: transition as ConfChangeTransition, changes, context: b.slice(o + 4, o + 4 + len) };
}
