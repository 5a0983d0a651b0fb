// The control API for volumes and volume classes (proto/control/control.proto), manager-only.
// Writes run on the leader; a volume is created as an object and provisioned by the volume
// controller (the CLI waits for it), removed by marking it (the controller detaches and deletes
// it); snapshots and expansion are CSI controller calls made here, on the leader, directly.
// A volume in use is never removed: the refusal names the tasks and services that use it.
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { CsiCallError, CsiClient, mountCapability } from '../../csi/client.js';
import type { Manager } from '../control/manager.js';
import type { NodeObject } from '../control/model.js';
import { readLatest } from '../control/service.js';
import type { MethodSpec } from '../security/authz.js';
import { RpcError, alreadyExists, invalid, notFound, precondition, unavailable } from '../security/errors.js';
import { taskDisplayName, type ServiceObject, type ServiceSpec, type TaskObject } from '../services/model.js';
import { CSI_ACCESS, DEFAULT_DRIVER, DEFAULT_SIZE, holdsVolumes, mountsOf, volumeNamesOf, type VolumeClassObject, type VolumeObject, type VolumeStatus } from './model.js';
import { updateVolume, volumeInput } from './store.js';
import { VolumeSpecError, checkAccess, checkClassName, checkDriver, checkParams, checkReclaim, checkServiceVolumes, checkSize, checkVolumeName } from './validate.js';

const M: 'manager'[] = ['manager'];
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._\/-]{0,252}$/;
const SNAPSHOT_NAME = /^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/;

function randId(): string {
  return BigInt('0x' + randomBytes(16).toString('hex')).toString(36).padStart(25, '0');
}

function checked<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof VolumeSpecError) throw invalid(e.message);
    throw e;
  }
}

/** Refuses a service spec whose mounts name volumes or classes that do not fit (create, update). */
export function checkServiceMounts(mgr: Manager, serviceName: string, spec: ServiceSpec): void {
  const store = mgr.raft.store;
  checked(() => checkServiceVolumes(serviceName, spec, {
    volume: (n) => store.getByName('volume', n) as VolumeObject | undefined,
    volumeClass: (n) => store.getByName('volume-class', n) as VolumeClassObject | undefined,
  }));
}

export function resolveVolume(mgr: Manager, ref: string): VolumeObject {
  if (!ref) throw invalid('give a volume name or id');
  const store = mgr.raft.store;
  const exact = (store.getByName('volume', ref) ?? store.get('volume', ref)) as VolumeObject | undefined;
  if (exact) return exact;
  const byPrefix = (store.list('volume') as VolumeObject[]).filter((v) => v.id.startsWith(ref));
  if (byPrefix.length === 1) return byPrefix[0]!;
  throw notFound(`no volume ${JSON.stringify(ref)}: "shoal volume ls" lists the volumes`);
}

/** Tasks holding a volume (placed, not ended), by node. */
function holders(mgr: Manager, v: VolumeObject): TaskObject[] {
  return (mgr.raft.store.list('task') as TaskObject[]).filter((t) => holdsVolumes(t) && volumeNamesOf(t).includes(v.name));
}

function servicesMounting(mgr: Manager, v: VolumeObject): ServiceObject[] {
  return (mgr.raft.store.list('service') as ServiceObject[]).filter((s) => mountsOf(s.spec.task).some((m) => m.source === v.name && !m.class));
}

export function volumeToWire(mgr: Manager, v: VolumeObject) {
  const nodes = new Map((mgr.raft.store.list('node') as NodeObject[]).map((n) => [n.id, n]));
  const host = (id: string) => nodes.get(id)?.status.hostname ?? '';
  const using = holders(mgr, v);
  const st: VolumeStatus = v.status;
  return {
    id: v.id,
    name: v.name,
    labels: v.labels,
    driver: v.spec.driver,
    class: v.spec.class ?? '',
    size_bytes: v.spec.sizeBytes,
    access: v.spec.access,
    params: v.spec.params,
    reclaim: v.spec.claim ? (v.spec.reclaim ?? 'delete') : '',
    claim: v.spec.claim ? { service_id: v.spec.claim.serviceId, service_name: v.spec.claim.serviceName, slot: v.spec.claim.slot, mount: v.spec.claim.mount } : null,
    from_snapshot: v.spec.fromSnapshot ?? '',
    state: v.spec.removing ? 'removing' : st.state,
    message: st.message,
    csi_id: st.csiId ?? '',
    capacity_bytes: st.capacityBytes ?? 0,
    topology: (st.topology ?? []).map((segments) => ({ segments })),
    attachments: st.attachments.map((a) => {
      const ts = using.filter((t) => t.nodeId === a.nodeId);
      return { node_id: a.nodeId, node_hostname: host(a.nodeId), state: a.state, readonly: a.readonly, since_ms: a.since, tasks: ts.map(taskDisplayName), task_ids: ts.map((t) => t.id) };
    }),
    waiting: (st.waiting ?? []).map((w) => ({ node_id: w.nodeId, node_hostname: host(w.nodeId), message: w.message, since_ms: w.since })),
    snapshots: (st.snapshots ?? []).map((s) => ({ name: s.name, id: s.id, size_bytes: s.sizeBytes, created_at_ms: s.createdAt, ready: s.ready })),
    services: servicesMounting(mgr, v).map((s) => s.name),
    created_at_ms: st.createdAt,
    version: v.version,
  };
}

