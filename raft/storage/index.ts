// shoal's durable Raft storage: a CRC-32C-framed, segmented write-ahead log plus snapshot files.
export { DiskStorage } from './disk-storage.js';
export type { DiskStorageOptions, OpenReport, SaveInput, StorageLogger } from './disk-storage.js';
export { WalCorruptError } from './wal.js';
export type { TornTail, WalSyncInfo, WalSyncMode } from './wal.js';
export { CorruptDataError } from './binary.js';
export { DirLockedError } from './dir-lock.js';
export { crc32c } from './crc32c.js';
export * from './config.js';
