// Damaged files at open: a torn tail is cut off and reported (keeping every record before it);
// damage anywhere else stops open with an error naming the file and byte offset; nothing damaged
// is ever accepted as data.

import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { DiskStorage, type DiskStorageOptions } from './disk-storage.js';
import { readRecordAt } from './record.js';
import { writeSnapshotFile } from './snapshot-file.js';
import { copyDir, dataMatches, makeEntries, prng, segmentFiles, snapshotFiles, tempDir } from './testkit.js';
import { WalCorruptError } from './wal.js';

const BATCHES = 12;
const PER_BATCH = 3;

/** The two layouts: files that grow with each write, and segments zero-filled up front. */
const MODES = {
  exact: { preallocate: false },
  preallocated: { preallocate: true, segmentSizeBytes: 64 * 1024 },
} as const;
type Mode = keyof typeof MODES;

/** Record boundaries of a segment file: the end offset of the header and of each record after it. */
async function recordEnds(file: string): Promise<number[]> {
  const buf = await fs.readFile(file);
  const ends: number[] = [];
  for (let off = 0; off < buf.length; ) {
    const r = readRecordAt(buf, off);
    if (!r.ok) break;
    ends.push(r.next);
    off = r.next;
  }
  return ends;
}

/** One segment: header, then BATCHES batches. Returns the record boundaries (end offset of header and of each batch). */
async function buildSingleSegment(dir: string, mode: Mode = 'exact'): Promise<{ file: string; ends: number[]; size: number }> {
  const s = await DiskStorage.open(dir, MODES[mode]);
  const file = path.join(dir, 'wal', (await segmentFiles(dir))[0]!);
  for (let b = 0; b < BATCHES; b++) {
    await s.save({ entries: makeEntries(1 + b * PER_BATCH, PER_BATCH, 1, 50 + b * 7), hardState: { term: 1, vote: 1, commit: b * PER_BATCH } });
  }
  await s.close();
  const ends = await recordEnds(file);
  if (ends.length !== BATCHES + 1) throw new Error(`expected ${BATCHES + 1} records in ${file}, found ${ends.length}`);
  return { file, ends, size: (await fs.stat(file)).size };
}

function batchesBefore(ends: number[], cut: number): number {
  let n = 0;
  for (let b = 1; b < ends.length; b++) if (ends[b]! <= cut) n = b;
  return n;
}

async function openCopy(src: string, work: string, damage: (walDir: string) => Promise<void>, opts: DiskStorageOptions = MODES.exact) {
  await copyDir(src, work);
  await damage(path.join(work, 'wal'));
  return DiskStorage.open(work, opts);
}


