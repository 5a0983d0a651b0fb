// Snapshot files: snap/<index:16 digits>-<term:16 digits>.snap, each
//
//   "SHOALSNP" | u8 version | varint index | varint term
//   | conf: 4 x (varint count, count x varint id) for voters, learners, votersOutgoing,
//     learnersNext | u8 flags (1: autoLeave, 2: a `removed` id list follows) | [varint count, ids]
//   | varint data length | data | u32 LE CRC-32C of everything before it
//
// Written to <name>.tmp, fdatasynced, renamed and the directory fsynced, so a crash leaves either
// the old set of files or the new one (plus a .tmp that open() removes).

import fs from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfState, NodeId, Snapshot } from '../types.js';
import { CorruptDataError, Reader, Writer } from './binary.js';
import { crc32c } from './crc32c.js';
import { pad16, syncDir, writeFileDurably } from './fsutil.js';

const SNAP_MAGIC = Buffer.from('SHOALSNP', 'latin1');
const SNAP_VERSION = 1;
const NAME_RE = /^(\d{16})-(\d{16})\.snap$/;

/**
 * ConfState plus the core's optional `removed` list (ids that left the cluster and may never
 * return; raft/core's CoreConfState). Stored when present so it survives a restart.
 */
export interface StoredConfState extends ConfState {
  removed?: NodeId[];
}

export function cloneConfState(c: StoredConfState): StoredConfState {
  const out: StoredConfState = {
    voters: [...c.voters],
    learners: [...c.learners],
    votersOutgoing: [...c.votersOutgoing],
    learnersNext: [...c.learnersNext],
    autoLeave: c.autoLeave,
  };
  if (c.removed) out.removed = [...c.removed];
  return out;
}

export interface SnapshotFileName {
  name: string;
  index: number;
  term: number;
}

export function snapshotFileName(index: number, term: number): string {
  return `${pad16(index)}-${pad16(term)}.snap`;
}

function idsSize(ids: NodeId[]): number {
  return 9 + ids.length * 9;
}

/** Everything before the data: magic, version, meta, conf and the data length. */
function encodeHead(s: Snapshot): Buffer {
  const c = s.meta.conf;
  const cap =
    SNAP_MAGIC.length + 1 + 18 + idsSize(c.voters) + idsSize(c.learners) + idsSize(c.votersOutgoing) +
    idsSize(c.learnersNext) + 1 + idsSize((c as StoredConfState).removed ?? []) + 9;
  const w = new Writer(cap);
  w.bytes(SNAP_MAGIC);
  w.u8(SNAP_VERSION);
  w.varint(s.meta.index);
  w.varint(s.meta.term);
  for (const ids of [c.voters, c.learners, c.votersOutgoing, c.learnersNext]) {
    w.varint(ids.length);
    for (const id of ids) w.varint(id);
  }
  const removed = (c as StoredConfState).removed;
  w.u8((c.autoLeave ? 1 : 0) | (removed ? 2 : 0));
  if (removed) {
    w.varint(removed.length);
    for (const id of removed) w.varint(id);
  }
  w.varint(s.data.length);
  return w.buf.subarray(0, w.pos);
}

function crcTail(crc: number): Buffer {
  const t = Buffer.alloc(4);
  t.writeUInt32LE(crc >>> 0, 0);
  return t;
}

export function encodeSnapshotFile(s: Snapshot): Buffer {
  const head = encodeHead(s);
  const crc = crc32c(s.data, crc32c(head));
  return Buffer.concat([head, s.data, crcTail(crc)]);
}

/** CRC work between two yields to the event loop (about a millisecond's worth). */
const CRC_STEP = 4 << 20;

/**
 * The file as [head, data, crc] without copying the data, its CRC computed a few MiB at a time
 * with the event loop served in between: a snapshot of a large store must not stall raft.
 */
export async function encodeSnapshotFileParts(s: Snapshot): Promise<Uint8Array[]> {
  const head = encodeHead(s);
  let crc = crc32c(head);
  for (let off = 0; off < s.data.length; off += CRC_STEP) {
    if (off > 0) await new Promise((r) => setImmediate(r));
    crc = crc32c(s.data, crc, off, Math.min(s.data.length, off + CRC_STEP));
  }
  return [head, s.data, crcTail(crc)];
}

