// Rate-limited logging of what a listener drops: the first drop of each reason is logged at
// once, later ones are summed and logged at most once per interval, so a flood costs a line every
// few seconds instead of one per packet.

export class DropLog {
  private readonly pending = new Map<string, { n: number; last: string }>();
  private readonly lastAt = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly what: string, private readonly log: ((msg: string) => void) | undefined, private readonly intervalMs = 10_000) {}

  note(reason: string, from: string, detail: string): void {
    if (!this.log) return;
    const now = Date.now();
    const at = this.lastAt.get(reason);
    if (at === undefined || now - at >= this.intervalMs) {
      this.lastAt.set(reason, now);
      this.log(`${this.what}: dropped (${reason}) from ${from}: ${detail}`);
      return;
    }
    const p = this.pending.get(reason) ?? { n: 0, last: '' };
    p.n++;
    p.last = `from ${from}: ${detail}`;
    this.pending.set(reason, p);
    if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), this.intervalMs - (now - at));
      this.timer.unref();
    }
  }

  private flush(): void {
    this.timer = undefined;
    const now = Date.now();
    for (const [reason, p] of this.pending) {
      this.lastAt.set(reason, now);
      this.log?.(`${this.what}: dropped ${p.n} more (${reason}) in the last ${Math.round(this.intervalMs / 1000)} s; the last ${p.last}`);
    }
    this.pending.clear();
  }
}
