// The simulated host's disk, following raft/storage's DiskStorage rules rather than "every Ready
// is durable at once":
//  - save(Ready): one WAL record and one fsync when there are entries, a snapshot, or a hard state
//    with mustSync; a commit-only hard state (mustSync false) is NOT written: the reads show it at
//    once and it reaches the disk with the next record (or a snapshot marker), so a crash loses it.
//  - Writes happen one at a time, in order; each takes the disk's latency (fast, slow, or with
//    stalls). The reads (what the core sees) change only when a write completes.
//  - A local snapshot: the file is written beside the queue (it takes a while), then a marker
//    record goes through the queue (it also makes a deferred commit durable), then compaction.
//  - A crash keeps what was fsynced. The write in progress reached the disk whole or not at all
//    (a record is checksummed: recovery cuts a torn one off), or, with the 'torn' model of an
//    etcd-style WAL, any prefix of it in the Ready's order (snapshot, entries, hard state).
//    A snapshot file written but without its marker survives and is used on restart only if the
//    WAL covers it and its index is not above the durable commit index (DiskStorage.open).
//  - A restart recovers that and hands the host `applied` = the snapshot the store restarts from.
import { MemoryStorage } from '../core/index.js';
import type { Entry, HardState, Ready, Snapshot } from '../types.js';
import type { Prng } from './prng.js';

export type DiskSpeed = 'fast' | 'slow' | 'stalls';
/** 'record': DiskStorage (a write is all or nothing); 'torn': any prefix of a write may survive. */
export type CrashModel = 'record' | 'torn';

interface WriteOp {
  kind: 'write';
  rd: Pick<Ready, 'entries' | 'hardState' | 'snapshot' | 'mustSync'>;
  /** No record: a commit-only hard state (deferred) or nothing at all. */
  noop: boolean;
  /**
   * The hard state the record carries, taken when the write starts: the Ready's, else the one in
   * memory with any deferred commit (DiskStorage writes `hardState ?? pendingHardState`).
   */
  hs?: HardState;
  done: () => void;
}

interface MarkerOp {
  kind: 'marker';
  snap: Snapshot;
  keep: number;
  /** The hard state the marker record carries (taken when it starts; a deferred commit too). */
  hs?: HardState;
  done: () => void;
}

type Op = WriteOp | MarkerOp;

/** What a crash did to the write in progress (for the fault schedule). */
export interface CrashOutcome {
  what: string;
}

export class SimDisk {
  /** The log, snapshot and hard state the core reads: DiskStorage's memory. */
  store: MemoryStorage;
  /** The hard state on disk (the store's may be ahead by a deferred commit). */
  durableHs: HardState;
  /** Snapshot files written whose marker may not be (a crash can leave them without it). */
  private files: Snapshot[] = [];
  private queue: Op[] = [];
  private busy = false;
  /** Bumped on crash: file writes and completions of an earlier life are ignored. */
  private epoch = 0;
  /** Bumped whenever the completion of the write in progress is (re)scheduled. */
  private opToken = 0;
  speed: DiskSpeed;
  /** Counters for the run's statistics. */
  stats = { writes: 0, deferred: 0, slowWrites: 0 };

  constructor(
    store: MemoryStorage,
    speed: DiskSpeed,
    private readonly rng: Prng,
    /** Schedules fn after ms of virtual time (the simulator's agenda). */
    private readonly schedule: (ms: number, fn: () => void) => void,
    /** A hard state became durable (for the invariant checker). */
    private readonly onDurable: (hs: HardState) => void,
  ) {
    this.store = store;
    this.durableHs = store.hardState();
    this.speed = speed;
  }

  /** Latency of one write + fsync, by the disk's speed. */
  latency(): number {
    const r = this.rng;
    switch (this.speed) {
      case 'fast':
        return 0.2 + r.float() * 2;
      case 'slow':
        return 5 + r.float() * 40;
      case 'stalls': {
        const x = r.float();
        if (x < 0.03) return 100 + r.float() * 900; // a stall: several election timeouts
        if (x < 0.15) return 20 + r.float() * 80;
        return 0.5 + r.float() * 3;
      }
    }
  }

  get idle(): boolean {
    return !this.busy && this.queue.length === 0;
  }

  /** Whether a Ready needs a record (entries, snapshot, or a hard state that must be synced). */
  static needsWrite(rd: Pick<Ready, 'entries' | 'hardState' | 'snapshot' | 'mustSync'>): boolean {
    return rd.entries.length > 0 || !!rd.snapshot || (!!rd.hardState && rd.mustSync);
  }

  /** Persists a Ready the way DiskStorage.save does; `done` runs once it is durable (or deferred). */
  save(rd: Pick<Ready, 'entries' | 'hardState' | 'snapshot' | 'mustSync'>, done: () => void): void {
    this.queue.push({ kind: 'write', rd, noop: !SimDisk.needsWrite(rd), done });
    this.next();
  }

  /**
   * Stores a local snapshot like DiskStorage.saveSnapshot + compact: the file (beside the queue,
   * `fileMs` long), then the marker record in the queue, then compaction to index - keep.
   */
  saveSnapshot(snap: Snapshot, keep: number, fileMs: number, done: () => void): void {
    const epoch = this.epoch;
    this.schedule(fileMs, () => {
      if (epoch !== this.epoch) return; // crashed while writing the file: the temp file is removed
      this.files.push(snap);
      this.queue.push({ kind: 'marker', snap, keep, done });
      this.next();
    });
  }

