// The directory a CO stages and publishes volumes under must be a shared mount (the kubelet
// does this to /var/lib/kubelet). Every new mount namespace on the machine starts as a copy of
// the host's mounts (runc's, until its pivot_root; `unshare -m`); with a shared parent those
// copies are peers or slaves of ours, so unmounting a volume here unmounts the copies too and
// its loop device is let go. With a private parent the copies keep the loop device busy for as
// long as they live, and NodeUnstageVolume has to refuse.
import { mkdirSync } from 'node:fs';
import { run } from './exec.js';
import { mountAt } from './kernel.js';

/** Makes `dir` a mount point of its own (a bind mount onto itself) with shared propagation. Idempotent. */
export async function shareMountRoot(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  if (!mountAt(dir)) await run('mount', ['--bind', dir, dir]);
  await run('mount', ['--make-rshared', dir]);
}
