// Small files that must survive a crash whole: written to a temp name, fsynced, renamed over the
// old one, and the directory fsynced so the rename itself is durable.
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export function writeDurable(path: string, data: string | Buffer, mode = 0o600): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = path + '.tmp';
  writeFileSync(tmp, data, { mode });
  const fd = openSync(tmp, 'r');
  fsyncSync(fd);
  closeSync(fd);
  renameSync(tmp, path);
  const d = openSync(dirname(path), 'r');
  fsyncSync(d);
  closeSync(d);
}
