// Binary encodings of what the store puts in raft: transaction commands (one per log entry) and
// whole-store snapshots. msgpackr records keep repeated object shapes compact; each encoding
// starts with a format version so a newer manager can refuse (or convert) an older format.
import { Packr } from 'msgpackr';
import type { StoreObject, TxnCommand } from './types.js';

// Records are defined inline in each buffer (no shared structures), so any instance decodes them.
// They pay off in a snapshot (one definition, thousands of objects of the same shape); a command
// holds one or a few objects, where a record's inline definition costs more time than it saves
// bytes, so commands are written as plain maps (the same decoder reads both).
const packr = new Packr({ useRecords: true, mapsAsObjects: true, moreTypes: false });
const commandPackr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

export const COMMAND_FORMAT = 1;
export const SNAPSHOT_FORMAT = 1;

export function encodeCommand(cmd: TxnCommand): Uint8Array {
  return commandPackr.pack([COMMAND_FORMAT, cmd.reqId, cmd.ops]);
}

export function decodeCommand(data: Uint8Array): TxnCommand {
  let v: unknown;
  try {
    v = packr.unpack(data);
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

export function encodeSnapshot(s: SnapshotBody): Uint8Array {
  return packr.pack([SNAPSHOT_FORMAT, s.applied, s.objects]);
}

export function decodeSnapshot(data: Uint8Array): SnapshotBody {
  const v = packr.unpack(data) as unknown;
  if (!Array.isArray(v) || v.length !== 3) throw new Error('store snapshot must be [format, applied, objects]');
  if (v[0] !== SNAPSHOT_FORMAT) throw new Error(`store snapshot format ${String(v[0])} is not supported (this manager reads format ${SNAPSHOT_FORMAT})`);
  if (!Number.isInteger(v[1]) || !Array.isArray(v[2])) throw new Error('store snapshot has a bad applied index or object list');
  return { applied: v[1] as number, objects: v[2] as StoreObject[] };
}
