import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { CompactedError, EntryType, UnavailableError, type Snapshot } from '../types.js';
import { DiskStorage } from './disk-storage.js';
import { collectingLogger, dataMatches, entryData, makeEntries, segmentFiles, snapshotFiles, tempDir } from './testkit.js';

const conf = { voters: [1, 2, 3], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };

/** Small preallocated segments: the default layout, without writing 64 MiB per test. */
const SMALL = { segmentSizeBytes: 128 * 1024 };
/** Files that grow with each write, so a test can see from the size whether anything was written. */
const EXACT = { preallocate: false };

function snap(index: number, term: number, tag = 'state'): Snapshot {
  return { meta: { index, term, conf }, data: Buffer.from(`${tag}@${index}`) };
}

function allEntries(s: DiskStorage) {
  return s.lastIndex() < s.firstIndex() ? [] : s.entries(s.firstIndex(), s.lastIndex() + 1, Infinity);
}

t.test('a fresh directory opens empty with the etcd dummy conventions', async (t) => {
  const dir = await tempDir(t, 'fresh');
  const s = await DiskStorage.open(dir, SMALL);
  t.teardown(() => s.close());
  t.equal(s.firstIndex(), 1);
  t.equal(s.lastIndex(), 0);
  t.equal(s.term(0), 0);
  t.throws(() => s.term(1), UnavailableError);
  t.same(s.initialState(), { hardState: { term: 0, vote: 0, commit: 0 }, confState: { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } });
  t.equal(s.snapshot().meta.index, 0);
  t.same(await segmentFiles(dir), ['0000000000000001-0000000000000001.wal']);
});

t.test('entries and hard state round-trip through close and reopen', async (t) => {
  const dir = await tempDir(t, 'roundtrip');
  const s = await DiskStorage.open(dir, SMALL);
  await s.save({ entries: makeEntries(1, 5, 1, 100), hardState: { term: 1, vote: 1, commit: 0 } });
  await s.save({ entries: makeEntries(6, 3, 2, 100), hardState: { term: 2, vote: 3, commit: 4 } });
  t.equal(s.lastIndex(), 8);
  t.equal(s.term(5), 1);
  t.equal(s.term(6), 2);
  await s.close();
  await t.rejects(s.save({ entries: makeEntries(9, 1, 2) }), /closed/);

  const r = await DiskStorage.open(dir, SMALL);
  t.teardown(() => r.close());
  t.equal(r.firstIndex(), 1);
  t.equal(r.lastIndex(), 8);
  t.same(r.initialState().hardState, { term: 2, vote: 3, commit: 4 });
  const es = allEntries(r);
  t.same(es.map((e) => [e.index, e.term]), [[1, 1], [2, 1], [3, 1], [4, 1], [5, 1], [6, 2], [7, 2], [8, 2]]);
  t.ok(es.every(dataMatches), 'every entry carries the bytes written');
  t.same(r.openReport.tornTails, []);
});

t.test('entries(lo, hi, maxBytes) and term() follow the Storage contract', async (t) => {
  const dir = await tempDir(t, 'reads');
  const s = await DiskStorage.open(dir, SMALL);
  t.teardown(() => s.close());
  await s.save({ entries: makeEntries(1, 10, 1, 84) }); // 84 + 16 = 100 bytes each
  t.equal(s.entries(2, 11, 250).length, 2, 'two fit in 250 bytes');
  t.equal(s.entries(2, 11, 1).length, 1, 'always at least one');
  t.equal(s.entries(3, 3, 100).length, 0);
  t.equal(s.entries(1, 11, Infinity).length, 10);
  t.throws(() => s.entries(0, 2, 100), CompactedError);
  t.throws(() => s.entries(5, 12, 100), UnavailableError);
  t.throws(() => s.term(11), UnavailableError);
});

