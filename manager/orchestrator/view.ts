// What the orchestrators decide from and what they decide: a consistent view of nodes, services
// and tasks at one moment, and the changes to commit. Pure data in, pure data out, so every
// decision is testable without a cluster, and a new leader decides the same from the same store.
import type { ObjectInput } from '../store/types.js';
import type { NodeObject } from '../control/model.js';
import { constraintHolds, parseConstraint } from '../scheduler/constraints.js';
import {
  isTerminal,
  newTaskStatus,
  taskName,
  templateKey,
  type DesiredState,
  type ServiceObject,
  type ServiceSpec,
  type ServiceStatus,
  type TaskObject,
  type TaskState,
  type TaskStatus,
} from '../services/model.js';

export interface View {
  now: number;
  nodes: NodeObject[];
  services: ServiceObject[];
  tasks: TaskObject[];
  /** Fresh task ids (injected so tests are deterministic). */
  newId(): string;
}

export interface TaskUpdate {
  task: TaskObject;
  desiredState?: DesiredState;
  /** An observed state the managers set themselves (orphaned when the node is lost). */
  status?: Partial<TaskStatus>;
  why: string;
  /**
   * The id of the task (in `creates`) that takes this one's place: the two are committed in one
   * transaction, so a slot is never left empty nor held twice by a half-committed decision.
   */
  successorId?: string;
}

export interface ServiceChange {
  service: ServiceObject;
  /** A new spec (a rollback restores the previous revision's). */
  spec?: ServiceSpec;
  status: ServiceStatus;
}

export interface Decisions {
  creates: ObjectInput[];
  updates: TaskUpdate[];
  deletes: TaskObject[];
  /** Services whose update status (or, rolling back, spec) the updater changes. */
  services: ServiceChange[];
  /** When to decide again even if nothing changes (a restart delay running out). */
  wakeAt?: number;
  /** One line per decision, for the manager's log. */
  notes: string[];
  /**
   * Ids of the tasks already updated or deleted by this pass: a task gets at most one change per
   * pass (two in one transaction would fail its version check, and the whole pass with it).
   */
  touched: Set<string>;
}

export function emptyDecisions(): Decisions {
  return { creates: [], updates: [], deletes: [], services: [], notes: [], touched: new Set() };
}

/** Deletes a task that runs nothing any more (once per pass). */
export function remove(d: Decisions, t: TaskObject): void {
  if (d.touched.has(t.id)) return;
  d.touched.add(t.id);
  d.deletes.push(t);
}

export function wakeAt(d: Decisions, at: number): void {
  if (d.wakeAt === undefined || at < d.wakeAt) d.wakeAt = at;
}

/**
 * Tasks of a service by slot (replicated, jobs) or by node (global), oldest first, the groups in
 * key order: decisions (and the ids they hand out) never depend on the order of the store's lists.
 * `ordered` false skips sorting within groups (grouping by service only). Runs on every pass
 * over every task, so it avoids work: single-task groups need no sort, sorted keys no re-sort.
 */
export function groupTasks(tasks: TaskObject[], key: (t: TaskObject) => string | number, ordered = true): Map<string | number, TaskObject[]> {
  const m = new Map<string | number, TaskObject[]>();
  for (const t of tasks) {
    const k = key(t);
    const l = m.get(k);
    if (l) l.push(t);
    else m.set(k, [t]);
  }
  if (ordered) for (const l of m.values()) if (l.length > 1) l.sort(byAge);
  const keys = [...m.keys()];
  let sorted = true;
  for (let i = 1; i < keys.length && sorted; i++) sorted = compareKeys(keys[i - 1]!, keys[i]!) <= 0;
  if (sorted) return m;
  keys.sort(compareKeys);
  const out = new Map<string | number, TaskObject[]>();
  for (const k of keys) out.set(k, m.get(k)!);
  return out;
}

function byAge(a: TaskObject, b: TaskObject): number {
  return a.createdVersion - b.createdVersion || (a.id < b.id ? -1 : 1);
}

export function compareKeys(a: string | number, b: string | number): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0;
}

/** By id: the order decisions are made in. */
export function byId<T extends { id: string }>(xs: Iterable<T>): T[] {
  return [...xs].sort((a, b) => compareKeys(a.id, b.id));
}

export function latest(ts: TaskObject[] | undefined): TaskObject | undefined {
  return ts && ts.length > 0 ? ts[ts.length - 1] : undefined;
}

/** A node the managers consider lost: down by gossip, or removed from the cluster. */
export function nodeLost(n: NodeObject | undefined): boolean {
  return !n || n.status.state === 'down';
}

export function nodeMatches(service: ServiceObject, n: NodeObject): boolean {
  return service.spec.task.placement.constraints.every((c) =>
    constraintHolds(parseConstraint(c), { id: n.id, hostname: n.status.hostname, role: n.spec.desiredRole, labels: n.labels }),
  );
}

/** A new task of `service` in `slot` (0 for a per-node task on `nodeId`), in state new. */
export function newTask(v: View, service: ServiceObject, slot: number, nodeId: string | undefined, restarts: number[], message: string): ObjectInput {
  const id = v.newId();
  const o: ObjectInput = {
    kind: 'task',
    id,
    name: taskName(service.name, slot > 0 ? slot : (nodeId ?? 'x').slice(0, 12), id),
    labels: {},
    serviceId: service.id,
    spec: { serviceName: service.name, slot, serviceVersion: service.version, templateKey: templateKey(service.spec.task), desiredState: 'running', template: service.spec.task, restarts },
    status: newTaskStatus(v.now, message),
  };
  if (nodeId) o.nodeId = nodeId;
  return o;
}

/** Stops a task that has not ended yet (its agent stops the containers). */
export function shutdown(d: Decisions, t: TaskObject, why: string, desired: DesiredState = 'shutdown'): void {
  if (t.spec.desiredState === desired || d.touched.has(t.id)) return;
  d.touched.add(t.id);
  d.updates.push({ task: t, desiredState: desired, why });
  d.notes.push(`task ${t.name}: desired ${desired} (${why})`);
}

/** Stops `t` and creates `next` in its place, committed together. */
export function replace(d: Decisions, t: TaskObject, next: ObjectInput, why: string): void {
  if (d.touched.has(t.id)) return;
  d.touched.add(t.id);
  d.updates.push({ task: t, desiredState: 'shutdown', why, successorId: next.id });
  d.creates.push(next);
  d.notes.push(`task ${t.name}: replaced by ${next.id} (${why})`);
}

/**
 * Gives up a task whose node was lost: desired shutdown and observed `orphaned`, and `next` (if
 * any) in its place, committed together; when the node comes back its agent stops the old one.
 */
export function orphan(d: Decisions, t: TaskObject, now: number, why: string, next?: ObjectInput): void {
  if (d.touched.has(t.id)) return;
  d.touched.add(t.id);
  const state: TaskState = 'orphaned';
  d.updates.push({ task: t, desiredState: 'shutdown', status: { state, message: why, timestamps: { ...t.status.timestamps, [state]: now } }, why, ...(next ? { successorId: next.id } : {}) });
  if (next) d.creates.push(next);
  d.notes.push(`task ${t.name}: orphaned (${why})${next ? `, replaced by ${next.id}` : ''}`);
}

/** True if the task was placed on a node and has not ended: it holds or may hold containers. */
export function placedAndLive(t: TaskObject): boolean {
  return !!t.nodeId && t.status.state !== 'new' && t.status.state !== 'pending' && !isTerminal(t.status.state);
}