  private next(): void {
    if (this.busy || this.queue.length === 0) return;
    const op = this.queue[0];
    this.busy = true;
    if (op.kind === 'marker') op.hs = this.store.hardState();
    else if (!op.noop) op.hs = op.rd.hardState ?? this.store.hardState();
    const noop = op.kind === 'write' && op.noop;
    // Nothing to write still takes a moment (a turn of the host's event loop).
    const ms = noop ? 0.01 : this.latency();
    if (!noop) {
      this.stats.writes++;
      if (ms > 20) this.stats.slowWrites++;
    }
    this.arm(ms);
  }

  private arm(ms: number): void {
    const token = ++this.opToken;
    this.schedule(ms, () => {
      if (token === this.opToken && this.busy) this.complete();
    });
  }

  /** The write in progress is durable now. */
  private complete(): void {
    const op = this.queue.shift() as Op;
    this.busy = false;
    if (op.kind === 'write') this.applyWrite(op);
    else this.applyMarker(op);
    op.done();
    this.next();
  }

  /** Delays the write in progress by ms (a stalled host); its completion is re-armed. */
  stall(ms: number): void {
    if (this.busy) this.arm(ms + this.latency());
  }

  private applyWrite(op: WriteOp): void {
    const { rd } = op;
    if (op.noop) {
      if (rd.hardState) {
        // Deferred: shown at once, written with the next record.
        this.store.setHardState(rd.hardState);
        this.stats.deferred++;
      }
      return;
    }
    const s = this.store;
    // Not s.hardState() now: after a crash that is the durable one, without the deferred commit the
    // record did carry (raft/sim FINDINGS #4b, seed 10319).
    let hs = op.hs ?? rd.hardState ?? s.hardState();
    if (rd.snapshot) {
      s.applySnapshot(rd.snapshot);
      // The snapshot is committed by definition (DiskStorage raises the commit to it).
      hs = { ...hs, commit: Math.max(hs.commit, rd.snapshot.meta.index) };
    }
    s.append(rd.entries);
    this.setDurableHs(hs);
  }

  private applyMarker(op: MarkerOp): void {
    const s = this.store;
    const { index, term, conf } = op.snap.meta;
    this.files = this.files.filter((f) => f !== op.snap);
    // A snapshot received from the leader meanwhile is newer: this one is just an old file.
    if (index <= s.snapshot().meta.index) return;
    void term;
    // The marker record carries the hard state, with a deferred commit (>= index, checked before).
    this.setDurableHs(op.hs ?? s.hardState());
    s.createSnapshot(index, conf, op.snap.data);
    const to = index - op.keep;
    if (to >= s.firstIndex()) s.compact(to);
  }

  private setDurableHs(hs: HardState): void {
    this.store.setHardState(hs);
    this.durableHs = { ...hs };
    this.onDurable(this.durableHs);
  }

  /**
   * The host crashed. What was fsynced stays; the write in progress lands whole, not at all or
   * (torn model) as a prefix; a deferred commit is lost. Returns a description for the schedule.
   */
  crash(model: CrashModel): CrashOutcome {
    const inProgress = this.busy ? this.queue[0] : undefined;
    this.queue = [];
    this.busy = false;
    this.epoch++;
    this.opToken++;
    // What is on disk: the store's log and snapshot, with the durable hard state.
    const disk = this.store.clone();
    disk.setHardState(this.durableHs);
    this.store = disk;
    let what = '';
    if (inProgress && !(inProgress.kind === 'write' && inProgress.noop)) {
      const r = this.rng.float();
      if (inProgress.kind === 'marker') {
        if (r < 0.5) {
          this.applyMarker(inProgress);
          what = `snapshot marker ${inProgress.snap.meta.index} reached the disk`;
        } else what = `snapshot marker ${inProgress.snap.meta.index} lost`;
      } else if (model === 'record' || r < 0.4) {
        if (r < 0.5) {
          this.applyWrite(inProgress);
          what = 'the write in progress reached the disk whole';
        } else what = 'the write in progress was lost';
      } else {
        what = this.applyPrefix(inProgress.rd);
      }
    }
    return { what };
  }

  /** Torn model: a prefix of the write in the Ready's order (snapshot, entries, hard state). */
  private applyPrefix(rd: WriteOp['rd']): string {
    const r = this.rng;
    const s = this.store;
    const parts: string[] = [];
    if (rd.snapshot) {
      if (r.chance(0.5)) return 'the write in progress was lost';
      s.applySnapshot(rd.snapshot);
      parts.push(`snapshot ${rd.snapshot.meta.index}`);
    }
    const k = r.int(0, rd.entries.length);
    s.append(rd.entries.slice(0, k) as Entry[]);
    if (k > 0) parts.push(`entries ${rd.entries[0].index}..${rd.entries[k - 1].index}`);
    if (k === rd.entries.length && rd.hardState && r.chance(0.5)) {
      this.setDurableHs(rd.hardState);
      parts.push('hard state');
    }
    return parts.length ? `torn write: ${parts.join(', ')} reached the disk` : 'the write in progress was lost';
  }

  /**
   * Recovery at restart (DiskStorage.open): snapshot files above the durable commit index are
   * deleted; the newest one the WAL covers is used. Returns the snapshot the store restores from.
   */
  recover(): Snapshot {
    const s = this.store;
    const commit = s.hardState().commit;
    const usable = this.files
      .filter((f) => f.meta.index <= commit && f.meta.index > s.snapshot().meta.index && f.meta.index <= s.lastIndex() && f.meta.index >= s.firstIndex() - 1)
      .filter((f) => s.term(f.meta.index) === f.meta.term)
      .sort((a, b) => b.meta.index - a.meta.index);
    this.files = [];
    if (usable.length > 0) {
      const f = usable[0];
      s.createSnapshot(f.meta.index, f.meta.conf, f.data);
    }
    return s.snapshot();
  }
}