t.test('a conflicting suffix is replaced, and the truncation survives restart', async (t) => {
  const dir = await tempDir(t, 'truncate');
  const s = await DiskStorage.open(dir, SMALL);
  await s.save({ entries: makeEntries(1, 10, 1), hardState: { term: 1, vote: 1, commit: 3 } });
  // A new leader in term 2 overwrites 6..10 with a shorter suffix 6..7.
  await s.save({ entries: makeEntries(6, 2, 2), hardState: { term: 2, vote: 2, commit: 3 } });
  t.equal(s.lastIndex(), 7);
  t.equal(s.term(6), 2);
  // And appends again after it.
  await s.save({ entries: makeEntries(8, 2, 2) });
  await s.close();

  const r = await DiskStorage.open(dir, SMALL);
  t.teardown(() => r.close());
  t.same(allEntries(r).map((e) => [e.index, e.term]), [[1, 1], [2, 1], [3, 1], [4, 1], [5, 1], [6, 2], [7, 2], [8, 2], [9, 2]]);
  t.ok(allEntries(r).every(dataMatches));
});

t.test('the truncation survives restart even when the overwritten entries are in an older segment', async (t) => {
  const dir = await tempDir(t, 'truncate-seg');
  const s = await DiskStorage.open(dir, { segmentSizeBytes: 600 });
  for (let i = 0; i < 8; i++) await s.save({ entries: makeEntries(1 + i * 4, 4, 1, 40), hardState: { term: 1, vote: 1, commit: 2 } });
  t.ok((await segmentFiles(dir)).length >= 3, 'several segments');
  await s.save({ entries: makeEntries(5, 3, 3, 40), hardState: { term: 3, vote: 3, commit: 2 } });
  await s.close();
  const r = await DiskStorage.open(dir, { segmentSizeBytes: 600 });
  t.teardown(() => r.close());
  t.equal(r.lastIndex(), 7);
  t.same(allEntries(r).map((e) => e.term), [1, 1, 1, 1, 3, 3, 3]);
  t.same(r.initialState().hardState, { term: 3, vote: 3, commit: 2 });
});

t.test('segments roll at the size limit and carry the hard state', async (t) => {
  const dir = await tempDir(t, 'roll');
  const s = await DiskStorage.open(dir, { segmentSizeBytes: 1000 });
  for (let i = 0; i < 20; i++) await s.save({ entries: makeEntries(1 + i * 3, 3, 1, 100), hardState: { term: 1, vote: 2, commit: i * 3 } });
  const files = await segmentFiles(dir);
  t.ok(files.length >= 5, `rolled into ${files.length} segments`);
  for (let k = 0; k < files.length; k++) t.match(files[k], new RegExp(`^${String(k + 1).padStart(16, '0')}-\\d{16}\\.wal$`));
  // Each segment's name carries the first index it was started for.
  const firsts = files.map((f) => Number(f.slice(17, 33)));
  t.same(firsts, [...firsts].sort((a, b) => a - b));
  for (const f of files.slice(0, -1)) {
    const st = await fs.stat(path.join(dir, 'wal', f));
    t.ok(st.size >= 1000 && st.size < 1000 + 400, `${f} closed just past the limit (${st.size} bytes)`);
  }
  await s.close();
  const r = await DiskStorage.open(dir, { segmentSizeBytes: 1000 });
  t.teardown(() => r.close());
  t.equal(r.lastIndex(), 60);
  t.ok(allEntries(r).every(dataMatches));
  t.same(r.initialState().hardState, { term: 1, vote: 2, commit: 57 });
});