for (const mode of Object.keys(MODES) as Mode[]) {
  t.test(`${mode}: a file cut at any offset keeps every record before the cut and reports the torn rest`, async (t) => {
    const base = await tempDir(t, 'cut');
    const src = path.join(base, 'src');
    const { file, ends, size } = await buildSingleSegment(src, mode);
    const name = path.basename(file);
    const used = ends[ends.length - 1]!;
    const rnd = prng(0xc07);
    const cuts = new Set<number>([1, 5, 9, ends[0]!, ends[0]! + 4, ends[3]!, ends[3]! + 1, used - 1]);
    while (cuts.size < 40) cuts.add(1 + Math.floor(rnd() * (used - 1)));
    // In a preallocated segment, also cuts inside the zero-filled rest: still a clean end.
    if (size > used) for (const c of [used + 1, used + 100, size - 1]) cuts.add(c);
    let checked = 0;
    for (const cut of cuts) {
      const work = path.join(base, 'work');
      const s = await openCopy(src, work, (w) => fs.truncate(path.join(w, name), cut), MODES[mode]);
      const kept = batchesBefore(ends, cut);
      const clean = ends.includes(cut) || cut > used;
      const tornAt = cut < ends[0]! ? 0 : ends[kept]!;
      const ok =
        s.lastIndex() === kept * PER_BATCH &&
        (s.lastIndex() === 0 || s.entries(1, s.lastIndex() + 1, Infinity).every(dataMatches)) &&
        s.openReport.tornTails.length === (clean ? 0 : 1) &&
        (clean || s.openReport.tornTails[0]!.offset === tornAt);
      if (!ok) t.fail(`cut at ${cut}: lastIndex ${s.lastIndex()} (want ${kept * PER_BATCH}), report ${JSON.stringify(s.openReport.tornTails)}`);
      else checked++;
      // The repaired WAL takes new writes and reopens cleanly.
      await s.save({ entries: makeEntries(s.lastIndex() + 1, 1, 1) });
      await s.close();
      const again = await DiskStorage.open(work, MODES[mode]);
      if (again.lastIndex() !== kept * PER_BATCH + 1 || again.openReport.tornTails.length !== 0) t.fail(`cut at ${cut}: reopen after repair gave ${again.lastIndex()}`);
      await again.close();
    }
    t.equal(checked, cuts.size, `${cuts.size} cuts`);
  });

  t.test(`${mode}: a flipped byte in the final record is a torn write; anywhere earlier it stops open with file and offset`, async (t) => {
    const base = await tempDir(t, 'flip');
    const src = path.join(base, 'src');
    const { file, ends, size } = await buildSingleSegment(src, mode);
    const name = path.basename(file);
    const used = ends[ends.length - 1]!;
    const lastStart = ends[ends.length - 2]!;
    const rnd = prng(0xf11b);
    const spots = new Set<number>([0, 4, 5, 8, ends[0]!, ends[0]! + 4, lastStart, lastStart + 1, lastStart + 4, lastStart + 8, used - 1]);
    while (spots.size < 60) spots.add(Math.floor(rnd() * used));
    // In a preallocated segment, a stray byte in the zero-filled rest is a torn write after the last record.
    if (size > used) for (const p of [used, used + 9, used + 500, size - 1]) spots.add(p);
    let tornOk = 0;
    let refusedOk = 0;
    for (const p of spots) {
      const work = path.join(base, 'work');
      const flip = 1 + Math.floor(rnd() * 255);
      const damage = async (w: string) => {
        const f = path.join(w, name);
        const b = await fs.readFile(f);
        b[p] ^= flip;
        await fs.writeFile(f, b);
      };
      // The record holding byte p starts at the greatest boundary <= p (offset 0 for the header).
      const recStart = [0, ...ends].filter((e) => e <= p).pop()!;
      if (p >= lastStart) {
        const s = await openCopy(src, work, damage, MODES[mode]);
        const torn = s.openReport.tornTails;
        const wantLast = p >= used ? BATCHES * PER_BATCH : (BATCHES - 1) * PER_BATCH;
        const wantAt = p >= used ? used : lastStart;
        if (s.lastIndex() === wantLast && torn.length === 1 && torn[0]!.offset === wantAt && s.entries(1, s.lastIndex() + 1, Infinity).every(dataMatches)) tornOk++;
        else t.fail(`flip at ${p}: lastIndex ${s.lastIndex()}, torn ${JSON.stringify(torn)}`);
        await s.close();
      } else {
        try {
          const s = await openCopy(src, work, damage, MODES[mode]);
          await s.close();
          t.fail(`flip at ${p} (record at ${recStart}) was accepted`);
        } catch (err) {
          if (err instanceof WalCorruptError && err.offset === recStart && err.message.includes(`${name} at byte offset ${recStart}`) && /rejoin/.test(err.message)) refusedOk++;
          else t.fail(`flip at ${p}: unexpected error ${String(err)}`);
        }
      }
    }
    t.equal(tornOk + refusedOk, spots.size, `${tornOk} torn-tail repairs, ${refusedOk} refusals`);
    t.ok(tornOk >= 5 && refusedOk >= 20, 'both kinds were exercised');
  });
}

