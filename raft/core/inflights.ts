// The in-flight MsgApp window of one follower in replicate state: a ring of the last index each
// un-acknowledged MsgApp carried. Full means the leader pauses sending entries to that follower.
import { invariant } from './errors.js';

export class Inflights {
  private buf: { index: number; bytes: number }[] = [];
  private start = 0;
  private count_ = 0;
  private bytes_ = 0;

  constructor(readonly size: number, readonly maxBytes = 0) {}

  get count(): number {
    return this.count_;
  }

  clone(): Inflights {
    const c = new Inflights(this.size, this.maxBytes);
    for (let i = 0; i < this.count_; i++) c.add(this.at(i).index, this.at(i).bytes);
    return c;
  }

  private at(i: number) {
    return this.buf[(this.start + i) % this.size];
  }

  add(index: number, bytes: number): void {
    invariant(!this.full(), `cannot add index ${index} to a full inflights window (size ${this.size})`);
    if (this.count_ > 0) invariant(index > this.at(this.count_ - 1).index, `inflights must be added in increasing index order (${index} after ${this.at(this.count_ - 1).index})`);
    this.buf[(this.start + this.count_) % this.size] = { index, bytes };
    this.count_++;
    this.bytes_ += bytes;
  }

  /** Frees every in-flight message whose index is <= to (they were acknowledged). */
  freeLE(to: number): void {
    while (this.count_ > 0 && this.at(0).index <= to) {
      this.bytes_ -= this.at(0).bytes;
      this.start = (this.start + 1) % this.size;
      this.count_--;
    }
    if (this.count_ === 0) this.start = 0;
  }

  full(): boolean {
    return this.count_ === this.size || (this.maxBytes > 0 && this.bytes_ >= this.maxBytes);
  }

  reset(): void {
    this.count_ = 0;
    this.start = 0;
    this.bytes_ = 0;
  }
}
