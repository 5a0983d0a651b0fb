// The payloads of the two WAL record types (format version 1).
//
// Segment header:  "SHOALWAL" | u8 version | varint seq | varint firstIndex | u8 zeroTail
//                  (zeroTail 1: written with preallocation, zeros after the last record are its clean end)
// Batch:           u8 flags | [varint snapIndex, varint snapTerm]      (flags & 1: snapshot marker;
//                                                                       flags & 2: it resets the log)
//                  varint count | count x (varint index, varint term, u8 type, varint len, bytes)
//                  [varint term, varint vote, varint commit]            (flags & 4: hard state)
//
// One save() (one Ready, or several queued Readys merged) is exactly one Batch record, applied
// in the Ready's order: snapshot, entries, hard state. Keeping a whole fsync unit in one
// checksummed record is what makes a torn write recognisable: a record can only be followed by
// another one if it was fsynced before that one was written.

import { Entry, EntryType, HardState } from '../types.js';
import { CorruptDataError, Reader, Writer } from './binary.js';

export const WAL_MAGIC = Buffer.from('SHOALWAL', 'latin1');
export const WAL_VERSION = 1;

const F_SNAPSHOT = 1;
const F_RESET = 2;
const F_HARDSTATE = 4;
const F_KNOWN = F_SNAPSHOT | F_RESET | F_HARDSTATE;

/** Per-entry bytes beyond its data, at most (type + three 8-byte varints + slack). */
export const ENTRY_FRAME_MAX = 32;

export interface SegmentHeader {
  version: number;
  seq: number;
  firstIndex: number;
  /** Written with preallocation: zeros after the last record are the segment's clean end. */
  zeroTail: boolean;
}

export interface SnapshotMark {
  index: number;
  term: number;
  /** True when the snapshot came from the leader and replaces the whole log (Ready.snapshot). */
  reset: boolean;
}

export interface Batch {
  snapshot?: SnapshotMark;
  entries: Entry[];
  hardState?: HardState;
}

export function encodeSegmentHeader(w: Writer, h: SegmentHeader): void {
  w.bytes(WAL_MAGIC);
  w.u8(h.version);
  w.varint(h.seq);
  w.varint(h.firstIndex);
  w.u8(h.zeroTail ? 1 : 0);
}

export function decodeSegmentHeader(buf: Uint8Array, start: number, end: number): SegmentHeader {
  const r = new Reader(buf, start, end);
  const magic = r.bytesView(WAL_MAGIC.length);
  if (!WAL_MAGIC.equals(magic)) throw new CorruptDataError('bad segment magic (not a shoal WAL segment)');
  const version = r.u8();
  if (version !== WAL_VERSION) {
    throw new CorruptDataError(`WAL format version ${version} is not supported (this build reads version ${WAL_VERSION})`);
  }
  const seq = r.varint();
  const firstIndex = r.varint();
  const zt = r.u8();
  if (zt > 1) throw new CorruptDataError(`bad zeroTail flag ${zt} in the segment header`);
  const h = { version, seq, firstIndex, zeroTail: zt === 1 };
  if (r.remaining !== 0) throw new CorruptDataError(`${r.remaining} unexpected bytes after the segment header`);
  return h;
}

export function batchSizeBound(b: Batch): number {
  let n = 64;
  for (const e of b.entries) n += e.data.length + ENTRY_FRAME_MAX;
  return n;
}

/**
 * Encodes a batch; `dataAt`, when given, receives each entry's data position in the writer's
 * buffer (where the entry can be read back from the file).
 */
export function encodeBatch(w: Writer, b: Batch, dataAt?: number[]): void {
  let flags = 0;
  if (b.snapshot) flags |= F_SNAPSHOT | (b.snapshot.reset ? F_RESET : 0);
  if (b.hardState) flags |= F_HARDSTATE;
  w.u8(flags);
  if (b.snapshot) {
    w.varint(b.snapshot.index);
    w.varint(b.snapshot.term);
  }
  w.varint(b.entries.length);
  for (const e of b.entries) {
    w.varint(e.index);
    w.varint(e.term);
    w.u8(e.type);
    w.varint(e.data.length);
    dataAt?.push(w.pos);
    w.bytes(e.data);
  }
  if (b.hardState) {
    w.varint(b.hardState.term);
    w.varint(b.hardState.vote);
    w.varint(b.hardState.commit);
  }
}

/**
 * Decodes a batch. With `dataAt`, entry data are views into `buf` (not copies) and `dataAt`
 * receives each one's position in `buf`: replay keeps only recent entries' data in memory.
 */
export function decodeBatch(buf: Uint8Array, start: number, end: number, dataAt?: number[]): Batch {
  const r = new Reader(buf, start, end);
  const flags = r.u8();
  if ((flags & ~F_KNOWN) !== 0) throw new CorruptDataError(`unknown batch flags 0x${flags.toString(16)}`);
  if ((flags & F_RESET) !== 0 && (flags & F_SNAPSHOT) === 0) throw new CorruptDataError('reset flag without a snapshot');
  const out: Batch = { entries: [] };
  if (flags & F_SNAPSHOT) out.snapshot = { index: r.varint(), term: r.varint(), reset: (flags & F_RESET) !== 0 };
  const count = r.varint();
  if (count > r.remaining) throw new CorruptDataError(`batch announces ${count} entries in ${r.remaining} bytes`);
  for (let i = 0; i < count; i++) {
    const index = r.varint();
    const term = r.varint();
    const type = r.u8();
    if (type !== EntryType.Normal && type !== EntryType.ConfChange) throw new CorruptDataError(`unknown entry type ${type}`);
    const len = r.varint();
    dataAt?.push(r.pos);
    const data = dataAt ? r.bytesView(len) : r.bytesCopy(len);
    out.entries.push({ index, term, type, data });
  }
  if (flags & F_HARDSTATE) out.hardState = { term: r.varint(), vote: r.varint(), commit: r.varint() };
  if (r.remaining !== 0) throw new CorruptDataError(`${r.remaining} unexpected bytes after the batch`);
  return out;
}

/**
 * Whether bytes [start, end) could begin a payload of this record type, checked without
 * allocating (magic for headers; flags, counts and the first entry's type and length for
 * batches). Arbitrary bytes almost never pass, which keeps the torn-tail scan cheap.
 */
export function plausiblePayload(type: number, buf: Uint8Array, start: number, end: number): boolean {
  if (type === 1) {
    if (end - start < WAL_MAGIC.length + 3) return false;
    for (let i = 0; i < WAL_MAGIC.length; i++) if (buf[start + i] !== WAL_MAGIC[i]) return false;
    return buf[start + WAL_MAGIC.length] === WAL_VERSION;
  }
  try {
    const r = new Reader(buf, start, end);
    const flags = r.u8();
    if ((flags & ~F_KNOWN) !== 0 || ((flags & F_RESET) !== 0 && (flags & F_SNAPSHOT) === 0)) return false;
    if (flags & F_SNAPSHOT) {
      r.varint();
      r.varint();
    }
    const count = r.varint();
    if (count > r.remaining) return false;
    if (count > 0) {
      r.varint();
      r.varint();
      const t = r.u8();
      if (t !== EntryType.Normal && t !== EntryType.ConfChange) return false;
      if (r.varint() > r.remaining) return false;
    }
    return true;
  } catch {
    return false;
  }
}
