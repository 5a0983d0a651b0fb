// Helpers shared by this folder's tests and its crash writer (not used by production code).

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Entry, EntryType } from '../types.js';
import { crc32c } from './crc32c.js';
import type { StorageLogger } from './disk-storage.js';

/** A fresh directory under the OS temp dir (ext4 here, so fsync is real), removed on teardown. */
export async function tempDir(t: { teardown(fn: () => unknown): void }, label: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `shoal-raftdisk-${label}-${process.pid}-`));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Deterministic entry data for (index, term): a checker can tell from the bytes alone whether an
 * entry is the one written for that index and term. Bytes 0..3 hold the index, 4..7 the term, the
 * rest a pattern, and the last 4 bytes a CRC of the rest.
 */
export function entryData(index: number, term: number, size = 64): Uint8Array {
  const n = Math.max(size, 12);
  const b = Buffer.alloc(n);
  b.writeUInt32LE(index >>> 0, 0);
  b.writeUInt32LE(term >>> 0, 4);
  for (let i = 8; i < n - 4; i++) b[i] = (index * 31 + term * 7 + i) & 0xff;
  b.writeUInt32LE(crc32c(b, 0, 0, n - 4), n - 4);
  return b;
}

export function dataMatches(e: Entry): boolean {
  const b = Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength);
  return b.length >= 12 && b.equals(Buffer.from(entryData(e.index, e.term, b.length)));
}

export function makeEntries(first: number, count: number, term: number, size = 64): Entry[] {
  const out: Entry[] = [];
  for (let i = 0; i < count; i++) out.push({ index: first + i, term, type: EntryType.Normal, data: entryData(first + i, term, size) });
  return out;
}

export function collectingLogger(): StorageLogger & { infos: string[]; warns: string[] } {
  const infos: string[] = [];
  const warns: string[] = [];
  return { infos, warns, info: (m) => infos.push(m), warn: (m) => warns.push(m) };
}

export async function segmentFiles(dir: string): Promise<string[]> {
  return (await fs.readdir(path.join(dir, 'wal'))).filter((n) => n.endsWith('.wal')).sort();
}

export async function snapshotFiles(dir: string): Promise<string[]> {
  return (await fs.readdir(path.join(dir, 'snap'))).filter((n) => n.endsWith('.snap')).sort();
}

/** mulberry32: a tiny seeded PRNG so a failing random case replays from its printed seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Copies a storage directory (to damage the copy and keep the original). */
export async function copyDir(from: string, to: string): Promise<void> {
  await fs.rm(to, { recursive: true, force: true });
  await fs.cp(from, to, { recursive: true });
}
