// The write-ahead log: numbered segment files wal/<seq:16 digits>-<firstIndex:16 digits>.wal.
// `seq` counts up from 1 without gaps; `firstIndex` is the index the segment's first new entry
// was expected to have when the segment was started (the WAL's last index + 1). Each segment
// starts with a SegmentHeader record, then the current hard state (carried over so that older
// segments can be deleted), then Batch records, one per save (see wal-codec.ts).
//
// Recovery reads every segment. A bad record in the last segment with nothing intact after it is
// a torn write (the crash hit before its fsync finished): it is cut off and reported. Any other
// bad record is corruption of data that had been fsynced, and open fails naming the file and
// byte offset; nothing is silently dropped.

import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Entry, HardState } from '../types.js';
import { CorruptDataError } from './binary.js';
import { MAX_RECORD_BYTES } from './config.js';
import { pad16, syncDir } from './fsutil.js';
import { findIntactRecordAfter, frameRecord, readRecordAt, recordWriter, RecordType } from './record.js';
import {
  Batch,
  batchSizeBound,
  decodeBatch,
  decodeSegmentHeader,
  encodeBatch,
  encodeSegmentHeader,
  plausiblePayload,
  SnapshotMark,
  WAL_VERSION,
} from './wal-codec.js';

const SEGMENT_RE = /^(\d{16})-(\d{16})\.wal$/;

export function segmentFileName(seq: number, firstIndex: number): string {
  return `${pad16(seq)}-${pad16(firstIndex)}.wal`;
}

/** Corruption that recovery must not repair on its own. */
export class WalCorruptError extends Error {
  constructor(readonly file: string, readonly offset: number, detail: string) {
    super(
      `WAL corrupt: ${file} at byte offset ${offset}: ${detail}. This data had been fsynced, so it may hold ` +
        `committed entries and shoal will not drop it silently. Restore the node's state directory from a ` +
        `backup, or remove it and rejoin the node to the cluster so it receives a snapshot from the leader.`,
    );
    this.name = 'WalCorruptError';
  }
}

export interface SegmentState {
  seq: number;
  firstIndex: number;
  file: string;
  /** Highest entry index written into this segment (0 if none). */
  maxIndex: number;
}

/** A torn tail found and cut off at open. */
export interface TornTail {
  file: string;
  offset: number;
  droppedBytes: number;
  reason: string;
  /** True when the segment held nothing intact (a crash while it was being created) and was deleted. */
  removedFile: boolean;
}

/** Where an entry's data lies in the WAL (a segment file, a byte position, a length). */
export interface EntryLoc {
  file: string;
  pos: number;
  len: number;
}

/** The log as the WAL describes it: entries base+1 .. base+log.length. */
export interface WalReplay {
  base: number;
  /** Term of entry `base`, when known (0 for an empty log, or the term of a snapshot that reset the log). */
  baseTerm: number | undefined;
  /** The entries; their data are views into the segment files' bytes (copy what you keep). */
  log: Entry[];
  /** Where each entry of `log` lies in the WAL. */
  locs: EntryLoc[];
  hardState: HardState | undefined;
  marks: SnapshotMark[];
  tornTails: TornTail[];
  removedTemps: string[];
  unknownFiles: string[];
}

/** Timing of one WAL append, for metrics and the benchmark. */
export interface WalSyncInfo {
  bytes: number;
  entries: number;
  writeMs: number;
  syncMs: number;
  /** Written and synced on the event loop (see WalOptions.syncMode) rather than in the threadpool. */
  inline: boolean;
}

/**
 * Where a WAL record is written and fdatasynced:
 * - 'threadpool': the record is written on the event loop (into the page cache), the fdatasync
 *   is one libuv threadpool job; the event loop runs meanwhile.
 * - 'inline': writeSync + fdatasyncSync on the event loop. On a disk that acknowledges a flush
 *   in well under a millisecond this is cheaper than the thread hand-off it replaces (two
 *   wake-ups, each waiting for a CPU on a busy machine: measured 1-7 ms per fdatasync job at load
 *   8-10 on 2 cores, against 0.1-0.5 ms for the same fdatasync inline), and the raft loop is as
 *   blocked as it would be awaiting the result anyway. On a slow disk it would stall everything
 *   else, so:
 * - 'auto' (default): inline while the average inline fdatasync time stays under
 *   INLINE_SYNC_MAX_MS, else the threadpool, re-measuring inline to notice a disk that became
 *   fast again: after 1 s, then twice as long after each slow try (up to a minute), so a slow
 *   disk blocks the loop for one sync per minute once it has been slow for a while.
 *   Measured at load 10-19 on 2 cores (bench:raft, 2026-12-06): raising the bound to 2 ms (with
 *   each sample capped at 4 ms) kept more records inline and did not help at one client
 *   (ratio to etcd 0.43/0.39 against 0.42/0.36) but cost at 64 clients (0.75/0.64 against
 *   0.99/0.81), where the loop's CPU work overlaps a threadpool fdatasync.
 */
