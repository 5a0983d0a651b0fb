// A bounded ring of the most recent change events, so a watcher can resume from a version it
// last saw. Once events are evicted, a resume from before them must re-list instead.
import { TooOldError, type StoreEvent } from './types.js';

export class EventLog {
  private buf: (StoreEvent | undefined)[];
  private head = 0; // index of the oldest event
  private size = 0;
  /** Every event with version > floor is still held. */
  private floor: number;

  constructor(private readonly capacity: number, floor = 0) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`event log capacity must be a positive integer, got ${capacity}`);
    this.buf = new Array(capacity);
    this.floor = floor;
  }

  get oldestResumable(): number {
    return this.floor;
  }

  get length(): number {
    return this.size;
  }

  push(e: StoreEvent): void {
    if (this.size === this.capacity) {
      const old = this.buf[this.head]!;
      this.buf[this.head] = undefined;
      this.head = (this.head + 1) % this.capacity;
      this.size--;
      // Part of old.version's events may now be gone, so resuming at or before it is impossible.
      if (old.version > this.floor) this.floor = old.version;
    }
    this.buf[(this.head + this.size) % this.capacity] = e;
    this.size++;
  }

  /** Drops everything (a snapshot restore); resumes must start at or after `floor`. */
  reset(floor: number): void {
    this.buf = new Array(this.capacity);
    this.head = 0;
    this.size = 0;
    this.floor = floor;
  }

  private at(i: number): StoreEvent {
    return this.buf[(this.head + i) % this.capacity]!;
  }

  /** Events with version > from, oldest first. Throws TooOldError when some were evicted. */
  since(from: number): StoreEvent[] {
    if (from < this.floor) throw new TooOldError(from, this.floor);
    // Binary search for the first event with version > from.
    let lo = 0;
    let hi = this.size;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.at(mid).version > from) hi = mid;
      else lo = mid + 1;
    }
    const out: StoreEvent[] = [];
    for (let i = lo; i < this.size; i++) out.push(this.at(i));
    return out;
  }
}
