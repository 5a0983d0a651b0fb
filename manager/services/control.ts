// The control API for services and tasks (proto/control/control.proto): create, list, inspect,
// scale, remove, tasks, logs. Manager-only. Writes run on the leader (a follower forwards them);
// reads wait for a ReadIndex round so any manager answers with the latest committed state. Bad
// input is refused before anything is proposed, with the field and what to write instead.
import { randomBytes } from 'node:crypto';
import type { Manager } from '../control/manager.js';
import type { NodeObject } from '../control/model.js';
import type { ObjectInput } from '../store/types.js';
import { readLatest, resolveNode } from '../control/service.js';
import { jobProgress } from '../orchestrator/jobs.js';
import { MAX_REVISIONS } from '../orchestrator/updater.js';
import type { MethodSpec } from '../security/authz.js';
import { aborted, alreadyExists, invalid, notFound, precondition } from '../security/errors.js';
import { networkRpcError, withNetworkLock } from '../networks/control.js';
import { resolveServiceNetworking } from '../networks/resolve.js';
import type { NetworkAddress } from '../networks/model.js';
import type { LogBroker } from './logs.js';
import { isRunnable, isTerminal, stableJson, taskDisplayName, templateKey, type ServiceObject, type ServiceSpec, type ServiceStatus, type TaskObject } from './model.js';
import { SpecError, checkServiceName, specFromWire, specToWire, type WireSpec } from './validate.js';
import { guardOps, resolveRefs } from '../secrets/refs.js';
import { checkServiceMounts } from '../volumes/control.js';
import { latestRunTasks, scheduleStatusToWire } from './schedule.js';

const M: 'manager'[] = ['manager'];
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._\/-]{0,252}$/;

function randId(): string {
  return BigInt('0x' + randomBytes(16).toString('hex')).toString(36).padStart(25, '0');
}

export function services(mgr: Manager): ServiceObject[] {
  return mgr.raft.store.list('service') as ServiceObject[];
}

export function tasksOf(mgr: Manager, serviceId?: string): TaskObject[] {
  return mgr.raft.store.list('task', serviceId ? { serviceId } : {}) as TaskObject[];
}

export function resolveService(mgr: Manager, ref: string): ServiceObject {
  if (!ref) throw invalid('give a service id, a unique id prefix or a name');
  const store = mgr.raft.store;
  const exact = (store.get('service', ref) ?? store.getByName('service', ref)) as ServiceObject | undefined;
  if (exact) return exact;
  const byPrefix = services(mgr).filter((s) => s.id.startsWith(ref));
  if (byPrefix.length === 1) return byPrefix[0]!;
  if (byPrefix.length > 1) throw invalid(`${JSON.stringify(ref)} matches several services (${byPrefix.map((s) => s.name).join(', ')}); use the name`);
  throw notFound(`no service ${JSON.stringify(ref)}: "shoal service ls" lists the services`);
}

export function resolveTask(mgr: Manager, ref: string): TaskObject {
  if (!ref) throw invalid('give a task id or a unique id prefix');
  const exact = mgr.raft.store.get('task', ref) as TaskObject | undefined;
  if (exact) return exact;
  const byPrefix = tasksOf(mgr).filter((t) => t.id.startsWith(ref));
  if (byPrefix.length === 1) return byPrefix[0]!;
  if (byPrefix.length > 1) throw invalid(`${JSON.stringify(ref)} matches several tasks; use a longer id prefix`);
  throw notFound(`no task ${JSON.stringify(ref)}: "shoal service ps SERVICE" lists a service's tasks`);
}

/** How many tasks a service wants now, and how many run / completed. */
export function serviceCounts(s: ServiceObject, tasks: TaskObject[], nodes: NodeObject[]): { desired: number; running: number; completed: number } {
  const running = tasks.filter((t) => t.status.state === 'running' && t.spec.desiredState === 'running').length;
  switch (s.spec.mode.type) {
    case 'replicated':
      return { desired: s.spec.mode.replicas, running, completed: 0 };
    case 'replicated-job': {
      const p = jobProgress(tasks);
      return { desired: s.spec.mode.completions, running, completed: p.completed };
    }
    case 'global':
    case 'global-job': {
      const live = new Set(tasks.filter(isRunnable).map((t) => t.nodeId));
      const done = new Set(tasks.filter((t) => t.status.state === 'complete').map((t) => t.nodeId));
      const eligible = nodes.filter((n) => n.status.state !== 'down' && n.spec.availability === 'active').length;
      return { desired: Math.max(eligible, live.size), running, completed: done.size };
    }
  }
}