export type WalSyncMode = 'auto' | 'inline' | 'threadpool';

/** 'auto' writes inline while the average inline fdatasync time stays under this (ms). */
export const INLINE_SYNC_MAX_MS = 0.5;

export interface WalOptions {
  segmentSizeBytes: number;
  /**
   * Keep the segment zero-filled ahead of the write position, in the background (a few MiB at a
   * time). Appends then land in blocks that are already allocated and do not grow the file, so
   * their fdatasync needs no journal commit for block allocation and size: several times cheaper
   * on ext4. Only the last segment has a zero tail; a finished one is cut to its used length.
   */
  preallocate: boolean;
  onSync?: (info: WalSyncInfo) => void;
  /** Default 'auto' (see WalSyncMode). */
  syncMode?: WalSyncMode;
}

class ReplayState {
  base: number;
  baseTerm: number | undefined;
  log: Entry[] = [];
  locs: EntryLoc[] = [];
  hardState: HardState | undefined;
  marks: SnapshotMark[] = [];

  constructor(firstIndex: number) {
    this.base = firstIndex - 1;
    this.baseTerm = this.base === 0 ? 0 : undefined;
  }

  get lastIndex(): number {
    return this.base + this.log.length;
  }

  apply(b: Batch, seg: SegmentState, file: string, offset: number, dataAt: number[]): void {
    if (b.snapshot) {
      this.marks.push(b.snapshot);
      if (b.snapshot.reset) {
        this.base = b.snapshot.index;
        this.baseTerm = b.snapshot.term;
        this.log = [];
        this.locs = [];
      }
    }
    if (b.entries.length > 0) {
      const first = b.entries[0]!.index;
      for (let i = 1; i < b.entries.length; i++) {
        if (b.entries[i]!.index !== first + i) throw new WalCorruptError(file, offset, `batch entries are not contiguous at index ${first + i}`);
      }
      if (first > this.lastIndex + 1) {
        throw new WalCorruptError(file, offset, `entry ${first} follows entry ${this.lastIndex}: a gap in the log`);
      }
      if (first <= this.base) {
        // Below what the WAL holds: legitimate only when the older segments were deleted by
        // compaction (the base's term is unknown), never below a snapshot that reset the log.
        if (this.baseTerm !== undefined) {
          throw new WalCorruptError(file, offset, `entry ${first} would overwrite entry ${this.base}, which is in a snapshot`);
        }
        this.base = first - 1;
        this.log = [];
        this.locs = [];
      } else {
        this.log.length = first - this.base - 1;
        this.locs.length = this.log.length;
      }
      b.entries.forEach((e, i) => {
        this.log.push(e);
        this.locs.push({ file: seg.file, pos: dataAt[i]!, len: e.data.length });
      });
      seg.maxIndex = Math.max(seg.maxIndex, b.entries[b.entries.length - 1]!.index);
    }
    if (b.hardState) this.hardState = b.hardState;
  }
}

export class Wal {
  private fh: FileHandle | undefined;
  private pos = 0;
  /** End of everything written to the current segment (records or zero fill). */
  private extent = 0;
  /** The current segment's header allows a zero tail (it was started with preallocation on). */
  private zeroTail = false;
  /** A zero fill in progress on the current segment: appends must not write into [start, end) until it is done. */
  private fill: { start: number; end: number; done: Promise<void> } | undefined;
  /** Last index of the log the WAL describes (what a replay would give). */
  private lastIndex: number;
  private hardState: HardState | undefined;

  private constructor(
    private readonly dir: string,
    private readonly opts: WalOptions,
    readonly segments: SegmentState[],
    lastIndex: number,
    hardState: HardState | undefined,
  ) {
    this.lastIndex = lastIndex;
    this.hardState = hardState;
  }

