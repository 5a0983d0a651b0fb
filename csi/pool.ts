// The pool: a directory every node that may use its volumes can reach (a local directory for a
// node-local pool; in the lab, one directory all lab hosts share, as a network disk would be).
// It holds the volumes' image files and every durable record the driver keeps, so any driver
// process on any node sees the same truth:
//
//   pool.json                         the pool's id (the topology segment of its volumes)
//   nodes/<node>.json                 a node's driver: started, heartbeat, topology
//   volumes/<vid>/volume.json         name, parameters, source, creation time (size = the image's)
//   volumes/<vid>/image               the sparse image file
//   volumes/<vid>/publish.json        attachments (ControllerPublish) and revocations, by the controller
//   volumes/<vid>/nodes/<node>.json   what that node did with it (staging/staged/released/fenced), by the node
//   volumes/<vid>/freeze.json         a controller's request to freeze it for a snapshot
//   snapshots/<sid>/snapshot.json     name, source volume, creation time, size
//   snapshots/<sid>/image             the snapshot's copy of the image
//   .tmp/                             things being built, renamed into place when complete
import { createHash, randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fsyncDir, readJson } from './durable.js';
import type { StringMap } from '../proto/csi/v1/csi.js';

export const TOPOLOGY_KEY = 'topology.shoal.io/pool';

export interface VolumeRecord {
  volume_id: string;
  name: string;
  created: string;
  parameters: StringMap;
  source?: { snapshot_id?: string; volume_id?: string };
}

export interface Attachment { node_id: string; readonly: boolean; mode: number; generation: number; at: string }
export interface Revocation { node_id: string; generation: number; readonly: boolean; at: string; atMs: number }
export interface PublishRecord { generation: number; attachments: Attachment[]; revoked: Revocation[] }

export type NodeVolumeStateName = 'staging' | 'staged' | 'released' | 'fenced';
export interface NodeVolumeState { node_id: string; generation: number; state: NodeVolumeStateName; at: string; frozen?: string; formatting?: boolean }
export interface NodeRecord { node_id: string; started: string; heartbeatMs: number; topology: StringMap }
export interface FreezeRequest { id: string; node_id: string; generation: number; atMs: number }
export interface SnapshotRecord { snapshot_id: string; name: string; source_volume_id: string; createdMs: number; size_bytes: number }

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$/;

/** A readable, stable id for a name: its safe characters plus 12 hex digits of its SHA-256. */
export function idFor(name: string): string {
  const safe = name.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 40).replace(/[-.]+$/, '');
  return `${safe || 'vol'}-${createHash('sha256').update(name).digest('hex').slice(0, 12)}`;
}

/** Whether `id` can name an entry of the pool (no path tricks); anything else does not exist. */
export const validId = (id: string) => ID.test(id) && !id.includes('..');

export class Pool {
  readonly dir: string;
  id = '';

  constructor(dir: string) { this.dir = resolve(dir); }

  /** Creates the layout if missing and reads (or, first time, makes) the pool's id. */
  init(): void {
    for (const d of ['volumes', 'snapshots', 'nodes', '.tmp']) mkdirSync(join(this.dir, d), { recursive: true });
    const file = join(this.dir, 'pool.json');
    let info = readJson<{ id: string }>(file);
    if (!info) {
      // Two drivers starting on a fresh shared pool at once must agree: link() a complete file
      // into place; whoever loses reads the winner's.
      const tmp = `${this.tmpName('pool', 'init')}.json`;
      writeFileSync(tmp, JSON.stringify({ id: `pool-${randomBytes(6).toString('hex')}`, created: new Date().toISOString() }) + '\n');
      fsyncDir(join(this.dir, '.tmp'));
      try { linkSync(tmp, file); fsyncDir(this.dir); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e; }
      unlinkSync(tmp);
      info = readJson<{ id: string }>(file)!;
    }
    this.id = info.id;
  }

  topology(): StringMap { return { [TOPOLOGY_KEY]: this.id }; }

