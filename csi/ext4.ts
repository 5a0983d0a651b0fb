// The ext4 side of a volume: is there a filesystem yet, make one, grow it, freeze it, and shut
// it down (the fence: after `shutdown` the kernel refuses every further write to it).
import { closeSync, openSync, readSync } from 'node:fs';
import { CommandError, run } from './exec.js';

/** mkfs options, shared with the benchmark's by-hand side so both do the same work:
 *  4 KiB blocks, no root-reserved blocks (the requested size is the usable size), no discard
 *  pass and no zeroing of inode tables or journal (a fresh sparse image already reads as zeros). */
export const MKFS_ARGS = ['-q', '-F', '-b', '4096', '-m', '0', '-E', 'nodiscard,lazy_itable_init=1,lazy_journal_init=1'];

/** Mount options unless the volume capability says otherwise: a filesystem error makes it
 *  read-only rather than carrying on; and no background zeroing of inode tables (the image is
 *  sparse, so they already read as zeros, and zeroing them would only allocate space in it). */
export const MOUNT_DEFAULTS = ['errors=remount-ro', 'noinit_itable'];

export interface Superblock { blockSize: number; blocks: number; bytes: number; clean: boolean }

function readAt(path: string, pos: number, len: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(len);
    const n = readSync(fd, buf, 0, len, pos);
    return buf.subarray(0, n);
  } finally { closeSync(fd); }
}

/** The ext2/3/4 superblock of a device or image, or undefined when there is none. */
export function superblock(path: string): Superblock | undefined {
  const sb = readAt(path, 1024, 1024);
  if (sb.length < 1024 || sb.readUInt16LE(0x38) !== 0xef53) return undefined;
  const blockSize = 1024 << sb.readUInt32LE(0x18);
  const is64 = (sb.readUInt32LE(0x60) & 0x80) !== 0;
  const blocks = sb.readUInt32LE(0x04) + (is64 ? sb.readUInt32LE(0x150) * 2 ** 32 : 0);
  return { blockSize, blocks, bytes: blocks * blockSize, clean: (sb.readUInt16LE(0x3a) & 1) === 1 };
}

/** Whether the start of the device or image is all zeros (never written: safe to format). */
export function blank(path: string): boolean {
  const head = readAt(path, 0, 1024 * 1024);
  for (let i = 0; i < head.length; i++) if (head[i] !== 0) return false;
  return true;
}

export async function mkfs(dev: string): Promise<void> { await run('mkfs.ext4', [...MKFS_ARGS, dev]); }

/** Grows an unmounted filesystem to fill its device (resize2fs wants a fresh fsck first). */
export async function growOffline(dev: string): Promise<void> {
  const fsck = await run('e2fsck', ['-f', '-p', dev], { allowFail: true });
  // 0: clean, 1: errors corrected. Anything else needs an operator.
  if (fsck.code > 1) throw new Error(`e2fsck -f -p ${dev} found problems it could not fix (exit ${fsck.code}): ${fsck.stdout.trim().slice(0, 400)}`);
  await run('resize2fs', [dev]);
}

export class OnlineResizeRefused extends Error {}

/**
 * Grows a mounted filesystem to fill its device. The kernel allows that only to a process with
 * CAP_SYS_RESOURCE; without it resize2fs reports "Permission denied", which becomes
 * OnlineResizeRefused (the volume then grows when it is next staged, offline).
 */
export async function growOnline(dev: string): Promise<void> {
  try { await run('resize2fs', [dev]); } catch (e) {
    if (e instanceof CommandError && /Permission denied/i.test(e.result.stdout)) {
      throw new OnlineResizeRefused(`the kernel refused to grow the mounted ext4 on ${dev} (online resize needs CAP_SYS_RESOURCE, which this process lacks)`);
    }
    throw e;
  }
}

/** Whether this process may grow ext4 online (CAP_SYS_RESOURCE, capability 24, is effective). */
export function canResizeOnline(status = ''): boolean {
  const text = status || readStatus();
  const m = /^CapEff:\s*([0-9a-f]+)/m.exec(text);
  return !!m && (BigInt('0x' + m[1]) & (1n << 24n)) !== 0n;
}

function readStatus(): string {
  const fd = openSync('/proc/self/status', 'r');
  try { const b = Buffer.alloc(8192); return b.subarray(0, readSync(fd, b, 0, b.length, 0)).toString(); } finally { closeSync(fd); }
}

/** The fence: the filesystem refuses every later write (its log flushed first); unmount still works. */
export async function shutdown(mountPoint: string): Promise<void> {
  await run('xfs_io', ['-x', '-c', 'shutdown -f', mountPoint]);
}

export async function freeze(mountPoint: string): Promise<void> { await run('fsfreeze', ['--freeze', mountPoint]); }
export async function thaw(mountPoint: string): Promise<void> {
  const r = await run('fsfreeze', ['--unfreeze', mountPoint], { allowFail: true });
  // EINVAL: it was not frozen (a thaw repeated after a crash): nothing to do.
  if (r.code !== 0 && !/Invalid argument/.test(r.stdout)) throw new CommandError(`fsfreeze --unfreeze ${mountPoint}`, r);
}