t.test('saveSnapshot writes, loads and prunes snapshot files; compact deletes only whole segments below', async (t) => {
  const dir = await tempDir(t, 'snap');
  const log = collectingLogger();
  const s = await DiskStorage.open(dir, { segmentSizeBytes: 800, logger: log });
  for (let i = 0; i < 30; i++) await s.save({ entries: makeEntries(1 + i * 4, 4, 2, 60), hardState: { term: 2, vote: 1, commit: (i + 1) * 4 } });
  const before = await segmentFiles(dir);
  t.ok(before.length >= 6, `${before.length} segments`);

  await t.rejects(s.compact(10), /latest snapshot is at 0/, 'compact needs a snapshot first');
  await t.rejects(s.saveSnapshot(snap(121, 2)), /beyond the commit index 120/);
  await t.rejects(s.saveSnapshot(snap(50, 3)), /has term 2, not 3/);

  await s.saveSnapshot(snap(40, 2));
  await s.saveSnapshot(snap(80, 2));
  await s.saveSnapshot(snap(100, 2));
  t.same(await snapshotFiles(dir), ['0000000000000080-0000000000000002.snap', '0000000000000100-0000000000000002.snap'], 'keeps the newest two');
  t.equal(s.snapshot().meta.index, 100);
  await t.rejects(s.saveSnapshot(snap(90, 2)), /not newer/);

  const beforeCompact = await segmentFiles(dir);
  await s.compact(70);
  t.equal(s.firstIndex(), 71);
  t.equal(s.term(70), 2, 'the compaction point stays as the dummy');
  t.throws(() => s.term(69), CompactedError);
  const after = await segmentFiles(dir);
  t.ok(after.length < beforeCompact.length, 'some segments were deleted');
  t.same(after, beforeCompact.slice(beforeCompact.length - after.length), 'only the oldest ones');
  // The segment after the last deleted one was started at an index <= 70, so everything deleted was below 70.
  t.ok(Number(after[0]!.slice(17, 33)) <= 70, `first kept segment ${after[0]} starts at or below 70`);
  const nextAfterKept = after[1];
  t.ok(nextAfterKept === undefined || Number(nextAfterKept.slice(17, 33)) > 70, 'the first kept segment holds entry 70 or later (it was not deletable)');
  // Every remaining entry >= 70 must still be in the WAL: reopen with no in-memory help.
  await s.close();
  const r = await DiskStorage.open(dir, { segmentSizeBytes: 800, retainOnOpen: 1000 });
  t.teardown(() => r.close());
  t.equal(r.snapshot().meta.index, 100);
  t.same(Buffer.from(r.snapshot().data).toString(), 'state@100');
  t.same(r.initialState().confState, conf);
  t.ok(r.firstIndex() <= 71, `the WAL still holds the retained tail (first index ${r.firstIndex()})`);
  t.equal(r.lastIndex(), 120);
  t.ok(allEntries(r).every(dataMatches));
});

t.test('a reopen starts the log after the snapshot, or keeps retainOnOpen entries before it', async (t) => {
  const dir = await tempDir(t, 'retain');
  const s = await DiskStorage.open(dir, SMALL);
  await s.save({ entries: makeEntries(1, 50, 1, 10), hardState: { term: 1, vote: 1, commit: 50 } });
  await s.saveSnapshot(snap(40, 1));
  await s.close();
  const a = await DiskStorage.open(dir, SMALL);
  t.equal(a.firstIndex(), 41, 'by default, as etcd: right after the snapshot');
  t.equal(a.term(40), 1);
  await a.close();
  const b = await DiskStorage.open(dir, { ...SMALL, retainOnOpen: 5 });
  t.equal(b.firstIndex(), 36);
  t.equal(b.term(35), 1);
  await b.close();
  const c = await DiskStorage.open(dir, { ...SMALL, retainOnOpen: 5000 });
  t.teardown(() => c.close());
  t.equal(c.firstIndex(), 1, 'as far back as the WAL goes');
});

