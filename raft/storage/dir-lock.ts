// One process per storage directory. Two writers appending to the same WAL would interleave
// records and corrupt it, e.g. a restarted daemon while the old one still runs. Node has no
// flock(), so the lock is a LOCK file holding the owner's pid: taken with O_EXCL, and taken over
// only when that pid no longer exists (the owner was killed; SIGKILL leaves the file behind).

import fs from 'node:fs/promises';
import path from 'node:path';
import { syncDir } from './fsutil.js';

export class DirLockedError extends Error {
  constructor(dir: string, pid: number) {
    super(
      `raft storage ${dir} is in use by process ${pid}; stop that process first. If no shoal process ` +
        `uses it (the pid was reused), remove ${path.join(dir, 'LOCK')}.`,
    );
    this.name = 'DirLockedError';
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the lock on `dir`; returns the function that releases it. */
export async function lockDir(dir: string): Promise<() => Promise<void>> {
  const file = path.join(dir, 'LOCK');
  const mine = `${process.pid}\n`;
  for (let attempt = 0; ; attempt++) {
    try {
      await fs.writeFile(file, mine, { flag: 'wx' });
      await syncDir(dir);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new DirLockedError(dir, Number((await fs.readFile(file, 'utf8').catch(() => '0')).trim()));
        throw err;
      }
      const owner = Number((await fs.readFile(file, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(owner) && owner > 0 && alive(owner)) throw new DirLockedError(dir, owner);
      // Stale: the owner is gone. Remove it and try once more (O_EXCL decides any race).
      await fs.rm(file, { force: true });
    }
  }
  return async () => {
    const owner = (await fs.readFile(file, 'utf8').catch(() => '')).trim();
    if (owner === String(process.pid)) await fs.rm(file, { force: true });
  };
}
