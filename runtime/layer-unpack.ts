// Unpacks one OCI layer (a tar stream) into an empty directory that becomes an overlayfs lower
// layer. OCI whiteouts are turned into overlayfs ones: `.wh.NAME` becomes a 0/0 character
// device NAME, and `.wh..wh..opq` marks its directory opaque (trusted.overlay.opaque=y).
// Every entry is checked so nothing lands outside the target: `..` components are refused,
// and so is any entry whose parent path goes through a symlink (which could point anywhere
// on the host while we extract).
import { promises as fsp, constants as fsc } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { readTar, type TarEntry } from './tar-reader.js';
import { runCommand } from './run-command.js';

export interface UnpackStats {
  entries: number;
  bytes: number;
  whiteouts: number;
  opaqueDirs: number;
}

export class UnsafeLayerError extends Error {}

/** Splits an entry name into safe components, or throws UnsafeLayerError. */
export function safeComponents(name: string): string[] {
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  for (const p of parts) {
    if (p === '..') throw new UnsafeLayerError(`layer entry ${JSON.stringify(name)} contains "..": refusing a path that could escape the root`);
    if (p.includes('\0')) throw new UnsafeLayerError(`layer entry ${JSON.stringify(name)} contains a NUL byte`);
  }
  return parts;
}

async function lstatOrNull(p: string) {
  try { return await fsp.lstat(p); } catch (e) { if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null; throw e; }
}

/**
 * Makes sure every parent of `parts` under root exists as a real directory (created 0755 if
 * missing) and that none is a symlink. Returns the absolute path of the entry.
 */
async function preparePath(root: string, parts: string[], original: string): Promise<string> {
  let cur = root;
  for (let i = 0; i < parts.length - 1; i++) {
    cur = join(cur, parts[i]!);
    const st = await lstatOrNull(cur);
    if (!st) { await fsp.mkdir(cur, { mode: 0o755 }); continue; }
    if (st.isSymbolicLink()) throw new UnsafeLayerError(`layer entry ${JSON.stringify(original)} goes through the symlink ${JSON.stringify(parts.slice(0, i + 1).join('/'))}: refusing, it could write outside the root`);
    if (!st.isDirectory()) throw new UnsafeLayerError(`layer entry ${JSON.stringify(original)}: parent ${JSON.stringify(parts.slice(0, i + 1).join('/'))} is not a directory`);
  }
  return join(root, ...parts);
}

/**
 * Devices, xattrs and directory metadata are applied after the whole layer is read, on paths
 * recorded earlier; a later entry may since have replaced one of their components with a
 * symlink that points anywhere on the host (chmod, chown and setfattr follow links). True only
 * if every component under root is still a real directory, the last one too when `last` is
 * 'dir', or absent when it is 'absent'. Otherwise a later entry replaced the path, and in a tar
 * the later entry wins: the deferred work is skipped.
 */
async function stillInsideRoot(root: string, abs: string, last: 'dir' | 'absent'): Promise<boolean> {
  const parts = abs === root ? [] : relative(root, abs).split(sep);
  let cur = root;
  for (let i = 0; i < parts.length; i++) {
    cur = join(cur, parts[i]!);
    const st = await lstatOrNull(cur);
    if (i === parts.length - 1 && last === 'absent') return st === null;
    if (!st || st.isSymbolicLink() || !st.isDirectory()) return false;
  }
  return true;
}

async function removeExisting(p: string, keepDir: boolean): Promise<void> {
  const st = await lstatOrNull(p);
  if (!st) return;
  if (st.isDirectory() && keepDir) return;
  await fsp.rm(p, { recursive: true, force: true });
}

