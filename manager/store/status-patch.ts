// How the store applies a `status` op (types.ts StatusPatch) to a task: forward only, the
// patch's fields over the task's, timestamps merged. Pure and deterministic: every manager
// computes the same status from the same object and patch.
import { TASK_STATE_ORDER, isTaskState } from './task-states.js';
import type { StatusPatch, StoreObject } from './types.js';

/** The task's new status, or undefined when the patch does not apply (wrong node, a step back). */
export function patchedStatus(cur: StoreObject, p: StatusPatch): Record<string, unknown> | undefined {
  if (p.nodeId !== undefined && cur.nodeId !== p.nodeId) return undefined;
  const st = (cur.status ?? {}) as { state?: unknown; timestamps?: Record<string, number> };
  if (!isTaskState(st.state) || !isTaskState(p.status.state)) return undefined;
  if (TASK_STATE_ORDER[p.status.state] < TASK_STATE_ORDER[st.state]) return undefined;
  return { ...st, ...p.status, timestamps: { ...(st.timestamps ?? {}), ...(p.status.timestamps ?? {}) } };
}
