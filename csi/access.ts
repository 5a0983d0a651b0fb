// Which volume capabilities the driver supports, and what each access mode allows. Pure.
//
// The volume is an ext4 filesystem on a loop device: one kernel may mount it read-write, any
// number may mount it read-only while nobody writes. So: SINGLE_NODE_WRITER (read-write on one
// node, any number of workloads there), SINGLE_NODE_READER_ONLY and MULTI_NODE_READER_ONLY.
// Multi-node writers would corrupt ext4, and the SINGLE_NODE_*_WRITER alpha modes are not
// advertised, so those are refused.
import { AccessMode, enumName, type VolumeCapability } from '../proto/csi/v1/csi.js';
import { invalid } from './errors.js';

export const SUPPORTED_MODES: readonly number[] = [AccessMode.SINGLE_NODE_WRITER, AccessMode.SINGLE_NODE_READER_ONLY, AccessMode.MULTI_NODE_READER_ONLY];
export const FS_TYPES = ['', 'ext4'];
// Mount flags a workload may ask for; anything else (e.g. `loop`, `remount`) is refused.
const FLAG = /^(ro|rw|noatime|nodiratime|relatime|strictatime|lazytime|nodev|nosuid|noexec|sync|dirsync|discard|nodiscard|nobarrier|barrier|data=(ordered|writeback|journal)|commit=\d+|errors=(continue|remount-ro|panic))$/;

export const isReadOnlyMode = (mode: number) => mode === AccessMode.SINGLE_NODE_READER_ONLY || mode === AccessMode.MULTI_NODE_READER_ONLY;
export const isSingleNodeMode = (mode: number) => mode === AccessMode.SINGLE_NODE_WRITER || mode === AccessMode.SINGLE_NODE_READER_ONLY;
export const modeName = (mode: number) => enumName(AccessMode, mode);

/** Why a capability is not supported, or undefined when it is. */
export function unsupported(cap: VolumeCapability | null | undefined): string | undefined {
  if (!cap) return 'volume_capability is missing';
  const mode = cap.access_mode?.mode ?? 0;
  if (!cap.access_mode || mode === AccessMode.UNKNOWN) return 'access_mode.mode is missing';
  if (!SUPPORTED_MODES.includes(mode)) return `access mode ${modeName(mode)} is not supported (this driver serves ext4 on a loop device: SINGLE_NODE_WRITER, SINGLE_NODE_READER_ONLY, MULTI_NODE_READER_ONLY)`;
  if (cap.block) return 'access type block is not supported (this driver serves mounted ext4 filesystems: use access type mount)';
  if (!cap.mount) return 'access_type is missing (set mount)';
  const fs = cap.mount.fs_type ?? '';
  if (!FS_TYPES.includes(fs)) return `fs_type ${JSON.stringify(fs)} is not supported (use ext4 or leave it empty)`;
  for (const f of cap.mount.mount_flags ?? []) {
    for (const part of f.split(',')) if (!FLAG.test(part)) return `mount flag ${JSON.stringify(part)} is not allowed (allowed: noatime, nodiratime, relatime, lazytime, nodev, nosuid, noexec, sync, dirsync, discard, data=..., commit=N, errors=...)`;
  }
  if (cap.mount.volume_mount_group) return 'volume_mount_group is not supported (the driver does not advertise VOLUME_MOUNT_GROUP)';
  return undefined;
}

/** Throws INVALID_ARGUMENT unless the capability is supported; returns its access mode. */
export function requireSupported(cap: VolumeCapability | null | undefined, field = 'volume_capability'): number {
  const why = unsupported(cap);
  if (why) throw invalid(`${field}: ${why}`);
  return cap!.access_mode!.mode;
}

/** Mount options from the capability's flags, without ro/rw (the driver decides those). */
export function mountFlags(cap: VolumeCapability | null | undefined): string[] {
  return (cap?.mount?.mount_flags ?? []).flatMap((f) => f.split(',')).filter((f) => f && f !== 'ro' && f !== 'rw');
}
