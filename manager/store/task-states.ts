// The order task states move in. It lives with the store because the store applies status
// patches (a `status` op) itself, forward only, identically on every manager; services/model.ts
// re-exports it for everyone else.

/**
 * Observed states, in the only order they may move (forward). The numbers leave room between
 * states, as SwarmKit's do, so comparisons stay meaningful if states are added later. The
 * terminal states come after running; a later terminal state can still replace an earlier one
 * (a shutdown task that the agent then finds failed reports failed).
 */
export const TASK_STATE_ORDER = {
  new: 0,
  pending: 64,
  assigned: 192,
  accepted: 256,
  preparing: 320,
  starting: 448,
  running: 512,
  complete: 576,
  shutdown: 640,
  failed: 704,
  rejected: 768,
  /** The node was lost: the managers gave the task up and replaced it. */
  orphaned: 832,
} as const;

export type TaskState = keyof typeof TASK_STATE_ORDER;

export function isTaskState(s: unknown): s is TaskState {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(TASK_STATE_ORDER, s);
}
