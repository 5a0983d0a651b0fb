// Where a write's time goes on this node (SHOAL_RAFT_TRACE=1 only; profiling, not metrics): the
// host stamps stages of a log index as it passes them and `report()` prints, once a second, the
// average time between consecutive stages over the writes that finished in that second.
//   leader:   called (propose()) -> proposed (stepped into the core) -> handed (MsgApps handed to the transport) -> saved (own fsync done)
//             -> acked (first follower ack covering it) -> applied (client answered)
//   follower: received (MsgApp arrived) -> handed (in a Ready) -> saved -> acked (ack sent)
// Stages are per log index; a batch of entries shares its stamps (one Ready holds them all).

export type LeaderStage = 'called' | 'proposed' | 'handed' | 'saved' | 'acked' | 'applied';
export type FollowerStage = 'received' | 'handed' | 'saved' | 'acked';
const LEADER: LeaderStage[] = ['called', 'proposed', 'handed', 'saved', 'acked', 'applied'];
const FOLLOWER: FollowerStage[] = ['received', 'handed', 'saved', 'acked'];

/** At most this many indexes are followed at once: a trace must not grow without bound. */
const MAX_OPEN = 10_000;

class StageTable<S extends string> {
  private readonly open = new Map<number, Partial<Record<S, number>>>();
  private sums = new Map<string, number>();
  private n = 0;

  constructor(private readonly stages: S[], private readonly last: S) {}

  stamp(from: number, to: number, stage: S, at = performance.now()): void {
    for (let i = from; i <= to; i++) {
      let r = this.open.get(i);
      if (!r) {
        if (stage !== this.stages[0] || this.open.size >= MAX_OPEN) continue;
        r = {};
        this.open.set(i, r);
      }
      if (r[stage] === undefined) r[stage] = at;
      if (stage === this.last) this.finish(i, r);
    }
  }

  /** Every open index up to `index` that has reached `after` (but not `stage`) gets `stage`. */
  stampUpTo(index: number, after: S, stage: S, at = performance.now()): void {
    for (const [i, r] of this.open) {
      if (i > index) continue;
      if (r[after] !== undefined && r[stage] === undefined) r[stage] = at;
      if (stage === this.last) this.finish(i, r);
    }
  }

  private finish(i: number, r: Partial<Record<S, number>>): void {
    this.open.delete(i);
    const ts = this.stages.map((s) => r[s]);
    if (ts.some((t) => t === undefined)) return;
    this.n++;
    for (let k = 1; k < ts.length; k++) {
      const key = `${this.stages[k - 1]}->${this.stages[k]}`;
      this.sums.set(key, (this.sums.get(key) ?? 0) + ts[k]! - ts[k - 1]!);
    }
    this.sums.set('total', (this.sums.get('total') ?? 0) + ts[ts.length - 1]! - ts[0]!);
  }

  /** One line of averages since the last call, or undefined if no write finished. */
  drain(): string | undefined {
    if (this.n === 0) return undefined;
    const parts = [...this.sums].map(([k, v]) => `${k} ${(v / this.n).toFixed(2)}`);
    const line = `${this.n} writes, ms avg: ${parts.join(', ')}`;
    this.sums = new Map();
    this.n = 0;
    return line;
  }
}

export class WriteTrace {
  readonly leader = new StageTable<LeaderStage>(LEADER, 'applied');
  readonly follower = new StageTable<FollowerStage>(FOLLOWER, 'acked');

  report(log: (m: string) => void): void {
    const l = this.leader.drain();
    if (l) log(`trace: leader ${l}`);
    const f = this.follower.drain();
    if (f) log(`trace: follower ${f}`);
  }
}
