// The configuration a node would campaign with, for the "commit is final" check (commit-check.ts).
//
// The core switches configuration when the host applies a ConfChange entry (etcd's apply-time
// rule) and refuses to campaign while a committed ConfChange is not applied yet
// (Raft.hasUnappliedConfChanges, on every path to a campaign, MsgTimeoutNow included). So before
// a node can campaign it first reaches the configuration of its *commit* index, not of its applied
// index. Which commit index depends on the log the candidate would run with:
//  - the log in memory: the in-memory commit index;
//  - the log on disk (after a crash): the commit index on disk. A commit-only hard state is not
//    fsynced (raft/storage, sim-disk.ts), so that one can be older than the one in memory.
// Pairing a log with the applied configuration instead over-approximates: a node holding
// committed, unapplied conf changes in memory was taken to campaign in the configuration from
// before them (FINDINGS.md #4).
import { decodeConfChange } from '../core/index.js';
import { applyChange } from '../core/confchange.js';
import { Progress } from '../core/progress.js';
import { configFromConfState, toConfState, type CoreConfState } from '../core/tracker.js';
import { EntryType, type ConfState, type Entry, type NodeId } from '../types.js';

/** `base` with every ConfChange entry of `entries` applied in order (entries after base's index). */
export function confAfter(base: ConfState, entries: Entry[]): ConfState {
  let config = configFromConfState(base as CoreConfState);
  let progress = new Map<NodeId, Progress>();
  // Only membership matters here; the progress map is what applyChange works on besides.
  for (const id of [...config.incoming, ...config.outgoing]) progress.set(id, new Progress(0, 1, 1, false));
  for (const id of config.learners) progress.set(id, new Progress(0, 1, 1, true));
  for (const e of entries) {
    if (e.type !== EntryType.ConfChange) continue;
    ({ config, progress } = applyChange(config, progress, decodeConfChange(e.data), { lastIndex: e.index, maxInflight: 1 }));
  }
  return toConfState(config);
}