t.test('a preallocated segment: its zero-filled rest is the clean end, and writes continue after the last record', async (t) => {
  const base = await tempDir(t, 'prealloc');
  const { file, ends, size } = await buildSingleSegment(base, 'preallocated');
  t.ok(size > ends[ends.length - 1]! + 1024, `the segment was zero-filled ahead of its last record (${size} bytes)`);
  t.ok((await fs.readFile(file)).subarray(ends[ends.length - 1]!).every((b) => b === 0), 'with zeros');
  const s = await DiskStorage.open(base, MODES.preallocated);
  t.same(s.openReport.tornTails, [], 'no torn tail reported');
  t.equal(s.lastIndex(), BATCHES * PER_BATCH);
  await s.save({ entries: makeEntries(BATCHES * PER_BATCH + 1, 2, 1) });
  await s.close();
  t.equal((await fs.stat(file)).size, size, 'the file did not grow');
  const after = await recordEnds(file);
  t.same(after.slice(0, ends.length), ends, 'the old records are untouched');
  t.equal(after.length, ends.length + 1, 'the new record follows the last one');
  const r = await DiskStorage.open(base, MODES.preallocated);
  t.teardown(() => r.close());
  t.equal(r.lastIndex(), BATCHES * PER_BATCH + 2);
  t.ok(r.entries(1, r.lastIndex() + 1, Infinity).every(dataMatches));
});

t.test('preallocated segments roll: the finished one is cut to its used length', async (t) => {
  const dir = await tempDir(t, 'prealloc-roll');
  const opts = { preallocate: true, segmentSizeBytes: 8 * 1024 };
  const s = await DiskStorage.open(dir, opts);
  for (let b = 0; b < 40; b++) await s.save({ entries: makeEntries(1 + b * 5, 5, 1, 200), hardState: { term: 1, vote: 1, commit: b * 5 } });
  const files = await segmentFiles(dir);
  t.ok(files.length >= 4, `${files.length} segments`);
  const wal = (f: string) => path.join(dir, 'wal', f);
  for (const f of files.slice(0, -1)) {
    const ends = await recordEnds(wal(f));
    t.equal((await fs.stat(wal(f))).size, ends[ends.length - 1], `${f} ends exactly at its last record`);
  }
  await s.close();
  const r = await DiskStorage.open(dir, opts);
  t.teardown(() => r.close());
  t.equal(r.lastIndex(), 200);
  t.same(r.openReport.tornTails, []);
  t.ok(r.entries(1, 201, Infinity).every(dataMatches));
});

t.test('trailing zeros after the last record are cut and reported', async (t) => {
  const base = await tempDir(t, 'zeros');
  const src = path.join(base, 'src');
  const { file, ends } = await buildSingleSegment(src);
  const s = await openCopy(src, path.join(base, 'work'), (w) => fs.appendFile(path.join(w, path.basename(file)), Buffer.alloc(4096)));
  t.teardown(() => s.close());
  t.equal(s.lastIndex(), BATCHES * PER_BATCH);
  t.match(s.openReport.tornTails, [{ offset: ends[ends.length - 1], droppedBytes: 4096, reason: /trailing zero/ }]);
});

t.test('megabytes of arbitrary bytes after the last record are a torn tail, cut and reported', async (t) => {
  const base = await tempDir(t, 'garbage');
  const src = path.join(base, 'src');
  const { file, ends } = await buildSingleSegment(src);
  const rnd = prng(4242);
  const junk = Buffer.alloc(8 * 1024 * 1024);
  for (let i = 0; i < junk.length; i += 4) junk.writeUInt32LE(Math.floor(rnd() * 2 ** 32), i);
  const s = await openCopy(src, path.join(base, 'work'), (w) => fs.appendFile(path.join(w, path.basename(file)), junk));
  t.teardown(() => s.close());
  t.equal(s.lastIndex(), BATCHES * PER_BATCH);
  t.ok(s.entries(1, s.lastIndex() + 1, Infinity).every(dataMatches));
  t.match(s.openReport.tornTails, [{ offset: ends[ends.length - 1], droppedBytes: junk.length }]);
});

