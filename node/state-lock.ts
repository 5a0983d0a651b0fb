// One shoald per state directory: an exclusive lock held for the daemon's life, taken before
// anything in the directory is touched (a second daemon used to delete the first one's socket).
// Node has no flock, so the lock is a file made atomically by link(2) that names its holder by
// pid and start time; a lock whose holder is gone (a crash) is taken over.
import { linkSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export class StateDirLocked extends Error {}

/** The start time of a live `pid`; undefined when it is gone or a zombie (dead, not yet reaped by
 * its parent: a SIGKILLed daemon is one for a while when its reaper is busy, and it holds nothing). */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
    return fields[19];
  } catch {
    return undefined;
  }
}

function holder(path: string): { pid: number; start: string } | undefined {
  try {
    const [pid, start] = readFileSync(path, 'utf8').trim().split(' ');
    return { pid: Number(pid), start: start ?? '' };
  } catch {
    return undefined;
  }
}

export class StateLock {
  private constructor(readonly path: string, private readonly mine: string) {}

  static acquire(dir: string, file = 'shoald.lock', what = 'shoald'): StateLock {
    const path = join(dir, file);
    const mine = `${process.pid} ${startTime(process.pid) ?? ''}`;
    const tmp = `${path}.${process.pid}`;
    writeFileSync(tmp, mine + '\n', { mode: 0o600 });
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          linkSync(tmp, path);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
          const h = holder(path);
          if (h && h.pid !== process.pid && startTime(h.pid) === h.start && h.start) {
            throw new StateDirLocked(what === 'shoald' ? `state dir ${dir} is in use by another shoald (pid ${h.pid}, lock ${path}): stop it first, or give this one another --state-dir` : `${dir} is locked by ${what} (pid ${h.pid}, lock ${path})`);
          }
          // Its holder is gone (crashed): take the lock over.
          try {
            unlinkSync(path);
          } catch {
            /* someone else took it over first: the next link tells */
          }
          continue;
        }
        // Two daemons taking over the same stale lock: only the one whose name is in it holds it.
        if (readFileSync(path, 'utf8').trim() === mine) return new StateLock(path, mine);
      }
      const h = holder(path);
      throw new StateDirLocked(`${dir} is being locked by another ${what}${h ? ` (pid ${h.pid})` : ''} at the same moment`);
    } finally {
      try {
        unlinkSync(tmp);
      } catch {
        /* gone */
      }
    }
  }

  /** Lets the directory go (only if the lock is still this daemon's). */
  release(): void {
    try {
      if (readFileSync(this.path, 'utf8').trim() === this.mine) unlinkSync(this.path);
    } catch {
      /* already gone */
    }
  }
}

/**
 * Runs `f` holding `dir/file` (waiting up to `waitMs` for another holder to let go): for short
 * read-modify-write sections that several processes may run at once (`shoal lab start` twice).
 */
export async function withLock<T>(dir: string, file: string, what: string, f: () => Promise<T> | T, waitMs = 60_000): Promise<T> {
  const end = Date.now() + waitMs;
  let lock: StateLock;
  for (;;) {
    try {
      lock = StateLock.acquire(dir, file, what);
      break;
    } catch (e) {
      if (!(e instanceof StateDirLocked) || Date.now() > end) throw e;
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 30));
    }
  }
  try {
    return await f();
  } finally {
    lock.release();
  }
}
