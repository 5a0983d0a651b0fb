// The CSI Node service: stage = loop device + ext4 (made on first use, grown when the image
// grew) mounted at the staging path; publish = a bind mount of it at the target path. Each call
// reads the kernel's loop devices and mounts first, so it completes or undoes what an
// interrupted earlier call (a crashed driver) left, and repeating a call changes nothing.
import { linkSync, mkdirSync, rmdirSync, statfsSync, statSync, unlinkSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { NodeRpc, UsageUnit, type VolumeCapability } from '../proto/csi/v1/csi.js';
import { isReadOnlyMode, mountFlags, requireSupported } from './access.js';
import { CTX } from './controller.js';
import { crashPoint } from './crash.js';
import type { Driver } from './driver.js';
import { readJson, writeJsonDurable } from './durable.js';
import { alreadyExists, aborted, invalid, notFound, outOfRange, precondition } from './errors.js';
import { blank, growOffline, growOnline, mkfs, MOUNT_DEFAULTS, OnlineResizeRefused, superblock, thaw } from './ext4.js';
import { attachLoop, describePid, detachLoop, holdersElsewhere, umountIn, type Holder, loopDevices, loopsFor, mount, mountAt, mounts, refreshLoopSize, umountAll, type LoopDevice, type MountEntry } from './kernel.js';
import { validId, type NodeVolumeState, type NodeVolumeStateName } from './pool.js';
import { trace } from './trace.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Req = any;

function path(v: unknown, what: string): string {
  if (typeof v !== 'string' || v === '') throw invalid(`${what} is required`);
  if (!isAbsolute(v) || v.includes('\0')) throw invalid(`${what} must be an absolute path (got ${JSON.stringify(v)})`);
  return v.replace(/\/+$/, '') || '/';
}
const required = (v: unknown, what: string): string => {
  if (typeof v !== 'string' || v === '') throw invalid(`${what} is required`);
  return v;
};

/**
 * A new mount namespace anywhere on the machine starts as a copy of ours (runc's until its
 * pivot_root; any `unshare -m`), copying the volume's mounts at their host paths. With a shared
 * volume directory (csi/mount-root.ts) such copies follow our unmounts; a namespace made private
 * keeps them, and they pin the loop device. A copy is recognised by the staging path among its
 * mount points (also under a pivot_root's old root); a container that uses the volume has it at
 * a path of its own instead.
 */
const isCopy = (h: Holder, staging: string) => h.mountPoints.some((mp) => mp === staging || mp.endsWith(staging));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Namespaces that really use the device (not copies), after giving short-lived ones 2 s to go. */
async function realUsers(dev: string, staging: string): Promise<Holder[]> {
  let real = holdersElsewhere(dev).filter((h) => !isCopy(h, staging));
  for (let i = 0; real.length > 0 && i < 10; i++) {
    await sleep(200);
    real = holdersElsewhere(dev).filter((h) => !isCopy(h, staging));
  }
  return real;
}

/** Unmounts the copies inside their namespaces; returns who still holds the device after 2 s. */
async function releaseCopies(dev: string, staging: string): Promise<Holder[]> {
  for (let i = 0; ; i++) {
    for (const h of holdersElsewhere(dev)) if (isCopy(h, staging)) await umountIn(h.pid, h.mountPoints);
    const left = holdersElsewhere(dev);
    if (left.length === 0 || i >= 10) return left;
    await sleep(200);
  }
}

const describeHolders = (held: Holder[]) => held.map((h) => `${describePid(h.pid)} at ${h.mountPoints.join(', ')}`).join('; ');

export function nodeHandlers(d: Driver) {
  const pool = d.pool;
  const me = d.opts.nodeId;

  const setState = (vid: string, generation: number, state: NodeVolumeStateName, extra: Partial<NodeVolumeState> = {}) =>
    writeJsonDurable(pool.nodeStateJson(vid, me), { node_id: me, generation, state, at: new Date().toISOString(), ...extra } satisfies NodeVolumeState);

  /** This node's loop devices of a volume (attached through the node's own link to the image). */
  const mine = (vid: string) => loopsFor(pool.nodeImage(vid, me));
  const ownSuffix = `/nodes/${encodeURIComponent(me)}.img`;
  /**
   * The loop device behind a mount, if it is this node's device of this volume; for a volume
   * deleted meanwhile, any device this node attached from the pool (so its agent can still
   * clean up after it).
   */
  const loopOf = (vid: string, m: MountEntry | undefined): LoopDevice | undefined => {
    if (!m) return undefined;
    const l = mine(vid).find((x) => x.dev === m.dev);
    if (l || exists(vid)) return l;
    return loopDevices().find((x) => {
      const b = x.backing.replace(/ \(deleted\)$/, '');
      return x.dev === m.dev && pool.holds(b) && b.endsWith(ownSuffix);
    });
  };
  const ensureLink = (vid: string) => {
    try { linkSync(pool.image(vid), pool.nodeImage(vid, me)); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e; }
  };
  const dropLink = (vid: string) => { try { unlinkSync(pool.nodeImage(vid, me)); } catch { /* gone */ } };

  // Whether the volume exists: its image is there (a volume is renamed into place whole).
  const exists = (vid: string) => { if (!validId(vid)) return false; try { statSync(pool.image(vid)); return true; } catch { return false; } };

  /**
   * NodeUnstageVolume's work, under the volume's node lock: unmount the staging path (refused
   * while a publish or a container still uses it), detach this node's loop devices of the volume
   * that nothing mounts, and record that the node let go. Returns whether it did anything.
   */
  const unstage = async (vid: string, staging: string): Promise<boolean> => {
    const at = mountAt(staging);
    const st = pool.nodeState(vid, me);
    let did = false;
    if (at) {
      const loop = loopOf(vid, at);
      if (!loop) throw precondition(`${staging} holds a filesystem that is not volume ${vid} (${at.source}); not touching it`);
      const published = mounts().filter((m) => m.dev === loop.dev && m.mountPoint !== staging);
      if (published.length > 0) throw precondition(`volume ${vid} is still published at ${published.map((m) => m.mountPoint).join(', ')}; NodeUnpublishVolume first`);
      const held = await realUsers(loop.dev, staging);
      if (held.length > 0) throw precondition(`volume ${vid} is still mounted in the mount namespace of process ${describeHolders(held)} (a container still running with it?); stop it first`);
      if (st?.frozen) await thaw(staging);
      await umountAll(staging);
      did = true;
      crashPoint('unstage:after-umount');
    }
    // Detach every loop device of the image that nothing mounts any more (also one a crash
    // left between losetup and mount).
    const all = mounts();
    const atLoop = at ? loopOf(vid, at) : undefined;
    const loops = mine(vid);
    if (atLoop && !loops.some((l) => l.dev === atLoop.dev)) loops.push(atLoop);
    for (const loop of loops) {
      if (all.some((m) => m.dev === loop.dev)) continue;
      // Our own mounts are gone, so no new copies can appear: release the old ones.
      const held = await releaseCopies(loop.dev, staging);
      if (held.length > 0) throw precondition(`the loop device ${loop.path} of volume ${vid} is still mounted in the mount namespace of process ${describeHolders(held)}; stop it first`);
      if (!(await detachLoop(loop))) throw precondition(`the loop device ${loop.path} of volume ${vid} is still held open by a process; it detaches when that closes it`);
      did = true;
    }
    if (exists(vid)) dropLink(vid);
    // Only now, with no loop device left, does the node stop counting as a writer.
    if (st && st.state !== 'released') setState(vid, st.generation, st.state === 'fenced' ? 'fenced' : 'released');
    return did;
  };

  return {
    async NodeStageVolume(req: Req) {
      const vid = required(req.volume_id, 'volume_id');
      const staging = path(req.staging_target_path, 'staging_target_path');
      const cap: VolumeCapability = req.volume_capability;
      const mode = requireSupported(cap);
      const ctx: Record<string, string> = req.publish_context ?? {};
      return d.locks.run(`n:${vid}`, async () => {
        const tr = trace('NodeStageVolume');
        try { return await stage(); } finally { tr.done(); }
        async function stage() {
        if (!exists(vid)) throw notFound(`volume ${vid} does not exist in pool ${pool.dir}`);
        if (ctx[CTX.pool] && ctx[CTX.pool] !== pool.id) throw precondition(`volume ${vid} was published from pool ${ctx[CTX.pool]}, but this node's driver serves pool ${pool.id} (${pool.dir}); the node cannot reach that pool`);
        const attachedHere = () => pool.publish(vid).attachments.find((a) => a.node_id === me && (!ctx[CTX.generation] || String(a.generation) === ctx[CTX.generation]));
        let att = attachedHere();
        if (!att) throw precondition(`volume ${vid} is not published to node ${me}${ctx[CTX.generation] ? ` (attachment ${ctx[CTX.generation]})` : ''}; ControllerPublishVolume it to this node first`);
        const readonly = att.readonly || isReadOnlyMode(mode);

        // Staged here under an earlier attachment: the volume was taken from this node meanwhile
        // (its filesystem fenced, or about to be: it may have been written elsewhere since), so
        // that mount is never handed out again. Undone first (refused while a publish or a
        // container still holds it), then staged afresh.
        const prev = pool.nodeState(vid, me);
        if (mountAt(staging) && prev && (prev.state === 'fenced' || prev.generation < att.generation)) {
          await unstage(vid, staging);
          tr.step('stale stage undone');
        }
        // Already staged here (a repeated call, or one that finished before a crash)?
        const all = mounts();
        const at = mountAt(staging, all);
        if (at) {
          const loop = loopOf(vid, at);
          if (!loop) throw alreadyExists(`staging_target_path ${staging} already has another filesystem mounted (${at.source}); it cannot hold volume ${vid}`);
          if (!readonly && at.options.includes('ro')) throw alreadyExists(`volume ${vid} is staged read-only at ${staging}; NodeUnstageVolume it to stage it read-write`);
          const cur = pool.nodeState(vid, me);
          if (!cur || cur.generation !== att.generation || cur.formatting || (cur.state !== 'staging' && cur.state !== 'staged')) setState(vid, att.generation, 'staged');
          return {};
        }
        const myLoops = mine(vid);
        const elsewhere = myLoops.flatMap((l) => all.filter((m) => m.dev === l.dev && m.root === '/'));
        if (elsewhere.length > 0) throw precondition(`volume ${vid} is already staged on this node at ${elsewhere[0]!.mountPoint}; the CO uses one staging path per volume`);

        // Record the intent before touching anything, then look again at the attachment and at
        // snapshot freezes: a revocation or a freeze request written meanwhile is seen by one
        // side or the other (each writes first, then reads the other's record).
        // First use? Decided from the image itself, so the intent record says so in one write.
        const existing = myLoops[0];
        const image = existing?.path ?? pool.image(vid);
        const needsFormat = !readonly && !superblock(image);
        if (needsFormat && !blank(image) && !pool.nodeState(vid, me)?.formatting) {
          // Not blank and no superblock: foreign data, unless it is our own mkfs a crash cut short.
          throw precondition(`volume ${vid} holds data that is not an ext4 filesystem; refusing to format it`);
        }
        setState(vid, att.generation, 'staging', needsFormat ? { formatting: true } : {});
        tr.step('intent');
        att = attachedHere();
        if (!att) {
          setState(vid, Number(ctx[CTX.generation] ?? 0), 'released');
          throw precondition(`volume ${vid} was unpublished from node ${me} while staging; not staged`);
        }
        const fz = pool.freezeJson(vid);
        if (readJson(fz)) {
          setState(vid, att.generation, 'released');
          throw aborted(`a snapshot of volume ${vid} is being taken; retry in a moment`);
        }

        let loop = existing;
        // A device attached earlier may predate a ControllerExpandVolume of the image.
        if (loop && !readonly) await refreshLoopSize(loop);
        if (!loop) {
          ensureLink(vid);
          loop = await attachLoop(pool.nodeImage(vid, me), readonly);
        }
        tr.step('losetup');
        crashPoint('stage:after-loop');
        if (needsFormat) {
          await mkfs(loop.path);
          tr.step('mkfs');
          crashPoint('stage:after-mkfs');
        } else {
          const sb = superblock(loop.path);
          if (!sb) throw precondition(`volume ${vid} has no filesystem yet and is attached read-only; stage it read-write once to create one`);
          const dev = loopDevices().find((l) => l.path === loop!.path)!;
          if (!readonly && sb.bytes + sb.blockSize <= dev.sizeBytes) { await growOffline(loop.path); tr.step('resize2fs'); }
        }
        mkdirSync(staging, { recursive: true });
        const opts = [readonly ? 'ro' : 'rw', ...MOUNT_DEFAULTS.filter((o) => !cap.mount?.mount_flags?.some((f) => f.includes(o.split('=')[0]!))), ...mountFlags(cap)];
        await mount(['-t', 'ext4', '-o', opts.join(','), loop.path, staging]);
        tr.step('mount');
        crashPoint('stage:after-mount');
        // The intent record already counts as staged; it is rewritten only to drop the
        // `formatting` mark, which must not outlive the mkfs it covered.
        if (needsFormat) { setState(vid, att.generation, 'staged'); tr.step('record'); }
        return {};
        }
      });
    },

    async NodeUnstageVolume(req: Req) {
      const vid = required(req.volume_id, 'volume_id');
      const staging = path(req.staging_target_path, 'staging_target_path');
      return d.locks.run(`n:${vid}`, async () => {
        if (!(await unstage(vid, staging)) && !exists(vid)) throw notFound(`volume ${vid} does not exist and nothing of it is staged at ${staging}`);
        return {};
      });
    },

    async NodePublishVolume(req: Req) {
      const vid = required(req.volume_id, 'volume_id');
      const staging = path(req.staging_target_path, 'staging_target_path');
      const target = path(req.target_path, 'target_path');
      const mode = requireSupported(req.volume_capability);
      return d.locks.run(`n:${vid}`, async () => {
        if (!exists(vid)) throw notFound(`volume ${vid} does not exist in pool ${pool.dir}`);
        const all = mounts();
        const st = mountAt(staging, all);
        const loop = loopOf(vid, st);
        if (!st || !loop) throw precondition(`volume ${vid} is not staged at ${staging}; NodeStageVolume first`);
        if (pool.nodeState(vid, me)?.state === 'fenced') throw precondition(`volume ${vid} was unpublished from node ${me} and its filesystem shut down (fenced); unstage it`);
        const readonly = !!req.readonly || isReadOnlyMode(mode) || st.options.includes('ro');
        const cur = mountAt(target, all);
        if (cur) {
          if (cur.dev !== loop.dev) throw alreadyExists(`target_path ${target} already has another filesystem mounted (${cur.source})`);
          const isRo = cur.options.includes('ro');
          if (isRo === readonly) return {};
          // Bound but not yet made read-only by a call that was interrupted: finish it.
          if (readonly) { await mount(['-o', 'remount,bind,ro', target]); return {}; }
          throw alreadyExists(`volume ${vid} is already published read-only at ${target}; NodeUnpublishVolume it to publish it read-write`);
        }
        mkdirSync(target, { recursive: true });
        await mount(['--bind', staging, target]);
        crashPoint('publish:after-bind');
        if (readonly) await mount(['-o', 'remount,bind,ro', target]);
        return {};
      });
    },

    async NodeUnpublishVolume(req: Req) {
      const vid = required(req.volume_id, 'volume_id');
      const target = path(req.target_path, 'target_path');
      return d.locks.run(`n:${vid}`, async () => {
        const cur = mountAt(target);
        if (cur) {
          if (!loopOf(vid, cur)) throw precondition(`${target} holds a filesystem that is not volume ${vid} (${cur.source}); not touching it`);
          await umountAll(target);
        } else if (!exists(vid)) {
          throw notFound(`volume ${vid} does not exist and is not published at ${target}`);
        }
        // The target is ours to remove (the spec: the SP deletes what it created there).
        try { rmdirSync(target); } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code !== 'ENOENT') throw precondition(`cannot remove ${target} after unmounting it (${code}): something else was put there`);
        }
        return {};
      });
    },

    async NodeGetVolumeStats(req: Req) {
      const vid = required(req.volume_id, 'volume_id');
      const p = path(req.volume_path, 'volume_path');
      if (!exists(vid)) throw notFound(`volume ${vid} does not exist`);
      const m = mountAt(p);
      if (!m || !loopOf(vid, m)) throw notFound(`volume ${vid} is not mounted at ${p}`);
      const fs = statfsSync(p);
      const st = pool.nodeState(vid, me);
      const fenced = st?.state === 'fenced';
      return {
        usage: [
          { unit: UsageUnit.BYTES, total: fs.blocks * fs.bsize, available: fs.bavail * fs.bsize, used: (fs.blocks - fs.bfree) * fs.bsize },
          { unit: UsageUnit.INODES, total: fs.files, available: fs.ffree, used: fs.files - fs.ffree },
        ],
        volume_condition: fenced
          ? { abnormal: true, message: `fenced at ${st!.at}: the volume was unpublished from node ${me} (ControllerUnpublishVolume) while staged here, so its filesystem was shut down; unpublish and unstage it` }
          : { abnormal: false, message: st?.frozen ? 'frozen for a snapshot' : '' },
      };
    },

    async NodeExpandVolume(req: Req) {
      const vid = required(req.volume_id, 'volume_id');
      const p = path(req.volume_path, 'volume_path');
      return d.locks.run(`n:${vid}`, async () => {
        if (!exists(vid)) throw notFound(`volume ${vid} does not exist`);
        const m = mountAt(p);
        const loop = loopOf(vid, m);
        if (!m || !loop) throw notFound(`volume ${vid} is not mounted at ${p}`);
        const size = await refreshLoopSize(loop);
        const want = Number(req.capacity_range?.required_bytes ?? 0);
        if (want > size) throw outOfRange(`volume ${vid} is ${size} bytes; ControllerExpandVolume it to ${want} first`);
        const sb = superblock(loop.path);
        if (sb && sb.bytes + sb.blockSize <= size) {
          if (m.options.includes('ro')) throw precondition(`volume ${vid} is mounted read-only here, so its filesystem cannot grow now; it grows when next staged read-write`);
          try { await growOnline(loop.path); } catch (e) {
            if (e instanceof OnlineResizeRefused) throw precondition(`${e.message}; the device is ${size} bytes now and the filesystem grows to it when the volume is next staged (NodeUnpublish + NodeUnstage, then stage again)`);
            throw e;
          }
        }
        return { capacity_bytes: size };
      });
    },

    async NodeGetCapabilities() {
      const rpcs = ['STAGE_UNSTAGE_VOLUME', 'GET_VOLUME_STATS', 'EXPAND_VOLUME', 'VOLUME_CONDITION'] as const;
      return { capabilities: rpcs.map((r) => ({ rpc: { type: NodeRpc[r] } })) };
    },

    async NodeGetInfo() {
      return { node_id: me, max_volumes_per_node: 0, accessible_topology: { segments: pool.topology() } };
    },
  };
}
