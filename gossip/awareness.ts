// Lifeguard part 1: local health awareness. A node that misses acks it should
// have got (or has to refute suspicions about itself) is more likely the slow
// one, so it stretches its own probe interval instead of accusing others.

export class Awareness {
  private score = 0;

  /** `max` is AwarenessMaxMultiplier: the score stays in [0, max − 1]. */
  constructor(private readonly max: number) {
    if (!Number.isInteger(max) || max < 1) {
      throw new Error(`awareness: max multiplier must be an integer >= 1, got ${max}`);
    }
  }

  applyDelta(delta: number): void {
    this.score = Math.min(this.max - 1, Math.max(0, this.score + delta));
  }

  getScore(): number {
    return this.score;
  }

  /** ms · (score + 1). */
  scale(ms: number): number {
    return ms * (this.score + 1);
  }
}
