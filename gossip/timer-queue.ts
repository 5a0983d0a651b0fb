// A min-heap of timed callbacks on the core's own clock. The core never calls
// setTimeout: the driver (simulator or real adapter) asks nextAt() and calls
// runDue(now). Ties run in scheduling order, so runs are deterministic.

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
}

export class TimerQueue {
  private heap: Timer[] = [];
  private seq = 0;

  schedule(at: number, fn: () => void): void {
    const t: Timer = { at, seq: this.seq++, fn };
    const h = this.heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i] as Timer, h[p] as Timer)) break;
      [h[i], h[p]] = [h[p] as Timer, h[i] as Timer];
      i = p;
    }
  }

  nextAt(): number | undefined {
    return this.heap[0]?.at;
  }

  /** Run every timer due at or before `now` (including ones they schedule). */
  runDue(now: number): void {
    for (;;) {
      const top = this.heap[0];
      if (!top || top.at > now) return;
      this.pop();
      top.fn();
    }
  }

  /** Remove and return the earliest timer without running it (for event-loop drivers). */
  popNext(): { at: number; fn: () => void } | undefined {
    const top = this.heap[0];
    if (!top) return undefined;
    this.pop();
    return { at: top.at, fn: top.fn };
  }

  clear(): void {
    this.heap = [];
  }

  size(): number {
    return this.heap.length;
  }

  private less(a: Timer, b: Timer): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop() as Timer;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.less(h[l] as Timer, h[m] as Timer)) m = l;
      if (r < h.length && this.less(h[r] as Timer, h[m] as Timer)) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m] as Timer, h[i] as Timer];
      i = m;
    }
  }
}
