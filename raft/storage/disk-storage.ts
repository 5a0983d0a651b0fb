// DiskStorage: the durable Storage of shoal's Raft. The core reads it (it implements `Storage`);
// the host persists each Ready with `save()`, which writes one WAL record and fdatasyncs once,
// and only then updates the in-memory log the reads are served from, so reads only ever see
// durable state.
//
// Layout of `dir`:   wal/<seq>-<firstIndex>.wal   (see wal.ts, wal-codec.ts, record.ts)
//                    snap/<index>-<term>.snap     (see snapshot-file.ts)
//
// Concurrency: every mutating call (save, saveSnapshot, compact, close) goes through one queue
// and runs strictly in call order, so concurrent calls are serialised, never interleaved. The
// one exception is the body of a local snapshot file: saveSnapshot checks and records it in the
// queue, but writes the file itself outside it, so saves are not held up behind a large file.
// Plain saves that queue up behind a write in progress are merged into one record and one fsync
// (group commit); each still resolves only when its data is durable.
//
// After a failed write or fsync the storage refuses every further call: what reached the disk is
// unknown (Linux may drop the dirty pages after a failed fsync), so the process must restart and
// let recovery check the WAL.

import fs from 'node:fs/promises';
import { closeSync, openSync, readSync } from 'node:fs';
import path from 'node:path';
import {
  ConfState,
  emptyConfState,
  Entry,
  EntryType,
  HardState,
  Snapshot,
  Storage,
} from '../types.js';
import { CorruptDataError } from './binary.js';
import { ENTRY_CACHE_BYTES, MAX_RECORD_BYTES, SEGMENT_SIZE_BYTES, SNAPSHOTS_KEPT } from './config.js';
import { lockDir } from './dir-lock.js';
import { ensureDir, syncDir } from './fsutil.js';
import { MemoryLog } from './memory-log.js';
import {
  cloneConfState,
  listSnapshotFiles,
  pruneSnapshotFiles,
  readSnapshotFile,
  readSnapshotFileSync,
  snapshotFileName,
  writeSnapshotFile,
} from './snapshot-file.js';
import { TornTail, Wal, WalReplay, WalSyncInfo, type EntryLoc, type WalSyncMode } from './wal.js';
import { Batch, batchSizeBound } from './wal-codec.js';

export interface StorageLogger {
  info(msg: string): void;
  warn(msg: string): void;
}

export interface DiskStorageOptions {
  /** Roll to a new WAL segment once the current one reaches this size. Default 64 MiB. */
  segmentSizeBytes?: number;
  /**
   * Keep the WAL segment zero-filled a few MiB ahead of the writes (in the background), so
   * appends do not grow the file and fdatasync stays cheap. Default true.
   */
  preallocate?: boolean;
  /** Snapshot files kept (newest first). Default 2; at least 1. */
  snapshotsKept?: number;
  /**
   * At open, keep up to this many entries before the snapshot in memory (when the WAL still has
   * them) so slow followers can catch up from the log after a restart. Default 0: firstIndex() is
   * then snapshot index + 1, as with etcd, and a core that defaults its applied index to
   * firstIndex() - 1 starts at the snapshot. With a value > 0 the host must pass the snapshot's
   * index (or its own applied index) as RaftConfig.applied, or entries already in the snapshot
   * would be handed out again as committed entries. SNAPSHOT_CATCHUP_ENTRIES is a good value.
   */
  retainOnOpen?: number;
  /**
   * The membership the host knows to be current (e.g. saved with its applied state). When given,
   * initialState() returns it; otherwise the conf state of the latest snapshot. ConfChange entries
   * after the snapshot are re-delivered as committed entries and re-applied by the host.
   */
  confState?: ConfState;
  logger?: StorageLogger;
  /** Called after every WAL write + fdatasync with its size and timings (metrics, benchmarks). */
  onSync?: (info: WalSyncInfo) => void;
  /** Where WAL writes are synced: default 'auto' (see WalSyncMode in wal.ts). */
  syncMode?: WalSyncMode;
  /**
   * Bytes of entry data kept in memory for the newest entries (default ENTRY_CACHE_BYTES); older
   * entries' data is read back from the WAL when wanted (see memory-log.ts). Infinity keeps all.
   */
  entryCacheBytes?: number;
}

