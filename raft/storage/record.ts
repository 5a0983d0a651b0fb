// WAL record framing. Every record is
//
//   offset 0  u32 LE  payload length
//   offset 4  u8      record type (1 = segment header, 2 = batch; 0 is never valid, so zeros are)
//   offset 5  u32 LE  CRC-32C over bytes [0, 5) followed by the payload
//   offset 9  payload
//
// The checksum covers the length and type too, so a flipped bit anywhere in a record is caught.

import { crc32c } from './crc32c.js';
import { MAX_RECORD_BYTES } from './config.js';
import { Writer } from './binary.js';

export const RECORD_HEADER_BYTES = 9;

export enum RecordType {
  SegmentHeader = 1,
  Batch = 2,
}

function isRecordType(t: number): boolean {
  return t === RecordType.SegmentHeader || t === RecordType.Batch;
}

/** A Writer with room for the record header; write the payload, then call frameRecord. */
export function recordWriter(maxPayload: number): Writer {
  return new Writer(RECORD_HEADER_BYTES + maxPayload, RECORD_HEADER_BYTES);
}

/** Fills in the header of the record whose payload was written into `w`; returns the whole record. */
export function frameRecord(w: Writer, type: RecordType): Buffer {
  const len = w.pos - RECORD_HEADER_BYTES;
  const b = w.buf;
  b.writeUInt32LE(len, 0);
  b[4] = type;
  let crc = crc32c(b, 0, 0, 5);
  crc = crc32c(b, crc, RECORD_HEADER_BYTES, w.pos);
  b.writeUInt32LE(crc, 5);
  return b.subarray(0, w.pos);
}

export interface RecordOk {
  ok: true;
  type: RecordType;
  payloadStart: number;
  payloadEnd: number;
  /** Offset of the next record. */
  next: number;
}

export interface RecordBad {
  ok: false;
  reason: string;
}

function allZero(buf: Uint8Array, from: number, end: number): boolean {
  for (let i = from; i < end; i++) if (buf[i] !== 0) return false;
  return true;
}

/** Reads and verifies the record at `off` (off < end). */
export function readRecordAt(buf: Uint8Array, off: number, end = buf.length): RecordOk | RecordBad {
  const rem = end - off;
  if (allZero(buf, off, end)) return { ok: false, reason: `${rem} trailing zero bytes` };
  if (rem < RECORD_HEADER_BYTES) {
    return { ok: false, reason: `only ${rem} bytes left, a record header needs ${RECORD_HEADER_BYTES} (short header)` };
  }
  const len = (buf[off]! | (buf[off + 1]! << 8) | (buf[off + 2]! << 16) | (buf[off + 3]! << 24)) >>> 0;
  const type = buf[off + 4]!;
  if (!isRecordType(type)) return { ok: false, reason: `unknown record type ${type}` };
  if (len > MAX_RECORD_BYTES) return { ok: false, reason: `record length ${len} exceeds the maximum ${MAX_RECORD_BYTES}` };
  const payloadStart = off + RECORD_HEADER_BYTES;
  const payloadEnd = payloadStart + len;
  if (payloadEnd > end) {
    return { ok: false, reason: `record of ${len} bytes runs ${payloadEnd - end} bytes past the end of the file (short payload)` };
  }
  const stored = (buf[off + 5]! | (buf[off + 6]! << 8) | (buf[off + 7]! << 16) | (buf[off + 8]! << 24)) >>> 0;
  let crc = crc32c(buf, 0, off, off + 5);
  crc = crc32c(buf, crc, payloadStart, payloadEnd);
  if (crc !== stored) {
    return { ok: false, reason: `checksum mismatch (stored 0x${stored.toString(16)}, computed 0x${crc.toString(16)})` };
  }
  return { ok: true, type: type as RecordType, payloadStart, payloadEnd, next: payloadEnd };
}

/**
 * The offset of the first intact record that starts after `from`, or -1. Used to tell a torn tail
 * (nothing valid follows the bad bytes) from corruption in the middle of the log (valid records
 * follow, so the bad one had been written, and fsynced, before them).
 */
export function findIntactRecordAfter(
  buf: Uint8Array,
  from: number,
  end = buf.length,
  plausible: (type: RecordType, payloadStart: number, payloadEnd: number) => boolean = () => true,
): number {
  for (let p = from + 1; p + RECORD_HEADER_BYTES <= end; p++) {
    const type = buf[p + 4]!;
    if (!isRecordType(type)) continue;
    const len = (buf[p]! | (buf[p + 1]! << 8) | (buf[p + 2]! << 16) | (buf[p + 3]! << 24)) >>> 0;
    if (p + RECORD_HEADER_BYTES + len > end) continue;
    // A cheap structural check first, so a long run of arbitrary bytes does not cost a checksum
    // over megabytes at every offset.
    if (!plausible(type as RecordType, p + RECORD_HEADER_BYTES, p + RECORD_HEADER_BYTES + len)) continue;
    const r = readRecordAt(buf, p, end);
    if (r.ok) return p;
  }
  return -1;
}
