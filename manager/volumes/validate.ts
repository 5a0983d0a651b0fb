// Checks of what the control API receives about volumes: a service's mounts (as wire data, pure),
// a volume or class to create, and a service's mounts against the volumes and classes that exist
// (with lookups passed in, so it stays testable). Every refusal names the field, what was wrong
// and what to write instead; nothing is written unless the check passes.
import { posix } from 'node:path';
import { ACCESS_MODES, CSI_ACCESS, exclusive, isAccess, type AccessName, type Mount, type Reclaim, type VolumeClassObject, type VolumeObject } from './model.js';
import type { ServiceSpec } from '../services/model.js';

export class VolumeSpecError extends Error {
  override name = 'VolumeSpecError';
}

/** Volume names: lower-case letters, digits, '.', '_' and '-' (claims are `web.1-data`). */
const VOLUME_NAME = /^[a-z0-9]([a-z0-9._-]{0,126}[a-z0-9])?$/;
/** A claim's suffix: a DNS label of at most 32 characters. */
const CLAIM_SUFFIX = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;
/** A CSI driver's name: domain-like, as the CSI spec asks (at most 63 characters). */
const DRIVER_NAME = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,61}[A-Za-z0-9])?$/;
const PARAM_KEY = /^[A-Za-z0-9][A-Za-z0-9._\/-]{0,127}$/;
const MIB = 1024 * 1024;
const MAX_BYTES = Number.MAX_SAFE_INTEGER;

export interface WireMount {
  type?: string;
  source?: string;
  target?: string;
  readonly?: boolean;
  class?: string;
  size_bytes?: number | string | null;
}

export function checkVolumeName(name: unknown, what = 'volume name'): string {
  if (typeof name !== 'string' || !VOLUME_NAME.test(name)) {
    throw new VolumeSpecError(`${what} ${JSON.stringify(name)} is not valid: use 1-128 lower-case letters, digits, '.', '_' and '-', starting and ending with a letter or digit`);
  }
  return name;
}

export function checkClassName(name: unknown): string {
  if (typeof name !== 'string' || !CLAIM_SUFFIX.test(name)) throw new VolumeSpecError(`volume class name ${JSON.stringify(name)} is not valid: use 1-32 lower-case letters, digits and '-', starting and ending with a letter or digit`);
  return name;
}

export function checkDriver(name: unknown): string {
  if (typeof name !== 'string' || !DRIVER_NAME.test(name)) throw new VolumeSpecError(`driver ${JSON.stringify(name)} is not a CSI driver name: a domain-like name of at most 63 characters, e.g. block.csi.shoal.io`);
  return name;
}

export function checkAccess(a: unknown, dflt: AccessName): AccessName {
  if (a === undefined || a === null || a === '') return dflt;
  if (!isAccess(a)) throw new VolumeSpecError(`access ${JSON.stringify(a)} is not known: use one of ${ACCESS_MODES.join(', ')}`);
  return a;
}

export function checkReclaim(r: unknown): Reclaim {
  if (r === undefined || r === null || r === '') return 'delete';
  if (r !== 'delete' && r !== 'retain') throw new VolumeSpecError(`reclaim ${JSON.stringify(r)} is not known: use delete (a claim goes with its service) or retain (it stays for a service of the same name)`);
  return r;
}

export function checkSize(v: unknown, what: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < MIB || n > MAX_BYTES) throw new VolumeSpecError(`${what} must be a whole number of bytes of at least 1 MiB (e.g. 1G), got ${JSON.stringify(v)}`);
  return n;
}

export function checkParams(p: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (p === undefined || p === null) return out;
  if (typeof p !== 'object' || Array.isArray(p)) throw new VolumeSpecError('params must be a map of strings');
  for (const [k, v] of Object.entries(p as Record<string, unknown>)) {
    if (!PARAM_KEY.test(k)) throw new VolumeSpecError(`parameter key ${JSON.stringify(k)} is not valid (letters, digits, . _ / -, at most 128 characters)`);
    if (typeof v !== 'string' || Buffer.byteLength(v) > 1024) throw new VolumeSpecError(`parameter ${k} must be a string of at most 1024 bytes`);
    out[k] = v;
  }
  return out;
}

