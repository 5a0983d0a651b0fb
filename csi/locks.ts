// One operation at a time per key (a volume's controller side, a volume's node side), in call
// order. The CO should send one call per volume at a time anyway; a retry that arrives while
// the first attempt still runs waits for it and then finds the work done.
export class Locks {
  private tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => { if (this.tails.get(key) === tail) this.tails.delete(key); });
    return next;
  }

  busy(key: string): boolean { return this.tails.has(key); }
}
