// A container's security context as containerd's CRI plugin builds it: capabilities (from the
// runtime's own bounding set for privileged and "ALL"), seccomp (RuntimeDefault, Localhost,
// Unconfined), the host's devices for privileged containers, CRI devices, and the checks that
// make rshared/rslave mounts behave as defined.
import { readdirSync, readFileSync, lstatSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError } from './errors.js';
import { defaultSeccompProfile } from './seccomp-default.js';

// Capability numbers (linux/capability.h) to names.
const CAP_NAMES = ['CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP',
  'LINUX_IMMUTABLE', 'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER', 'SYS_MODULE',
  'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE', 'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE', 'SYS_RESOURCE', 'SYS_TIME',
  'SYS_TTY_CONFIG', 'MKNOD', 'LEASE', 'AUDIT_WRITE', 'AUDIT_CONTROL', 'SETFCAP', 'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG',
  'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF', 'CHECKPOINT_RESTORE'].map((n) => `CAP_${n}`);

// Docker's and containerd's default set for unprivileged containers.
export const DEFAULT_CAPS = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID', 'CAP_SETUID',
  'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE'];

let bounding: string[] | undefined;
/** The capabilities a process may hand on (its bounding set), by name; this runtime's by default. */
export function boundingCaps(status?: string): string[] {
  if (status === undefined && bounding) return bounding;
  const m = /^CapBnd:\s*([0-9a-f]+)$/m.exec(status ?? readFileSync('/proc/self/status', 'utf8'));
  const bits = m ? BigInt('0x' + m[1]) : 0n;
  const out = CAP_NAMES.filter((_, i) => (bits >> BigInt(i)) & 1n);
  if (status === undefined) bounding = out;
  return out;
}

function capName(c: string): string {
  const u = c.toUpperCase();
  return u.startsWith('CAP_') ? u : 'CAP_' + u;
}

/**
 * The container's capability set. Privileged, or "ALL" added, means every capability the
 * runtime itself holds (a fixed list would name ones this machine lacks, and runc would fail).
 * A named capability the runtime does not hold is an error that says so.
 */
export function capabilities(add: string[], drop: string[], privileged: boolean, held = boundingCaps()): string[] {
  if (privileged) return [...held];
  const d = drop.map(capName);
  let caps = d.includes('CAP_ALL') ? [] : DEFAULT_CAPS.filter((c) => !d.includes(c) && held.includes(c));
  const a = add.map(capName);
  if (a.includes('CAP_ALL')) caps = held.filter((c) => !d.includes(c) || a.includes(c));
  for (const c of a) {
    if (c === 'CAP_ALL' || caps.includes(c)) continue;
    if (!CAP_NAMES.includes(c)) throw new InvalidArgumentError(`CreateContainer: unknown capability ${JSON.stringify(c)}`);
    if (!held.includes(c)) throw new InvalidArgumentError(`CreateContainer: capability ${c} cannot be added: shoal-runtime itself does not hold it (its bounding set lacks it)`);
    caps.push(c);
  }
  return caps;
}

export type SeccompSpec = object | undefined;

/**
 * linux.seccomp for a container, as containerd 1.6 decides it: none for privileged containers
 * and when no profile is asked for (or Unconfined); the default profile for RuntimeDefault
 * (and the deprecated "runtime/default", "docker/default"); an OCI seccomp JSON file for
 * Localhost (localhost_ref, or the deprecated "localhost/<path>").
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function seccompFor(sc: any, caps: string[]): SeccompSpec {
  if (sc.privileged) return undefined;
  let kind: 'default' | 'unconfined' | 'localhost';
  let path = '';
  if (sc.seccomp) {
    const t = sc.seccomp.profile_type ?? 0;
    const byName: Record<string, 'default' | 'unconfined' | 'localhost'> = { RuntimeDefault: 'default', Unconfined: 'unconfined', Localhost: 'localhost' };
    kind = typeof t === 'string' ? byName[t]! : (['default', 'unconfined', 'localhost'] as const)[t]!;
    if (!kind) throw new InvalidArgumentError(`CreateContainer: unknown seccomp profile_type ${JSON.stringify(t)}`);
    path = sc.seccomp.localhost_ref ?? '';
  } else {
    const p: string = sc.seccomp_profile_path ?? '';
    if (!p || p === 'unconfined') kind = 'unconfined';
    else if (p === 'runtime/default' || p === 'docker/default') kind = 'default';
    else if (p.startsWith('localhost/')) { kind = 'localhost'; path = p.slice('localhost/'.length); }
    else throw new InvalidArgumentError(`CreateContainer: seccomp_profile_path ${JSON.stringify(p)} is not runtime/default, docker/default, unconfined or localhost/<path>`);
  }
  if (kind === 'unconfined') return undefined;
  if (kind === 'default') return defaultSeccompProfile(caps);
  if (!path.startsWith('/')) throw new InvalidArgumentError(`CreateContainer: seccomp Localhost profile needs an absolute localhost_ref, got ${JSON.stringify(path)}`);
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e) { throw new InvalidArgumentError(`CreateContainer: cannot read seccomp profile ${path}: ${(e as Error).message}`); }
  let prof: { defaultAction?: unknown };
  try { prof = JSON.parse(text); } catch (e) { throw new InvalidArgumentError(`CreateContainer: seccomp profile ${path} is not valid JSON: ${(e as Error).message}`); }
  if (!prof || typeof prof.defaultAction !== 'string') throw new InvalidArgumentError(`CreateContainer: seccomp profile ${path} has no defaultAction (an OCI linux.seccomp object is expected)`);
  return prof;
}

export interface OciDevice { path: string; type: string; major: number; minor: number; fileMode: number; uid: number; gid: number }

/** Linux dev_t to major/minor (glibc's gnu_dev_major/minor), without 32-bit bit operations. */
function majorMinor(rdev: number): { major: number; minor: number } {
  const hi = Math.floor(rdev / 2 ** 32);
  const lo = rdev >>> 0;
  return { major: ((lo >>> 8) & 0xfff) | ((hi & ~0xfff) >>> 0), minor: (lo & 0xff) | ((lo >>> 12) & 0xfff00) };
}