  volDir = (vid: string) => join(this.dir, 'volumes', vid);
  image = (vid: string) => join(this.dir, 'volumes', vid, 'image');
  volumeJson = (vid: string) => join(this.dir, 'volumes', vid, 'volume.json');
  publishJson = (vid: string) => join(this.dir, 'volumes', vid, 'publish.json');
  nodeStateDir = (vid: string) => join(this.dir, 'volumes', vid, 'nodes');
  nodeStateJson = (vid: string, node: string) => join(this.dir, 'volumes', vid, 'nodes', `${encodeURIComponent(node)}.json`);
  /**
   * The node's own name for the image (a hard link): a node attaches its loop device through it,
   * so the kernel's record of the loop device (its backing file path) says which node it belongs
   * to, also when several "nodes" share one kernel (the lab's hosts are namespaces on one machine).
   */
  nodeImage = (vid: string, node: string) => join(this.dir, 'volumes', vid, 'nodes', `${encodeURIComponent(node)}.img`);
  freezeJson = (vid: string) => join(this.dir, 'volumes', vid, 'freeze.json');
  snapDir = (sid: string) => join(this.dir, 'snapshots', sid);
  snapImage = (sid: string) => join(this.dir, 'snapshots', sid, 'image');
  snapJson = (sid: string) => join(this.dir, 'snapshots', sid, 'snapshot.json');
  nodeJson = (node: string) => join(this.dir, 'nodes', `${encodeURIComponent(node)}.json`);

  /** The volume's record and size, or undefined when it does not exist (or is half-made). */
  volume(vid: string): { rec: VolumeRecord; size: number } | undefined {
    if (!validId(vid)) return undefined;
    const rec = readJson<VolumeRecord>(this.volumeJson(vid));
    if (!rec) return undefined;
    try { return { rec, size: statSync(this.image(vid)).size }; } catch { return undefined; }
  }

  volumeIds(): string[] { return readdirSync(join(this.dir, 'volumes')).filter((n) => !n.startsWith('.')).sort(); }
  snapshotIds(): string[] { return readdirSync(join(this.dir, 'snapshots')).filter((n) => !n.startsWith('.')).sort(); }

  snapshot(sid: string): SnapshotRecord | undefined {
    if (!validId(sid)) return undefined;
    return readJson<SnapshotRecord>(this.snapJson(sid));
  }

  publish(vid: string): PublishRecord { return readJson<PublishRecord>(this.publishJson(vid)) ?? { generation: 0, attachments: [], revoked: [] }; }
  nodeState(vid: string, node: string): NodeVolumeState | undefined { return readJson<NodeVolumeState>(this.nodeStateJson(vid, node)); }
  node(node: string): NodeRecord | undefined { return readJson<NodeRecord>(this.nodeJson(node)); }

  /** The volume a loop device's backing file belongs to when `node` attached it, if it is one. */
  volumeOfNodeImage(path: string, node: string): string | undefined {
    const p = path.replace(/ \(deleted\)$/, '');
    const prefix = join(this.dir, 'volumes') + '/';
    const suffix = `/nodes/${encodeURIComponent(node)}.img`;
    if (!p.startsWith(prefix) || !p.endsWith(suffix)) return undefined;
    const vid = p.slice(prefix.length, -suffix.length);
    return validId(vid) ? vid : undefined;
  }

  /** Whether a loop device's backing file lies anywhere in this pool (also one being deleted). */
  holds(path: string): boolean { return path.startsWith(this.dir + '/'); }

  /**
   * A fresh name under .tmp/ (same filesystem, so what is built there can be renamed into
   * place): `<what>~<node>~<pid>~<random>`, so a restarted driver knows its own leftovers.
   */
  tmpName(what: string, owner: string): string {
    return join(this.dir, '.tmp', `${what}~${encodeURIComponent(owner)}~${process.pid}~${randomBytes(4).toString('hex')}`);
  }

  tmpDir(what: string, owner: string): string {
    const d = this.tmpName(what, owner);
    mkdirSync(d);
    return d;
  }

  /**
   * Removes what interrupted creations and deletions left in .tmp/: this node's, when the
   * process that made them is gone; any node's, once older than `ageMs` (another node's driver
   * may still be working on its own).
   */
  sweepTmp(owner: string, ageMs: number): string[] {
    const removed: string[] = [];
    const tmp = join(this.dir, '.tmp');
    for (const n of readdirSync(tmp)) {
      const p = join(tmp, n);
      const [, node, pid] = n.split('~');
      const mineAndDead = node === encodeURIComponent(owner) && Number(pid) !== process.pid && !alive(Number(pid));
      try {
        if (!mineAndDead && Date.now() - statSync(p).mtimeMs < ageMs) continue;
        rmSync(p, { recursive: true, force: true });
        removed.push(n);
      } catch { /* raced with its owner */ }
    }
    return removed;
  }
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}
