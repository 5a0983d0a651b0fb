// Small durable-filesystem helpers. A file's creation, rename or deletion is durable only once
// its directory is fsynced, so every such change is followed by syncDir.

import fs from 'node:fs/promises';
import path from 'node:path';

export async function syncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** mkdir -p that also fsyncs the parent of every directory it creates. */
export async function ensureDir(dir: string): Promise<void> {
  const created = await fs.mkdir(dir, { recursive: true });
  if (created === undefined) return;
  const first = path.resolve(created);
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    await syncDir(path.dirname(d));
    if (d === first || d === path.dirname(d)) break;
  }
}

/** Writes `data` (one buffer or parts in order) to `file` durably: temp name, write, fdatasync, rename, fsync of the directory. */
export async function writeFileDurably(dir: string, name: string, data: Uint8Array | Uint8Array[]): Promise<void> {
  const tmp = path.join(dir, `${name}.tmp`);
  const fh = await fs.open(tmp, 'w');
  try {
    let pos = 0;
    for (const part of Array.isArray(data) ? data : [data]) {
      let off = 0;
      while (off < part.length) {
        const { bytesWritten } = await fh.write(part, off, part.length - off, pos + off);
        off += bytesWritten;
      }
      pos += part.length;
    }
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await fs.rename(tmp, path.join(dir, name));
  await syncDir(dir);
}

export function pad16(n: number): string {
  return String(n).padStart(16, '0');
}