function deviceOf(hostPath: string, containerPath: string): OciDevice | undefined {
  const st = statSync(hostPath);
  const type = st.isCharacterDevice() ? 'c' : st.isBlockDevice() ? 'b' : undefined;
  if (!type) return undefined;
  return { path: containerPath, type, ...majorMinor(st.rdev), fileMode: st.mode & 0o777, uid: st.uid, gid: st.gid };
}

/** Every device node under the host's /dev, for privileged containers (as containerd's WithHostDevices). */
export function hostDevices(dir = '/dev'): OciDevice[] {
  const out: OciDevice[] = [];
  let ents;
  try { ents = readdirSync(dir, { withFileTypes: true }); } catch { return out; }
  for (const e of ents) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (['pts', 'shm', 'fd', 'mqueue', '.lxc', '.lxd-mounts', '.udev'].includes(e.name)) continue;
      out.push(...hostDevices(p));
      continue;
    }
    if (e.name === 'console' || e.isSymbolicLink()) continue;
    try { const d = deviceOf(p, p); if (d) out.push(d); } catch { /* gone */ }
  }
  return out;
}

/** CRI Devices (host_path -> container_path with r/w/m permissions). */
export function criDevices(list: { host_path?: string; container_path?: string; permissions?: string }[]): { devices: OciDevice[]; rules: { allow: boolean; type: string; major: number; minor: number; access: string }[] } {
  const devices: OciDevice[] = [];
  const rules: { allow: boolean; type: string; major: number; minor: number; access: string }[] = [];
  for (const d of list) {
    if (!d.host_path || !d.container_path || !d.container_path.startsWith('/')) throw new InvalidArgumentError(`CreateContainer: device needs a host_path and an absolute container_path, got ${JSON.stringify(d)}`);
    const perms = d.permissions || 'rwm';
    if (!/^[rwm]+$/.test(perms)) throw new InvalidArgumentError(`CreateContainer: device ${d.host_path} permissions ${JSON.stringify(perms)} must be letters from "rwm"`);
    let dev: OciDevice | undefined;
    try { lstatSync(d.host_path); dev = deviceOf(d.host_path, d.container_path); } catch (e) { throw new InvalidArgumentError(`CreateContainer: device ${d.host_path}: ${(e as Error).message}`); }
    if (!dev) throw new InvalidArgumentError(`CreateContainer: ${d.host_path} is not a device node`);
    devices.push(dev);
    rules.push({ allow: true, type: dev.type, major: dev.major, minor: dev.minor, access: perms });
  }
  return { devices, rules };
}

/** The mount (from /proc/self/mountinfo) a path lives on, with its propagation fields. */
export function mountOf(path: string, mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): { mountPoint: string; optional: string } {
  let best = { mountPoint: '/', optional: '' };
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    if (f.length < 7) continue;
    const mp = f[4]!.replace(/\\040/g, ' ');
    const sep = f.indexOf('-');
    if (path === mp || path.startsWith(mp === '/' ? '/' : mp + '/')) {
      if (mp.length >= best.mountPoint.length) best = { mountPoint: mp, optional: f.slice(6, sep).join(' ') };
    }
  }
  return best;
}

/**
 * rshared needs a shared source mount and rslave a shared or slave one (else the kernel
 * propagates nothing and the option would silently mean nothing): checked as containerd does.
 */
export function checkPropagation(hostPath: string, prop: 'rshared' | 'rslave'): void {
  const m = mountOf(hostPath);
  const shared = /\bshared:\d+/.test(m.optional);
  const slave = /\bmaster:\d+/.test(m.optional);
  if (prop === 'rshared' && !shared) throw new InvalidArgumentError(`CreateContainer: mount ${hostPath} asks for bidirectional propagation, but it is on ${m.mountPoint}, which is not a shared mount (mount --make-shared ${m.mountPoint})`);
  if (prop === 'rslave' && !shared && !slave) throw new InvalidArgumentError(`CreateContainer: mount ${hostPath} asks for host-to-container propagation, but it is on ${m.mountPoint}, which is neither a shared nor a slave mount (mount --make-shared ${m.mountPoint})`);
}
