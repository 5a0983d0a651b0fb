// The virtual clock's agenda: a binary min-heap of events ordered by (time, insertion order), so
// events at the same instant run in the order they were scheduled and a run is reproducible.

export interface Scheduled<T> {
  time: number;
  seq: number;
  event: T;
}

export class EventQueue<T> {
  private heap: Scheduled<T>[] = [];
  private nextSeq = 0;
  now = 0;

  get size(): number {
    return this.heap.length;
  }

  /** Schedules `event` at absolute virtual time `time` (never in the past). */
  at(time: number, event: T): void {
    if (!(time >= this.now)) throw new RangeError(`cannot schedule at ${time}: the clock is already at ${this.now}`);
    const item = { time, seq: this.nextSeq++, event };
    const h = this.heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }

  after(delay: number, event: T): void {
    this.at(this.now + delay, event);
  }

  /** Removes the earliest event and advances the clock to its time. */
  pop(): Scheduled<T> | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop() as Scheduled<T>;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l], h[m])) m = l;
        if (r < h.length && less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    this.now = top.time;
    return top;
  }

  peekTime(): number {
    return this.heap.length ? this.heap[0].time : Infinity;
  }
}

function less<T>(a: Scheduled<T>, b: Scheduled<T>): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}