  /**
   * Replays the WAL in `dir` (cutting off a torn tail) and opens its last segment for appending.
   * An empty directory gets a first segment whose firstIndex is `freshFirstIndex`.
   */
  static async open(
    dir: string,
    opts: WalOptions,
    fresh: { allowed: boolean; why: string },
  ): Promise<{ wal: Wal; replay: WalReplay }> {
    const removedTemps: string[] = [];
    const unknownFiles: string[] = [];
    const found: SegmentState[] = [];
    for (const name of await fs.readdir(dir)) {
      const m = SEGMENT_RE.exec(name);
      if (m) found.push({ seq: Number(m[1]), firstIndex: Number(m[2]), file: path.join(dir, name), maxIndex: 0 });
      else if (name.endsWith('.tmp')) removedTemps.push(name);
      else unknownFiles.push(name);
    }
    for (const t of removedTemps) await fs.rm(path.join(dir, t), { force: true });
    found.sort((a, b) => a.seq - b.seq);
    for (let k = 1; k < found.length; k++) {
      if (found[k]!.seq !== found[k - 1]!.seq + 1) {
        throw new WalCorruptError(
          found[k]!.file,
          0,
          `segment ${found[k - 1]!.seq + 1} is missing between ${path.basename(found[k - 1]!.file)} and ${path.basename(found[k]!.file)} (a gap in the WAL)`,
        );
      }
    }

    if (found.length === 0 && !fresh.allowed) {
      throw new Error(`the WAL directory ${dir} holds no segments, but ${fresh.why}; the log is lost. Restore the state directory from a backup, or remove it and rejoin the node`);
    }
    const st = new ReplayState(found.length > 0 ? found[0]!.firstIndex : 1);
    const tornTails: TornTail[] = [];
    const segments: SegmentState[] = [];
    let tailSize = 0;
    let tailExtent = 0;
    let tailZero = false;
    for (let k = 0; k < found.length; k++) {
      const seg = found[k]!;
      const isLast = k === found.length - 1;
      const buf = await fs.readFile(seg.file);
      let off = 0;
      let torn: TornTail | undefined;
      let zeroTail = false;
      if (buf.length === 0) {
        // A crash between creating the file and writing its header.
        if (!isLast) throw new WalCorruptError(seg.file, 0, 'the segment is empty, but it is not the last one');
        torn = { file: seg.file, offset: 0, droppedBytes: 0, reason: 'empty segment file (a crash while it was being created)', removedFile: true };
      }
      while (!torn && off < buf.length) {
        const r = readRecordAt(buf, off);
        if (!r.ok && isLast && zeroTail && isAllZero(buf, off)) {
          break; // the zero-filled rest of a segment written with preallocation: the clean end of the log
        }
        if (!r.ok) {
          if (!isLast) throw new WalCorruptError(seg.file, off, `${r.reason}, in a segment that is not the last one`);
          const after = findIntactRecordAfter(buf, off, buf.length, (type, ps, pe) => plausiblePayload(type, buf, ps, pe));
          if (after >= 0) {
            throw new WalCorruptError(seg.file, off, `${r.reason}; an intact record follows at offset ${after}, so this is not a torn final write`);
          }
          torn = { file: seg.file, offset: off, droppedBytes: buf.length - off, reason: r.reason, removedFile: off === 0 };
          break;
        }
        try {
          if (off === 0) {
            if (r.type !== RecordType.SegmentHeader) throw new CorruptDataError('the first record is not a segment header');
            const h = decodeSegmentHeader(buf, r.payloadStart, r.payloadEnd);
            if (h.seq !== seg.seq || h.firstIndex !== seg.firstIndex) {
              throw new CorruptDataError(`the header says seq ${h.seq} firstIndex ${h.firstIndex}, which does not match the file name`);
            }
            zeroTail = h.zeroTail;
            if (k > 0 && h.firstIndex !== st.lastIndex + 1) {
              throw new CorruptDataError(
                `the segment starts at index ${h.firstIndex} but the segments before it end at index ${st.lastIndex} (a gap in the WAL)`,
              );
            }
          } else {
            if (r.type !== RecordType.Batch) throw new CorruptDataError(`record type ${r.type} in the middle of a segment`);
            const at: number[] = [];
            st.apply(decodeBatch(buf, r.payloadStart, r.payloadEnd, at), seg, seg.file, off, at);
          }
        } catch (err) {
          if (err instanceof CorruptDataError) throw new WalCorruptError(seg.file, off, err.message);
          throw err;
        }
        off = r.next;
      }
      if (torn) {
        tornTails.push(torn);
        if (torn.removedFile) {
          await fs.rm(seg.file);
          await syncDir(dir);
          continue;
        }
        await fs.truncate(seg.file, off);
        const fh = await fs.open(seg.file, 'r+');
        try {
          await fh.datasync();
        } finally {
          await fh.close();
        }
      }
      segments.push(seg);
      tailSize = off;
      tailExtent = torn ? off : buf.length;
      tailZero = zeroTail;
    }

    const wal = new Wal(dir, opts, segments, st.lastIndex, st.hardState);
    if (segments.length === 0) {
      await wal.createSegment(1, st.lastIndex + 1);
    } else {
      wal.fh = await fs.open(segments[segments.length - 1]!.file, 'r+');
      wal.pos = tailSize;
      wal.extent = tailExtent;
      // Zero-fill only a segment whose header says a zero tail is its clean end.
      wal.zeroTail = tailZero;
      wal.maybeFill();
    }
    return {
      wal,
      replay: {
        base: st.base,
        baseTerm: st.baseTerm,
        log: st.log,
        locs: st.locs,
        hardState: st.hardState,
        marks: st.marks,
        tornTails,
        removedTemps,
        unknownFiles,
      },
    };
  }

