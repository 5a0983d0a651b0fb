// A contract between the CLI and shoald: the backup file `shoal cluster backup` writes and `shoald --restore` reads: a consistent
// snapshot of the replicated store (the raft index it covers, the cluster it belongs to) behind
// a one-line header with its length and SHA-256, so a truncated or altered file is refused with
// a clear error before anything is changed.
import { createHash } from 'node:crypto';

const MAGIC = 'SHOAL-BACKUP 1\n';

export interface BackupHeader {
  clusterId: string;
  /** The raft index (the store's version) the snapshot covers. */
  index: number;
  term: number;
  createdAt: string;
  bytes: number;
  sha256: string;
}

export class BackupError extends Error {}

export function encodeBackup(h: Omit<BackupHeader, 'bytes' | 'sha256'>, data: Uint8Array): Buffer {
  const header: BackupHeader = { ...h, bytes: data.length, sha256: createHash('sha256').update(data).digest('hex') };
  return Buffer.concat([Buffer.from(MAGIC + JSON.stringify(header) + '\n'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

export function decodeBackup(buf: Buffer, file = 'the backup'): { header: BackupHeader; data: Buffer } {
  if (!buf.subarray(0, MAGIC.length).equals(Buffer.from(MAGIC))) throw new BackupError(`${file} is not a shoal backup (it does not start with "${MAGIC.trim()}"); give a file "shoal cluster backup" wrote`);
  const nl = buf.indexOf(10, MAGIC.length);
  if (nl < 0) throw new BackupError(`${file} is truncated inside its header`);
  let header: BackupHeader;
  try {
    header = JSON.parse(buf.subarray(MAGIC.length, nl).toString('utf8')) as BackupHeader;
  } catch (e) {
    throw new BackupError(`${file} has an unreadable header: ${(e as Error).message}`);
  }
  if (typeof header.clusterId !== 'string' || !Number.isInteger(header.index) || !Number.isInteger(header.bytes) || typeof header.sha256 !== 'string') {
    throw new BackupError(`${file} has a header without its cluster id, index, length or checksum`);
  }
  const data = buf.subarray(nl + 1);
  if (data.length !== header.bytes) throw new BackupError(`${file} is truncated or padded: its header says ${header.bytes} bytes of data, it holds ${data.length}`);
  const sum = createHash('sha256').update(data).digest('hex');
  if (sum !== header.sha256) throw new BackupError(`${file} is corrupt: its data's SHA-256 is ${sum}, the header says ${header.sha256}`);
  return { header, data };
}
