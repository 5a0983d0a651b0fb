// Test helper: what a test left on the machine under its own directory (loop devices whose image
// is there, mounts there), and the sweep that removes it all after a failed test. Tests name
// their directory with their pid, so parallel test files never see each other's.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loopDevices, mounts } from '../kernel.js';

/**
 * A fresh directory for one test file: /tmp/shoal-csi-<what>-<pid>, a shared mount as a CO's
 * volume directory should be (csi/mount-root.ts); sweep() unmounts and removes it.
 */
export function testDir(what: string): string {
  const d = join(tmpdir(), `shoal-csi-${what}-${process.pid}`);
  sweep(d);
  mkdirSync(d, { recursive: true });
  for (const args of [['--bind', d, d], ['--make-rshared', d]]) {
    const r = spawnSync('mount', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`mount ${args.join(' ')} failed: ${r.stderr}`);
  }
  return d;
}

const under = (p: string, dir: string) => p === dir || p.startsWith(dir + '/');

/** What `losetup -a` and /proc/mounts show of `dir` (the checks an operator would run). */
export function leftovers(dir: string): { loops: string[]; mounts: string[] } {
  const losetup = spawnSync('losetup', ['-a'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.includes(dir + '/'));
  // The test directory's own bind mount (testDir) is not a leftover; anything under it is.
  const procMounts = readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => { const mp = (l.split(' ')[1] ?? '').replace(/\\040/g, ' '); return mp !== dir && under(mp, dir); });
  return { loops: losetup, mounts: procMounts };
}

/** Removes everything under `dir`: mounts (deepest first), loop devices, files. */
export function sweep(dir: string): void {
  for (const m of mounts().filter((m) => under(m.mountPoint, dir)).map((m) => m.mountPoint).sort((a, b) => b.length - a.length)) {
    spawnSync('umount', ['-l', m]);
  }
  for (const l of loopDevices().filter((l) => under(l.backing.replace(/ \(deleted\)$/, ''), dir))) spawnSync('losetup', ['-d', l.path]);
  rmSync(dir, { recursive: true, force: true });
}
