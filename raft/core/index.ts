// shoal's Raft core: a pure, deterministic Raft state machine (see rawnode.ts for the host loop).
export { DEFAULTS, type RaftConfig } from './config.js';
export { RawNode, type CoreReady } from './rawnode.js';
export { Raft, type Status, type ProgressStatus, type DroppedRead } from './raft.js';
export { MemoryStorage, SnapshotOutOfDateError } from './memory-storage.js';
export { encodeConfChange, decodeConfChange } from './confchange-codec.js';
export { ProposalDroppedError, RaftInvariantError, ConfChangeError } from './errors.js';
export { type CoreConfState } from './tracker.js';
export { entryBytes, ENTRY_OVERHEAD } from './entries.js';
