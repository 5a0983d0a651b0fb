// Dissemination queue: every state change is sent a bounded number of times
// (retransmitLimit), least-sent first, newest first among equals. A newer
// update about the same member replaces the older one still queued.

export interface Broadcast {
  /** Member the update is about; a newer one with the same key invalidates this. */
  key: string;
  /** Encoded wire message. */
  msg: Uint8Array;
}

interface Item extends Broadcast {
  transmits: number;
  id: number;
}

export class BroadcastQueue {
  private items: Item[] = [];
  private nextId = 0;
  private dirty = false;

  queue(b: Broadcast): void {
    // Named invalidation: at most one pending update per member.
    const i = this.items.findIndex((it) => it.key === b.key);
    if (i >= 0) this.items.splice(i, 1);
    this.items.push({ ...b, transmits: 0, id: this.nextId++ });
    this.dirty = true;
  }

  length(): number {
    return this.items.length;
  }

  /**
   * Take updates that fit in `limit` bytes, each costing its length plus
   * `overhead` (the compound framing). Counts a transmit for each; drops
   * those that reached `maxTransmits`.
   */
  getBroadcasts(overhead: number, limit: number, maxTransmits: number): Uint8Array[] {
    if (this.items.length === 0) return [];
    if (this.dirty) {
      this.items.sort((a, b) => a.transmits - b.transmits || b.id - a.id);
      this.dirty = false;
    }
    const out: Uint8Array[] = [];
    let used = 0;
    let touched = false;
    for (const it of this.items) {
      const cost = it.msg.length + overhead;
      if (used + cost > limit) continue;
      used += cost;
      out.push(it.msg);
      it.transmits++;
      touched = true;
      if (limit - used <= overhead) break;
    }
    if (touched) {
      this.items = this.items.filter((it) => it.transmits < maxTransmits);
      this.dirty = true;
    }
    return out;
  }

  /** Drop everything (used on leave/shutdown). */
  reset(): void {
    this.items = [];
  }

  /** Transmit count of the pending update for `key`, or undefined (for tests and leave). */
  transmitsOf(key: string): number | undefined {
    return this.items.find((it) => it.key === key)?.transmits;
  }
}
