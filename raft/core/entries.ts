// Entry sizes as the core counts them for maxSizePerMsg and storage reads: the data plus a fixed
// 16-byte allowance for term/index/type, so empty entries are not free.
import type { Entry } from '../types.js';

export const ENTRY_OVERHEAD = 16;

export function entryBytes(e: Entry): number {
  return e.data.byteLength + ENTRY_OVERHEAD;
}

/** Payload bytes only (what maxUncommittedBytes counts, as etcd does). */
export function payloadBytes(ents: readonly Entry[]): number {
  let n = 0;
  for (const e of ents) n += e.data.byteLength;
  return n;
}

/** The longest prefix of ents within maxBytes, never fewer than one entry. */
export function limitSize(ents: Entry[], maxBytes: number): Entry[] {
  if (ents.length === 0) return ents;
  let size = entryBytes(ents[0]);
  let n = 1;
  for (; n < ents.length; n++) {
    size += entryBytes(ents[n]);
    if (size > maxBytes) break;
  }
  return n === ents.length ? ents : ents.slice(0, n);
}