/** What one Ready asks to persist; a whole Ready can be passed as is. */
export interface SaveInput {
  hardState?: HardState;
  entries: Entry[];
  /** A snapshot received from the leader: it replaces the whole log. */
  snapshot?: Snapshot;
  /**
   * false (Ready.mustSync) with no entries and no snapshot: only the commit index moved, which
   * raft does not need durable. The hard state is then written with the next save (or at close)
   * instead of costing an fsync of its own.
   */
  mustSync?: boolean;
}

export interface OpenReport {
  /** Torn final writes that were cut off (a crash during a save that had not returned). */
  tornTails: TornTail[];
  /** Leftover temp files from an interrupted snapshot write or segment creation, removed. */
  removedTempFiles: string[];
  /** Files in wal/ or snap/ that are not ours; left alone. */
  unknownFiles: string[];
  /** Snapshot files newer than the persisted commit index: their save never completed. Deleted. */
  discardedSnapshots: { file: string; reason: string }[];
  /** Corrupt snapshot files skipped in favour of an older one that the WAL fully covers. Left on disk for inspection. */
  corruptSnapshots: { file: string; reason: string }[];
  snapshotIndex: number;
  firstIndex: number;
  lastIndex: number;
  hardState: HardState;
}

interface SaveOp {
  kind: 'save';
  input: SaveInput;
  resolve: () => void;
  reject: (err: Error) => void;
}

interface TaskOp {
  kind: 'task';
  run: () => Promise<void>;
  /** Runs even when the storage failed (close releases its file handle). */
  evenAfterFailure?: boolean;
  resolve: () => void;
  reject: (err: Error) => void;
}

type Op = SaveOp | TaskOp;

/** Queued saves are merged into one record up to this size; beyond it the next record starts. */
const GROUP_COMMIT_MAX_BYTES = 16 * 1024 * 1024;

const EMPTY_SNAPSHOT: Snapshot = { meta: { index: 0, term: 0, conf: emptyConfState() }, data: new Uint8Array(0) };

export class DiskStorage implements Storage {
  private readonly queue: Op[] = [];
  private running = false;
  private failed: Error | undefined;
  private closed = false;
  /** A commit-only hard state not yet written (see SaveInput.mustSync). */
  private pendingHardState: HardState | undefined;
  /** Releases the directory lock (see dir-lock.ts). */
  private unlock: () => Promise<void> = async () => {};

  private constructor(
    readonly dir: string,
    private readonly wal: Wal,
    private readonly log: MemoryLog,
    private hs: HardState,
    latest: Snapshot,
    private readonly confHint: ConfState | undefined,
    private readonly snapshotsKept: number,
    readonly openReport: OpenReport,
    private readonly logger: StorageLogger | undefined,
  ) {
    this.setLatest(latest);
  }

  /** The latest snapshot's meta; its data is on disk, and in memory only while someone holds it. */
  private latest!: { meta: Snapshot['meta'] };
  private latestData: WeakRef<Uint8Array> | undefined;

  /**
   * Records the latest snapshot. Its data (the whole store, possibly hundreds of MiB) is not held:
   * whoever needs it (a lagging follower) reads it back from the file, and a WeakRef lets
   * concurrent readers share one copy while it is in use.
   */
  private setLatest(s: Snapshot): void {
    this.latest = { meta: s.meta };
    this.latestData = s.meta.index > 0 ? new WeakRef(s.data) : undefined;
  }