async function buildSegments(dir: string, preallocate = true): Promise<string[]> {
  const s = await DiskStorage.open(dir, { segmentSizeBytes: 700, preallocate });
  for (let b = 0; b < 20; b++) await s.save({ entries: makeEntries(1 + b * 4, 4, 1, 40), hardState: { term: 1, vote: 1, commit: b * 4 } });
  await s.close();
  return segmentFiles(dir);
}

t.test('damage in a segment that is not the last one stops open, naming the file and offset', async (t) => {
  const base = await tempDir(t, 'midseg');
  const src = path.join(base, 'src');
  const files = await buildSegments(src);
  t.ok(files.length >= 4);
  const victim = files[1]!;
  const size = (await fs.stat(path.join(src, 'wal', victim))).size;
  const rnd = prng(77);
  for (let i = 0; i < 15; i++) {
    const p = Math.floor(rnd() * size);
    const err = await openCopy(src, path.join(base, 'work'), async (w) => {
      const b = await fs.readFile(path.join(w, victim));
      b[p] ^= 0x5a;
      await fs.writeFile(path.join(w, victim), b);
    }).then(
      async (s) => (await s.close(), undefined),
      (e: unknown) => e,
    );
    t.ok(err instanceof WalCorruptError && err.file.endsWith(victim) && err.offset <= p && /not the last one/.test(err.message), `flip at ${p}: ${String(err)}`);
  }
  const cut = Math.floor(size / 2);
  const err = await openCopy(src, path.join(base, 'work'), (w) => fs.truncate(path.join(w, victim), cut)).catch((e: unknown) => e);
  t.ok(err instanceof WalCorruptError && err.file.endsWith(victim), `a truncated middle segment is refused: ${String(err)}`);
});

t.test('a missing segment (a gap in the WAL) stops open', async (t) => {
  const base = await tempDir(t, 'gap');
  const src = path.join(base, 'src');
  const files = await buildSegments(src);
  await t.rejects(openCopy(src, path.join(base, 'w1'), (w) => fs.rm(path.join(w, files[2]!))), /segment 3 is missing/);
  // Renamed so the sequence looks complete, but the indexes do not join up.
  await t.rejects(
    openCopy(src, path.join(base, 'w2'), async (w) => {
      await fs.rm(path.join(w, files[files.length - 1]!));
      await fs.rm(path.join(w, files[1]!));
      await fs.rename(path.join(w, files[files.length - 2]!), path.join(w, files[1]!));
    }),
    WalCorruptError,
  );
});

t.test('a segment whose creation was torn is removed; leftover temp files are removed', async (t) => {
  const base = await tempDir(t, 'torn-create');
  const src = path.join(base, 'src');
  const files = await buildSegments(src, false);
  const last = files[files.length - 1]!;
  const nextSeq = Number(last.slice(0, 16)) + 1;
  const s = await openCopy(src, path.join(base, 'work'), async (w) => {
    const header = (await fs.readFile(path.join(w, last))).subarray(0, 6);
    await fs.writeFile(path.join(w, `${String(nextSeq).padStart(16, '0')}-0000000000000081.wal`), header);
    await fs.writeFile(path.join(w, 'junk.wal.tmp'), 'x');
    await fs.writeFile(path.join(w, '..', 'snap', '0000000000000009-0000000000000001.snap.tmp'), 'x');
  });
  t.teardown(() => s.close());
  t.equal(s.lastIndex(), 80);
  t.match(s.openReport.tornTails, [{ removedFile: true, offset: 0 }]);
  t.same(s.openReport.removedTempFiles.sort(), ['0000000000000009-0000000000000001.snap.tmp', 'junk.wal.tmp']);
  t.same(await segmentFiles(path.join(base, 'work')), files);

  // The same with an empty file: the crash came right after the file was created.
  const e = await openCopy(src, path.join(base, 'work2'), (w) =>
    fs.writeFile(path.join(w, `${String(nextSeq).padStart(16, '0')}-0000000000000081.wal`), ''),
  );
  t.equal(e.lastIndex(), 80);
  t.match(e.openReport.tornTails, [{ removedFile: true, offset: 0, reason: /empty segment file/ }]);
  await e.save({ entries: makeEntries(81, 1, 1) });
  await e.close();
  const e2 = await DiskStorage.open(path.join(base, 'work2'), MODES.exact);
  t.equal(e2.lastIndex(), 81);
  await e2.close();
  // An empty segment before the last one is not a crash artefact.
  await t.rejects(
    openCopy(src, path.join(base, 'work3'), (w) => fs.truncate(path.join(w, files[1]!), 0)),
    /is empty, but it is not the last one/,
  );
});

