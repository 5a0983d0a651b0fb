// What the kernel says about loop devices and mounts. The kernel is the node side's source of
// truth: after a crash of the driver the loop devices and mounts it made are still there and are
// found again here, so every node call can finish or undo what an earlier, interrupted one did.
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { run } from './exec.js';

export interface MountEntry { id: number; dev: string; root: string; mountPoint: string; options: string[]; fsType: string; source: string }

const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));

export function parseMountInfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (sep < 0) continue;
    out.push({ id: Number(f[0]), dev: f[2]!, root: unescape(f[3]!), mountPoint: unescape(f[4]!), options: f[5]!.split(','), fsType: f[sep + 1]!, source: unescape(f[sep + 2] ?? '') });
  }
  return out;
}

export const mounts = (): MountEntry[] => parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8'));

/** The topmost mount at `path` (the one a lookup of the path sees), if any. */
export function mountAt(path: string, all = mounts()): MountEntry | undefined {
  let top: MountEntry | undefined;
  for (const m of all) if (m.mountPoint === path) top = m;
  return top;
}

export interface LoopDevice { name: string; path: string; dev: string; backing: string; readonly: boolean; sizeBytes: number }

/** Every attached loop device, read from sysfs (no losetup run). */
export function loopDevices(): LoopDevice[] {
  const out: LoopDevice[] = [];
  for (const name of readdirSync('/sys/block')) {
    if (!/^loop\d+$/.test(name)) continue;
    let backing: string;
    try { backing = readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8').trim(); } catch { continue; /* not attached */ }
    try {
      out.push({
        name, path: `/dev/${name}`, backing,
        dev: readFileSync(`/sys/block/${name}/dev`, 'utf8').trim(),
        readonly: readFileSync(`/sys/block/${name}/ro`, 'utf8').trim() === '1',
        sizeBytes: Number(readFileSync(`/sys/block/${name}/size`, 'utf8').trim()) * 512,
      });
    } catch { /* detached meanwhile */ }
  }
  return out;
}

/** Loop devices whose backing file is `image` (also when the file was deleted underneath). */
export function loopsFor(image: string): LoopDevice[] {
  return loopDevices().filter((l) => l.backing === image || l.backing === `${image} (deleted)`);
}

export function loopByPath(devPath: string): LoopDevice | undefined {
  return loopDevices().find((l) => l.path === devPath);
}

export async function attachLoop(image: string, readonly: boolean): Promise<LoopDevice> {
  // Direct I/O on the image: the data is cached once, by the filesystem on the loop device,
  // not a second time as pages of the image file.
  const args = ['--find', '--show', '--direct-io=on', ...(readonly ? ['--read-only'] : []), image];
  const r = await run('losetup', args);
  // The device is the last line (warnings, e.g. about direct I/O, come before it).
  const path = r.stdout.trim().split('\n').reverse().find((l) => /^\/dev\/loop\d+$/.test(l)) ?? '';
  const dev = loopByPath(path);
  if (!dev) throw new Error(`losetup attached ${image} as ${path}, but /sys/block does not show it`);
  return dev;
}

/**
 * Detaches a loop device. Returns false when the kernel only marked it for detaching because
 * something still holds it open (a mount in another mount namespace, a process).
 */
export async function detachLoop(dev: LoopDevice): Promise<boolean> {
  await run('losetup', ['--detach', dev.path], { allowFail: true });
  const gone = () => {
    try { return readFileSync(`/sys/block/${dev.name}/loop/backing_file`, 'utf8').trim() !== dev.backing; } catch { return true; }
  };
  // A short-lived opener (udev probing the device after its change event, blkid) delays the
  // detach until it closes the device: give it a moment.
  for (let i = 0; i < 40 && !gone(); i++) await new Promise((r) => setTimeout(r, 50));
  return gone();
}

/** Re-reads the backing file's size into the loop device (after the image grew). */
export async function refreshLoopSize(dev: LoopDevice): Promise<number> {
  await run('losetup', ['--set-capacity', dev.path]);
  return Number(readFileSync(`/sys/block/${dev.name}/size`, 'utf8').trim()) * 512;
}

/** `PID (command line)` for messages. */
export function describePid(pid: number): string {
  try { return `${pid} (${readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ').slice(0, 120)})`; } catch { return String(pid); }
}

export interface Holder { pid: number; mountPoints: string[] }

/**
 * Other mount namespaces that have the device `dev` (major:minor) mounted, with where (one
 * process per namespace): the mounts that would keep a loop device busy after NodeUnstage.
 */
export function holdersElsewhere(dev: string): Holder[] {
  const own = readlinkSync('/proc/self/ns/mnt');
  const seen = new Set<string>([own]);
  const out: Holder[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    let ns: string;
    try { ns = readlinkSync(`/proc/${p}/ns/mnt`); } catch { continue; }
    if (seen.has(ns)) continue;
    seen.add(ns);
    try {
      const mps = parseMountInfo(readFileSync(`/proc/${p}/mountinfo`, 'utf8')).filter((m) => m.dev === dev).map((m) => m.mountPoint);
      if (mps.length > 0) out.push({ pid: Number(p), mountPoints: mps });
    } catch { /* gone */ }
  }
  return out;
}

/**
 * Unmounts, inside another process's mount namespace, the given mount points (deepest first).
 * Used only on copies of our own mounts that a namespace made when it was created; true if all
 * went (a busy one stays: something there uses it).
 */
export async function umountIn(pid: number, mountPoints: string[]): Promise<boolean> {
  let ok = true;
  for (const mp of [...mountPoints].sort((a, b) => b.length - a.length)) {
    const r = await run('nsenter', [`--mount=/proc/${pid}/ns/mnt`, '--', 'umount', mp], { allowFail: true });
    if (r.code !== 0 && !/not mounted|no mount point/.test(r.stdout)) ok = false;
  }
  return ok;
}

export async function mount(args: string[]): Promise<void> { await run('mount', args); }

/** Unmounts every mount stacked at `path` (a bind mount made twice by a crashed, retried call). */
export async function umountAll(path: string): Promise<number> {
  let n = 0;
  while (mountAt(path)) {
    await run('umount', [path]);
    if (++n > 64) throw new Error(`${path} is still a mount point after ${n} unmounts`);
  }
  return n;
}

export function isDir(path: string): boolean { try { return statSync(path).isDirectory(); } catch { return false; } }