t.test('a snapshot from the leader replaces the log, durably', async (t) => {
  const dir = await tempDir(t, 'recv');
  const s = await DiskStorage.open(dir, SMALL);
  await s.save({ entries: makeEntries(1, 10, 1), hardState: { term: 1, vote: 1, commit: 5 } });
  // Entries 6..10 of term 1 are stale; the leader sends a snapshot at 20 (term 3) plus 21..22.
  await s.save({ snapshot: snap(20, 3, 'leader'), entries: makeEntries(21, 2, 3), hardState: { term: 3, vote: 0, commit: 20 } });
  t.equal(s.firstIndex(), 21);
  t.equal(s.term(20), 3);
  await s.close();
  const r = await DiskStorage.open(dir, SMALL);
  t.teardown(() => r.close());
  t.equal(r.snapshot().meta.index, 20);
  t.equal(Buffer.from(r.snapshot().data).toString(), 'leader@20');
  t.equal(r.firstIndex(), 21);
  t.equal(r.lastIndex(), 22);
  t.same(r.initialState().hardState, { term: 3, vote: 0, commit: 20 });
  t.throws(() => r.term(10), CompactedError, 'the stale log is gone');
});

t.test('a snapshot file whose save never completed is discarded at open and reported', async (t) => {
  const dir = await tempDir(t, 'incomplete');
  const s = await DiskStorage.open(dir, SMALL);
  await s.save({ entries: makeEntries(1, 10, 1), hardState: { term: 1, vote: 1, commit: 5 } });
  await s.close();
  // What a crash leaves between writing a received snapshot's file and its WAL record.
  const { writeSnapshotFile } = await import('./snapshot-file.js');
  await writeSnapshotFile(path.join(dir, 'snap'), snap(30, 4));
  const log = collectingLogger();
  const r = await DiskStorage.open(dir, { ...SMALL, logger: log });
  t.teardown(() => r.close());
  t.equal(r.snapshot().meta.index, 0);
  t.equal(r.lastIndex(), 10);
  t.equal(r.openReport.discardedSnapshots.length, 1);
  t.match(log.warns.join('\n'), /above the persisted commit index 5/);
  t.same(await snapshotFiles(dir), []);
});

t.test('a commit-only hard state (mustSync false) is written with the next save or at close', async (t) => {
  const dir = await tempDir(t, 'defer');
  const s = await DiskStorage.open(dir, EXACT);
  await s.save({ entries: makeEntries(1, 4, 1), hardState: { term: 1, vote: 1, commit: 1 } });
  const size = async () => (await fs.stat(path.join(dir, 'wal', (await segmentFiles(dir))[0]!))).size;
  const before = await size();
  await s.save({ entries: [], hardState: { term: 1, vote: 1, commit: 3 }, mustSync: false });
  t.equal(await size(), before, 'nothing written for it');
  t.equal(s.hardState().commit, 3, 'but the storage reports it');
  await s.close();
  const r = await DiskStorage.open(dir, EXACT);
  t.teardown(() => r.close());
  t.equal(r.initialState().hardState.commit, 3, 'close wrote it');
});

t.test('concurrent saves are serialised in call order and merged into fewer records', async (t) => {
  const dir = await tempDir(t, 'concurrent');
  let records = 0;
  const s = await DiskStorage.open(dir, { ...SMALL, onSync: () => records++ });
  const saves: Promise<void>[] = [];
  for (let i = 0; i < 50; i++) saves.push(s.save({ entries: makeEntries(1 + i * 2, 2, 1, 32), hardState: { term: 1, vote: 1, commit: i } }));
  // A truncating save in the middle of the queue: it replaces 91..100 as they are written.
  saves.push(s.save({ entries: makeEntries(91, 3, 2, 32), hardState: { term: 2, vote: 2, commit: 49 } }));
  await Promise.all(saves);
  // All 51 calls were made before the first write finished: the first is written alone, the other
  // 50 queue behind it and go out as one record with one fsync.
  t.equal(records, 2, 'group commit: 51 saves, 2 WAL records');
  t.equal(s.lastIndex(), 93);
  t.same(s.entries(89, 94, Infinity).map((e) => e.term), [1, 1, 2, 2, 2]);
  await s.close();
  const r = await DiskStorage.open(dir, SMALL);
  t.teardown(() => r.close());
  t.equal(r.lastIndex(), 93);
  t.ok(allEntries(r).every(dataMatches));
  t.same(r.initialState().hardState, { term: 2, vote: 2, commit: 49 });
});