export function serviceToWire(s: ServiceObject, tasks: TaskObject[], nodes: NodeObject[]) {
  const c = serviceCounts(s, s.spec.schedule ? latestRunTasks(s, tasks) : tasks, nodes);
  return {
    id: s.id,
    name: s.name,
    labels: s.labels,
    spec: specToWire(s.spec),
    version: s.version,
    created_version: s.createdVersion,
    created_at_ms: s.status?.createdAt ?? 0,
    updated_at_ms: s.status?.updatedAt ?? 0,
    desired_tasks: c.desired,
    running_tasks: c.running,
    completed_tasks: c.completed,
    update_status: s.status?.update
      ? { state: s.status.update.state, started_at_ms: s.status.update.startedAt, completed_at_ms: s.status.update.completedAt ?? 0, message: s.status.update.message }
      : null,
    revision: s.status?.revision ?? 1,
    virtual_ips: (s.status?.vips ?? []).map((v) => ({ network_id: v.networkId, address: v.address })),
    schedule_status: s.spec.schedule ? scheduleStatusToWire(s.status?.schedule, s.spec.schedule, Date.now()) : null,
  };
}

export function taskToWire(t: TaskObject, nodes: Map<string, NodeObject>, current?: ServiceObject) {
  return {
    id: t.id,
    name: taskDisplayName(t),
    service_id: t.serviceId ?? '',
    service_name: t.spec.serviceName,
    slot: t.spec.slot,
    node_id: t.nodeId ?? '',
    node_hostname: t.nodeId ? nodes.get(t.nodeId)?.status.hostname ?? '' : '',
    desired_state: t.spec.desiredState,
    state: t.status.state,
    message: t.status.message,
    err: t.status.err,
    image: t.spec.template.main.image,
    container_id: t.status.containerId ?? '',
    pod_id: t.status.podId ?? '',
    exit_code: t.status.exitCode ?? null,
    oom_killed: !!t.status.oomKilled,
    timestamps: t.status.timestamps,
    service_version: t.spec.serviceVersion,
    version: t.version,
    created_version: t.createdVersion,
    health: t.status.health ?? '',
    health_message: t.status.healthMessage ?? '',
    ready: t.status.ready ?? null,
    up_to_date: !!current && t.spec.templateKey === templateKey(current.spec.task),
    networks: (t.spec.networks ?? []).map((a) => ({ network_id: a.networkId, address: a.address })),
    job_iteration: t.spec.iteration ?? 0,
  };
}


/** What changed between two specs, in words, for `service history`. */
export function describeChange(a: ServiceSpec, b: ServiceSpec): string {
  const out: string[] = [];
  const cmp = (what: string, x: unknown, y: unknown) => {
    const sx = JSON.stringify(x ?? null);
    const sy = JSON.stringify(y ?? null);
    if (sx !== sy) out.push(`${what} ${sx.length > 40 ? '...' : sx} -> ${sy.length > 40 ? '...' : sy}`);
  };
  cmp('image', a.task.main.image, b.task.main.image);
  cmp('command', [...(a.task.main.command ?? []), ...(a.task.main.args ?? [])], [...(b.task.main.command ?? []), ...(b.task.main.args ?? [])]);
  cmp('env', a.task.main.env, b.task.main.env);
  cmp('mode', a.mode, b.mode);
  cmp('resources', a.task.resources, b.task.resources);
  cmp('constraints', a.task.placement, b.task.placement);
  cmp('restart', a.task.restart, b.task.restart);
  cmp('probes', a.task.probes, b.task.probes);
  cmp('secrets', a.task.secrets?.map((r) => r.name), b.task.secrets?.map((r) => r.name));
  cmp('configs', a.task.configs?.map((r) => r.name), b.task.configs?.map((r) => r.name));
  cmp('sidecars', a.task.sidecars, b.task.sidecars);
  cmp('init', a.task.init, b.task.init);
  cmp('mounts', a.task.mounts, b.task.mounts);
  cmp('update config', a.update, b.update);
  cmp('rollback config', a.rollback, b.rollback);
  if ((a.task.forceUpdate ?? 0) !== (b.task.forceUpdate ?? 0)) out.push('forced redeploy');
  if (out.length === 0 && stableJson(a) !== stableJson(b)) out.push('spec changed');
  return out.join('; ') || 'no change';
}

/** A new service object: revision 1 of its spec. */
export function newService(name: string, labels: Record<string, string>, spec: ServiceSpec, now: number, net?: { id: string; vips: NetworkAddress[] }): ObjectInput {
  const status: ServiceStatus = { createdAt: now, updatedAt: now, revision: 1, revisions: [{ revision: 1, spec, at: now, change: 'created' }], ...(net ? { vips: net.vips } : {}) };
  return { kind: 'service', id: net?.id ?? randId(), name, labels, spec, status };
}

