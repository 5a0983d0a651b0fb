// Services and tasks as the replicated store keeps them. A service is the desired state an
// operator writes (spec) and a version the store assigns; a task is one slot (replicated) or one
// node (global) of a service: a pod whose spec is copied from the service when the task is
// created, with a desired state the managers write and an observed state the agent reports.
// Everything here is plain data (msgpack in the raft log) so every manager applies it alike.
import { createHash } from 'node:crypto';
import type { EndpointSpec, NetworkAddress } from '../networks/model.js';
import { TASK_STATE_ORDER, isTaskState, type TaskState } from '../store/task-states.js';
import type { ObjectInput, StoreObject } from '../store/types.js';
import type { FileRef } from '../secrets/model.js';
import type { Mount } from '../volumes/model.js';
import type { JobSchedule, ScheduleStatus } from './schedule.js';

/** One container of a task's pod. */
export interface ContainerSpec {
  /** Unique within the pod; the main container is named "main". */
  name: string;
  image: string;
  /** Replaces the image's entrypoint when given. */
  command?: string[];
  /** Replaces the image's cmd when given. */
  args?: string[];
  /** KEY=VALUE, applied over the image's environment. */
  env?: string[];
  workdir?: string;
  /** USER or USER:GID: a user name or id, a numeric group id (what the CRI can express). */
  user?: string;
}

export interface Resources {
  /** CPU in millicores (1000 = one CPU). */
  cpuMillis?: number;
  memoryBytes?: number;
}

export type RestartCondition = 'none' | 'on-failure' | 'any';

export interface RestartPolicy {
  condition: RestartCondition;
  delayMs: number;
  /** 0 = no limit. */
  maxAttempts: number;
  /** Attempts are counted within this window (0 = since the slot began). */
  windowMs: number;
}

export interface SpreadPreference {
  /** A node label key: tasks are spread evenly over its values (`node.labels.zone`). */
  spread: string;
}

export interface Placement {
  /** `node.id|node.hostname|node.role|node.labels.KEY ==|!= VALUE`, all must hold. */
  constraints: string[];
  preferences: SpreadPreference[];
}

/** What every task of a service runs: the pod and how it is placed, limited and restarted. */
export interface TaskTemplate {
  main: ContainerSpec;
  sidecars: ContainerSpec[];
  /** Run in order, each to completion, before main and the sidecars start. */
  init: ContainerSpec[];
  resources: { reservations: Resources; limits: Resources };
  placement: Placement;
  restart: RestartPolicy;
  stopGracePeriodMs: number;
  /** Signal name (SIGTERM) sent first on stop; SIGKILL follows after the grace period. */
  stopSignal: string;
  /** Bumped by `service update --force`: a changed template redeploys every task. */
  forceUpdate?: number;
  /** Health probes of the main container (run by the agent). */
  probes?: Probe[];
  /** Secrets and configs, as files in the main container (manager/secrets). */
  secrets?: FileRef[];
  configs?: FileRef[];
  /** The networks (ids, in order: the first gets eth0) the pod joins (manager/networks). */
  networks?: string[];
  /** Volumes mounted in the main container (manager/volumes). */
  mounts?: Mount[];
}

/** A health probe, as Kubernetes defines them. */
export interface Probe {
  kind: 'liveness' | 'readiness' | 'startup';
  type: 'exec' | 'http' | 'tcp';
  command?: string[];
  path?: string;
  port?: number;
  initialDelayMs: number;
  periodMs: number;
  timeoutMs: number;
  successThreshold: number;
  failureThreshold: number;
}

/** How a change of the task template rolls out (and, as `rollback`, how it is undone). */
export interface UpdateConfig {
  /** Tasks replaced at a time (0 = all at once). */
  parallelism: number;
  /** Wait between batches. */
  delayMs: number;
  order: 'stop-first' | 'start-first';
  failureAction: 'pause' | 'continue' | 'rollback';
  /** How long a new task must stay running (and ready) before it counts as updated. */
  monitorMs: number;
  /** Share of updated tasks that may fail before the failure action (0..1). */
  maxFailureRatio: number;
}