/** Decodes a snapshot file; `view` leaves the data a view into `buf` instead of a copy. */
export function decodeSnapshotFile(buf: Uint8Array, view = false): Snapshot {
  if (buf.length < SNAP_MAGIC.length + 4) throw new CorruptDataError(`file is only ${buf.length} bytes long`);
  const body = buf.length - 4;
  const stored = new Reader(buf, body).u32();
  const crc = crc32c(buf, 0, 0, body);
  if (crc !== stored) throw new CorruptDataError(`checksum mismatch (stored 0x${stored.toString(16)}, computed 0x${crc.toString(16)})`);
  const r = new Reader(buf, 0, body);
  if (!SNAP_MAGIC.equals(r.bytesView(SNAP_MAGIC.length))) throw new CorruptDataError('bad magic (not a shoal snapshot)');
  const version = r.u8();
  if (version !== SNAP_VERSION) throw new CorruptDataError(`snapshot format version ${version} is not supported`);
  const index = r.varint();
  const term = r.varint();
  const lists: NodeId[][] = [];
  for (let k = 0; k < 4; k++) {
    const n = r.varint();
    if (n > r.remaining) throw new CorruptDataError(`conf list of ${n} ids in ${r.remaining} bytes`);
    const ids: NodeId[] = [];
    for (let i = 0; i < n; i++) ids.push(r.varint());
    lists.push(ids);
  }
  const confFlags = r.u8();
  if ((confFlags & ~3) !== 0) throw new CorruptDataError(`unknown conf flags 0x${confFlags.toString(16)}`);
  const conf: StoredConfState = { voters: lists[0]!, learners: lists[1]!, votersOutgoing: lists[2]!, learnersNext: lists[3]!, autoLeave: (confFlags & 1) !== 0 };
  if (confFlags & 2) {
    const n = r.varint();
    if (n > r.remaining) throw new CorruptDataError(`removed list of ${n} ids in ${r.remaining} bytes`);
    conf.removed = [];
    for (let i = 0; i < n; i++) conf.removed.push(r.varint());
  }
  const n = r.varint();
  const data = view ? r.bytesView(n) : r.bytesCopy(n);
  if (r.remaining !== 0) throw new CorruptDataError(`${r.remaining} unexpected bytes after the snapshot data`);
  return { meta: { index, term, conf }, data };
}

/** Snapshot files in `dir`, newest (highest index) first. Leftover .tmp files are returned separately. */
export async function listSnapshotFiles(dir: string): Promise<{ files: SnapshotFileName[]; temps: string[]; unknown: string[] }> {
  const files: SnapshotFileName[] = [];
  const temps: string[] = [];
  const unknown: string[] = [];
  for (const name of await fs.readdir(dir)) {
    const m = NAME_RE.exec(name);
    if (m) files.push({ name, index: Number(m[1]), term: Number(m[2]) });
    else if (name.endsWith('.tmp')) temps.push(name);
    else unknown.push(name);
  }
  files.sort((a, b) => b.index - a.index || b.term - a.term);
  return { files, temps, unknown };
}

export async function writeSnapshotFile(dir: string, s: Snapshot): Promise<string> {
  const name = snapshotFileName(s.meta.index, s.meta.term);
  await writeFileDurably(dir, name, await encodeSnapshotFileParts(s));
  return name;
}

/** Reads and verifies one snapshot file; throws CorruptDataError naming the file. */
export async function readSnapshotFile(dir: string, f: SnapshotFileName): Promise<Snapshot> {
  const buf = await fs.readFile(path.join(dir, f.name));
  let s: Snapshot;
  try {
    s = decodeSnapshotFile(buf);
  } catch (err) {
    if (err instanceof CorruptDataError) throw new CorruptDataError(`snapshot ${path.join(dir, f.name)} is corrupt: ${err.message}`);
    throw err;
  }
  if (s.meta.index !== f.index || s.meta.term !== f.term) {
    throw new CorruptDataError(
      `snapshot ${path.join(dir, f.name)} holds index ${s.meta.index} term ${s.meta.term}, which does not match its name`,
    );
  }
  return s;
}

/**
 * Reads one snapshot file synchronously, the data a view into the file's bytes (no copy): for a
 * snapshot wanted now (a lagging follower) whose data storage does not keep in memory.
 */
export function readSnapshotFileSync(dir: string, index: number, term: number): Snapshot {
  const file = path.join(dir, snapshotFileName(index, term));
  let s: Snapshot;
  try {
    s = decodeSnapshotFile(readFileSync(file), true);
  } catch (err) {
    if (err instanceof CorruptDataError) throw new CorruptDataError(`snapshot ${file} is corrupt: ${err.message}`);
    throw err;
  }
  if (s.meta.index !== index || s.meta.term !== term) throw new CorruptDataError(`snapshot ${file} holds index ${s.meta.index} term ${s.meta.term}, not ${index}/${term}`);
  return s;
}

/** Deletes all but the newest `keep` snapshot files; returns the names deleted. */
export async function pruneSnapshotFiles(dir: string, keep: number): Promise<string[]> {
  const { files } = await listSnapshotFiles(dir);
  const doomed = files.slice(keep).map((f) => f.name);
  for (const name of doomed) await fs.rm(path.join(dir, name), { force: true });
  if (doomed.length > 0) await syncDir(dir);
  return doomed;
}
