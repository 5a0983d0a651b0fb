// The in-memory copy of the persisted log that serves the Storage reads. As in etcd's
// MemoryStorage, position 0 is a "dummy": the index and term of the entry just before the first
// one held (the snapshot's, or the last compacted one's), so term(firstIndex - 1) works.

import { CompactedError, Entry, UnavailableError } from '../types.js';

/** Bytes an entry counts for in entries(lo, hi, maxBytes): its data plus a small header. */
export function entrySize(e: Entry): number {
  return e.data.length + 16;
}

export class MemoryLog {
  private ents: Entry[] = [];

  constructor(private dummyIndex: number, private dummyTerm: number) {}

  firstIndex(): number {
    return this.dummyIndex + 1;
  }

  lastIndex(): number {
    return this.dummyIndex + this.ents.length;
  }

  term(i: number): number {
    if (i < this.dummyIndex) throw new CompactedError(i);
    if (i === this.dummyIndex) return this.dummyTerm;
    if (i > this.lastIndex()) throw new UnavailableError(i);
    return this.ents[i - this.dummyIndex - 1]!.term;
  }

  /** Entries [lo, hi): at least one when lo < hi, then more while the total stays within maxBytes. */
  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo <= this.dummyIndex) throw new CompactedError(lo);
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1);
    if (lo > hi) throw new RangeError(`entries(${lo}, ${hi}): lo must not exceed hi`);
    const from = lo - this.dummyIndex - 1;
    const to = hi - this.dummyIndex - 1;
    if (from === to) return [];
    let size = entrySize(this.ents[from]!);
    let end = from + 1;
    while (end < to) {
      const s = entrySize(this.ents[end]!);
      if (size + s > maxBytes) break;
      size += s;
      end++;
    }
    return this.ents.slice(from, end);
  }

  /** Appends contiguous entries; an entry at index i replaces the held entries >= i. */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    if (first <= this.dummyIndex) {
      throw new Error(`cannot append entry ${first}: entries up to ${this.dummyIndex} are compacted or in the snapshot`);
    }
    if (first > this.lastIndex() + 1) {
      throw new Error(`cannot append entry ${first}: the log ends at ${this.lastIndex()}, that would leave a gap`);
    }
    const keep = first - this.dummyIndex - 1;
    if (keep < this.ents.length) this.ents.length = keep;
    for (const e of entries) this.ents.push(e);
  }

  /** Drops entries before `index`; the entry at `index` becomes the new dummy (etcd's Compact). */
  compact(index: number): void {
    if (index <= this.dummyIndex) return;
    if (index > this.lastIndex()) throw new Error(`cannot compact to ${index}: the log ends at ${this.lastIndex()}`);
    const t = this.term(index);
    this.ents = this.ents.slice(index - this.dummyIndex);
    this.dummyIndex = index;
    this.dummyTerm = t;
  }

  /** Replaces the whole log by an empty one after a snapshot at (index, term). */
  reset(index: number, term: number): void {
    this.ents = [];
    this.dummyIndex = index;
    this.dummyTerm = term;
  }

  /** Number of entries held. */
  get length(): number {
    return this.ents.length;
  }
}
