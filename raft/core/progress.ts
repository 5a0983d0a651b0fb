// What the leader knows about one follower's log (etcd's tracker.Progress).
//  probe:     next is a guess; at most one MsgApp until it is answered (or a heartbeat reply).
//  replicate: next is optimistic; MsgApps are pipelined up to the inflights window.
//  snapshot:  a snapshot is on its way; nothing else is sent until it is acked or reported.
import { Inflights } from './inflights.js';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export class Progress {
  state: ProgressState = 'probe';
  /** Index of the snapshot in flight (snapshot state). */
  pendingSnapshot = 0;
  /** Heard from within the current election timeout (CheckQuorum); new members start active. */
  recentActive = true;
  /** Probe: a MsgApp is outstanding. Replicate: the inflights window is full. */
  msgAppFlowPaused = false;
  inflights: Inflights;

  constructor(public match: number, public next: number, maxInflight: number, public isLearner: boolean) {
    this.inflights = new Inflights(maxInflight);
  }

  private resetState(s: ProgressState): void {
    this.msgAppFlowPaused = false;
    this.pendingSnapshot = 0;
    this.state = s;
    this.inflights.reset();
  }

  becomeProbe(): void {
    if (this.state === 'snapshot') {
      // The follower has (or will have) at least the snapshot: probe just after it.
      const pending = this.pendingSnapshot;
      this.resetState('probe');
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState('probe');
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState('snapshot');
    this.pendingSnapshot = snapshotIndex;
  }

  /** Called after a MsgApp with `entries` entries of `bytes` bytes was sent. */
  sentEntries(entries: number, bytes: number): void {
    if (this.state === 'replicate') {
      if (entries > 0) {
        this.next += entries;
        this.inflights.add(this.next - 1, bytes);
      }
      this.msgAppFlowPaused = this.inflights.full();
    } else if (this.state === 'probe') {
      if (entries > 0) this.msgAppFlowPaused = true;
    }
  }

  /** A successful MsgAppResp for index n; returns whether match moved. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.msgAppFlowPaused = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /**
   * A rejected MsgApp at index `rejected`; `matchHint` is the highest index the follower may
   * match. Returns false when the rejection is stale (out of order) and must be ignored.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.msgAppFlowPaused = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.msgAppFlowPaused;
      case 'replicate':
        return this.msgAppFlowPaused;
      case 'snapshot':
        return true;
    }
  }

  clone(): Progress {
    const p = new Progress(this.match, this.next, this.inflights.size, this.isLearner);
    p.state = this.state;
    p.pendingSnapshot = this.pendingSnapshot;
    p.recentActive = this.recentActive;
    p.msgAppFlowPaused = this.msgAppFlowPaused;
    p.inflights = this.inflights.clone();
    return p;
  }
}
