// MemoryStorage: etcd's dummy-entry convention, truncation on append, snapshots and compaction,
// clone for crash simulation, and clear errors for misuse.
import t from 'tap';
import { CompactedError, EntryType, UnavailableError, emptyConfState } from '../types.js';
import { MemoryStorage, SnapshotOutOfDateError } from './memory-storage.js';

const e = (index: number, term: number, data = '') => ({ index, term, type: EntryType.Normal, data: new TextEncoder().encode(data) });

t.test('append, term, entries and the size limit', (t) => {
  const s = new MemoryStorage();
  t.equal(s.firstIndex(), 1);
  t.equal(s.lastIndex(), 0);
  t.equal(s.term(0), 0, 'the dummy entry');
  t.throws(() => s.term(1), UnavailableError);
  s.append([e(1, 1, 'a'), e(2, 1, 'b'), e(3, 2, 'c')]);
  t.equal(s.lastIndex(), 3);
  t.equal(s.term(3), 2);
  t.same(s.entries(1, 4, Infinity).map((x) => x.index), [1, 2, 3]);
  t.same(s.entries(1, 4, 0).map((x) => x.index), [1], 'at least one entry whatever the limit');
  t.same(s.entries(1, 4, 2 * 17).map((x) => x.index), [1, 2], 'two 17-byte entries fit 34 bytes');
  t.throws(() => s.entries(2, 9, Infinity), /beyond lastIndex/);
  s.append([e(2, 3, 'B')]);
  t.equal(s.lastIndex(), 2, 'an entry at index 2 replaced everything from 2 on');
  t.equal(s.term(2), 3);
  t.throws(() => s.append([e(5, 3)]), /gap/, 'a gap is refused');
  t.end();
});

t.test('snapshots and compaction', (t) => {
  const s = new MemoryStorage();
  s.append([e(1, 1), e(2, 1), e(3, 2), e(4, 2), e(5, 2)]);
  const conf = { ...emptyConfState(), voters: [1, 2, 3] };
  t.throws(() => s.compact(3), /createSnapshot first/, 'compacting beyond the snapshot is refused');
  const snap = s.createSnapshot(4, conf, new Uint8Array([7]));
  t.same(snap.meta, { index: 4, term: 2, conf });
  s.compact(4);
  t.equal(s.firstIndex(), 5);
  t.equal(s.term(4), 2, 'the compacted index keeps its term as the dummy');
  t.throws(() => s.term(3), CompactedError);
  t.throws(() => s.entries(4, 5, Infinity), CompactedError);
  t.throws(() => s.compact(4), CompactedError, 'compacting twice');
  t.throws(() => s.createSnapshot(3, conf, new Uint8Array()), SnapshotOutOfDateError);
  t.same(s.initialState().confState, conf, 'the snapshot\'s config is the initial config');
  s.append([e(2, 1)]); // entirely compacted: ignored
  t.equal(s.lastIndex(), 5);
  const other = new MemoryStorage();
  other.applySnapshot(snap);
  t.equal(other.firstIndex(), 5);
  t.equal(other.lastIndex(), 4);
  t.throws(() => other.applySnapshot(snap), SnapshotOutOfDateError, 'an older-or-equal snapshot is refused');
  t.end();
});

t.test('clone is independent (a crash keeps only what was persisted)', (t) => {
  const s = new MemoryStorage();
  s.append([e(1, 1)]);
  s.setHardState({ term: 1, vote: 2, commit: 1 });
  const c = s.clone();
  s.append([e(2, 1)]);
  s.setHardState({ term: 2, vote: 0, commit: 2 });
  t.equal(c.lastIndex(), 1);
  t.same(c.hardState(), { term: 1, vote: 2, commit: 1 });
  t.end();
});
