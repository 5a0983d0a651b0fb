// A min-heap of timed callbacks on the core's own clock. The core never calls
// setTimeout: the driver (simulator or real adapter) asks nextAt() and calls
// runDue(now). Ties run in scheduling order, so runs are deterministic.

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** A handle to cancel a scheduled timer. */
export interface TimerHandle {
  cancel(): void;
}

export class TimerQueue {
  private heap: Timer[] = [];
  private seq = 0;

  schedule(at: number, fn: () => void): TimerHandle {
    const t: Timer = { at, seq: this.seq++, fn, cancelled: false };
    const h = this.heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i] as Timer, h[p] as Timer)) break;
      [h[i], h[p]] = [h[p] as Timer, h[i] as Timer];
      i = p;
    }
    // Cancelled timers stay in the heap until they reach the top, so a
    // driver is never woken for one.
    return { cancel: () => { t.cancelled = true; this.dropCancelled(); } };
  }

  nextAt(): number | undefined {
    return this.heap[0]?.at;
  }

  private dropCancelled(): void {
    while (this.heap[0]?.cancelled) this.pop();
  }

  /** Run every timer due at or before `now` (including ones they schedule). */
  runDue(now: number): void {
    for (;;) {
      const top = this.heap[0];
      if (!top || top.at > now) return;
      this.pop();
      if (!top.cancelled) top.fn();
      this.dropCancelled();
    }
  }

  /** Remove and return the earliest timer without running it (for event-loop drivers). */
  popNext(): { at: number; fn: () => void } | undefined {
    const top = this.heap[0];
    if (!top) return undefined;
    this.pop();
    this.dropCancelled();
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
