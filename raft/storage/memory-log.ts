// The in-memory index of the persisted log that serves the Storage reads. As in etcd's
// MemoryStorage, position 0 is a "dummy": the index and term of the entry just before the first
// one held (the snapshot's, or the last compacted one's), so term(firstIndex - 1) works.
//
// Unlike etcd's, it does not hold every entry's data: every entry here is already in the WAL, so
// only the newest `cacheBytes` of data stay in memory, and older entries keep their index, term,
// type and where their data lies in the WAL, which `entries()` reads back (a follower far behind,
// a restart replaying the log). Between snapshots the log can hold as much data as the whole
// store (a snapshot is due after max(10,000, objects) entries), so this halves what a manager
// holds rather than keeping the store twice.

import { CompactedError, Entry, UnavailableError } from '../types.js';
import type { EntryLoc } from './wal.js';

/** Bytes an entry counts for in entries(lo, hi, maxBytes): its data plus a small header. */
export function entrySize(e: Entry): number {
  return e.data.length + 16;
}

/** Reads an entry's data back from the WAL. */
export type EntryReader = (loc: EntryLoc) => Uint8Array;

const NO_DATA = new Uint8Array(0);

export class MemoryLog {
  private ents: Entry[] = [];
  /** Where each entry lies in the WAL (undefined until its write reported it). */
  private locs: (EntryLoc | undefined)[] = [];
  /** ents[0 .. evicted) hold no data in memory (it is read back from locs). */
  private evicted = 0;
  /** Bytes of data held for ents[evicted ..]. */
  private cached = 0;

  constructor(
    private dummyIndex: number,
    private dummyTerm: number,
    /** Data bytes kept in memory for the newest entries (Infinity: all). */
    private readonly cacheBytes = Infinity,
    private readonly read?: EntryReader,
  ) {}

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

  private sizeAt(k: number): number {
    return k < this.evicted ? this.locs[k]!.len + 16 : entrySize(this.ents[k]!);
  }

  /** Entries [lo, hi): at least one when lo < hi, then more while the total stays within maxBytes. */
  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo <= this.dummyIndex) throw new CompactedError(lo);
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1);
    if (lo > hi) throw new RangeError(`entries(${lo}, ${hi}): lo must not exceed hi`);
    const from = lo - this.dummyIndex - 1;
    const to = hi - this.dummyIndex - 1;
    if (from === to) return [];
    let size = this.sizeAt(from);
    let end = from + 1;
    while (end < to) {
      const s = this.sizeAt(end);
      if (size + s > maxBytes) break;
      size += s;
      end++;
    }
    if (from >= this.evicted) return this.ents.slice(from, end);
    const out: Entry[] = [];
    for (let k = from; k < end; k++) {
      const e = this.ents[k]!;
      out.push(k < this.evicted ? { index: e.index, term: e.term, type: e.type, data: this.read!(this.locs[k]!) } : e);
    }
    return out;
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
    if (keep < this.ents.length) this.truncate(keep);
    for (const e of entries) {
      this.ents.push(e);
      this.locs.push(undefined);
      this.cached += e.data.length;
    }
  }

  /** Keeps ents[0 .. n). */
  private truncate(n: number): void {
    for (let k = Math.max(n, this.evicted); k < this.ents.length; k++) this.cached -= this.ents[k]!.data.length;
    this.ents.length = n;
    this.locs.length = n;
    this.evicted = Math.min(this.evicted, n);
  }

  /**
   * Records where entries just written lie in the WAL (each still held here as the same object),
   * then lets the oldest data beyond the cache budget go.
   */
  setLocs(entries: Entry[], locs: EntryLoc[]): void {
    for (let i = 0; i < entries.length; i++) {
      const k = entries[i]!.index - this.dummyIndex - 1;
      if (k >= 0 && k < this.ents.length && this.ents[k] === entries[i]) this.locs[k] = locs[i];
    }
    this.evict();
  }

  private evict(): void {
    if (!this.read) return;
    while (this.cached > this.cacheBytes && this.evicted < this.ents.length && this.locs[this.evicted]) {
      const e = this.ents[this.evicted]!;
      this.cached -= e.data.length;
      this.ents[this.evicted] = { index: e.index, term: e.term, type: e.type, data: NO_DATA };
      this.evicted++;
    }
  }

  /**
   * Copies the data of the entries still held (after a replay they are views into whole segment
   * files, which they would otherwise keep in memory).
   */
  ownData(): void {
    for (let k = this.evicted; k < this.ents.length; k++) {
      const e = this.ents[k]!;
      this.ents[k] = { index: e.index, term: e.term, type: e.type, data: e.data.slice() };
    }
  }

  /** Drops entries before `index`; the entry at `index` becomes the new dummy (etcd's Compact). */
  compact(index: number): void {
    if (index <= this.dummyIndex) return;
    if (index > this.lastIndex()) throw new Error(`cannot compact to ${index}: the log ends at ${this.lastIndex()}`);
    const t = this.term(index);
    const d = index - this.dummyIndex;
    for (let k = this.evicted; k < d; k++) this.cached -= this.ents[k]!.data.length;
    this.ents = this.ents.slice(d);
    this.locs = this.locs.slice(d);
    this.evicted = Math.max(0, this.evicted - d);
    this.dummyIndex = index;
    this.dummyTerm = t;
  }

  /** Replaces the whole log by an empty one after a snapshot at (index, term). */
  reset(index: number, term: number): void {
    this.ents = [];
    this.locs = [];
    this.evicted = 0;
    this.cached = 0;
    this.dummyIndex = index;
    this.dummyTerm = term;
  }

  /** Number of entries held. */
  get length(): number {
    return this.ents.length;
  }

  /** Bytes of entry data held in memory. */
  get cachedBytes(): number {
    return this.cached;
  }
}