  static async open(dir: string, opts: DiskStorageOptions = {}): Promise<DiskStorage> {
    const segmentSizeBytes = opts.segmentSizeBytes ?? SEGMENT_SIZE_BYTES;
    const snapshotsKept = opts.snapshotsKept ?? SNAPSHOTS_KEPT;
    const retainOnOpen = opts.retainOnOpen ?? 0;
    if (!(segmentSizeBytes > 0)) throw new RangeError(`segmentSizeBytes must be positive, got ${segmentSizeBytes}`);
    if (!(Number.isInteger(snapshotsKept) && snapshotsKept >= 1)) throw new RangeError(`snapshotsKept must be an integer >= 1, got ${snapshotsKept}`);
    if (!(Number.isInteger(retainOnOpen) && retainOnOpen >= 0)) throw new RangeError(`retainOnOpen must be an integer >= 0, got ${retainOnOpen}`);

    const walDir = path.join(dir, 'wal');
    const snapDir = path.join(dir, 'snap');
    await ensureDir(walDir);
    await ensureDir(snapDir);
    const unlock = await lockDir(dir);
    try {
      const snaps = await listSnapshotFiles(snapDir);
      for (const t of snaps.temps) await fs.rm(path.join(snapDir, t), { force: true });
      const { wal, replay } = await Wal.open(
        walDir,
        { segmentSizeBytes, preallocate: opts.preallocate ?? true, onSync: opts.onSync, syncMode: opts.syncMode },
        { allowed: snaps.files.length === 0, why: `${snapDir} holds snapshot files` },
      );
      try {
        const s = await DiskStorage.recover(dir, snapDir, wal, replay, snaps, opts, snapshotsKept, retainOnOpen);
        s.unlock = unlock;
        return s;
      } catch (err) {
        await wal.close();
        throw err;
      }
    } catch (err) {
      await unlock();
      throw err;
    }
  }