  /**
   * Starts segment `seq`: header + carried-over hard state, fsynced, and the directory fsynced.
   * The segment before it is first cut to its used length (its zero-filled rest goes), so only
   * the last segment ever has a zero tail.
   */
  private async createSegment(seq: number, firstIndex: number): Promise<void> {
    const file = path.join(this.dir, segmentFileName(seq, firstIndex));
    const hw = recordWriter(64);
    encodeSegmentHeader(hw, { version: WAL_VERSION, seq, firstIndex, zeroTail: this.opts.preallocate });
    const parts: Uint8Array[] = [frameRecord(hw, RecordType.SegmentHeader)];
    if (this.hardState) {
      const bw = recordWriter(64);
      encodeBatch(bw, { entries: [], hardState: this.hardState });
      parts.push(frameRecord(bw, RecordType.Batch));
    }
    const data = Buffer.concat(parts);
    if (this.fill) await this.fill.done;
    // By the file's real size: a fill that failed half way may have left zeros past `extent`.
    if (this.fh && (this.extent > this.pos || (await this.fh.stat()).size > this.pos)) {
      await this.fh.truncate(this.pos);
      await this.fh.datasync();
    }
    const fh = await fs.open(file, 'wx');
    try {
      await writeAll(fh, data, 0);
      await fh.datasync();
    } catch (err) {
      await fh.close();
      throw err;
    }
    await syncDir(this.dir);
    if (this.fh) await this.fh.close();
    this.fh = fh;
    this.pos = data.length;
    this.extent = data.length;
    this.zeroTail = this.opts.preallocate;
    this.segments.push({ seq, firstIndex, file, maxIndex: 0 });
    this.maybeFill();
  }

  /**
   * Starts zero-filling the next stretch of the current segment when the filled space ahead of
   * the write position runs low. Sizes scale with the segment size (tests use tiny segments).
   */
  private maybeFill(): void {
    if (!this.opts.preallocate || !this.zeroTail || this.fill || !this.fh) return;
    const seg = this.opts.segmentSizeBytes;
    const lowWater = Math.min(4 << 20, Math.ceil(seg / 4));
    if (this.extent - this.pos >= lowWater || this.extent >= seg) return;
    // Leave a little room right after the write position so the next appends need not wait.
    const start = Math.max(this.extent, this.pos + Math.min(1 << 20, Math.ceil(seg / 8)));
    const end = Math.min(seg, start + Math.min(8 << 20, Math.ceil(seg / 2)));
    if (start >= end) return;
    const fh = this.fh;
    const done = (async () => {
      for (let off = start; off < end; off += ZEROS.length) {
        await writeAll(fh, ZEROS.subarray(0, Math.min(ZEROS.length, end - off)), off);
      }
      await fh.datasync();
    })().then(
      () => {
        if (this.fh === fh) this.extent = Math.max(this.extent, end);
        // No new fill from here: fills start only from append/createSegment, which the storage
        // runs one at a time, so one that awaited this fill knows none is running afterwards.
        this.fill = undefined;
      },
      () => {
        // Not fatal: appends simply extend the file; a real I/O problem shows up in the next append.
        this.fill = undefined;
      },
    );
    this.fill = { start, end, done };
  }

