// The store writes that carry out each reconciler's decisions. Pure: the leader's loops commit
// what these return, and the unit tests apply the same ops to a store to check where a sequence
// of passes leads. Every update and delete carries the version it was decided from, so a
// decision made on a state that changed meanwhile fails instead of overwriting.
import type { AllocUpdate } from '../allocator/allocator.js';
import type { Decisions } from '../orchestrator/view.js';
import type { Schedule } from '../scheduler/scheduler.js';
import { statusAt, taskInput } from '../services/model.js';
import type { TxnOp } from '../store/types.js';

/**
 * The orchestrator's decisions as groups of ops; each group must commit in one transaction (a
 * task and the one replacing it), the groups may be spread over several.
 */
export function orchestratorOps(d: Decisions): TxnOp[][] {
  const groups: TxnOp[][] = [];
  const successors = new Map(d.creates.map((c) => [c.id, c]));
  for (const u of d.updates) {
    const op: TxnOp = { op: 'update', object: taskInput(u.task, { spec: u.desiredState ? { desiredState: u.desiredState } : undefined, status: u.status }), expectVersion: u.task.version };
    const next = u.successorId !== undefined ? successors.get(u.successorId) : undefined;
    if (next) {
      successors.delete(next.id);
      groups.push([op, { op: 'create', object: next }]);
    } else groups.push([op]);
  }
  for (const c of successors.values()) groups.push([{ op: 'create', object: c }]);
  for (const t of d.deletes) groups.push([{ op: 'delete', kind: 'task', id: t.id, expectVersion: t.version }]);
  // The updater's service changes (update status, a rollback's spec); a new leader resumes an
  // update from the tasks and this status, so they need not share a transaction with the tasks.
  for (const c of d.services) {
    const sv = c.service;
    groups.push([{ op: 'update', object: { kind: 'service', id: sv.id, name: sv.name, labels: sv.labels, spec: c.spec ?? sv.spec, status: c.status }, expectVersion: sv.version }]);
  }
  return groups;
}

export function allocatorOps(updates: AllocUpdate[], now: number): TxnOp[] {
  return updates.map((u) => ({ op: 'update', object: taskInput(u.task, { status: statusAt(u.task, u.state, now, u.message) }), expectVersion: u.task.version }));
}

export function schedulerOps(s: Schedule, now: number): TxnOp[] {
  const ops: TxnOp[] = [];
  for (const a of s.assign) {
    // Its addresses go in the same write as its placement: never dispatched without them.
    const spec = a.networks ? { networks: a.networks } : undefined;
    ops.push({ op: 'update', object: taskInput(a.task, { spec, nodeId: a.nodeId, status: statusAt(a.task, 'assigned', now, 'assigned to a node') }), expectVersion: a.task.version });
  }
  for (const u of s.unplaceable) {
    if (u.task.status.message === u.reason) continue; // say it once, not on every pass
    ops.push({ op: 'update', object: taskInput(u.task, { status: { message: u.reason } }), expectVersion: u.task.version });
  }
  return ops;
}
