// Binary encodings of what the store puts in raft: transaction commands (one per log entry) and
// whole-store snapshots. msgpackr records keep repeated object shapes compact; each encoding
// starts with a format version so a newer manager can refuse (or convert) an older format.
import { Packr } from 'msgpackr';
import type { StoreObject, TxnCommand } from './types.js';

// Records are defined inline in each buffer (no shared structures), so any instance decodes them.
// They pay off where many objects share a shape: a snapshot, and a command of many ops (a
// leader pass's 500 tasks: a third of the bytes of plain maps and a third of the decoding time,
// on every manager). A command of a few ops is written as plain maps, where a record's inline
// definition costs more time than it saves bytes (the same decoder reads both).
const packr = new Packr({ useRecords: true, mapsAsObjects: true, moreTypes: false });
const commandPackr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });
/** Ops from which a command is written with records (measured: records win from about 8). */
const RECORDS_FROM = 16;
// Decoded byte strings are copies, not views: a stored object lives long, and a view would pin
// the whole buffer it came from (a raft batch, a snapshot) for as long as the object exists.
const decoder = new Packr({ useRecords: true, mapsAsObjects: true, moreTypes: false, copyBuffers: true });

export const COMMAND_FORMAT = 1;
export const SNAPSHOT_FORMAT = 1;

export function encodeCommand(cmd: TxnCommand): Uint8Array {
  return (cmd.ops.length >= RECORDS_FROM ? packr : commandPackr).pack([COMMAND_FORMAT, cmd.reqId, cmd.ops]);
}

export function decodeCommand(data: Uint8Array): TxnCommand {
  let v: unknown;
  try {
    v = decoder.unpack(data);
  } catch (e) {
    throw new Error(`store command is not valid msgpack: ${(e as Error).message}`);
  }
  if (!Array.isArray(v) || v.length !== 3) throw new Error('store command must be [format, reqId, ops]');
  if (v[0] !== COMMAND_FORMAT) throw new Error(`store command format ${String(v[0])} is not supported (this manager reads format ${COMMAND_FORMAT}); upgrade it`);
  if (typeof v[1] !== 'string') throw new Error('store command reqId must be a string');
  return { reqId: v[1], ops: v[2] };
}

export interface SnapshotBody {
  applied: number;
  objects: StoreObject[];
}

/**
 * Format 2 (written since): [2, applied, [chunk, ...]], each chunk a msgpack array of up to
 * SNAPSHOT_CHUNK objects packed on its own, so a large store is encoded a chunk at a time with
 * the event loop served in between (encodeSnapshotAsync). Format 1 ([1, applied, objects]) is
 * still read.
 */
export const SNAPSHOT_FORMAT_CHUNKED = 2;
const SNAPSHOT_CHUNK = 2000;

function packChunk(objects: StoreObject[], from: number): Uint8Array {
  return packr.pack(objects.slice(from, from + SNAPSHOT_CHUNK));
}

export function encodeSnapshot(s: SnapshotBody): Uint8Array {
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < s.objects.length; i += SNAPSHOT_CHUNK) chunks.push(packChunk(s.objects, i));
  return commandPackr.pack([SNAPSHOT_FORMAT_CHUNKED, s.applied, chunks]);
}

/** encodeSnapshot a chunk at a time, yielding to the event loop between chunks. The objects must not change meanwhile (store objects are never mutated: an update replaces them). */
export async function encodeSnapshotAsync(s: SnapshotBody): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < s.objects.length; i += SNAPSHOT_CHUNK) {
    if (i > 0) await new Promise((r) => setImmediate(r));
    chunks.push(packChunk(s.objects, i));
  }
  return commandPackr.pack([SNAPSHOT_FORMAT_CHUNKED, s.applied, chunks]);
}

export function decodeSnapshot(data: Uint8Array): SnapshotBody {
  const v = decoder.unpack(data) as unknown;
  if (!Array.isArray(v) || v.length !== 3) throw new Error('store snapshot must be [format, applied, objects]');
  if (v[0] !== SNAPSHOT_FORMAT && v[0] !== SNAPSHOT_FORMAT_CHUNKED) {
    throw new Error(`store snapshot format ${String(v[0])} is not supported (this manager reads formats ${SNAPSHOT_FORMAT} and ${SNAPSHOT_FORMAT_CHUNKED}); upgrade it`);
  }
  if (!Number.isInteger(v[1]) || !Array.isArray(v[2])) throw new Error('store snapshot has a bad applied index or object list');
  if (v[0] === SNAPSHOT_FORMAT) return { applied: v[1] as number, objects: v[2] as StoreObject[] };
  const objects: StoreObject[] = [];
  for (const c of v[2] as unknown[]) {
    if (!(c instanceof Uint8Array)) throw new Error('store snapshot chunk is not bytes');
    const part = decoder.unpack(c) as unknown;
    if (!Array.isArray(part)) throw new Error('store snapshot chunk is not a list of objects');
    for (const o of part) objects.push(o as StoreObject);
  }
  return { applied: v[1] as number, objects };
}