  /**
   * Writes one batch as one record and fdatasyncs it; rolls to a new segment first when the
   * current one is full. Returns where each entry's data now lies.
   */
  async append(b: Batch): Promise<EntryLoc[]> {
    if (!this.fh) throw new Error('the WAL is closed');
    if (this.pos >= this.opts.segmentSizeBytes) {
      const cur = this.segments[this.segments.length - 1]!;
      await this.createSegment(cur.seq + 1, this.lastIndex + 1);
    }
    const bound = batchSizeBound(b);
    if (bound > MAX_RECORD_BYTES) {
      throw new RangeError(`a WAL record of up to ${bound} bytes exceeds the limit of ${MAX_RECORD_BYTES} bytes; save fewer entries at a time`);
    }
    const w = recordWriter(bound);
    const dataAt: number[] = [];
    encodeBatch(w, b, dataAt);
    const rec = frameRecord(w, RecordType.Batch);
    // Never write where a zero fill is still going on: the fill could land after the record.
    if (this.fill && this.pos + rec.length > this.fill.start) await this.fill.done;
    const inline = this.syncInline();
    const t0 = performance.now();
    // The write itself is a copy into the page cache (tens of microseconds for a record): done
    // here in every mode, so the threadpool is asked for the fdatasync only. A threadpool job
    // costs two wake-ups (a pool thread's, then the loop's), which on a busy machine wait for a
    // CPU each: measured 1-4 ms per job at load 8 on 2 cores, more than the write.
    writeAllSync(this.fh.fd, rec, this.pos);
    const t1 = performance.now();
    if (inline) fsSync.fdatasyncSync(this.fh.fd);
    else await this.fh.datasync();
    const syncMs = performance.now() - t1;
    if (inline) this.noteInlineSync(syncMs);
    const file = this.segments[this.segments.length - 1]!.file;
    const recordAt = this.pos;
    const locs = b.entries.map((e, i) => ({ file, pos: recordAt + dataAt[i]!, len: e.data.length }));
    this.pos += rec.length;
    this.extent = Math.max(this.extent, this.pos);
    this.maybeFill();
    this.opts.onSync?.({ bytes: rec.length, entries: b.entries.length, writeMs: t1 - t0, syncMs, inline });
    if (b.snapshot?.reset) this.lastIndex = b.snapshot.index;
    if (b.entries.length > 0) {
      const last = b.entries[b.entries.length - 1]!.index;
      this.lastIndex = last;
      const seg = this.segments[this.segments.length - 1]!;
      seg.maxIndex = Math.max(seg.maxIndex, last);
    }
    if (b.hardState) this.hardState = b.hardState;
    return locs;
  }

  // 'auto' sync mode: the running average of inline fdatasync times (ms) and the last inline try.
  private syncAvgMs = -1;
  private lastInlineAt = -Infinity;
  /** How long 'auto' waits before trying inline again; doubles (up to a minute) while tries are slow. */
  private probeEveryMs = 1000;

  /** True if the next record will be written and synced on the event loop (blocking it). */
  syncInline(): boolean {
    const mode = this.opts.syncMode ?? 'auto';
    if (mode !== 'auto') return mode === 'inline';
    if (this.syncAvgMs < INLINE_SYNC_MAX_MS) return true;
    return performance.now() - this.lastInlineAt >= this.probeEveryMs;
  }

  private noteInlineSync(ms: number): void {
    this.lastInlineAt = performance.now();
    this.syncAvgMs = this.syncAvgMs < 0 ? ms : this.syncAvgMs * 0.75 + ms * 0.25;
    // A slow disk blocks the event loop once per probe: probe ever less often while it stays slow.
    this.probeEveryMs = ms < INLINE_SYNC_MAX_MS ? 1000 : Math.min(60_000, this.probeEveryMs * 2);
  }

  /** Deletes the oldest segments whose entries are all below `index`; never the segment being written. */
  async deleteSegmentsBelow(index: number): Promise<string[]> {
    const deleted: string[] = [];
    while (this.segments.length > 1 && this.segments[0]!.maxIndex < index) {
      const seg = this.segments.shift()!;
      await fs.rm(seg.file, { force: true });
      deleted.push(seg.file);
    }
    if (deleted.length > 0) await syncDir(this.dir);
    return deleted;
  }

  /** Bytes in the segment being written. */
  get currentSegmentBytes(): number {
    return this.pos;
  }

  async close(): Promise<void> {
    if (this.fill) await this.fill.done;
    const fh = this.fh;
    this.fh = undefined;
    if (fh) await fh.close();
  }
}

async function writeAll(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let off = 0;
  while (off < data.length) {
    const { bytesWritten } = await fh.write(data, off, data.length - off, position + off);
    off += bytesWritten;
  }
}

function writeAllSync(fd: number, data: Uint8Array, position: number): void {
  let off = 0;
  while (off < data.length) off += fsSync.writeSync(fd, data, off, data.length - off, position + off);
}

function isAllZero(buf: Uint8Array, from: number): boolean {
  for (let i = from; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}

const ZEROS = Buffer.alloc(1024 * 1024);
