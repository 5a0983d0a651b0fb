// In-memory stable storage with etcd's dummy-entry convention: ents[0] is a placeholder holding
// the index and term of the last compacted entry (the snapshot's), so term(firstIndex-1) works.
// The host appends to it only what it has persisted; the simulator clones it to model a crash
// that keeps only fsynced state.
import {
  CompactedError,
  UnavailableError,
  emptyConfState,
  type ConfState,
  type Entry,
  type HardState,
  type Snapshot,
  type Storage,
  EntryType,
} from '../types.js';
import { entryBytes } from './entries.js';

export class SnapshotOutOfDateError extends Error {
  constructor(index: number, current: number) {
    super(`snapshot at index ${index} is not newer than the stored snapshot at index ${current}`);
    this.name = 'SnapshotOutOfDateError';
  }
}

function emptySnapshot(): Snapshot {
  return { meta: { index: 0, term: 0, conf: emptyConfState() }, data: new Uint8Array(0) };
}

function cloneConf(c: ConfState): ConfState {
  const r: ConfState & { removed?: number[] } = {
    voters: [...c.voters],
    learners: [...c.learners],
    votersOutgoing: [...c.votersOutgoing],
    learnersNext: [...c.learnersNext],
    autoLeave: c.autoLeave,
  };
  const removed = (c as { removed?: number[] }).removed;
  if (removed) r.removed = [...removed];
  return r;
}

export class MemoryStorage implements Storage {
  private hs: HardState = { term: 0, vote: 0, commit: 0 };
  private snap: Snapshot = emptySnapshot();
  private ents: Entry[] = [{ term: 0, index: 0, type: EntryType.Normal, data: new Uint8Array(0) }];

  /** A storage that starts with the given configuration (like a snapshot at index 0). */
  static withConf(conf: ConfState): MemoryStorage {
    const s = new MemoryStorage();
    s.snap = { meta: { index: 0, term: 0, conf: cloneConf(conf) }, data: new Uint8Array(0) };
    return s;
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: { ...this.hs }, confState: cloneConf(this.snap.meta.conf) };
  }

  hardState(): HardState {
    return { ...this.hs };
  }

  setHardState(hs: HardState): void {
    this.hs = { term: hs.term, vote: hs.vote, commit: hs.commit };
  }

  private offset(): number {
    return this.ents[0].index;
  }

  firstIndex(): number {
    return this.offset() + 1;
  }

  lastIndex(): number {
    return this.offset() + this.ents.length - 1;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const off = this.offset();
    if (lo <= off) throw new CompactedError(lo);
    if (hi > this.lastIndex() + 1) throw new RangeError(`MemoryStorage.entries: hi ${hi} is beyond lastIndex ${this.lastIndex()} + 1`);
    if (lo >= hi) throw new RangeError(`MemoryStorage.entries: empty range [${lo}, ${hi})`);
    if (this.ents.length === 1) throw new UnavailableError(lo);
    // Walk only as far as the size limit allows (a lagging follower's range can be long).
    const out: Entry[] = [this.ents[lo - off]];
    let size = entryBytes(out[0]);
    for (let i = lo + 1; i < hi; i++) {
      const e = this.ents[i - off];
      size += entryBytes(e);
      if (size > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  term(i: number): number {
    const off = this.offset();
    if (i < off) throw new CompactedError(i);
    if (i - off >= this.ents.length) throw new UnavailableError(i);
    return this.ents[i - off].term;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Replaces the whole state by the snapshot (a follower installing one). */
  applySnapshot(s: Snapshot): void {
    if (s.meta.index <= this.snap.meta.index) throw new SnapshotOutOfDateError(s.meta.index, this.snap.meta.index);
    this.snap = { meta: { index: s.meta.index, term: s.meta.term, conf: cloneConf(s.meta.conf) }, data: s.data };
    this.ents = [{ term: s.meta.term, index: s.meta.index, type: EntryType.Normal, data: new Uint8Array(0) }];
  }

  /** Records the application's state at index i as the snapshot (entries are kept; see compact). */
  createSnapshot(i: number, conf: ConfState, data: Uint8Array): Snapshot {
    if (i <= this.snap.meta.index) throw new SnapshotOutOfDateError(i, this.snap.meta.index);
    if (i > this.lastIndex()) throw new RangeError(`createSnapshot: index ${i} is beyond lastIndex ${this.lastIndex()}`);
    const term = this.ents[i - this.offset()].term;
    this.snap = { meta: { index: i, term, conf: cloneConf(conf) }, data };
    return this.snap;
  }

  /** Drops the entries before index (index becomes the new dummy). The host snapshots first. */
  compact(index: number): void {
    const off = this.offset();
    if (index <= off) throw new CompactedError(index);
    if (index > this.lastIndex()) throw new RangeError(`compact: index ${index} is beyond lastIndex ${this.lastIndex()}`);
    if (index > this.snap.meta.index) {
      throw new RangeError(`compact: index ${index} is beyond the snapshot at ${this.snap.meta.index}; createSnapshot first or lagging followers cannot catch up`);
    }
    const i = index - off;
    const dummy: Entry = { term: this.ents[i].term, index: this.ents[i].index, type: EntryType.Normal, data: new Uint8Array(0) };
    this.ents = [dummy, ...this.ents.slice(i + 1)];
  }

  /** Appends persisted entries; an entry at index i replaces every stored entry >= i. */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0].index + entries.length - 1;
    if (last < first) return; // all already compacted
    if (first > entries[0].index) entries = entries.slice(first - entries[0].index);
    const at = entries[0].index - this.offset();
    if (at > this.ents.length) {
      throw new RangeError(`MemoryStorage.append: gap: entry ${entries[0].index} after lastIndex ${this.lastIndex()}`);
    }
    // In place: appending at the end is the common case and must not copy the whole log.
    if (at < this.ents.length) this.ents.length = at;
    for (const e of entries) this.ents.push(e);
  }

  /** An independent copy of the durable contents (a crash keeps only this). */
  clone(): MemoryStorage {
    const c = new MemoryStorage();
    c.hs = { ...this.hs };
    c.snap = { meta: { ...this.snap.meta, conf: cloneConf(this.snap.meta.conf) }, data: this.snap.data };
    c.ents = this.ents.slice();
    return c;
  }
}
