// Removes a test's temporary directory the way the lab removes a node: what a shoald's runtime
// made there first (its mounts: the pods' namespace files, containers' roots; processes whose
// root or working directory is inside: containers, their monitors), then the files. A plain
// recursive delete fails (EBUSY) on a mount point and would leave the mount behind.
import { rmSync } from 'node:fs';
import { procsUnder } from '../lab/containers.js';
import { mountsUnder } from '../lab/down.js';
import { tryRun } from '../lab/sh.js';

export async function removeTestDir(dir: string): Promise<void> {
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