/** A new id for a service (its VIPs are allocated for it before it is written). */
export function newServiceId(): string {
  return randId();
}

/**
 * The service with a new spec (an update, a rollback, an apply): a new revision in the kept
 * history, and a rolling update started when the task template changed.
 */
export function specChange(s: ServiceObject, spec: ServiceSpec, change: string, rollback: boolean, labels: Record<string, string> | undefined, now: number, vips?: NetworkAddress[]): ObjectInput {
  const revision = (s.status?.revision ?? 1) + 1;
  const revisions = [...(s.status?.revisions ?? [{ revision: s.status?.revision ?? 1, spec: s.spec, at: s.status?.createdAt ?? now, change: 'created' }]), { revision, spec, at: now, change }].slice(-MAX_REVISIONS);
  const rolls = templateKey(spec.task) !== templateKey(s.spec.task);
  const status: ServiceStatus = {
    ...s.status,
    ...(vips ? { vips } : {}),
    updatedAt: now,
    revision,
    revisions,
    ...(rolls ? { update: { state: rollback ? 'rollback_started' : 'updating', startedAt: now, message: rollback ? `rolling back: ${change}` : `updating: ${change}` } } : {}),
  };
  return { kind: 'service', id: s.id, name: s.name, labels: labels ?? s.labels, spec, status };
}

/**
 * Writes a new spec for a service (an update or a rollback): a new revision in the kept history,
 * and a rolling update when the task template changed. Retried on a concurrent write unless the
 * caller named the version it changed.
 */
async function writeSpec(mgr: Manager, s0: ServiceObject, next: (s: ServiceObject) => { spec: ServiceSpec; change: string; rollback: boolean }, expect?: number, labels?: Record<string, string>): Promise<ServiceObject> {
  for (let attempt = 0; ; attempt++) {
    const s = attempt === 0 ? s0 : resolveService(mgr, s0.id);
    if (expect && s.version !== expect) throw aborted(`service ${s.name} changed meanwhile (version ${s.version}, not ${expect}): read it again and retry`);
    const n = next(s);
    const now = Date.now();
    // Its networks resolved and VIPs given (the caller holds the network lock).
    let net;
    try {
      net = resolveServiceNetworking(mgr.raft.store, { serviceId: s.id, name: s.name, spec: n.spec, current: s, now, newId: randId });
    } catch (e) {
      throw networkRpcError(e);
    }
    try {
      const r = await mgr.raft.propose([...net.ops, { op: 'update', object: specChange(s, net.spec, n.change, n.rollback, labels, now, net.vips), expectVersion: s.version }, ...guardOps(mgr.raft.store, s.spec, net.spec)]);
      return r.objects[net.ops.length] as ServiceObject;
    } catch (e) {
      if (expect || (e as { conflict?: { code?: string } }).conflict?.code !== 'version-mismatch' || attempt >= 5) throw e;
    }
  }
}

export function checkLabels(labels: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels ?? {})) {
    if (!LABEL_KEY.test(k)) throw invalid(`label key ${JSON.stringify(k)} is not valid (letters, digits, . _ / -, at most 253 characters)`);
    out[k] = String(v);
  }
  return out;
}

