// Lifeguard part 2: one suspicion of one member. It owns no timer: the core
// asks `deadline()` and re-arms whenever a confirmation moves it earlier.

import { remainingSuspicionTime } from './timing.js';

export class Suspicion {
  private readonly confirmers = new Set<string>();
  private confirmations = 0;

  /**
   * @param from   who raised the suspicion; never counted as a confirmation
   * @param k      confirmations that bring the timeout down to `minMs`
   * @param startMs virtual/monotonic time the suspicion began
   */
  constructor(
    from: string,
    readonly k: number,
    readonly minMs: number,
    readonly maxMs: number,
    readonly startMs: number,
  ) {
    this.confirmers.add(from);
  }

  /**
   * Record an independent confirmation. Returns true when it is new and still
   * shortens the timeout, which is also when it is worth re-gossiping.
   */
  confirm(from: string): boolean {
    if (this.confirmations >= this.k) return false;
    if (this.confirmers.has(from)) return false;
    this.confirmers.add(from);
    this.confirmations++;
    return true;
  }

  getConfirmations(): number {
    return this.confirmations;
  }

  /** Absolute time at which the suspect is to be declared dead. */
  deadline(): number {
    return this.startMs + remainingSuspicionTime(this.confirmations, this.k, 0, this.minMs, this.maxMs);
  }
}
