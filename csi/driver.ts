// The driver's shared state: its configuration, the pool, the per-volume locks, and the bits of
// policy that controller and node calls both use (pool capacity, the fencing rule).
import { statSync, statfsSync } from 'node:fs';
import { Locks } from './locks.js';
import { Pool, type PublishRecord, type Revocation } from './pool.js';

export const DRIVER_VERSION = '0.1.0';
export const DEFAULT_NAME = 'block.csi.shoal.io';

export interface DriverOptions {
  /** CSI driver name (GetPluginInfo, registration). */
  name: string;
  /** This node's id (NodeGetInfo; what ControllerPublishVolume is given). */
  nodeId: string;
  /** The pool directory. */
  poolDir: string;
  /** Most bytes the pool may provision (volumes + snapshots); 0 = the pool filesystem's space. */
  capacityBytes: number;
  /** How often the node side checks its staged volumes (fences, freezes) and heartbeats. */
  watchIntervalMs: number;
  /**
   * How long after a revocation (or the node's last heartbeat, whichever is later) a node that
   * never confirmed it stopped writing is presumed dead or cut off from the pool, so the volume
   * may be attached read-write elsewhere.
   */
  fenceGraceMs: number;
  /** How long CreateSnapshot waits for the node that has the volume staged to freeze it. */
  freezeTimeoutMs: number;
}

export const defaultOptions = (o: Partial<DriverOptions> & Pick<DriverOptions, 'nodeId' | 'poolDir'>): DriverOptions => {
  const watchIntervalMs = o.watchIntervalMs ?? 1000;
  return {
    name: o.name ?? DEFAULT_NAME,
    nodeId: o.nodeId,
    poolDir: o.poolDir,
    capacityBytes: o.capacityBytes ?? 0,
    watchIntervalMs,
    fenceGraceMs: o.fenceGraceMs ?? 3 * watchIntervalMs + 2000,
    freezeTimeoutMs: o.freezeTimeoutMs ?? 10 * watchIntervalMs,
  };
};

export class Driver {
  readonly pool: Pool;
  readonly locks = new Locks();
  /** Set by the node watcher: runs one pass now (e.g. right after a local freeze request). */
  kickWatcher: () => void = () => {};

  constructor(readonly opts: DriverOptions) { this.pool = new Pool(opts.poolDir); }

  init(): void { this.pool.init(); }

  /**
   * Bytes still free for new volumes: the pool filesystem's free space less what provisioned
   * sparse images may still claim, and at most --capacity less what is provisioned.
   */
  available(): number {
    let provisioned = 0;
    let unallocated = 0;
    const add = (path: string) => {
      try {
        const st = statSync(path);
        provisioned += st.size;
        unallocated += Math.max(0, st.size - st.blocks * 512);
      } catch { /* deleted meanwhile */ }
    };
    for (const v of this.pool.volumeIds()) add(this.pool.image(v));
    for (const s of this.pool.snapshotIds()) add(this.pool.snapImage(s));
    const fs = statfsSync(this.pool.dir);
    let avail = fs.bavail * fs.bsize - unallocated;
    if (this.opts.capacityBytes > 0) avail = Math.min(avail, this.opts.capacityBytes - provisioned);
    return Math.max(0, avail);
  }

  /**
   * Whether a revoked attachment still keeps the volume from being attached read-write
   * elsewhere: the node has not confirmed it stopped (released or fenced that generation), and
   * neither the revocation nor its last heartbeat is older than the fence grace.
   */
  revocationPending(vid: string, r: Revocation, now = Date.now()): { pending: boolean; why: string } {
    if (r.readonly) return { pending: false, why: 'read-only' };
    const st = this.pool.nodeState(vid, r.node_id);
    if (!st || st.generation < r.generation) return { pending: false, why: 'never staged that attachment' };
    if (st.generation > r.generation) return { pending: false, why: 'staged a later attachment since' };
    if (st.state === 'released' || st.state === 'fenced') return { pending: false, why: st.state };
    const hb = this.pool.node(r.node_id)?.heartbeatMs ?? 0;
    const quietSince = Math.max(r.atMs, hb);
    const left = quietSince + this.opts.fenceGraceMs - now;
    if (left <= 0) return { pending: false, why: `node silent for ${Math.round((now - quietSince) / 1000)} s (presumed dead or cut off from the pool)` };
    return { pending: true, why: `node ${r.node_id} has not yet confirmed it stopped writing (revoked ${new Date(r.atMs).toISOString()}); it fences itself within ${this.opts.watchIntervalMs} ms while it runs, else it is presumed gone in ${Math.ceil(left / 1000)} s` };
  }

  /** Drops revocations that no longer matter. */
  prune(vid: string, rec: PublishRecord): PublishRecord {
    return { ...rec, revoked: rec.revoked.filter((r) => this.revocationPending(vid, r).pending) };
  }
}