export function servicesTable(mgr: Manager, broker: LogBroker, log: (m: string) => void): Record<string, MethodSpec> {
  const read = () => readLatest(mgr);
  const nodeMap = () => new Map(mgr.nodes().map((n) => [n.id, n]));
  return {
    CreateService: {
      roles: M,
      leader: true,
      unary: async (req: { name: string; labels: Record<string, string>; spec: WireSpec }) => {
        let spec;
        try {
          checkServiceName(req.name);
          spec = resolveRefs(mgr.raft.store, specFromWire(req.spec));
        } catch (e) {
          if (e instanceof SpecError) throw invalid(e.message);
          throw e;
        }
        const labels = checkLabels(req.labels);
        checkServiceMounts(mgr, req.name, spec);
        // Networks, ports and VIPs are decided under the network lock and written with the service.
        return withNetworkLock(mgr, async () => {
          if (mgr.raft.store.getByName('service', req.name)) throw alreadyExists(`a service named ${JSON.stringify(req.name)} exists already: choose another name, or "shoal service rm ${req.name}" first`);
          const now = Date.now();
          const id = randId();
          let net;
          try {
            net = resolveServiceNetworking(mgr.raft.store, { serviceId: id, name: req.name, spec: spec!, now, newId: randId });
          } catch (e) {
            throw networkRpcError(e);
          }
          try {
            const r = await mgr.raft.propose([...net.ops, { op: 'create', object: newService(req.name, labels, net.spec, now, { id, vips: net.vips }) }, ...guardOps(mgr.raft.store, undefined, net.spec)]);
            const s = r.objects[net.ops.length] as ServiceObject;
            log(`control: created service ${s.name} (${s.id}), ${s.spec.mode.type}${net.vips.length ? `, VIP ${net.vips.map((v) => v.address).join(', ')}` : ''}`);
            return serviceToWire(s, [], mgr.nodes());
          } catch (e) {
            if ((e as { conflict?: { code?: string } }).conflict?.code === 'name-taken') throw alreadyExists(`a service named ${JSON.stringify(req.name)} exists already`);
            throw e;
          }
        });
      },
    },
    ListServices: {
      roles: M,
      unary: async () => {
        await read();
        const nodes = mgr.nodes();
        return { services: services(mgr).sort((a, b) => (a.name < b.name ? -1 : 1)).map((s) => serviceToWire(s, tasksOf(mgr, s.id), nodes)) };
      },
    },
    GetService: {
      roles: M,
      unary: async (req: { id: string }) => {
        await read();
        const s = resolveService(mgr, req.id);
        return serviceToWire(s, tasksOf(mgr, s.id), mgr.nodes());
      },
    },
    ScaleService: {
      roles: M,
      leader: true,
      unary: async (req: { id: string; replicas: number }) => {
        const replicas = Number(req.replicas);
        if (!Number.isInteger(replicas) || replicas < 0) throw invalid(`replicas must be a whole number of at least 0, got ${req.replicas}`);
        for (let attempt = 0; ; attempt++) {
          const s = resolveService(mgr, req.id);
          if (s.spec.mode.type !== 'replicated') throw precondition(`service ${s.name} is ${s.spec.mode.type}: only replicated services scale (a job's completions are part of its spec)`);
          try {
            const r = await mgr.raft.propose([{
              op: 'update',
              object: { kind: 'service', id: s.id, name: s.name, labels: s.labels, spec: { ...s.spec, mode: { type: 'replicated', replicas } }, status: { ...s.status, updatedAt: Date.now() } },
              expectVersion: s.version,
            }]);
            log(`control: scaled service ${s.name} from ${s.spec.mode.replicas} to ${replicas}`);
            const ns = r.objects[0] as ServiceObject;
            return serviceToWire(ns, tasksOf(mgr, ns.id), mgr.nodes());
          } catch (e) {
            if ((e as { conflict?: { code?: string } }).conflict?.code !== 'version-mismatch' || attempt >= 5) throw e;
          }
        }
      },
    },
    RemoveService: {
      roles: M,
      leader: true,
      unary: async (req: { id: string }) => {
        const s = resolveService(mgr, req.id);
        await mgr.raft.propose([{ op: 'delete', kind: 'service', id: s.id }]);
        log(`control: removed service ${s.name} (${s.id}); its tasks are being shut down`);
        return {};
      },
    },
    UpdateService: {
      roles: M,
      leader: true,
      unary: async (req: { id: string; version: number; spec: WireSpec; labels: Record<string, string>; force: boolean }) => {
        const s0 = resolveService(mgr, req.id);
        let spec: ServiceSpec;
        try {
          spec = resolveRefs(mgr.raft.store, specFromWire(req.spec));
        } catch (e) {
          if (e instanceof SpecError) throw invalid(e.message);
          throw e;
        }
        checkServiceMounts(mgr, s0.name, spec);
        if (spec.mode.type !== s0.spec.mode.type) throw invalid(`service ${s0.name} is ${s0.spec.mode.type}: its mode cannot change to ${spec.mode.type}; create a new service`);
        if (!!spec.schedule !== !!s0.spec.schedule) throw invalid(`service ${s0.name} ${s0.spec.schedule ? 'is a scheduled job: its schedule cannot be removed (suspend it, or remove the service)' : 'has no schedule: one cannot be added (create a new scheduled job)'}`);
        const labels = req.labels && Object.keys(req.labels).length > 0 ? checkLabels(req.labels) : undefined;
        const s = await withNetworkLock(mgr, () => writeSpec(mgr, s0, (cur) => {
          const next: ServiceSpec = { ...spec, task: { ...spec.task } };
          const force = (cur.spec.task.forceUpdate ?? 0) + (req.force ? 1 : 0);
          if (force > 0) next.task.forceUpdate = force;
          else delete next.task.forceUpdate;
          return { spec: next, change: describeChange(cur.spec, next), rollback: false };
        }, Number(req.version) || undefined, labels));
        log(`control: updated service ${s.name} to revision ${s.status.revision}${s.status.update?.state === 'updating' && s.status.update.startedAt === s.status.updatedAt ? ' (rolling update)' : ''}`);
        return serviceToWire(s, tasksOf(mgr, s.id), mgr.nodes());
      },
    },
    RollbackService: {
      roles: M,
      leader: true,
      unary: async (req: { id: string; to_revision: number }) => {
        const s0 = resolveService(mgr, req.id);
        const want = Number(req.to_revision) || 0;
        const s = await withNetworkLock(mgr, () => writeSpec(mgr, s0, (cur) => {
          const revs = cur.status?.revisions ?? [];
          const target = want ? revs.find((r) => r.revision === want) : revs.length >= 2 ? revs[revs.length - 2] : undefined;
          if (!target) {
            throw want
              ? notFound(`service ${cur.name} has no revision ${want}; kept revisions: ${revs.map((r) => r.revision).join(', ') || 'none'} ("shoal service history ${cur.name}")`)
              : precondition(`service ${cur.name} has no previous revision to roll back to`);
          }
          return { spec: target.spec, change: `rollback to revision ${target.revision}`, rollback: true };
        }));
        log(`control: rolling back service ${s.name}: ${s.status.revisions?.at(-1)?.change}`);
        return serviceToWire(s, tasksOf(mgr, s.id), mgr.nodes());
      },
    },
    ServiceHistory: {
      roles: M,
      unary: async (req: { id: string }) => {
        await read();
        const s = resolveService(mgr, req.id);
        const revs = s.status?.revisions ?? [{ revision: s.status?.revision ?? 1, spec: s.spec, at: s.status?.createdAt ?? 0, change: 'created' }];
        return { revisions: revs.map((r) => ({ revision: r.revision, at_ms: r.at, change: r.change, spec: specToWire(r.spec), current: r.revision === (s.status?.revision ?? 1) })) };
      },
    },
    ListTasks: {
      roles: M,
      unary: async (req: { service: string; node: string }) => {
        await read();
        const sid = req.service ? resolveService(mgr, req.service).id : undefined;
        const nid = req.node ? resolveNode(mgr, req.node).id : undefined;
        let ts = tasksOf(mgr, sid);
        if (nid) ts = ts.filter((t) => t.nodeId === nid);
        const nodes = nodeMap();
        // By service, then slot (a global task's slot is its node), newest first within each.
        const slotKey = (t: TaskObject) => (t.spec.slot > 0 ? String(t.spec.slot).padStart(10, '0') : `n${t.nodeId ?? ''}`);
        ts.sort((a, b) => a.spec.serviceName.localeCompare(b.spec.serviceName) || slotKey(a).localeCompare(slotKey(b)) || b.createdVersion - a.createdVersion);
        const svcs = new Map(services(mgr).map((x) => [x.id, x]));
        return { tasks: ts.map((t) => taskToWire(t, nodes, svcs.get(t.serviceId ?? ''))) };
      },
    },
    GetTask: {
      roles: M,
      unary: async (req: { id: string }) => {
        await read();
        const t = resolveTask(mgr, req.id);
        return taskToWire(t, nodeMap(), mgr.raft.store.get('service', t.serviceId ?? '') as ServiceObject | undefined);
      },
    },
    Logs: {
      roles: M,
      stream: async (call) => {
        const req = call.request as { service: string; tasks: string[]; follow: boolean; tail: number; timestamps: boolean };
        await read();
        let ts: TaskObject[];
        if (req.service) ts = tasksOf(mgr, resolveService(mgr, req.service).id);
        else if (req.tasks?.length) ts = req.tasks.map((r) => resolveTask(mgr, r));
        else throw invalid('logs needs a service or task ids');
        const tail = Number(req.tail) || 0;
        if (!Number.isInteger(tail) || tail < 0) throw invalid(`tail must be a whole number of at least 0, got ${req.tail}`);
        // Tasks that never reached a node have no logs; the rest are asked of their nodes.
        // Tasks that never had a pod on a node (pending, rejected by the pull) have no logs.
        const placed = ts.filter((t) => t.nodeId && t.status.state !== 'new' && t.status.state !== 'pending' && (!isTerminal(t.status.state) || !!t.status.podId));
        await broker.serveClient(call, placed, { follow: !!req.follow, tail });
      },
    },
  };
}