t.test('a corrupt newest snapshot falls back to the previous one only if the WAL covers it', async (t) => {
  const base = await tempDir(t, 'snapcorrupt');
  const src = path.join(base, 'src');
  const conf = { voters: [1], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
  const s = await DiskStorage.open(src, { segmentSizeBytes: 700 });
  for (let b = 0; b < 20; b++) await s.save({ entries: makeEntries(1 + b * 4, 4, 1, 40), hardState: { term: 1, vote: 1, commit: (b + 1) * 4 } });
  await s.saveSnapshot({ meta: { index: 30, term: 1, conf }, data: Buffer.from('at 30') });
  await s.saveSnapshot({ meta: { index: 60, term: 1, conf }, data: Buffer.from('at 60') });
  await s.close();
  const snaps = await snapshotFiles(src);
  t.same(snaps, ['0000000000000030-0000000000000001.snap', '0000000000000060-0000000000000001.snap']);
  const corruptNewest = async (w: string) => {
    const f = path.join(w, '..', 'snap', snaps[1]!);
    const b = await fs.readFile(f);
    b[b.length - 6] ^= 1;
    await fs.writeFile(f, b);
  };

  const r = await openCopy(src, path.join(base, 'w1'), corruptNewest);
  t.equal(r.snapshot().meta.index, 30);
  t.equal(Buffer.from(r.snapshot().data).toString(), 'at 30');
  t.equal(r.lastIndex(), 80);
  t.match(r.openReport.corruptSnapshots, [{ file: new RegExp(snaps[1]!), reason: /checksum mismatch/ }]);
  await r.close();

  // Once compaction deleted the WAL after snapshot 30, there is nothing to fall back on.
  const c = await DiskStorage.open(src, { segmentSizeBytes: 700 });
  await c.compact(55);
  await c.close();
  const err = await openCopy(src, path.join(base, 'w2'), corruptNewest).catch((e: unknown) => e);
  t.ok(err instanceof Error && err.message.includes(snaps[1]!) && /checksum mismatch/.test(err.message) && /does not hold every entry after index 30/.test(err.message), String(err));

  // With every snapshot corrupt and a WAL that starts at index 1, the log alone is enough.
  const d = path.join(base, 'single');
  const one = await DiskStorage.open(d, MODES.exact);
  await one.save({ entries: makeEntries(1, 5, 1), hardState: { term: 1, vote: 1, commit: 5 } });
  await one.saveSnapshot({ meta: { index: 3, term: 1, conf }, data: Buffer.from('x') });
  await one.close();
  const f = path.join(d, 'snap', (await snapshotFiles(d))[0]!);
  await fs.writeFile(f, Buffer.from('not a snapshot at all'));
  const back = await DiskStorage.open(d, MODES.exact);
  t.teardown(() => back.close());
  t.equal(back.snapshot().meta.index, 0);
  t.equal(back.lastIndex(), 5);
  t.equal(back.openReport.corruptSnapshots.length, 1);
});

t.test('a snapshot that does not fit the WAL is refused', async (t) => {
  const dir = await tempDir(t, 'misfit');
  const s = await DiskStorage.open(dir, MODES.exact);
  await s.save({ entries: makeEntries(1, 5, 2), hardState: { term: 2, vote: 1, commit: 5 } });
  await s.close();
  const conf = { voters: [1], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
  await writeSnapshotFile(path.join(dir, 'snap'), { meta: { index: 4, term: 9, conf }, data: new Uint8Array(1) });
  await t.rejects(DiskStorage.open(dir, MODES.exact), /with term 2 at index 4 but the snapshot is at index 4 term 9/);
});
