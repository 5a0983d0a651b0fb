// Disaster recovery's raft side: the committed state a manager holds on its disk, and a new raft
// group started from a store's contents with this manager as its only voter. Used by
// `shoald --force-new-cluster` (a survivor of a lost majority keeps its data) and
// `shoald --restore FILE` (a new single-manager cluster from a backup). The old raft data is kept
// beside the new one (renamed, never deleted), so nothing is lost if the operator chose wrongly.
import { existsSync, renameSync } from 'node:fs';
import { DiskStorage } from '../../raft/storage/index.js';
import { EntryType, type ConfState } from '../../raft/types.js';
import { encodeSnapshot } from '../store/codec.js';
import { ObjectStore } from '../store/store.js';

export interface StoreState {
  /** The encoded store (a raft snapshot's data). */
  data: Uint8Array;
  /** The raft index the store has applied, and the term of the log the state came from. */
  index: number;
  term: number;
}

/**
 * What a manager's raft data on disk holds as committed: the latest snapshot and every entry up
 * to the commit index it recorded. Entries past it were never acknowledged to anyone; they go.
 */
export async function committedState(raftDir: string): Promise<StoreState> {
  const storage = await DiskStorage.open(raftDir);
  try {
    const store = new ObjectStore();
    const snap = storage.snapshot();
    if (snap.meta.index > 0) store.restore(snap.data);
    const commit = Math.min(storage.initialState().hardState.commit, storage.lastIndex());
    let term = snap.meta.term;
    for (let i = snap.meta.index + 1; i <= commit; ) {
      const batch = storage.entries(i, commit + 1, 64 << 20);
      if (batch.length === 0) break;
      for (const e of batch) {
        if (e.type === EntryType.Normal && e.data.length > 0) store.applyEntry(e.index, e.data);
        else store.skip(e.index);
        term = e.term;
        i = e.index + 1;
      }
    }
    if (store.applied === 0) throw new Error(`${raftDir} holds no committed state (an empty raft log): nothing to start a new cluster from`);
    return { data: encodeSnapshot(store.snapshotView()), index: store.applied, term: Math.max(term, storage.initialState().hardState.term) };
  } finally {
    await storage.close();
  }
}

/**
 * Starts a new raft group in `raftDir` from `state`: one voter (`raftId`), a term above any the
 * old group used, the store as its first snapshot. An existing raft directory is renamed aside.
 */
export async function startNewGroup(raftDir: string, raftId: number, state: StoreState, reason: string): Promise<string | undefined> {
  let kept: string | undefined;
  if (existsSync(raftDir)) {
    kept = `${raftDir}.before-${reason}-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    renameSync(raftDir, kept);
  }
  const storage = await DiskStorage.open(raftDir);
  try {
    const conf: ConfState = { voters: [raftId], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
    const term = state.term + 1;
    await storage.save({ snapshot: { meta: { index: state.index, term, conf }, data: state.data }, hardState: { term, vote: 0, commit: state.index }, entries: [], mustSync: true });
  } finally {
    await storage.close();
  }
  return kept;
}
