// Builders for the unit tests of the orchestrators, the allocator and the scheduler: nodes,
// services and tasks as the store holds them (versions included), with small defaults, so each
// test states only what it is about. Test support only; nothing in the managers imports it.
import type { Availability, NodeObject, NodeState } from '../control/model.js';
import {
  DEFAULT_RESTART,
  DEFAULT_STOP_GRACE_MS,
  type DesiredState,
  type Resources,
  type RestartPolicy,
  type ServiceMode,
  type ServiceObject,
  type TaskObject,
  type TaskState,
  type TaskTemplate,
} from '../services/model.js';
import type { View } from './view.js';

export interface NodeOpts {
  state?: NodeState;
  availability?: Availability;
  labels?: Record<string, string>;
  role?: 'manager' | 'worker';
  hostname?: string;
  /** Capacity the agent reported; omitted = no description (unlimited). */
  cpu?: number;
  mem?: number;
}

export function node(id: string, o: NodeOpts = {}): NodeObject {
  const described = o.cpu !== undefined || o.mem !== undefined;
  return {
    kind: 'node',
    id,
    name: id,
    labels: o.labels ?? {},
    version: 1,
    createdVersion: 1,
    spec: { desiredRole: o.role ?? 'worker', availability: o.availability ?? 'active' },
    status: {
      role: o.role ?? 'worker',
      state: o.state ?? 'ready',
      message: '',
      hostname: o.hostname ?? id,
      addr: '',
      gossipAddr: '',
      certSerial: '',
      certNotAfter: 0,
      certPem: '',
      ...(described ? { description: { cpuMillis: o.cpu ?? 0, memoryBytes: o.mem ?? 0, runtimeName: 'test', runtimeVersion: '0', os: 'linux', arch: 'amd64' } } : {}),
    },
  };
}

export interface ServiceOpts {
  name?: string;
  version?: number;
  restart?: Partial<RestartPolicy>;
  constraints?: string[];
  spread?: string[];
  reservations?: Resources;
}

export function template(o: ServiceOpts = {}): TaskTemplate {
  return {
    main: { name: 'main', image: 'busybox' },
    sidecars: [],
    init: [],
    resources: { reservations: o.reservations ?? {}, limits: {} },
    placement: { constraints: o.constraints ?? [], preferences: (o.spread ?? []).map((spread) => ({ spread })) },
    restart: { ...DEFAULT_RESTART, ...o.restart },
    stopGracePeriodMs: DEFAULT_STOP_GRACE_MS,
    stopSignal: 'SIGTERM',
  };
}

export function service(id: string, mode: ServiceMode, o: ServiceOpts = {}): ServiceObject {
  return {
    kind: 'service',
    id,
    name: o.name ?? id,
    labels: {},
    version: o.version ?? 1,
    createdVersion: 1,
    spec: { mode, task: template(o) },
    status: { createdAt: 0, updatedAt: 0 },
  };
}

export const replicated = (replicas: number): ServiceMode => ({ type: 'replicated', replicas });

export interface TaskOpts {
  slot?: number;
  nodeId?: string;
  state?: TaskState;
  desired?: DesiredState;
  /** Store version; also createdVersion unless given (tasks of a slot are ordered by it). */
  version?: number;
  createdVersion?: number;
  restarts?: number[];
  timestamps?: Partial<Record<TaskState, number>>;
  message?: string;
}

let seq = 0;

/** A task of `s`; the id is `id` (or generated), versions default to a fresh increasing number. */
export function task(s: ServiceObject, id: string, o: TaskOpts = {}): TaskObject {
  const v = o.version ?? ++seq + 1000;
  const state = o.state ?? 'running';
  const t: TaskObject = {
    kind: 'task',
    id,
    name: `${s.name}.${o.slot ?? 0}.${id}`,
    labels: {},
    version: v,
    createdVersion: o.createdVersion ?? v,
    serviceId: s.id,
    spec: { serviceName: s.name, slot: o.slot ?? 0, serviceVersion: s.version, desiredState: o.desired ?? 'running', template: s.spec.task, restarts: o.restarts ?? [] },
    status: { state, message: o.message ?? '', err: '', timestamps: o.timestamps ?? { [state]: 0 } },
  };
  if (o.nodeId) t.nodeId = o.nodeId;
  return t;
}

/** Fresh task ids new-1, new-2, ... (a new counter per call, so two passes get the same ids). */
export function idGen(prefix = 'new'): () => string {
  let n = 0;
  return () => `${prefix}-${++n}`;
}

export function view(o: { now?: number; nodes?: NodeObject[]; services?: ServiceObject[]; tasks?: TaskObject[]; newId?: () => string }): View {
  return { now: o.now ?? 1_000_000, nodes: o.nodes ?? [], services: o.services ?? [], tasks: o.tasks ?? [], newId: o.newId ?? idGen() };
}