t.test('bad input is refused with a clear error and loses nothing', async (t) => {
  const dir = await tempDir(t, 'bad');
  const s = await DiskStorage.open(dir, SMALL);
  await s.save({ entries: makeEntries(1, 5, 2), hardState: { term: 2, vote: 1, commit: 3 } });
  await t.rejects(s.save({ entries: makeEntries(8, 1, 2) }), /gap after the last entry 5/);
  await t.rejects(s.save({ entries: makeEntries(3, 1, 2) }), /overwrite a committed entry/);
  await t.rejects(s.save({ entries: [], hardState: { term: 1, vote: 0, commit: 3 } }), /terms never go back/);
  await t.rejects(s.save({ entries: [...makeEntries(6, 1, 2), ...makeEntries(8, 1, 2)] }), /contiguous/);
  await t.rejects(s.save({ entries: [{ index: 6, term: 0, type: EntryType.Normal, data: new Uint8Array() }] }), /terms are positive/);
  await t.rejects(s.save({ entries: [{ index: 6, term: 2, type: 7 as EntryType, data: new Uint8Array() }] }), /unknown type 7/);
  await t.rejects(s.save({ entries: [{ index: 6, term: 2, type: EntryType.Normal, data: 'x' as unknown as Uint8Array }] }), /Uint8Array/);
  await t.rejects(s.save(undefined as unknown as { entries: [] }), /expected/);
  await t.rejects(s.compact(3), /latest snapshot is at 0/);
  await t.rejects(s.saveSnapshot(undefined as unknown as Snapshot), /meta.index and meta.term must be positive/);
  await t.rejects(s.saveSnapshot({ ...snap(2, 2), data: 'x' as unknown as Uint8Array }), /data must be a Uint8Array/);
  await t.rejects(s.compact(-1), /not a non-negative integer/);
  t.equal(s.lastIndex(), 5);
  await s.save({ entries: makeEntries(6, 1, 2) });
  await s.close();
  const r = await DiskStorage.open(dir, SMALL);
  t.teardown(() => r.close());
  t.equal(r.lastIndex(), 6);
  t.ok(allEntries(r).every(dataMatches));
  await t.rejects(DiskStorage.open(dir, { segmentSizeBytes: 0 }), /segmentSizeBytes must be positive/);
});

t.test('the conf state hint overrides the snapshot conf state', async (t) => {
  const dir = await tempDir(t, 'conf');
  const s = await DiskStorage.open(dir, SMALL);
  await s.save({ entries: makeEntries(1, 3, 1), hardState: { term: 1, vote: 1, commit: 3 } });
  await s.saveSnapshot(snap(2, 1));
  await s.close();
  const hint = { voters: [1, 2, 3, 4], learners: [5], votersOutgoing: [], learnersNext: [], autoLeave: false };
  const r = await DiskStorage.open(dir, { ...SMALL, confState: hint });
  t.teardown(() => r.close());
  t.same(r.initialState().confState, hint);
  const q = await DiskStorage.open(await tempDir(t, 'conf2'), SMALL);
  t.teardown(() => q.close());
  t.same(q.initialState().confState.voters, []);
});

t.test('entry data is stored byte for byte, including large entries', async (t) => {
  const dir = await tempDir(t, 'big');
  const s = await DiskStorage.open(dir, { segmentSizeBytes: 4096 });
  const big = { index: 1, term: 1, type: EntryType.Normal, data: entryData(1, 1, 3_000_000) };
  await s.save({ entries: [big, ...makeEntries(2, 3, 1, 0)] });
  await s.close();
  const r = await DiskStorage.open(dir, { segmentSizeBytes: 4096 });
  t.teardown(() => r.close());
  t.ok(dataMatches(r.entries(1, 2, 1)[0]!));
  t.equal(r.lastIndex(), 4);
});

