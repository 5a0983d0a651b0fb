// Defaults for shoal's Raft storage and for the caller's snapshot policy (DESIGN.md §7: "snapshot
// every 10,000 entries, keep 5,000 for slow followers", as etcd's SnapshotCount /
// SnapshotCatchUpEntries). The policy itself lives with the caller (the manager); storage only
// exports the numbers so every part uses the same ones.

/** Take a snapshot once this many entries were applied since the last one. */
export const SNAPSHOT_EVERY_ENTRIES = 10_000;

/** After a snapshot at index S, call compact(S - SNAPSHOT_CATCHUP_ENTRIES) so slow followers can still catch up from the log. */
export const SNAPSHOT_CATCHUP_ENTRIES = 5_000;

/** A WAL segment is closed and a new one started once it reaches this size (etcd uses 64 MB too). */
export const SEGMENT_SIZE_BYTES = 64 * 1024 * 1024;

/** Snapshot files kept on disk: the newest plus one to fall back to if the newest is corrupt. */
export const SNAPSHOTS_KEPT = 2;

/** The largest WAL record accepted when reading; a length field above it is treated as corruption. */
export const MAX_RECORD_BYTES = 512 * 1024 * 1024;

export const STORAGE_DEFAULTS = {
  snapshotEveryEntries: SNAPSHOT_EVERY_ENTRIES,
  snapshotCatchUpEntries: SNAPSHOT_CATCHUP_ENTRIES,
  segmentSizeBytes: SEGMENT_SIZE_BYTES,
  snapshotsKept: SNAPSHOTS_KEPT,
} as const;

/** Entry data kept in memory for the newest entries; older data is read back from the WAL. */
export const ENTRY_CACHE_BYTES = 16 * 1024 * 1024;
