// A reconcile loop on the leader: a pass reads the store, decides and commits; a change to the
// kinds it watches (or a wake-up time the pass asked for) runs another. Passes never overlap, so
// a pass always sees the commits of the one before it (no decision is made twice); a failed
// pass (a conflicting write, a leadership change in flight) is retried with a short back-off.
import type { Kind, StoreEvent } from '../store/types.js';
import type { ObjectStore } from '../store/store.js';
import { reconcileDuration, reconcilePasses } from '../metrics.js';

export interface PassResult {
  /** Run again at this time even if nothing changes (ms since the epoch). */
  wakeAt?: number;
}

export interface LoopOptions {
  name: string;
  store: ObjectStore;
  kinds: Kind[];
  /** Skip events that cannot change this loop's decisions (cheap filter). */
  relevant?(e: StoreEvent): boolean;
  pass(): Promise<PassResult | void>;
  log(m: string): void;
  /** Wait this long after a change before a pass, to batch bursts of events. */
  debounceMs?: number;
}

export class ReconcileLoop {
  private running = false;
  private dirty = false;
  private stopped = true;
  private timer?: NodeJS.Timeout;
  private wake?: NodeJS.Timeout;
  private watch?: { cancel(): void };
  private failures = 0;
  passes = 0;

  constructor(private readonly o: LoopOptions) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.subscribe();
    this.trigger();
  }

  private subscribe(): void {
    // A restored snapshot ends the watch: subscribe again and re-decide from the new store.
    this.watch = this.o.store.watch({ kinds: this.o.kinds }, (evs) => {
      if (!this.o.relevant || evs.some((e) => this.o.relevant!(e))) this.trigger();
    }, undefined, () => {
      if (this.stopped) return;
      this.subscribe();
      this.trigger();
    });
  }

  stop(): void {
    this.stopped = true;
    this.watch?.cancel();
    clearTimeout(this.timer);
    clearTimeout(this.wake);
    this.timer = undefined;
  }

  /** Asks for a pass soon (after the debounce); one is enough for any number of asks. */
  trigger(delay = this.o.debounceMs ?? 5): void {
    if (this.stopped) return;
    if (this.running) {
      this.dirty = true;
      return;
    }
    if (this.timer) return;
    this.timer = setTimeout(() => void this.run(), delay);
  }

  private async run(): Promise<void> {
    this.timer = undefined;
    if (this.stopped || this.running) return;
    this.running = true;
    this.dirty = false;
    let retry = 0;
    const timer = reconcileDuration.startTimer({ loop: this.o.name });
    try {
      const r = await this.o.pass();
      timer();
      reconcilePasses.inc({ loop: this.o.name, result: 'ok' });
      this.passes++;
      this.failures = 0;
      clearTimeout(this.wake);
      if (r && r.wakeAt !== undefined && !this.stopped) {
        const ms = Math.max(0, Math.min(r.wakeAt - Date.now(), 2 ** 31 - 1));
        this.wake = setTimeout(() => this.trigger(0), ms);
      }
    } catch (e) {
      timer();
      reconcilePasses.inc({ loop: this.o.name, result: 'failed' });
      this.failures++;
      retry = Math.min(50 * 2 ** Math.min(this.failures, 5), 1600);
      if (this.failures <= 3 || this.failures % 20 === 0) this.o.log(`${this.o.name}: pass failed (${(e as Error).message}); retrying in ${retry} ms`);
    } finally {
      this.running = false;
    }
    if (this.stopped) return;
    if (retry) this.trigger(retry);
    else if (this.dirty) this.trigger();
  }
}