/** Unpacks `stream` (an uncompressed tar) into `root`, which must exist and be empty. */
export async function unpackLayer(stream: AsyncIterable<Buffer | Uint8Array | string>, root: string): Promise<UnpackStats> {
  const stats: UnpackStats = { entries: 0, bytes: 0, whiteouts: 0, opaqueDirs: 0 };
  const dirMeta: { path: string; e: TarEntry }[] = [];
  const devices: { path: string; kind: 'c' | 'b' | 'p'; major: number; minor: number; e: TarEntry }[] = [];
  const opaque: string[] = [];
  for await (const { entry: e, body } of readTar(stream)) {
    stats.entries++;
    const parts = safeComponents(e.name);
    if (parts.length === 0) {
      if (e.type === 'dir') dirMeta.push({ path: root, e });
      continue;
    }
    const base = parts[parts.length - 1]!;
    if (base === '.wh..wh..opq') {
      const dir = await preparePath(root, [...parts.slice(0, -1), 'x'], e.name);
      opaque.push(join(dir, '..'));
      stats.opaqueDirs++;
      continue;
    }
    if (base.startsWith('.wh.')) {
      const target = [...parts.slice(0, -1), base.slice(4)];
      safeComponents(target.join('/'));
      if (target[target.length - 1] === '' ) throw new UnsafeLayerError(`layer entry ${JSON.stringify(e.name)} is an empty whiteout`);
      const p = await preparePath(root, target, e.name);
      await removeExisting(p, false);
      devices.push({ path: p, kind: 'c', major: 0, minor: 0, e: { ...e, mode: 0, uid: 0, gid: 0 } });
      stats.whiteouts++;
      continue;
    }
    const p = await preparePath(root, parts, e.name);
    switch (e.type) {
      case 'dir': {
        await removeExisting(p, true);
        if (!(await lstatOrNull(p))) await fsp.mkdir(p, { mode: 0o755 });
        dirMeta.push({ path: p, e });
        break;
      }
      case 'file': {
        await removeExisting(p, false);
        // O_EXCL|O_NOFOLLOW: never write through something that appeared meanwhile.
        const fh = await fsp.open(p, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
        try {
          for await (const c of body.chunks()) { await fh.write(c); stats.bytes += c.length; }
          await fh.chown(e.uid, e.gid);
          await fh.chmod(e.mode);
          await fh.utimes(e.mtime, e.mtime);
        } finally { await fh.close(); }
        break;
      }
      case 'symlink': {
        await removeExisting(p, false);
        await fsp.symlink(e.linkname, p);
        await fsp.lchown(p, e.uid, e.gid);
        await fsp.lutimes(p, e.mtime, e.mtime);
        break;
      }
      case 'hardlink': {
        const tparts = safeComponents(e.linkname);
        if (tparts.length === 0) throw new UnsafeLayerError(`layer entry ${JSON.stringify(e.name)} is a hard link to the root`);
        const target = await preparePath(root, tparts, e.linkname);
        const tst = await lstatOrNull(target);
        if (!tst) throw new Error(`layer entry ${JSON.stringify(e.name)} is a hard link to ${JSON.stringify(e.linkname)}, which is not in this layer`);
        if (tst.isDirectory()) throw new UnsafeLayerError(`layer entry ${JSON.stringify(e.name)} is a hard link to a directory`);
        await removeExisting(p, false);
        await fsp.link(target, p);
        break;
      }
      case 'char': case 'block': case 'fifo': {
        await removeExisting(p, false);
        devices.push({ path: p, kind: e.type === 'char' ? 'c' : e.type === 'block' ? 'b' : 'p', major: e.devmajor, minor: e.devminor, e });
        break;
      }
    }
  }
  // Node has no mknod(2) or setxattr(2): batch them into one shell per layer.
  const liveDevices: typeof devices = [];
  for (const d of devices) if (await stillInsideRoot(root, d.path, 'absent')) liveDevices.push(d);
  devices.length = 0;
  devices.push(...liveDevices);
  if (devices.length > 0) {
    const script = devices.map((_, i) => {
      const d = devices[i]!;
      const n = `"$${i + 1}"`;
      const mk = d.kind === 'p' ? `mknod ${n} p` : `mknod ${n} ${d.kind} ${d.major} ${d.minor}`;
      return `${mk} && chown -h ${d.e.uid}:${d.e.gid} ${n} && chmod ${(d.e.mode & 0o7777).toString(8)} ${n}`;
    }).join(' && ');
    // Positional parameters beyond $9 need braces.
    const fixed = script.replace(/"\$(\d+)"/g, (_m, k) => `"\${${k}}"`);
    await runCommand('sh', ['-c', fixed, 'sh', ...devices.map((d) => d.path)]);
  }
  if (opaque.length > 0) {
    for (const d of opaque) if (await stillInsideRoot(root, d, 'dir')) await runCommand('setfattr', ['-h', '-n', 'trusted.overlay.opaque', '-v', 'y', d]);
  }
  // Directory modes and times last: a read-only directory must not block its own children.
  for (const { path, e } of dirMeta.reverse()) {
    if (!(await stillInsideRoot(root, path, 'dir'))) continue;
    await fsp.chown(path, e.uid, e.gid);
    await fsp.chmod(path, e.mode);
    await fsp.utimes(path, e.mtime, e.mtime);
  }
  return stats;
}