for (const preallocate of [false, true]) t.test(`a failed write (a full file system, preallocate ${preallocate}) makes the storage refuse further writes; a reopen keeps every acknowledged entry`, async (t) => {
  const { execFileSync } = await import('node:child_process');
  const mnt = await tempDir(t, 'enospc');
  // A real ENOSPC: a 192 KiB tmpfs mounted for this test only.
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=192k', `shoal-raftdisk-${process.pid}`, mnt]);
  t.teardown(() => execFileSync('umount', ['-l', mnt]));
  const opts = { preallocate, segmentSizeBytes: 48 * 1024 };
  const s = await DiskStorage.open(mnt, opts);
  let acked = 0;
  let failure: unknown;
  for (let i = 0; i < 200 && !failure; i++) {
    try {
      await s.save({ entries: makeEntries(acked + 1, 4, 1, 3000), hardState: { term: 1, vote: 1, commit: acked } });
      acked += 4;
    } catch (err) {
      failure = err;
    }
  }
  t.match(failure, { code: 'ENOSPC' }, 'the file system filled up');
  t.ok(acked > 0, `${acked} entries were acknowledged first`);
  await t.rejects(s.save({ entries: makeEntries(acked + 1, 1, 1, 10) }), /unusable after a failed write or fsync .*restart the process/);
  await t.rejects(s.saveSnapshot(snap(1, 1)), /unusable/);
  await s.close();
  await t.rejects(s.save({ entries: [], hardState: { term: 1, vote: 1, commit: 1 } }), /closed/);
  const r = await DiskStorage.open(mnt, opts);
  t.teardown(() => r.close());
  t.equal(r.lastIndex(), acked, 'exactly the acknowledged entries are there');
  t.ok(allEntries(r).every(dataMatches));
  t.comment(`torn tail after ENOSPC: ${JSON.stringify(r.openReport.tornTails)}`);
});

t.test('one process per directory: a second open is refused, a stale lock from a dead process is taken over', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const dir = await tempDir(t, 'lock');
  const s = await DiskStorage.open(dir, SMALL);
  await s.save({ entries: makeEntries(1, 2, 1) });
  await t.rejects(DiskStorage.open(dir, SMALL), { name: 'DirLockedError', message: new RegExp(`in use by process ${process.pid}; stop that process first`) });
  t.equal(s.lastIndex(), 2, 'the refused open changed nothing');
  await s.close();
  // What a SIGKILLed owner leaves behind: a LOCK naming a pid that no longer exists.
  const dead = spawnSync(process.execPath, ['-e', '0']).pid;
  await fs.writeFile(path.join(dir, 'LOCK'), `${dead}\n`);
  const r = await DiskStorage.open(dir, SMALL);
  t.equal(r.lastIndex(), 2);
  t.equal((await fs.readFile(path.join(dir, 'LOCK'), 'utf8')).trim(), String(process.pid), 'the lock is ours now');
  await r.close();
  await t.rejects(fs.stat(path.join(dir, 'LOCK')), { code: 'ENOENT' }, 'close released it');
});

t.test('with preallocation, saves that reach into a zero fill in progress wait for it and are never overwritten', async (t) => {
  const dir = await tempDir(t, 'fillrace');
  const opts = { segmentSizeBytes: 1024 * 1024, preallocate: true };
  const s = await DiskStorage.open(dir, opts);
  let next = 1;
  // Mixed sizes: small saves run inside the filled space, big ones (up to 700 KiB) cross into the
  // stretch being zero-filled, and several segments roll along the way.
  const rnd = (await import('./testkit.js')).prng(99);
  for (let i = 0; i < 60; i++) {
    const big = rnd() < 0.2;
    const count = big ? 1 + Math.floor(rnd() * 6) : 1 + Math.floor(rnd() * 4);
    const size = big ? 100_000 + Math.floor(rnd() * 20_000) : 64 + Math.floor(rnd() * 400);
    await s.save({ entries: makeEntries(next, count, 1, size), hardState: { term: 1, vote: 1, commit: next - 1 } });
    next += count;
  }
  await s.close();
  const files = await segmentFiles(dir);
  t.ok(files.length >= 3, `${files.length} segments`);
  const r = await DiskStorage.open(dir, opts);
  t.teardown(() => r.close());
  t.equal(r.lastIndex(), next - 1);
  t.same(r.openReport.tornTails, []);
  t.ok(allEntries(r).every(dataMatches), 'every entry intact');
});