export const DEFAULT_UPDATE: UpdateConfig = { parallelism: 1, delayMs: 0, order: 'stop-first', failureAction: 'pause', monitorMs: 5000, maxFailureRatio: 0 };
export const DEFAULT_ROLLBACK: UpdateConfig = { parallelism: 1, delayMs: 0, order: 'stop-first', failureAction: 'pause', monitorMs: 5000, maxFailureRatio: 0 };

export type ServiceMode =
  | { type: 'replicated'; replicas: number }
  | { type: 'global' }
  | { type: 'replicated-job'; completions: number; maxConcurrent: number }
  | { type: 'global-job' };

export type ModeName = ServiceMode['type'];
export const MODES: readonly ModeName[] = ['replicated', 'global', 'replicated-job', 'global-job'];

export interface ServiceSpec {
  mode: ServiceMode;
  task: TaskTemplate;
  /** Absent on services created before rolling updates existed: the defaults apply. */
  update?: UpdateConfig;
  rollback?: UpdateConfig;
  /** How the service is reached: a VIP or DNS round robin, and its published ports. */
  endpoint?: EndpointSpec;
  /** Jobs only: start a run of the job at each tick (schedule.ts). */
  schedule?: JobSchedule;
}

export type UpdateState = 'updating' | 'paused' | 'completed' | 'rollback_started' | 'rollback_paused' | 'rollback_completed';

export interface UpdateStatus {
  state: UpdateState;
  startedAt: number;
  completedAt?: number;
  message: string;
}

/** One kept spec of a service (a bounded history, like Kubernetes' ControllerRevisions). */
export interface Revision {
  revision: number;
  spec: ServiceSpec;
  at: number;
  /** What changed, in words (`image busybox:1 -> busybox:2`). */
  change: string;
}

export interface ServiceStatus {
  /** Wall-clock times (ms) of the create and the last spec change, as the leader saw them. */
  createdAt: number;
  updatedAt: number;
  /** The current spec's revision number and the kept history (newest last). */
  revision?: number;
  revisions?: Revision[];
  /** The rollout of the latest template change, if any. */
  update?: UpdateStatus;
  /** Its virtual IPs, one per network (VIP mode), allocated with each spec change. */
  vips?: NetworkAddress[];
  /** Scheduled jobs: the runs started, going and kept (schedule.ts). */
  schedule?: ScheduleStatus;
}

export type ServiceObject = StoreObject<ServiceSpec, ServiceStatus>;

// ---- tasks ----

// The states and their order live with the store, which applies status patches itself.
export { TASK_STATE_ORDER, isTaskState, type TaskState };
export const TASK_STATES = Object.keys(TASK_STATE_ORDER) as TaskState[];

/** True once a task has stopped for good (it never runs again). */
export function isTerminal(s: TaskState): boolean {
  return TASK_STATE_ORDER[s] > TASK_STATE_ORDER.running;
}

/** True if the move from `from` to `to` goes forward (states never move back). */
export function movesForward(from: TaskState, to: TaskState): boolean {
  return TASK_STATE_ORDER[to] > TASK_STATE_ORDER[from];
}

/**
 * What the managers want of a task: run it (`running`; jobs run to completion the same way),
 * or stop it (`shutdown`). `remove` asks the agent to stop it and forget it; the task reaper
 * deletes the object once the agent has reported it stopped (or the node is gone).
 */
export type DesiredState = 'running' | 'shutdown' | 'remove';

export interface TaskSpec {
  serviceName: string;
  /** Replicated slot, 1-based; 0 for a global task (its node is the object's nodeId). */
  slot: number;
  /** The service's version the template was copied from. */
  serviceVersion: number;
  /** A digest of the template: a task whose key differs from its service's is out of date. */
  templateKey?: string;
  /**
   * start-first updates: the task this one replaces in its slot, which keeps running until this
   * one runs (and is ready) for the monitor period.
   */
  replaces?: string;
  desiredState: DesiredState;
  template: TaskTemplate;
  /**
   * Timestamps (ms) of the restarts of this slot so far that the restart policy counts, oldest
   * first (trimmed to the policy's window and attempt count). Kept on the task, so a new leader
   * counts them the same.
   */
  restarts: number[];
  /** Its address on each network of the template, decided with its placement (the allocator). */
  networks?: NetworkAddress[];
  /** Scheduled jobs: the run (iteration) this task belongs to. */
  iteration?: number;
}