/** A service's mounts as stored; throws VolumeSpecError naming the first problem. */
export function mountsFromWire(list: WireMount[] | null | undefined): Mount[] {
  const out: Mount[] = [];
  const targets = new Set<string>();
  const claims = new Set<string>();
  (list ?? []).forEach((w, i) => {
    const where = `mounts[${i}]`;
    const type = w.type || 'volume';
    if (type !== 'volume') throw new VolumeSpecError(`${where}: type ${JSON.stringify(w.type)} is not supported: use type=volume (a named volume, or a class for per-slot volumes)`);
    const target = w.target ?? '';
    if (!target.startsWith('/') || posix.normalize(target) !== target || target === '/' || target.split('/').includes('..') || target.length > 4096) {
      throw new VolumeSpecError(`${where}: target ${JSON.stringify(target)} must be an absolute, normalized path other than / (e.g. target=/data)`);
    }
    if (targets.has(target)) throw new VolumeSpecError(`${where}: target ${target} is mounted twice; each mount needs its own target`);
    targets.add(target);
    const readonly = !!w.readonly;
    const hasSize = w.size_bytes !== undefined && w.size_bytes !== null && Number(w.size_bytes) !== 0;
    if (w.class) {
      checkClassName(w.class);
      if (!hasSize) throw new VolumeSpecError(`${where}: a class mount gives each slot a volume of its own and needs its size (size=1G)`);
      const name = w.source || posix.basename(target).toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 32).replace(/-+$/, '');
      if (!CLAIM_SUFFIX.test(name)) {
        throw new VolumeSpecError(`${where}: the per-slot volumes would be named SERVICE.SLOT-${name || '?'}, which is not valid: give source=NAME (1-32 lower-case letters, digits, '-') to name them`);
      }
      if (claims.has(name)) throw new VolumeSpecError(`${where}: two class mounts would both name their volumes SERVICE.SLOT-${name}: give each a source=NAME of its own`);
      claims.add(name);
      out.push({ type: 'volume', target, readonly, class: w.class, sizeBytes: checkSize(w.size_bytes, `${where} size`), name });
      return;
    }
    if (!w.source) throw new VolumeSpecError(`${where}: give source=VOLUME (a volume from "shoal volume create"), or class=CLASS,size=SIZE for a volume per slot`);
    checkVolumeName(w.source, `${where} source`);
    if (hasSize) throw new VolumeSpecError(`${where}: size= applies to class mounts only (the volume ${w.source} has its own size; "shoal volume expand" grows it)`);
    out.push({ type: 'volume', target, readonly, source: w.source });
  });
  return out;
}

export function mountsToWire(ms: Mount[] | undefined): WireMount[] {
  return (ms ?? []).map((m) => ({ type: m.type, source: m.class ? (m.name ?? '') : (m.source ?? ''), target: m.target, readonly: m.readonly, class: m.class ?? '', size_bytes: m.sizeBytes ?? 0 }));
}

export interface VolumeLookups {
  volume(name: string): VolumeObject | undefined;
  volumeClass(name: string): VolumeClassObject | undefined;
}

/**
 * A service's mounts against what exists: its named volumes and classes must exist, claims need
 * slots (no global modes), a claim's name must fit, and a volume one task at a time can use
 * cannot be updated start-first (the new task could never mount it while the old one runs).
 */
export function checkServiceVolumes(serviceName: string, spec: ServiceSpec, l: VolumeLookups): void {
  const mounts = spec.task.mounts ?? [];
  for (const m of mounts) {
    let access: AccessName;
    if (m.class) {
      const c = l.volumeClass(m.class);
      if (!c) throw new VolumeSpecError(`mount ${m.target}: there is no volume class ${JSON.stringify(m.class)} ("shoal volume-class ls" lists them; "shoal volume-class create" makes one)`);
      if (spec.mode.type === 'global' || spec.mode.type === 'global-job') {
        throw new VolumeSpecError(`mount ${m.target}: a class mount gives each slot its own volume, and ${spec.mode.type} services have no slots; mount a named volume instead (source=VOLUME)`);
      }
      checkVolumeName(`${serviceName}.999999-${m.name}`, `the per-slot volume names (${serviceName}.SLOT-${m.name})`);
      access = c.spec.access;
    } else {
      const v = l.volume(m.source!);
      if (!v) throw new VolumeSpecError(`mount ${m.target}: there is no volume ${JSON.stringify(m.source)} ("shoal volume create ${m.source} --size SIZE" makes it)`);
      if (v.spec.removing) throw new VolumeSpecError(`mount ${m.target}: volume ${m.source} is being removed`);
      if (v.status.state === 'failed') throw new VolumeSpecError(`mount ${m.target}: volume ${m.source} could not be provisioned (${v.status.message}); remove it and create it again`);
      access = v.spec.access;
    }
    if (exclusive(access) && (spec.update?.order === 'start-first' || spec.rollback?.order === 'start-first')) {
      throw new VolumeSpecError(`mount ${m.target}: its volume is ${access} (one task at a time), so the service must update stop-first: a new task could never mount it while the old one runs (drop --update-order/--rollback-order start-first)`);
    }
  }
}

/** The CSI access mode name for a volume's access (for the capability). */
export function csiAccess(a: AccessName) {
  return CSI_ACCESS[a];
}