t.test('each WAL sync mode writes durably; auto starts inline and says which way each record went', async (t) => {
  for (const syncMode of ['inline', 'threadpool', 'auto'] as const) {
    const dir = await tempDir(t, `sync-${syncMode}`);
    const seen: boolean[] = [];
    const s = await DiskStorage.open(dir, { ...SMALL, syncMode, onSync: (i) => seen.push(i.inline) });
    await s.save({ entries: makeEntries(1, 20, 1, 300), hardState: { term: 1, vote: 2, commit: 3 } });
    await Promise.all([
      s.save({ entries: makeEntries(21, 5, 1, 300) }),
      s.save({ entries: makeEntries(26, 5, 1, 300), hardState: { term: 1, vote: 2, commit: 25 } }),
    ]);
    await s.close();
    t.ok(seen.length >= 2, `${syncMode}: records written (${seen.length})`);
    if (syncMode === 'inline') t.ok(seen.every((x) => x), 'inline: every record on the event loop');
    if (syncMode === 'threadpool') t.ok(seen.every((x) => !x), 'threadpool: no record on the event loop');
    // auto's first record has no measurement yet, so it tries inline (later ones depend on the disk).
    if (syncMode === 'auto') t.equal(seen[0], true, 'auto: the first record is written inline');
    const r = await DiskStorage.open(dir, SMALL);
    t.equal(r.lastIndex(), 30, `${syncMode}: all entries back after reopen`);
    const back = allEntries(r);
    t.ok(back.length === 30 && back.every((e, i) => e.index === i + 1 && e.data.length === 300 && dataMatches(e)), `${syncMode}: byte for byte`);
    t.same(r.initialState().hardState, { term: 1, vote: 2, commit: 25 });
    await r.close();
  }
});

t.test('a local snapshot is written alongside saves; close() waits for one in progress', async (t) => {
  const dir = await tempDir(t, 'snap-bg');
  const s = await DiskStorage.open(dir, SMALL);
  await s.save({ entries: makeEntries(1, 10, 1, 100), hardState: { term: 1, vote: 1, commit: 10 } });
  const big: Snapshot = { meta: { index: 10, term: 1, conf }, data: Buffer.alloc(24 << 20, 0x5a) };
  let settled = false;
  const p = s.saveSnapshot(big).then(() => (settled = true));
  // Saves issued while the file is written go on and are durable as usual.
  await s.save({ entries: makeEntries(11, 5, 1, 100), hardState: { term: 1, vote: 1, commit: 15 } });
  await s.close();
  t.ok(settled, 'the snapshot had finished when close() resolved');
  await p;
  t.same((await fs.readdir(path.join(dir, 'snap'))).sort(), ['0000000000000010-0000000000000001.snap'], 'no temp file left, the snapshot is there');
  const r = await DiskStorage.open(dir, SMALL);
  t.equal(r.snapshot().meta.index, 10);
  t.equal(r.snapshot().data.length, 24 << 20);
  t.equal(r.lastIndex(), 15, 'the save made during the snapshot is there');
  await r.close();
});