  private static async recover(
    dir: string,
    snapDir: string,
    wal: Wal,
    replay: WalReplay,
    snaps: Awaited<ReturnType<typeof listSnapshotFiles>>,
    opts: DiskStorageOptions,
    snapshotsKept: number,
    retainOnOpen: number,
  ): Promise<DiskStorage> {
    const logger = opts.logger;
    const hs: HardState = replay.hardState ?? { term: 0, vote: 0, commit: 0 };
    const walLast = replay.base + replay.log.length;
    const walTerm = (i: number): number | undefined =>
      i === replay.base ? replay.baseTerm : i > replay.base && i <= walLast ? replay.log[i - replay.base - 1]!.term : undefined;
    // Does the WAL hold every entry after (index, term), consistently with it?
    const walCovers = (index: number, term: number): boolean => {
      if (index < replay.base || index > walLast) return false;
      const t = walTerm(index);
      return t === undefined ? index === replay.base : t === term;
    };

    const discardedSnapshots: OpenReport['discardedSnapshots'] = [];
    const corruptSnapshots: OpenReport['corruptSnapshots'] = [];
    let chosen: Snapshot | undefined;
    for (const f of snaps.files) {
      const file = path.join(snapDir, f.name);
      if (f.index > hs.commit) {
        // Written just before the WAL record that would have made it official (a snapshot
        // received from the leader); that record never became durable, so the save did not happen.
        const reason = `its index ${f.index} is above the persisted commit index ${hs.commit}: the save that wrote it did not complete`;
        discardedSnapshots.push({ file, reason });
        await fs.rm(file, { force: true });
        await syncDir(snapDir);
        continue;
      }
      let s: Snapshot;
      try {
        s = await readSnapshotFile(snapDir, f);
      } catch (err) {
        if (!(err instanceof CorruptDataError)) throw err;
        corruptSnapshots.push({ file, reason: err.message });
        continue;
      }
      if (corruptSnapshots.length > 0 && !walCovers(s.meta.index, s.meta.term)) {
        throw new Error(
          `${corruptSnapshots[0]!.reason}; the older snapshot ${file} cannot replace it because the WAL does not hold ` +
            `every entry after index ${s.meta.index} (it holds ${replay.base + 1}..${walLast}). The node's state cannot be ` +
            `recovered locally: restore the state directory ${dir} from a backup, or remove it and rejoin the node so it ` +
            `receives a snapshot from the leader.`,
        );
      }
      chosen = s;
      break;
    }
    if (!chosen) {
      if (corruptSnapshots.length > 0 && !walCovers(0, 0)) {
        throw new Error(
          `${corruptSnapshots.map((c) => c.reason).join('; ')}; no older snapshot is usable and the WAL does not start at ` +
            `index 1 (it holds ${replay.base + 1}..${walLast}). Restore the state directory ${dir} from a backup, or remove ` +
            `it and rejoin the node so it receives a snapshot from the leader.`,
        );
      }
      chosen = EMPTY_SNAPSHOT;
    }
    const S = chosen.meta.index;
    const T = chosen.meta.term;
    if (!walCovers(S, T)) {
      const what = S === 0 ? 'there is no snapshot' : `the snapshot is at index ${S} term ${T}`;
      throw new Error(
        `the WAL in ${path.join(dir, 'wal')} holds entries ${replay.base + 1}..${walLast}` +
          (walTerm(S) !== undefined ? ` with term ${walTerm(S)} at index ${S}` : '') +
          ` but ${what}: the log and the snapshot do not fit together. Restore the state directory from a backup, ` +
          `or remove it and rejoin the node.`,
      );
    }
    for (const m of replay.marks) {
      if (m.index === S && m.term !== T) {
        throw new Error(`the WAL records a snapshot at index ${S} with term ${m.term}, but the snapshot file has term ${T}; restore the state directory from a backup`);
      }
    }

    // Keep up to retainOnOpen entries before the snapshot when the WAL has them with known terms.
    let d = Math.max(S - retainOnOpen, replay.base);
    if (d < S && d === replay.base && replay.baseTerm === undefined) d++;
    const dTerm = d === S ? T : walTerm(d)!;
    const cacheBytes = opts.entryCacheBytes ?? ENTRY_CACHE_BYTES;
    if (!(cacheBytes >= 0)) throw new RangeError(`entryCacheBytes must be a number >= 0, got ${cacheBytes}`);
    const log = new MemoryLog(d, dTerm, cacheBytes, readEntryData);
    const kept = replay.log.slice(d - replay.base);
    log.append(kept);
    log.setLocs(kept, replay.locs.slice(d - replay.base));
    // What stays in memory is copied out of the segment files' buffers, which can then go.
    log.ownData();

    if (hs.commit > log.lastIndex()) {
      throw new Error(
        `the persisted commit index ${hs.commit} is beyond the last entry ${log.lastIndex()} in the WAL: committed ` +
          `entries are missing. Restore the state directory ${dir} from a backup, or remove it and rejoin the node.`,
      );
    }

    const openReport: OpenReport = {
      tornTails: replay.tornTails,
      removedTempFiles: [...replay.removedTemps, ...snaps.temps],
      unknownFiles: [...replay.unknownFiles, ...snaps.unknown],
      discardedSnapshots,
      corruptSnapshots,
      snapshotIndex: S,
      firstIndex: log.firstIndex(),
      lastIndex: log.lastIndex(),
      hardState: { ...hs },
    };
    for (const t of replay.tornTails) {
      logger?.warn(
        `raft storage: cut a torn final write off ${t.file} at byte offset ${t.offset} (${t.droppedBytes} bytes: ${t.reason})` +
          (t.removedFile ? '; the segment held nothing intact and was removed' : ''),
      );
    }
    for (const s of discardedSnapshots) logger?.warn(`raft storage: deleted snapshot ${s.file}: ${s.reason}`);
    for (const s of corruptSnapshots) logger?.warn(`raft storage: skipped ${s.reason}; using an older snapshot the WAL fully covers`);
    for (const u of openReport.unknownFiles) logger?.warn(`raft storage: ignoring unknown file ${u} in ${dir}`);
    logger?.info(
      `raft storage: opened ${dir}: snapshot ${S}, entries ${log.firstIndex()}..${log.lastIndex()}, ` +
        `term ${hs.term} vote ${hs.vote} commit ${hs.commit}`,
    );

    return new DiskStorage(dir, wal, log, hs, chosen, opts.confState, snapshotsKept, openReport, logger);
  }