function classToWire(mgr: Manager, c: VolumeClassObject) {
  const store = mgr.raft.store;
  return {
    name: c.name,
    driver: c.spec.driver,
    params: c.spec.params,
    reclaim: c.spec.reclaim,
    access: c.spec.access,
    created_at_ms: c.status?.createdAt ?? 0,
    volumes: (store.list('volume') as VolumeObject[]).filter((v) => v.spec.class === c.name).map((v) => v.name).sort(),
    services: (store.list('service') as ServiceObject[]).filter((s) => mountsOf(s.spec.task).some((m) => m.class === c.name)).map((s) => s.name).sort(),
  };
}

function checkLabels(labels: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels ?? {})) {
    if (!LABEL_KEY.test(k)) throw invalid(`label key ${JSON.stringify(k)} is not valid (letters, digits, . _ / -, at most 253 characters)`);
    out[k] = String(v);
  }
  return out;
}

/** A CSI call on the leader's node (its registered driver), with the gRPC code passed on. */
async function onDriver<T>(mgr: Manager, driver: string, what: string, f: (c: CsiClient) => Promise<T>, timeoutMs: number): Promise<T> {
  const ep = mgr.o.csi?.(driver);
  if (!ep) throw unavailable(`CSI driver ${driver} is not registered on this manager's node, where controller calls run; check "shoal node inspect" on the leader`);
  const c = new CsiClient(ep, { timeoutMs });
  try {
    return await f(c);
  } catch (e) {
    if (e instanceof CsiCallError) throw new RpcError(e.code === grpc.status.UNKNOWN ? grpc.status.INTERNAL : e.code, `${what}: ${e.details}`);
    throw e;
  } finally {
    c.close();
  }
}

