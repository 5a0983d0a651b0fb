// The CSI Controller service: volumes and snapshots as image files in the pool, and attachment
// (ControllerPublish) as a durable record in the pool that the node side checks and obeys.
import { randomBytes } from 'node:crypto';
import { closeSync, ftruncateSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ControllerRpc, type CapacityRange, type StringMap, type Topology, type Volume, type VolumeCapability, type Snapshot } from '../proto/csi/v1/csi.js';
import { isReadOnlyMode, isSingleNodeMode, modeName, requireSupported, unsupported } from './access.js';
import { checkRange, expandTo, fits, sizeFor } from './capacity.js';
import { crashPoint } from './crash.js';
import type { Driver } from './driver.js';
import { fsyncAll, fsyncDir, fsyncPath, writeJsonDurable } from './durable.js';
import { alreadyExists, aborted, exhausted, invalid, notFound, outOfRange, precondition } from './errors.js';
import { run } from './exec.js';
import { idFor, validId, type Attachment, type FreezeRequest, type PublishRecord, type SnapshotRecord, type VolumeRecord } from './pool.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Req = any;

/** The publish_context keys ControllerPublishVolume hands to NodeStage/NodePublish. */
export const CTX = { pool: 'shoal.io/pool', generation: 'shoal.io/generation', readonly: 'shoal.io/readonly' } as const;

// The spec's general limit for strings, and the characters it bans from names.
const BANNED = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;
function checkName(name: unknown, what: string): string {
  if (typeof name !== 'string' || name === '') throw invalid(`${what} is required`);
  if (Buffer.byteLength(name) > 128) throw invalid(`${what} is longer than 128 bytes`);
  if (BANNED.test(name)) throw invalid(`${what} contains a control character, which the CSI spec bans`);
  return name;
}
const required = (v: unknown, what: string): string => {
  if (typeof v !== 'string' || v === '') throw invalid(`${what} is required`);
  return v;
};

function checkCaps(caps: VolumeCapability[] | undefined, field: string): void {
  if (!caps || caps.length === 0) throw invalid(`${field} is required (at least one volume capability)`);
  caps.forEach((c, i) => requireSupported(c, `${field}[${i}]`));
}

const sameMap = (a: StringMap = {}, b: StringMap = {}) => JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());

