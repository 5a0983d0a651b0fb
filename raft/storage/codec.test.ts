import t from 'tap';
import { EntryType } from '../types.js';
import { CorruptDataError, Reader, Writer } from './binary.js';
import { findIntactRecordAfter, frameRecord, readRecordAt, recordWriter, RecordType } from './record.js';
import { decodeSnapshotFile, encodeSnapshotFile } from './snapshot-file.js';
import { entryData } from './testkit.js';
import { batchSizeBound, decodeBatch, encodeBatch, type Batch } from './wal-codec.js';

t.test('varints round-trip up to 2^53 - 1 and reject negatives', async (t) => {
  const values = [0, 1, 127, 128, 16383, 16384, 2 ** 31, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER];
  const w = new Writer(100);
  for (const v of values) w.varint(v);
  const r = new Reader(w.buf, 0, w.pos);
  t.same(values.map(() => r.varint()), values);
  t.throws(() => new Writer(10).varint(-1), RangeError);
  t.throws(() => new Writer(10).varint(1.5), RangeError);
  t.throws(() => new Reader(Buffer.from([0x80, 0x80])).varint(), CorruptDataError);
});

t.test('a batch round-trips: snapshot mark, entries of both types, hard state', async (t) => {
  const b: Batch = {
    snapshot: { index: 40, term: 3, reset: true },
    entries: [
      { index: 41, term: 3, type: EntryType.Normal, data: entryData(41, 3, 256) },
      { index: 42, term: 4, type: EntryType.ConfChange, data: new Uint8Array([1, 2, 3]) },
      { index: 43, term: 4, type: EntryType.Normal, data: new Uint8Array(0) },
    ],
    hardState: { term: 4, vote: 2, commit: 42 },
  };
  const w = recordWriter(batchSizeBound(b));
  encodeBatch(w, b);
  const rec = frameRecord(w, RecordType.Batch);
  const r = readRecordAt(rec, 0);
  t.ok(r.ok);
  if (!r.ok) return;
  t.equal(r.type, RecordType.Batch);
  t.equal(r.next, rec.length);
  const d = decodeBatch(rec, r.payloadStart, r.payloadEnd);
  t.same(d.snapshot, b.snapshot);
  t.same(d.hardState, b.hardState);
  t.same(d.entries.map((e) => [e.index, e.term, e.type, Buffer.from(e.data).toString('hex')]), b.entries.map((e) => [e.index, e.term, e.type, Buffer.from(e.data).toString('hex')]));
  const empty = recordWriter(batchSizeBound({ entries: [] }));
  encodeBatch(empty, { entries: [] });
  const e2 = frameRecord(empty, RecordType.Batch);
  const r2 = readRecordAt(e2, 0);
  t.ok(r2.ok && decodeBatch(e2, r2.payloadStart, r2.payloadEnd).hardState === undefined);
});

t.test('record framing catches every damaged byte and names the reason', async (t) => {
  const w = recordWriter(200);
  encodeBatch(w, { entries: [{ index: 1, term: 1, type: EntryType.Normal, data: entryData(1, 1, 100) }] });
  const rec = Buffer.from(frameRecord(w, RecordType.Batch));
  let accepted = 0;
  for (let i = 0; i < rec.length; i++) {
    for (const x of [0x01, 0x80, 0xff]) {
      rec[i] ^= x;
      if (readRecordAt(rec, 0).ok) accepted++;
      rec[i] ^= x;
    }
  }
  t.equal(accepted, 0, 'no flipped byte yields a valid record');
  const short = readRecordAt(rec.subarray(0, 5), 0);
  t.match(short, { ok: false, reason: /short header/ });
  const cut = readRecordAt(rec.subarray(0, rec.length - 1), 0);
  t.match(cut, { ok: false, reason: /short payload/ });
  t.match(readRecordAt(Buffer.alloc(30), 0), { ok: false, reason: /30 trailing zero bytes/ });
  const two = Buffer.concat([Buffer.from('garbage!!'), rec]);
  t.equal(findIntactRecordAfter(two, 0), 9, 'finds the intact record after garbage');
  t.equal(findIntactRecordAfter(rec, 0), -1, 'nothing intact after the start of the only record');
});

t.test('snapshot files round-trip and any damage is detected', async (t) => {
  const s = {
    meta: { index: 12345, term: 7, conf: { voters: [1, 2, 3], learners: [9], votersOutgoing: [1, 2, 4], learnersNext: [4], autoLeave: true } },
    data: entryData(5, 5, 1000),
  };
  const buf = encodeSnapshotFile(s);
  const back = decodeSnapshotFile(buf);
  t.same(back.meta, s.meta);
  t.same(Buffer.from(back.data), Buffer.from(s.data));
  let accepted = 0;
  for (let i = 0; i < buf.length; i += 7) {
    buf[i] ^= 0x10;
    try {
      decodeSnapshotFile(buf);
      accepted++;
    } catch (err) {
      if (!(err instanceof CorruptDataError)) throw err;
    }
    buf[i] ^= 0x10;
  }
  t.equal(accepted, 0);
  t.throws(() => decodeSnapshotFile(buf.subarray(0, buf.length - 3)), CorruptDataError);
  t.notOk('removed' in back.meta.conf, 'no removed list unless one was given');
  // raft/core's CoreConfState adds the ids removed from the cluster; they must survive.
  const withRemoved = { ...s, meta: { ...s.meta, conf: { ...s.meta.conf, removed: [5, 6] } } };
  t.same(decodeSnapshotFile(encodeSnapshotFile(withRemoved)).meta.conf, withRemoved.meta.conf);
  const emptyRemoved = { ...s, meta: { ...s.meta, conf: { ...s.meta.conf, removed: [] } } };
  t.same(decodeSnapshotFile(encodeSnapshotFile(emptyRemoved)).meta.conf, emptyRemoved.meta.conf);
});
