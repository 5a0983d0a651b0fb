// How a CSI capacity_range becomes an image size, and whether an existing size satisfies one.
// Pure functions (unit-tested in capacity.test.ts).
import type { CapacityRange } from '../proto/csi/v1/csi.js';
import { invalid, outOfRange } from './errors.js';

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;
/** Smallest volume: ext4 with a journal and room for data (smaller is refused, OUT_OF_RANGE). */
export const MIN_VOLUME_BYTES = 16 * MiB;
/** Size when the request gives no range at all (the spec leaves it to the plugin). */
export const DEFAULT_VOLUME_BYTES = 1 * GiB;
/** Sizes are whole 4 KiB blocks (ext4's block size here, and a multiple of 512-byte sectors). */
export const ALIGN = 4096;

const up = (n: number, a: number) => Math.ceil(n / a) * a;
const down = (n: number, a: number) => Math.floor(n / a) * a;

export function checkRange(r: CapacityRange | null | undefined): { required: number; limit: number } {
  const required = Number(r?.required_bytes ?? 0);
  const limit = Number(r?.limit_bytes ?? 0);
  if (!Number.isSafeInteger(required) || required < 0) throw invalid(`capacity_range.required_bytes must be a non-negative integer (got ${r?.required_bytes})`);
  if (!Number.isSafeInteger(limit) || limit < 0) throw invalid(`capacity_range.limit_bytes must be a non-negative integer (got ${r?.limit_bytes})`);
  if (limit > 0 && required > limit) throw invalid(`capacity_range.required_bytes (${required}) is larger than limit_bytes (${limit})`);
  return { required, limit };
}

/**
 * The size to provision for a range: the required bytes rounded up to a MiB (at least the
 * minimum), or the default when only a limit or nothing is given, never above the limit.
 */
export function sizeFor(r: CapacityRange | null | undefined): number {
  const { required, limit } = checkRange(r);
  if (limit > 0 && limit < MIN_VOLUME_BYTES) throw outOfRange(`capacity_range.limit_bytes ${limit} is below the smallest volume this driver makes (${MIN_VOLUME_BYTES} bytes)`);
  let size = required > 0 ? up(Math.max(required, MIN_VOLUME_BYTES), MiB) : DEFAULT_VOLUME_BYTES;
  if (limit > 0 && size > limit) size = down(limit, ALIGN);
  if (size < Math.max(required, MIN_VOLUME_BYTES)) {
    throw outOfRange(`no size in whole ${ALIGN}-byte blocks fits capacity_range [${required}, ${limit}]`);
  }
  return size;
}

/** Whether a volume of `size` bytes satisfies the range (used for idempotent CreateVolume). */
export function fits(size: number, r: CapacityRange | null | undefined): boolean {
  const { required, limit } = checkRange(r);
  return size >= required && (limit === 0 || size <= limit);
}

/** The size to grow to for ControllerExpandVolume: never shrinks (the spec forbids shrinking). */
export function expandTo(current: number, r: CapacityRange | null | undefined): number {
  const { required, limit } = checkRange(r);
  if (required === 0 && limit === 0) throw invalid('capacity_range is required for ControllerExpandVolume (set required_bytes)');
  if (limit > 0 && limit < current) throw outOfRange(`capacity_range.limit_bytes ${limit} is below the volume's current size ${current}; volumes never shrink`);
  if (required <= current) return current;
  let size = up(required, MiB);
  if (limit > 0 && size > limit) size = Math.max(current, down(limit, ALIGN));
  if (size < required) throw outOfRange(`no size in whole ${ALIGN}-byte blocks fits capacity_range [${required}, ${limit}]`);
  return size;
}