  // ---- Storage (read side; synchronous, from memory) ----

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: { ...this.hs }, confState: cloneConfState(this.confHint ?? this.latest.meta.conf) };
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    return this.log.entries(lo, hi, maxBytes);
  }

  term(i: number): number {
    return this.log.term(i);
  }

  firstIndex(): number {
    return this.log.firstIndex();
  }

  lastIndex(): number {
    return this.log.lastIndex();
  }

  /**
   * The latest snapshot. Its data is read back from its file (synchronously) unless a copy is
   * still in use: callers that only need the index or term should use snapshotMeta().
   */
  snapshot(): Snapshot {
    const meta = this.latest.meta;
    if (meta.index === 0) return EMPTY_SNAPSHOT;
    let data = this.latestData?.deref();
    if (!data) {
      data = readSnapshotFileSync(path.join(this.dir, 'snap'), meta.index, meta.term).data;
      this.latestData = new WeakRef(data);
    }
    return { meta, data };
  }

  /** The latest snapshot's index, term and configuration, without its data. */
  /**
   * True if the next save will write and fdatasync on the event loop, blocking it until done
   * (WalSyncMode): a host that has just handed messages to a transport lets them go out first.
   */
  syncsInline(): boolean {
    return this.wal.syncInline();
  }

  snapshotMeta(): Snapshot['meta'] {
    return this.latest.meta;
  }

  /** The hard state as of the last completed save (including a deferred commit-only one). */
  hardState(): HardState {
    return { ...this.hs };
  }

  // ---- writes ----

  /**
   * Persists one Ready: snapshot (if any), then entries, then hard state, with a single fdatasync
   * of the WAL (plus the snapshot file's own fsyncs when there is a snapshot). Resolves once
   * durable; the reads reflect it from then on. An entry at index i replaces persisted entries >= i.
   */
  save(input: SaveInput): Promise<void> {
    try {
      validateSaveInput(input);
    } catch (err) {
      return Promise.reject(err);
    }
    if (input.entries.length === 0 && !input.hardState && !input.snapshot) return this.enqueue({ kind: 'task', run: async () => {} });
    return new Promise((resolve, reject) => {
      this.queue.push({ kind: 'save', input, resolve, reject });
      void this.pump();
    });
  }

  /**
   * Stores a snapshot of the host's applied state (taken locally, not received): checked against
   * the log (in call order, after every earlier call), then the snapshot file is written (temp
   * name, fsync, rename, fsync of the directory) while saves go on, then a WAL marker records it
   * (which also makes a deferred commit index durable) and older files beyond `snapshotsKept` are
   * deleted. Writing a large file inside the queue would hold every save behind it. A crash
   * between the file and the marker leaves a file that open() either uses (the WAL covers it) or
   * discards (its index is above the persisted commit index): nothing is lost either way. The
   * log is not touched: call compact() to drop entries. One snapshot at a time: calls queue.
   */
  saveSnapshot(snapshot: Snapshot): Promise<void> {
    const run = this.snapshotChain.then(() => this.saveSnapshotNow(snapshot));
    this.snapshotChain = run.catch(() => {});
    return run;
  }

  private snapshotChain: Promise<void> = Promise.resolve();

  private async saveSnapshotNow(snapshot: Snapshot): Promise<void> {
    await this.enqueue({ kind: 'task', run: async () => this.checkLocalSnapshot(snapshot) });
    try {
      await writeSnapshotFile(path.join(this.dir, 'snap'), snapshot);
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      if (isIoError(e)) this.failed ??= e;
      throw e;
    }
    await this.enqueue({
      kind: 'task',
      run: async () => {
        const { index, term } = snapshot.meta;
        // A snapshot from the leader installed meanwhile is newer: this one is just an old file.
        if (index <= this.latest.meta.index) return;
        await this.wal.append({ snapshot: { index, term, reset: false }, entries: [], hardState: this.hs });
        this.pendingHardState = undefined;
        this.setLatest(snapshot);
        await this.prune();
      },
    });
  }

  private checkLocalSnapshot(snapshot: Snapshot): void {
    validateSnapshot(snapshot);
    const { index, term } = snapshot.meta;
    if (index <= this.latest.meta.index) {
      throw new Error(`saveSnapshot: index ${index} is not newer than the current snapshot at ${this.latest.meta.index}`);
    }
    if (index > this.hs.commit) {
      throw new Error(`saveSnapshot: index ${index} is beyond the commit index ${this.hs.commit}; only applied (committed) state may be snapshotted`);
    }
    if (index < this.log.firstIndex() - 1 || index > this.log.lastIndex()) {
      throw new Error(`saveSnapshot: index ${index} is outside the log ${this.log.firstIndex() - 1}..${this.log.lastIndex()}`);
    }
    if (this.log.term(index) !== term) {
      throw new Error(`saveSnapshot: the entry at index ${index} has term ${this.log.term(index)}, not ${term}`);
    }
  }

  /**
   * Drops entries before `index` from memory (the entry at `index` stays as the dummy, so
   * firstIndex() becomes index + 1, as etcd's MemoryStorage.Compact) and deletes the WAL segments
   * whose entries are all below `index`. `index` must not pass the latest snapshot, or a restart
   * would find a hole between the snapshot and the log.
   */
  compact(index: number): Promise<void> {
    return this.enqueue({
      kind: 'task',
      run: async () => {
        if (!Number.isSafeInteger(index) || index < 0) throw new RangeError(`compact: index ${index} is not a non-negative integer`);
        if (index > this.latest.meta.index) {
          throw new Error(`compact(${index}): the latest snapshot is at ${this.latest.meta.index}; save a snapshot covering ${index} first`);
        }
        if (index > this.log.firstIndex() - 1) this.log.compact(index);
        const deleted = await this.wal.deleteSegmentsBelow(index);
        if (deleted.length > 0) this.logger?.info(`raft storage: deleted WAL segments ${deleted.map((f) => path.basename(f)).join(', ')}`);
      },
    });
  }

  /**
   * Writes a deferred hard state, if any, and closes the WAL. Further writes are refused. After a
   * failed write it only releases the file handle.
   */
  async close(): Promise<void> {
    // A local snapshot file may be being written outside the queue: nothing may touch the
    // directory once close() has resolved (the lock is released).
    await this.snapshotChain;
    return this.enqueue({
      kind: 'task',
      evenAfterFailure: true,
      run: async () => {
        try {
          if (this.pendingHardState && !this.failed) await this.wal.append({ entries: [], hardState: this.pendingHardState });
          this.pendingHardState = undefined;
        } finally {
          try {
            await this.wal.close();
          } finally {
            this.closed = true;
            await this.unlock();
          }
        }
      },
    });
  }

  private enqueue(op: Omit<TaskOp, 'resolve' | 'reject'>): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ ...op, resolve, reject });
      void this.pump();
    });
  }

  private async pump(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const head = this.queue[0]!;
        if (head.kind === 'save' && !head.input.snapshot) {
          const group: SaveOp[] = [];
          let bytes = 0;
          while (this.queue.length > 0) {
            const op = this.queue[0]!;
            if (op.kind !== 'save' || op.input.snapshot) break;
            const size = batchSizeBound({ entries: op.input.entries });
            if (group.length > 0 && bytes + size > GROUP_COMMIT_MAX_BYTES) break;
            bytes += size;
            group.push(op);
            this.queue.shift();
          }
          await this.runSaveGroup(group);
        } else {
          this.queue.shift();
          await this.runGuarded(head, () => (head.kind === 'save' ? this.saveWithSnapshot(head.input) : head.run()));
        }
      }
    } finally {
      this.running = false;
    }
  }

  private refusal(): Error | undefined {
    if (this.closed) return new Error(`raft storage ${this.dir} is closed`);
    if (this.failed) {
      return new Error(
        `raft storage ${this.dir} is unusable after a failed write or fsync (${this.failed.message}); restart the ` +
          `process so recovery can check the WAL`,
      );
    }
    return undefined;
  }

  private async runGuarded(op: Op, body: () => Promise<void>): Promise<void> {
    const refused = op.kind === 'task' && op.evenAfterFailure && !this.closed ? undefined : this.refusal();
    if (refused) return op.reject(refused);
    try {
      await body();
      op.resolve();
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      if (isIoError(e)) this.failed = e;
      op.reject(e);
    }
  }

  /** One WAL record and one fsync for a run of queued plain saves. */
  private async runSaveGroup(group: SaveOp[]): Promise<void> {
    const refused = this.refusal();
    if (refused) {
      for (const op of group) op.reject(refused);
      return;
    }
    let last = this.log.lastIndex();
    let commit = this.hs.commit;
    let term = this.hs.term;
    const accepted: SaveOp[] = [];
    let entries: Entry[] = [];
    let hardState: HardState | undefined;
    let needsWrite = false;
    let locs: EntryLoc[] = [];
    for (const op of group) {
      const { input } = op;
      const problem = checkAgainst(input, last, commit, term, this.log.firstIndex() - 1);
      if (problem) {
        op.reject(new Error(problem));
        continue;
      }
      accepted.push(op);
      if (input.entries.length > 0) {
        const first = input.entries[0]!.index;
        if (entries.length > 0 && first <= entries[entries.length - 1]!.index) {
          entries = first > entries[0]!.index ? entries.slice(0, first - entries[0]!.index) : [];
        }
        entries = entries.concat(input.entries);
        last = input.entries[input.entries.length - 1]!.index;
        needsWrite = true;
      }
      if (input.hardState) {
        hardState = input.hardState;
        commit = input.hardState.commit;
        term = input.hardState.term;
        if (input.mustSync !== false || input.entries.length > 0) needsWrite = true;
      }
    }
    if (accepted.length === 0) return;
    try {
      if (needsWrite) {
        const batch: Batch = { entries, hardState: hardState ?? this.pendingHardState };
        locs = await this.wal.append(batch);
        this.pendingHardState = undefined;
      } else if (hardState) {
        this.pendingHardState = hardState;
      }
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      this.failed = e;
      for (const op of accepted) op.reject(e);
      return;
    }
    for (const op of accepted) {
      this.log.append(op.input.entries);
      if (op.input.hardState) this.hs = { ...op.input.hardState };
    }
    this.log.setLocs(entries, locs);
    for (const op of accepted) op.resolve();
  }

  /** A snapshot received from the leader: snapshot file first, then the WAL record that resets the log. */
  private async saveWithSnapshot(input: SaveInput): Promise<void> {
    const snap = input.snapshot!;
    const { index, term } = snap.meta;
    if (index <= this.latest.meta.index) {
      throw new Error(`save: the snapshot at index ${index} is not newer than the current snapshot at ${this.latest.meta.index}`);
    }
    if (input.entries.length > 0 && input.entries[0]!.index !== index + 1) {
      throw new Error(`save: entries after a snapshot at ${index} must start at ${index + 1}, not ${input.entries[0]!.index}`);
    }
    const base = input.hardState ?? this.pendingHardState ?? this.hs;
    if (base.term < this.hs.term) throw new Error(`save: hard state term ${base.term} is below the persisted term ${this.hs.term}`);
    // The snapshot is committed by definition; recovery relies on commit >= snapshot index.
    const hardState: HardState = { ...base, commit: Math.max(base.commit, index) };
    await writeSnapshotFile(path.join(this.dir, 'snap'), snap);
    const locs = await this.wal.append({ snapshot: { index, term, reset: true }, entries: input.entries, hardState });
    this.pendingHardState = undefined;
    this.log.reset(index, term);
    this.log.append(input.entries);
    this.log.setLocs(input.entries, locs);
    this.hs = hardState;
    this.setLatest(snap);
    await this.prune();
  }

  private async prune(): Promise<void> {
    const deleted = await pruneSnapshotFiles(path.join(this.dir, 'snap'), this.snapshotsKept);
    if (deleted.length > 0) this.logger?.info(`raft storage: deleted old snapshots ${deleted.join(', ')}`);
  }

  /** The file name a snapshot at (index, term) gets (for tools and tests). */
  static snapshotFileName(index: number, term: number): string {
    return snapshotFileName(index, term);
  }
}