export interface TaskStatus {
  state: TaskState;
  message: string;
  /** Why the task failed or was rejected. */
  err: string;
  /** When each state was reached (ms since the epoch, the reporter's clock). */
  timestamps: Partial<Record<TaskState, number>>;
  containerId?: string;
  podId?: string;
  exitCode?: number;
  oomKilled?: boolean;
  /** Probes: `starting` until the startup probe passes, then healthy/unhealthy by liveness. */
  health?: 'starting' | 'healthy' | 'unhealthy';
  /** The last probe's output when it failed. */
  healthMessage?: string;
  /** The readiness probe's verdict (absent: no readiness probe, ready once running). */
  ready?: boolean;
}

export type TaskObject = StoreObject<TaskSpec, TaskStatus>;

/** The store object name of a task: unique per kind, and readable as `web.3` or `web.<node>`. */
export function taskName(serviceName: string, slotOrNode: number | string, id: string): string {
  return `${serviceName}.${slotOrNode}.${id.slice(0, 12)}`;
}

/** How a task is shown to people: `web.3` for a slot, `web.<node id prefix>` for a global task. */
export function taskDisplayName(t: TaskObject): string {
  return t.spec.slot > 0 ? `${t.spec.serviceName}.${t.spec.slot}` : `${t.spec.serviceName}.${(t.nodeId ?? '').slice(0, 12)}`;
}

const keys = new WeakMap<TaskTemplate, string>();

/** The template's digest (cached per template object; the store's objects are immutable). */
export function templateKey(t: TaskTemplate): string {
  let k = keys.get(t);
  if (k === undefined) {
    k = createHash('sha256').update(stableJson(t)).digest('hex').slice(0, 20);
    keys.set(t, k);
  }
  return k;
}

/** JSON with object keys sorted, so the same template always gives the same text. */
export function stableJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${stableJson(o[k])}`).join(',')}}`;
}

export function taskInput(t: TaskObject, patch: { spec?: Partial<TaskSpec>; status?: Partial<TaskStatus>; nodeId?: string }): ObjectInput {
  const o: ObjectInput = {
    kind: 'task',
    id: t.id,
    name: t.name,
    labels: t.labels,
    serviceId: t.serviceId,
    spec: patch.spec ? { ...t.spec, ...patch.spec } : t.spec,
    status: patch.status ? { ...t.status, ...patch.status } : t.status,
  };
  const nodeId = patch.nodeId ?? t.nodeId;
  if (nodeId) o.nodeId = nodeId;
  return o;
}

/** The status of a task moved to `state` at `now` (the caller checked the move is forward). */
export function statusAt(t: TaskObject, state: TaskState, now: number, message = '', err = ''): Partial<TaskStatus> {
  return { state, message, err, timestamps: { ...t.status.timestamps, [state]: now } };
}

export function newTaskStatus(now: number, message = ''): TaskStatus {
  return { state: 'new', message, err: '', timestamps: { new: now } };
}

/** True while a task holds (or is about to hold) its slot or node: not finished, not let go. */
export function isRunnable(t: TaskObject): boolean {
  return t.spec.desiredState === 'running' && !isTerminal(t.status.state);
}

/** The label every object a service's tasks create carries on the node (CRI pods, containers). */
export const LABELS = {
  managed: 'io.shoal.managed',
  taskId: 'io.shoal.task.id',
  serviceId: 'io.shoal.service.id',
  serviceName: 'io.shoal.service.name',
  slot: 'io.shoal.task.slot',
  nodeId: 'io.shoal.node.id',
  container: 'io.shoal.container',
} as const;

export const DEFAULT_RESTART: RestartPolicy = { condition: 'any', delayMs: 5000, maxAttempts: 0, windowMs: 0 };
export const DEFAULT_STOP_GRACE_MS = 10_000;