export function volumesTable(mgr: Manager, log: (m: string) => void): Record<string, MethodSpec> {
  const store = () => mgr.raft.store;
  const read = () => readLatest(mgr);
  return {
    CreateVolume: {
      roles: M,
      leader: true,
      unary: async (req: { name: string; labels: Record<string, string>; driver: string; class: string; size_bytes: number; access: string; params: Record<string, string>; from_snapshot: string }) => {
        const name = checked(() => checkVolumeName(req.name));
        const labels = checkLabels(req.labels);
        let cls: VolumeClassObject | undefined;
        if (req.class) {
          checked(() => checkClassName(req.class));
          cls = store().getByName('volume-class', req.class) as VolumeClassObject | undefined;
          if (!cls) throw notFound(`there is no volume class ${JSON.stringify(req.class)} ("shoal volume-class ls" lists them)`);
        }
        if (req.driver && cls && req.driver !== cls.spec.driver) throw invalid(`--driver ${req.driver} and --class ${cls.name} (driver ${cls.spec.driver}) disagree: give one of them`);
        const driver = checked(() => checkDriver(req.driver || cls?.spec.driver || DEFAULT_DRIVER));
        const access = checked(() => checkAccess(req.access, cls?.spec.access ?? 'single-node-writer'));
        const params = { ...(cls?.spec.params ?? {}), ...checked(() => checkParams(req.params)) };
        const size = Number(req.size_bytes) ? checked(() => checkSize(req.size_bytes, 'size')) : DEFAULT_SIZE;
        let fromSnapshot: string | undefined;
        if (req.from_snapshot) {
          const at = req.from_snapshot.indexOf('@');
          if (at > 0) {
            const src = resolveVolume(mgr, req.from_snapshot.slice(0, at));
            const snap = (src.status.snapshots ?? []).find((s) => s.name === req.from_snapshot.slice(at + 1));
            if (!snap) throw notFound(`volume ${src.name} has no snapshot ${JSON.stringify(req.from_snapshot.slice(at + 1))} ("shoal volume inspect ${src.name}" lists its snapshots)`);
            fromSnapshot = snap.id;
          } else fromSnapshot = req.from_snapshot;
        }
        if (store().getByName('volume', name)) throw alreadyExists(`a volume named ${name} exists already ("shoal volume inspect ${name}")`);
        const status: VolumeStatus = { state: 'pending', message: '', createdAt: Date.now(), attachments: [] };
        try {
          const r = await mgr.raft.propose([{ op: 'create', object: { kind: 'volume', id: randId(), name, labels, spec: { driver, sizeBytes: size, access, params, ...(cls ? { class: cls.name, reclaim: cls.spec.reclaim } : {}), ...(fromSnapshot ? { fromSnapshot } : {}) }, status } }]);
          const v = r.objects[0] as VolumeObject;
          log(`control: volume ${name} (${v.id}) to be provisioned by ${driver}, ${size} bytes, ${access}`);
          return volumeToWire(mgr, v);
        } catch (e) {
          if ((e as { conflict?: { code?: string } }).conflict?.code === 'name-taken') throw alreadyExists(`a volume named ${name} exists already`);
          throw e;
        }
      },
    },
    ListVolumes: {
      roles: M,
      unary: async () => {
        await read();
        return { volumes: (store().list('volume') as VolumeObject[]).sort((a, b) => (a.name < b.name ? -1 : 1)).map((v) => volumeToWire(mgr, v)) };
      },
    },
    GetVolume: {
      roles: M,
      unary: async (req: { id: string }) => {
        await read();
        return volumeToWire(mgr, resolveVolume(mgr, req.id));
      },
    },
    RemoveVolume: {
      roles: M,
      leader: true,
      unary: async (req: { id: string }) => {
        const v = resolveVolume(mgr, req.id);
        if (v.spec.removing) return {};
        const nodes = new Map((store().list('node') as NodeObject[]).map((n) => [n.id, n]));
        const using = holders(mgr, v);
        if (using.length > 0) {
          throw precondition(`volume ${v.name} is in use by ${using.length === 1 ? 'task' : 'tasks'} ${using.map((t) => `${taskDisplayName(t)} (${t.id.slice(0, 12)} on ${nodes.get(t.nodeId!)?.status.hostname ?? t.nodeId})`).join(', ')}: stop ${using.length === 1 ? 'it' : 'them'} first (remove or scale down the service)`);
        }
        const svcs = servicesMounting(mgr, v);
        if (svcs.length > 0) throw precondition(`volume ${v.name} is mounted by service ${svcs.map((s) => s.name).join(', ')}: remove the mount ("shoal service update") or the service first`);
        const claimOf = v.spec.claim ? (store().get('service', v.spec.claim.serviceId) as ServiceObject | undefined) : undefined;
        if (claimOf) throw precondition(`volume ${v.name} is slot ${v.spec.claim!.slot}'s volume of service ${claimOf.name}: it goes with the service ("shoal service rm ${claimOf.name}", reclaim ${v.spec.reclaim ?? 'delete'})`);
        await updateVolume(mgr.raft, v.id, (cur) => (cur.spec.removing ? undefined : volumeInput(cur, { spec: { removing: true } })));
        log(`control: volume ${v.name} (${v.id}) to be removed`);
        return {};
      },
    },
    SnapshotVolume: {
      roles: M,
      leader: true,
      unary: async (req: { id: string; name: string }) => {
        const v = resolveVolume(mgr, req.id);
        const name = req.name || new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').toLowerCase();
        if (!SNAPSHOT_NAME.test(name)) throw invalid(`snapshot name ${JSON.stringify(req.name)} is not valid: 1-63 lower-case letters, digits, '.', '_', '-'`);
        if (v.status.state !== 'created' || !v.status.csiId) throw precondition(`volume ${v.name} is ${v.status.state}: only a created volume can be snapshotted`);
        if ((v.status.snapshots ?? []).some((s) => s.name === name)) throw alreadyExists(`volume ${v.name} has a snapshot named ${name} already`);
        const s = await onDriver(mgr, v.spec.driver, 'CreateSnapshot', (c) => c.createSnapshot(v.status.csiId!, `${v.name}@${name}`, { timeoutMs: 300_000 }), 300_000);
        const info = { name, id: s.snapshot_id, sizeBytes: Number(s.size_bytes), createdAt: s.creation_time ? Number(s.creation_time.seconds) * 1000 + Math.floor(Number(s.creation_time.nanos ?? 0) / 1e6) : Date.now(), ready: s.ready_to_use };
        await updateVolume(mgr.raft, v.id, (cur) => volumeInput(cur, { status: { snapshots: [...(cur.status.snapshots ?? []).filter((x) => x.name !== name), info] } }));
        log(`control: volume ${v.name}: snapshot ${name} (${info.id}, ${info.sizeBytes} bytes)`);
        return { name, id: info.id, size_bytes: info.sizeBytes, created_at_ms: info.createdAt, ready: info.ready };
      },
    },
    ExpandVolume: {
      roles: M,
      leader: true,
      unary: async (req: { id: string; size_bytes: number }) => {
        const v = resolveVolume(mgr, req.id);
        const size = checked(() => checkSize(req.size_bytes, 'size'));
        if (v.status.state !== 'created' || !v.status.csiId) throw precondition(`volume ${v.name} is ${v.status.state}: only a created volume can be expanded`);
        if (size <= (v.status.capacityBytes ?? v.spec.sizeBytes)) throw new RpcError(grpc.status.OUT_OF_RANGE, `volume ${v.name} holds ${v.status.capacityBytes ?? v.spec.sizeBytes} bytes already; a volume only grows (asked for ${size})`);
        const r = await onDriver(mgr, v.spec.driver, 'ControllerExpandVolume', (c) => c.controllerExpand(v.status.csiId!, size, mountCapability(CSI_ACCESS[v.spec.access]), { timeoutMs: 60_000 }), 60_000);
        const nv = await updateVolume(mgr.raft, v.id, (cur) => volumeInput(cur, { spec: { sizeBytes: Math.max(size, cur.spec.sizeBytes) }, status: { capacityBytes: r.capacityBytes } }));
        log(`control: volume ${v.name} expanded to ${r.capacityBytes} bytes`);
        return volumeToWire(mgr, nv ?? v);
      },
    },
    CreateVolumeClass: {
      roles: M,
      leader: true,
      unary: async (req: { name: string; driver: string; params: Record<string, string>; reclaim: string; access: string }) => {
        const name = checked(() => checkClassName(req.name));
        const spec = checked(() => ({ driver: checkDriver(req.driver || DEFAULT_DRIVER), params: checkParams(req.params), reclaim: checkReclaim(req.reclaim), access: checkAccess(req.access, 'single-node-writer') }));
        if (store().getByName('volume-class', name)) throw alreadyExists(`a volume class named ${name} exists already`);
        try {
          const r = await mgr.raft.propose([{ op: 'create', object: { kind: 'volume-class', id: randId(), name, spec, status: { createdAt: Date.now() } } }]);
          log(`control: volume class ${name} (driver ${spec.driver}, reclaim ${spec.reclaim}, ${spec.access})`);
          return classToWire(mgr, r.objects[0] as VolumeClassObject);
        } catch (e) {
          if ((e as { conflict?: { code?: string } }).conflict?.code === 'name-taken') throw alreadyExists(`a volume class named ${name} exists already`);
          throw e;
        }
      },
    },
    ListVolumeClasses: {
      roles: M,
      unary: async () => {
        await read();
        return { classes: (store().list('volume-class') as VolumeClassObject[]).sort((a, b) => (a.name < b.name ? -1 : 1)).map((c) => classToWire(mgr, c)) };
      },
    },
    GetVolumeClass: {
      roles: M,
      unary: async (req: { name: string }) => {
        await read();
        const c = store().getByName('volume-class', req.name ?? '') as VolumeClassObject | undefined;
        if (!c) throw notFound(`no volume class ${JSON.stringify(req.name)}: "shoal volume-class ls" lists them`);
        return classToWire(mgr, c);
      },
    },
    RemoveVolumeClass: {
      roles: M,
      leader: true,
      unary: async (req: { name: string }) => {
        const c = store().getByName('volume-class', req.name ?? '') as VolumeClassObject | undefined;
        if (!c) throw notFound(`no volume class ${JSON.stringify(req.name)}: "shoal volume-class ls" lists them`);
        const svcs = classToWire(mgr, c).services;
        if (svcs.length > 0) throw precondition(`volume class ${c.name} is mounted by service ${svcs.join(', ')}: remove those mounts or services first (the volumes it made keep their driver and reclaim policy)`);
        await mgr.raft.propose([{ op: 'delete', kind: 'volume-class', id: c.id, expectVersion: c.version }]);
        log(`control: volume class ${c.name} removed`);
        return {};
      },
    },
  };
}
