// Compact wire encoding of raft Messages: a msgpack array in a fixed field order (no field names),
// entries flattened to [term, index, type, data] runs. Format 1; the envelope carries the number.
import { Packr } from 'msgpackr';
import type { ConfState, Entry, Message, SnapshotMeta } from '../types.js';

export const WIRE_FORMAT = 1;

const packr = new Packr({ useRecords: false, moreTypes: false });

// The removed ids travel too: a follower that installs a snapshot must keep refusing to re-add
// them, or as a later leader it could commit a change every other node refuses to apply.
function encodeConf(c: ConfState): unknown[] {
  return [c.voters, c.learners, c.votersOutgoing, c.learnersNext, c.autoLeave, c.removed ?? []];
}

function decodeConf(v: unknown): ConfState {
  // Five fields: a sender from before `removed` was carried.
  if (!Array.isArray(v) || (v.length !== 5 && v.length !== 6)) throw new Error('bad ConfState on the wire');
  const c: ConfState = { voters: v[0], learners: v[1], votersOutgoing: v[2], learnersNext: v[3], autoLeave: !!v[4] };
  if (v.length === 6 && Array.isArray(v[5]) && v[5].length > 0) c.removed = v[5];
  return c;
}

function encodeMetaArr(m: SnapshotMeta): unknown[] {
  return [m.index, m.term, encodeConf(m.conf)];
}

function decodeMetaArr(v: unknown): SnapshotMeta {
  if (!Array.isArray(v) || v.length !== 3) throw new Error('bad snapshot meta on the wire');
  return { index: v[0], term: v[1], conf: decodeConf(v[2]) };
}

/** Encodes a message. A snapshot's data is left out (it travels in chunks); its meta is kept. */
export function encodeMessage(m: Message): Uint8Array {
  const ents: unknown[] = [];
  for (const e of m.entries) ents.push(e.term, e.index, e.type, e.data);
  return packr.pack([
    m.type, m.to, m.from, m.term, m.logTerm, m.index, m.commit, m.reject ? 1 : 0, m.rejectHint,
    ents,
    m.context ?? null,
    m.snapshot ? encodeMetaArr(m.snapshot.meta) : null,
  ]);
}

function num(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`raft message field ${what} is not a number`);
  return v;
}

/** Decodes a message; a MsgSnap comes back with empty snapshot data for the caller to fill. */
export function decodeMessage(b: Uint8Array): Message {
  const v = packr.unpack(b) as unknown;
  if (!Array.isArray(v) || v.length !== 12) throw new Error('raft message on the wire is not a 12-field array');
  const raw = v[9];
  if (!Array.isArray(raw) || raw.length % 4 !== 0) throw new Error('raft message entries are malformed');
  const entries: Entry[] = [];
  for (let i = 0; i < raw.length; i += 4) {
    const data = raw[i + 3];
    if (!(data instanceof Uint8Array)) throw new Error('raft entry data is not bytes');
    entries.push({ term: num(raw[i], 'entry.term'), index: num(raw[i + 1], 'entry.index'), type: num(raw[i + 2], 'entry.type'), data });
  }
  const m: Message = {
    type: num(v[0], 'type'),
    to: num(v[1], 'to'),
    from: num(v[2], 'from'),
    term: num(v[3], 'term'),
    logTerm: num(v[4], 'logTerm'),
    index: num(v[5], 'index'),
    commit: num(v[6], 'commit'),
    reject: v[7] === 1,
    rejectHint: num(v[8], 'rejectHint'),
    entries,
  };
  if (v[10] instanceof Uint8Array) m.context = v[10];
  if (v[11] !== null) m.snapshot = { meta: decodeMetaArr(v[11]), data: new Uint8Array(0) };
  return m;
}
