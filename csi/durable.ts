// Durable writes: a file is written to a temporary name, fsynced, renamed over its final name,
// and the directory fsynced, so after a crash it is either the old or the new version, never a
// torn one. Directory entries made or removed are made durable by fsyncing their directory.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync, constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export function fsyncPath(path: string): void {
  const fd = openSync(path, constants.O_RDONLY);
  try { fsyncSync(fd); } finally { closeSync(fd); }
}

export const fsyncDir = (dir: string) => fsyncPath(dir);

/**
 * fsyncs several files and directories at once (the filesystem commits them together, where
 * one after the other would cost one commit each); resolves when all are durable.
 */
export async function fsyncAll(paths: string[]): Promise<void> {
  await Promise.all(paths.map(async (p) => {
    const h = await open(p, constants.O_RDONLY);
    try { await h.sync(); } finally { await h.close(); }
  }));
}

export function writeFileDurable(path: string, data: string | Buffer): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w', 0o644);
  try {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off);
    fsyncSync(fd);
  } finally { closeSync(fd); }
  renameSync(tmp, path);
  fsyncDir(dirname(path));
}

export function writeJsonDurable(path: string, value: unknown): void {
  writeFileDurable(path, JSON.stringify(value, null, 1) + '\n');
}

/** Atomic (rename) but not fsynced: for records that may be lost in a crash, like heartbeats. */
export function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w', 0o644);
  try { writeSync(fd, JSON.stringify(value) + '\n'); } finally { closeSync(fd); }
  renameSync(tmp, path);
}

/** The parsed JSON file, or undefined when it does not exist. A torn or foreign file is an error naming it. */
export function readJson<T>(path: string): T | undefined {
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try { return JSON.parse(text) as T; } catch {
    throw new Error(`${path} is not valid JSON (damaged?); move it away to let the driver rebuild or forget it`);
  }
}
