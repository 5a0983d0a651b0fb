// Removes a test's temporary directory the way the lab removes a node: what a shoald's runtime
// made there first (its mounts: the pods' namespace files, containers' roots; processes whose
// root or working directory is inside: containers, their monitors), then the files. A plain
// recursive delete fails (EBUSY) on a mount point and would leave the mount behind.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { procsUnder } from '../lab/containers.js';
import { mountsUnder } from '../lab/down.js';
import { tryRun } from '../lab/sh.js';

/** Every runc state directory of a node runtime below `dir` (DIR/NODE/runtime/runc, or deeper). */
function runcRoots(dir: string, depth = 4): string[] {
  const out: string[] = [];
  let entries: import('node:fs').Dirent[] = [];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!e.isDirectory() || e.isSymbolicLink()) continue;
    const p = join(dir, e.name);
    if (e.name === 'runc' && dir.endsWith('/runtime')) out.push(p);
    else if (depth > 0) out.push(...runcRoots(p, depth - 1));
  }
  return out;
}

export async function removeTestDir(dir: string): Promise<void> {
  // Containers run in mount namespaces of their own (their root looks like "/" from here): find
  // them through runc's state, as the lab does.
  for (const root of runcRoots(dir)) {
    for (const id of tryRun(['runc', '--root', root, 'list', '-q']).out.split('\n').filter(Boolean)) tryRun(['runc', '--root', root, 'delete', '--force', id]);
  }
  for (const p of procsUnder(dir)) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  // Killed processes leave their cgroups only once they are gone: wait for that (bounded).
  for (let i = 0; i < 50 && procsUnder(dir).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  for (const m of mountsUnder(dir)) tryRun(['umount', '-l', m]);
  rmSync(dir, { recursive: true, force: true });
}