t.test("the latest snapshot's data is not held in memory: it is read back from its file when wanted", async (t) => {
  // A store of hundreds of MiB must not live twice in a manager (its objects and its snapshot).
  const v8 = await import('node:v8');
  const vm = await import('node:vm');
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const dir = await tempDir(t, 'lazysnap');
  const s = await DiskStorage.open(dir, EXACT);
  t.teardown(() => s.close());
  await s.save({ entries: makeEntries(1, 10, 1, 10), hardState: { term: 1, vote: 1, commit: 10 } });
  const big = 32 << 20;
  const fill = (): Snapshot => ({ meta: { index: 10, term: 1, conf }, data: new Uint8Array(big).fill(7) });
  // Measured against what the process held before (earlier subtests' buffers may not be freed
  // yet): a storage that kept the data would hold the whole 32 MiB more.
  await new Promise((r) => setImmediate(r));
  gc();
  const before = process.memoryUsage().arrayBuffers;
  await s.saveSnapshot(fill());
  await new Promise((r) => setImmediate(r));
  gc();
  const grew = process.memoryUsage().arrayBuffers - before;
  t.ok(grew < big / 2, `after the save, the process holds ${(grew / 2 ** 20).toFixed(1)} MiB more buffers, not the snapshot's ${big >> 20} MiB`);
  t.same(s.snapshotMeta(), { index: 10, term: 1, conf }, 'the meta is at hand without the data');
  const back = s.snapshot();
  t.equal(back.data.length, big, 'the data is read back from the file');
  t.ok(back.data.every((b) => b === 7), 'intact');
  t.equal(s.snapshot().data, back.data, 'while one copy is in use, another caller shares it');
});

t.test('only the newest entries keep their data in memory; older ones are read back from the WAL', async (t) => {
  const dir = await tempDir(t, 'entrycache');
  const opts = { ...EXACT, segmentSizeBytes: 4 * 1024, entryCacheBytes: 2000 };
  const s = await DiskStorage.open(dir, opts);
  // 60 entries of 200 bytes in saves of 3, over several segments.
  for (let i = 0; i < 20; i++) await s.save({ entries: makeEntries(1 + i * 3, 3, 2, 200), hardState: { term: 2, vote: 1, commit: Math.min(i * 3, 5) } });
  t.ok((await segmentFiles(dir)).length >= 3, 'the WAL rolled over several segments');
  const all = s.entries(1, 61, Infinity);
  t.equal(all.length, 60);
  t.ok(all.every(dataMatches), 'every entry comes back with its data, old ones from the WAL');
  t.same(all.map((e) => e.index), Array.from({ length: 60 }, (_, i) => i + 1));
  t.same(s.entries(5, 61, 1000).map((e) => e.index), [5, 6, 7, 8], 'the size limit counts the data that is on disk too');
  // A conflicting append replaces the tail, evicted entries included.
  await s.save({ entries: makeEntries(10, 5, 3, 300), hardState: { term: 3, vote: 1, commit: 9 } });
  t.equal(s.lastIndex(), 14);
  const after = s.entries(1, 15, Infinity);
  t.ok(after.every(dataMatches), 'after the conflict every entry still reads back');
  t.same(after.map((e) => e.term), [...Array(9).fill(2), ...Array(5).fill(3)]);
  await s.close();
  // Reopened: the replay keeps only the newest data, and reads the rest back the same way.
  const r = await DiskStorage.open(dir, opts);
  t.teardown(() => r.close());
  const back = r.entries(1, 15, Infinity);
  t.ok(back.every(dataMatches), 'after a reopen too');
  t.same(back.map((e) => `${e.index}/${e.term}`), after.map((e) => `${e.index}/${e.term}`));
  // Compaction drops the old segments; the entries left still read back.
  await r.save({ entries: makeEntries(15, 30, 3, 300), hardState: { term: 3, vote: 1, commit: 40 } });
  await r.saveSnapshot({ meta: { index: 40, term: 3, conf }, data: new Uint8Array([1]) });
  await r.compact(35);
  t.ok(r.entries(36, 45, Infinity).every(dataMatches), 'entries past the compaction point read back');
});