/** Reads an entry's data back from its WAL segment (an entry no longer held in memory). */
function readEntryData(loc: EntryLoc): Uint8Array {
  const out = Buffer.allocUnsafeSlow(loc.len);
  const fd = openSync(loc.file, 'r');
  try {
    for (let off = 0; off < loc.len; ) {
      const n = readSync(fd, out, off, loc.len - off, loc.pos + off);
      if (n === 0) throw new Error(`raft storage: ${loc.file} ends before the entry data at byte ${loc.pos} (${loc.len} bytes)`);
      off += n;
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

/** A save that does not fit the log as it will be when the save's turn comes, or undefined. */
function checkAgainst(input: SaveInput, last: number, commit: number, term: number, dummy: number): string | undefined {
  if (input.entries.length > 0) {
    const first = input.entries[0]!.index;
    if (first > last + 1) return `save: entry ${first} would leave a gap after the last entry ${last}`;
    if (first <= commit) return `save: entry ${first} would overwrite a committed entry (commit index ${commit})`;
    if (first <= dummy) return `save: entry ${first} would overwrite the compacted log (first index ${dummy + 1})`;
  }
  if (input.hardState && input.hardState.term < term) {
    return `save: hard state term ${input.hardState.term} is below the persisted term ${term}; terms never go back`;
  }
  return undefined;
}

function isNonNegInt(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

function validateSnapshot(s: Snapshot): void {
  if (!s || !s.meta || !isNonNegInt(s.meta.index) || !isNonNegInt(s.meta.term) || s.meta.index === 0 || s.meta.term === 0) {
    throw new TypeError('snapshot: meta.index and meta.term must be positive integers');
  }
  if (!(s.data instanceof Uint8Array)) throw new TypeError('snapshot: data must be a Uint8Array');
  const c = s.meta.conf;
  if (!c || ![c.voters, c.learners, c.votersOutgoing, c.learnersNext].every((l) => Array.isArray(l) && l.every(isNonNegInt))) {
    throw new TypeError('snapshot: meta.conf must hold arrays of node ids');
  }
  const removed = (c as { removed?: unknown }).removed;
  if (removed !== undefined && !(Array.isArray(removed) && removed.every(isNonNegInt))) {
    throw new TypeError('snapshot: meta.conf.removed, when present, must be an array of node ids');
  }
}

function validateSaveInput(input: SaveInput): void {
  if (!input || !Array.isArray(input.entries)) throw new TypeError('save: expected { entries: Entry[], hardState?, snapshot? }');
  const es = input.entries;
  for (let i = 0; i < es.length; i++) {
    const e = es[i]!;
    if (!isNonNegInt(e.index) || e.index === 0) throw new TypeError(`save: entry ${i} has index ${e.index}; indexes are positive integers`);
    if (!isNonNegInt(e.term) || e.term === 0) throw new TypeError(`save: entry ${e.index} has term ${e.term}; terms are positive integers`);
    if (e.type !== EntryType.Normal && e.type !== EntryType.ConfChange) throw new TypeError(`save: entry ${e.index} has unknown type ${e.type}`);
    if (!(e.data instanceof Uint8Array)) throw new TypeError(`save: entry ${e.index} data must be a Uint8Array`);
    if (i > 0) {
      if (e.index !== es[i - 1]!.index + 1) throw new RangeError(`save: entries must be contiguous, ${es[i - 1]!.index} is followed by ${e.index}`);
      if (e.term < es[i - 1]!.term) throw new RangeError(`save: entry ${e.index} has term ${e.term}, below the term of the entry before it`);
    }
  }
  if (batchSizeBound({ entries: es }) > MAX_RECORD_BYTES) {
    throw new RangeError(`save: ${es.length} entries are too large for one WAL record (limit ${MAX_RECORD_BYTES} bytes); save fewer at a time`);
  }
  const h = input.hardState;
  if (h && !(isNonNegInt(h.term) && isNonNegInt(h.vote) && isNonNegInt(h.commit))) {
    throw new TypeError('save: hardState term, vote and commit must be non-negative integers');
  }
  if (input.snapshot) validateSnapshot(input.snapshot);
}

/** Errors from the file system (they carry a code such as EIO or ENOSPC), as opposed to refused input. */
function isIoError(e: Error): boolean {
  return typeof (e as NodeJS.ErrnoException).code === 'string';
}