export function controllerHandlers(d: Driver) {
  const pool = d.pool;
  const me = () => pool.topology();
  const matchesUs = (t: Topology | null | undefined) => {
    const seg = t?.segments ?? {};
    const ours = me();
    return Object.keys(seg).length > 0 && Object.entries(seg).every(([k, v]) => ours[k] === v);
  };

  const volumeMsg = (vid: string, rec: VolumeRecord, size: number): Volume => ({
    capacity_bytes: size,
    volume_id: vid,
    volume_context: {},
    content_source: rec.source?.snapshot_id ? { snapshot: { snapshot_id: rec.source.snapshot_id } } : null,
    accessible_topology: [{ segments: me() }],
  });

  const snapshotMsg = (s: SnapshotRecord): Snapshot => ({
    size_bytes: s.size_bytes,
    snapshot_id: s.snapshot_id,
    source_volume_id: s.source_volume_id,
    creation_time: { seconds: Math.floor(s.createdMs / 1000), nanos: (s.createdMs % 1000) * 1e6 },
    ready_to_use: true,
  });

  function writePublish(vid: string, rec: PublishRecord): void { writeJsonDurable(pool.publishJson(vid), rec); }

  /** Renames a directory out of the pool's namespace (atomic), then removes it. */
  function removeDir(dir: string, what: string): void {
    const grave = pool.tmpName(`deleting-${what}`, d.opts.nodeId);
    renameSync(dir, grave);
    fsyncDir(join(dir, '..'));
    crashPoint('delete:after-rename');
    rmSync(grave, { recursive: true, force: true });
  }

  /** Copies an image file keeping holes (reflink where the pool filesystem can). */
  async function copyImage(from: string, to: string): Promise<void> {
    await run('cp', ['--sparse=always', '--reflink=auto', from, to]);
    fsyncPath(to);
  }

  /**
   * Makes the image quiescent for a copy. With a read-write attachment whose node has the
   * volume staged, that node is asked (freeze.json) to freeze the filesystem, which flushes it
   * and holds writers until the copy is done; returns a function that ends the freeze.
   */
  async function quiesce(vid: string): Promise<() => void> {
    const writer = pool.publish(vid).attachments.find((a) => !a.readonly);
    if (!writer) return () => {};
    const req: FreezeRequest = { id: randomBytes(6).toString('hex'), node_id: writer.node_id, generation: writer.generation, atMs: Date.now() };
    writeJsonDurable(pool.freezeJson(vid), req);
    const end = () => { try { unlinkSync(pool.freezeJson(vid)); fsyncDir(pool.volDir(vid)); } catch { /* gone */ } d.kickWatcher(); };
    if (writer.node_id === d.opts.nodeId) d.kickWatcher();
    const deadline = Date.now() + d.opts.freezeTimeoutMs;
    for (;;) {
      // Read after writing the request: a node that starts staging later sees the request and waits.
      const st = pool.nodeState(vid, writer.node_id);
      if (!st || st.generation < writer.generation || st.state === 'released' || st.state === 'fenced' || st.frozen === req.id) return end;
      if (Date.now() > deadline) {
        end();
        throw aborted(`node ${writer.node_id} has volume ${vid} staged read-write and did not freeze it for the snapshot within ${d.opts.freezeTimeoutMs} ms (is its driver running?); retry, or unpublish the volume first`);
      }
      await new Promise((r) => setTimeout(r, Math.min(100, d.opts.watchIntervalMs / 4)));
    }
  }

  return {
    async CreateVolume(req: Req) {
      const name = checkName(req.name, 'name');
      checkCaps(req.volume_capabilities, 'volume_capabilities');
      const params: StringMap = req.parameters ?? {};
      if (Object.keys(params).length > 0) throw invalid(`unknown parameters ${Object.keys(params).join(', ')} (this driver takes none)`);
      if (Object.keys(req.mutable_parameters ?? {}).length > 0) throw invalid('mutable_parameters are not supported (the driver does not offer MODIFY_VOLUME)');
      const reqs = req.accessibility_requirements;
      if (reqs && (reqs.requisite?.length ?? 0) > 0 && !reqs.requisite.some(matchesUs)) {
        throw exhausted(`cannot provision in the requested topology: this driver's volumes live in pool ${pool.id} (topology ${JSON.stringify(me())})`);
      }
      const range: CapacityRange | null = req.capacity_range;
      let size = sizeFor(range);
      const src = req.volume_content_source;
      let snap: SnapshotRecord | undefined;
      if (src?.volume) throw invalid('cloning a volume (volume_content_source.volume) is not supported (CLONE_VOLUME is not advertised); snapshot it and create from the snapshot');
      if (src?.snapshot) {
        const sid = required(src.snapshot.snapshot_id, 'volume_content_source.snapshot.snapshot_id');
        snap = pool.snapshot(sid);
        if (!snap) throw notFound(`snapshot ${sid} does not exist`);
        const { required: r, limit } = checkRange(range);
        if (r === 0) size = Math.max(size, snap.size_bytes);
        if (size < snap.size_bytes) size = snap.size_bytes;
        if (limit > 0 && size > limit) throw outOfRange(`snapshot ${sid} holds ${snap.size_bytes} bytes, more than capacity_range.limit_bytes ${limit}`);
      }
      const vid = idFor(name);
      return d.locks.run(`c:${vid}`, async () => {
        const have = pool.volume(vid);
        if (have) {
          if (have.rec.name !== name) throw alreadyExists(`volume id ${vid} is taken by volume ${JSON.stringify(have.rec.name)} (an id collision; use another name)`);
          if (!fits(have.size, range)) throw alreadyExists(`volume ${JSON.stringify(name)} already exists with ${have.size} bytes, which does not fit capacity_range ${JSON.stringify(range)}`);
          if ((have.rec.source?.snapshot_id ?? '') !== (snap?.snapshot_id ?? '')) throw alreadyExists(`volume ${JSON.stringify(name)} already exists from a different content source`);
          if (!sameMap(have.rec.parameters, params)) throw alreadyExists(`volume ${JSON.stringify(name)} already exists with other parameters`);
          return { volume: volumeMsg(vid, have.rec, have.size) };
        }
        const avail = d.available();
        if (size > avail) throw exhausted(`pool ${pool.dir} has ${avail} bytes left for new volumes; ${size} were asked for`);
        // Built whole under .tmp/, then renamed into place: a crash leaves either nothing or the
        // complete volume, never one without its record or image.
        const tmp = pool.tmpDir(`create-${vid}`, d.opts.nodeId);
        try {
          const image = join(tmp, 'image');
          if (snap) await copyImage(pool.snapImage(snap.snapshot_id), image);
          const fd = openSync(image, snap ? 'r+' : 'wx', 0o600);
          try { ftruncateSync(fd, size); } finally { closeSync(fd); }
          const rec: VolumeRecord = { volume_id: vid, name, created: new Date().toISOString(), parameters: params, ...(snap ? { source: { snapshot_id: snap.snapshot_id } } : {}) };
          mkdirSync(join(tmp, 'nodes'));
          writeFileSync(join(tmp, 'volume.json'), JSON.stringify(rec, null, 1) + '\n');
          // Image, record and their directory durable (together), before the rename shows them.
          await fsyncAll([image, join(tmp, 'volume.json'), tmp]);
          crashPoint('create:before-rename');
          renameSync(tmp, pool.volDir(vid));
          fsyncDir(join(pool.dir, 'volumes'));
          return { volume: volumeMsg(vid, rec, size) };
        } catch (e) {
          rmSync(tmp, { recursive: true, force: true });
          throw e;
        }
      });
    },

    async DeleteVolume(req: Req) {
      const vid = required(req.volume_id, 'volume_id');
      return d.locks.run(`c:${vid}`, async () => {
        if (!validId(vid) || !pool.volume(vid)) {
          // Deleted already, or a half-made one a crash left behind: nothing (more) to keep.
          if (validId(vid)) try { statSync(pool.volDir(vid)); removeDir(pool.volDir(vid), vid); } catch { /* none */ }
          return {};
        }
        const pub = pool.publish(vid);
        if (pub.attachments.length > 0) throw precondition(`volume ${vid} is published to node(s) ${pub.attachments.map((a) => a.node_id).join(', ')}; ControllerUnpublishVolume it first`);
        removeDir(pool.volDir(vid), vid);
        return {};
      });
    },

    async ControllerPublishVolume(req: Req) {
      const vid = required(req.volume_id, 'volume_id');
      const node = required(req.node_id, 'node_id');
      const mode = requireSupported(req.volume_capability);
      const readonly = !!req.readonly || isReadOnlyMode(mode);
      return d.locks.run(`c:${vid}`, async () => {
        if (!pool.volume(vid)) throw notFound(`volume ${vid} does not exist`);
        const nodeRec = pool.node(node);
        if (!nodeRec) throw notFound(`node ${node} does not exist: no driver with that node id has served pool ${pool.id}`);
        let rec = d.prune(vid, pool.publish(vid));
        const ctx = (a: Attachment) => ({ [CTX.pool]: pool.id, [CTX.generation]: String(a.generation), [CTX.readonly]: String(a.readonly) });
        const mine = rec.attachments.find((a) => a.node_id === node);
        if (mine) {
          if (mine.readonly !== readonly || mine.mode !== mode) {
            throw alreadyExists(`volume ${vid} is already published to node ${node} as ${modeName(mine.mode)}${mine.readonly ? ', read-only' : ''}, incompatible with ${modeName(mode)}${readonly ? ', read-only' : ''}; unpublish it first`);
          }
          return { publish_context: ctx(mine) };
        }
        const others = rec.attachments;
        if (others.length > 0) {
          const o = others[0]!;
          if (isSingleNodeMode(mode) || isSingleNodeMode(o.mode)) {
            throw precondition(`volume ${vid} is published to node ${o.node_id} (${modeName(o.mode)}); ControllerUnpublishVolume it there before publishing it to ${node}`);
          }
          const writer = others.find((a) => !a.readonly);
          if (writer || !readonly) throw precondition(`volume ${vid} can be published to several nodes only read-only; node ${(writer ?? o).node_id} has it ${writer ? 'read-write' : 'already'}`);
        }
        // Fencing: never a second writer while a node it was taken from may still write.
        const waiting = rec.revoked.map((r) => ({ r, p: d.revocationPending(vid, r) })).filter((x) => x.p.pending && x.r.node_id !== node);
        if (waiting.length > 0) throw precondition(`volume ${vid} cannot be attached yet: ${waiting.map((x) => x.p.why).join('; ')}; retry with backoff`);
        const a: Attachment = { node_id: node, readonly, mode, generation: rec.generation + 1, at: new Date().toISOString() };
        rec = { generation: a.generation, attachments: [...rec.attachments, a], revoked: rec.revoked.filter((r) => r.node_id !== node) };
        writePublish(vid, rec);
        return { publish_context: ctx(a) };
      });
    },

    async ControllerUnpublishVolume(req: Req) {
      const vid = required(req.volume_id, 'volume_id');
      const node: string = req.node_id ?? '';
      return d.locks.run(`c:${vid}`, async () => {
        // Unknown volume or node: nothing is published, which is what was asked (the spec's 0 OK).
        if (!pool.volume(vid)) return {};
        const rec = pool.publish(vid);
        const gone = rec.attachments.filter((a) => node === '' || a.node_id === node);
        if (gone.length === 0) return {};
        const nowMs = Date.now();
        writePublish(vid, d.prune(vid, {
          generation: rec.generation,
          attachments: rec.attachments.filter((a) => !gone.includes(a)),
          revoked: [...rec.revoked, ...gone.map((a) => ({ node_id: a.node_id, generation: a.generation, readonly: a.readonly, at: new Date(nowMs).toISOString(), atMs: nowMs }))],
        }));
        return {};
      });
    },

    async ValidateVolumeCapabilities(req: Req) {
      const vid = required(req.volume_id, 'volume_id');
      const caps: VolumeCapability[] = req.volume_capabilities ?? [];
      if (caps.length === 0) throw invalid('volume_capabilities is required');
      const v = pool.volume(vid);
      if (!v) throw notFound(`volume ${vid} does not exist`);
      if (Object.keys(req.parameters ?? {}).length > 0 && !sameMap(req.parameters, v.rec.parameters)) return { confirmed: null, message: 'parameters differ from the volume\'s' };
      const why = caps.map(unsupported).find(Boolean);
      if (why) return { confirmed: null, message: why };
      return { confirmed: { volume_context: req.volume_context ?? {}, volume_capabilities: caps, parameters: req.parameters ?? {} }, message: '' };
    },

    async ListVolumes(req: Req) {
      const { ids, next } = page(pool.volumeIds(), req.max_entries, req.starting_token);
      const entries = [];
      for (const vid of ids) {
        const v = pool.volume(vid);
        if (!v) continue;
        entries.push({ volume: volumeMsg(vid, v.rec, v.size), status: { published_node_ids: pool.publish(vid).attachments.map((a) => a.node_id), volume_condition: null } });
      }
      return { entries, next_token: next };
    },

    async ControllerGetVolume(req: Req) {
      const vid = required(req.volume_id, 'volume_id');
      const v = pool.volume(vid);
      if (!v) throw notFound(`volume ${vid} does not exist`);
      return { volume: volumeMsg(vid, v.rec, v.size), status: { published_node_ids: pool.publish(vid).attachments.map((a) => a.node_id), volume_condition: { abnormal: false, message: '' } } };
    },

    async GetCapacity(req: Req) {
      const caps: VolumeCapability[] = req.volume_capabilities ?? [];
      const fitsReq = caps.every((c) => !unsupported(c)) && Object.keys(req.parameters ?? {}).length === 0 && (!req.accessible_topology || matchesUs(req.accessible_topology));
      const avail = fitsReq ? d.available() : 0;
      return { available_capacity: avail, maximum_volume_size: { value: avail }, minimum_volume_size: { value: fitsReq ? sizeFor({ required_bytes: 1 }) : 0 } };
    },

    async ControllerGetCapabilities() {
      const rpcs = ['CREATE_DELETE_VOLUME', 'PUBLISH_UNPUBLISH_VOLUME', 'LIST_VOLUMES', 'GET_CAPACITY', 'CREATE_DELETE_SNAPSHOT', 'LIST_SNAPSHOTS', 'PUBLISH_READONLY', 'EXPAND_VOLUME', 'LIST_VOLUMES_PUBLISHED_NODES', 'GET_VOLUME'] as const;
      return { capabilities: rpcs.map((r) => ({ rpc: { type: ControllerRpc[r] } })) };
    },

    async CreateSnapshot(req: Req) {
      const vid = required(req.source_volume_id, 'source_volume_id');
      const name = checkName(req.name, 'name');
      if (Object.keys(req.parameters ?? {}).length > 0) throw invalid(`unknown parameters ${Object.keys(req.parameters).join(', ')} (snapshots take none)`);
      const sid = idFor(name);
      return d.locks.run(`c:${vid}`, () => d.locks.run(`s:${sid}`, async () => {
        const have = pool.snapshot(sid);
        if (have) {
          if (have.name !== name || have.source_volume_id !== vid) throw alreadyExists(`snapshot ${JSON.stringify(name)} already exists, of volume ${have.source_volume_id}`);
          return { snapshot: snapshotMsg(have) };
        }
        const v = pool.volume(vid);
        if (!v) throw notFound(`volume ${vid} does not exist`);
        if (v.size > d.available()) throw exhausted(`pool ${pool.dir} has ${d.available()} bytes left; the snapshot may need ${v.size}`);
        const tmp = pool.tmpDir(`snapshot-${sid}`, d.opts.nodeId);
        try {
          const end = await quiesce(vid);
          const createdMs = Date.now();
          try { await copyImage(pool.image(vid), join(tmp, 'image')); } finally { end(); }
          const rec: SnapshotRecord = { snapshot_id: sid, name, source_volume_id: vid, createdMs, size_bytes: statSync(join(tmp, 'image')).size };
          writeFileSync(join(tmp, 'snapshot.json'), JSON.stringify(rec, null, 1) + '\n');
          await fsyncAll([join(tmp, 'snapshot.json'), tmp]);
          renameSync(tmp, pool.snapDir(sid));
          fsyncDir(join(pool.dir, 'snapshots'));
          return { snapshot: snapshotMsg(rec) };
        } catch (e) {
          rmSync(tmp, { recursive: true, force: true });
          throw e;
        }
      }));
    },

    async DeleteSnapshot(req: Req) {
      const sid = required(req.snapshot_id, 'snapshot_id');
      return d.locks.run(`s:${sid}`, async () => {
        if (!validId(sid)) return {};
        try { statSync(pool.snapDir(sid)); } catch { return {}; }
        removeDir(pool.snapDir(sid), sid);
        return {};
      });
    },

    async ListSnapshots(req: Req) {
      let all = pool.snapshotIds().map((s) => pool.snapshot(s)).filter((s): s is SnapshotRecord => !!s);
      if (req.snapshot_id) all = all.filter((s) => s.snapshot_id === req.snapshot_id);
      if (req.source_volume_id) all = all.filter((s) => s.source_volume_id === req.source_volume_id);
      const { ids, next } = page(all.map((s) => s.snapshot_id), req.max_entries, req.starting_token);
      return { entries: ids.map((id) => ({ snapshot: snapshotMsg(all.find((s) => s.snapshot_id === id)!) })), next_token: next };
    },

    async ControllerExpandVolume(req: Req) {
      const vid = required(req.volume_id, 'volume_id');
      if (!req.capacity_range) throw invalid('capacity_range is required');
      if (req.volume_capability) requireSupported(req.volume_capability);
      return d.locks.run(`c:${vid}`, async () => {
        const v = pool.volume(vid);
        if (!v) throw notFound(`volume ${vid} does not exist`);
        const size = expandTo(v.size, req.capacity_range);
        if (size > v.size) {
          const avail = d.available();
          if (size - v.size > avail) throw outOfRange(`pool ${pool.dir} has ${avail} bytes left; growing ${vid} to ${size} needs ${size - v.size}`);
          // Growing the file is safe while a node has it attached: the loop device keeps its old
          // size until the node refreshes it (NodeExpandVolume, or the next NodeStage).
          const fd = openSync(pool.image(vid), 'r+');
          try { ftruncateSync(fd, size); fsyncSync(fd); } finally { closeSync(fd); }
        }
        return { capacity_bytes: size, node_expansion_required: true };
      });
    },
  };
}

/** One page of ids (sorted): starting at the token (an id, inclusive), at most `max` of them. */
function page(ids: string[], max: number | undefined, token: string | undefined): { ids: string[]; next: string } {
  const n = Number(max ?? 0);
  if (!Number.isInteger(n) || n < 0) throw invalid(`max_entries must not be negative (got ${max})`);
  let start = 0;
  if (token) {
    if (!validId(token)) throw aborted(`starting_token ${JSON.stringify(token)} was not issued by this driver; list again from the start`);
    start = ids.findIndex((id) => id >= token);
    if (start < 0) start = ids.length;
  }
  const end = n > 0 ? Math.min(ids.length, start + n) : ids.length;
  return { ids: ids.slice(start, end), next: end < ids.length ? ids[end]! : '' };
}
