// The restart policy: whether a task that ended gets a successor in its slot (or on its node),
// and when. Decided from the ended task alone (its state, when it ended, the restarts its slot
// has had), so a new leader reaches the same answer and a delay survives a failover.
import { TASK_STATE_ORDER, isTerminal, type RestartPolicy, type TaskObject, type TaskState } from '../services/model.js';

export type RestartAnswer =
  | { restart: false; why: string }
  | { restart: true; at: number; restarts: number[] };

/**
 * When the task reached its terminal state: the latest terminal timestamp it has (else its latest
 * timestamp of any state). Never the decision's own clock: a decision made again later, or by
 * a new leader, must come out the same.
 */
export function endedAt(t: TaskObject): number {
  let terminal = 0;
  let any = 0;
  for (const [s, ts] of Object.entries(t.status.timestamps)) {
    if (ts === undefined) continue;
    if (ts > any) any = ts;
    if (isTerminal(s as TaskState) && ts > terminal) terminal = ts;
  }
  return terminal || any;
}

/**
 * For a task whose desired state is still running but which has ended: its successor's time and
 * restart history, or why there is none. `job`: a completed task is done, never restarted.
 */
export function restartDue(t: TaskObject, policy: RestartPolicy, now: number, job: boolean): RestartAnswer {
  const state = t.status.state;
  if (!isTerminal(state)) return { restart: false, why: 'still running' };
  // A lost node is not the task's failure: replace it at once, without counting an attempt.
  if (state === 'orphaned') return { restart: true, at: now, restarts: t.spec.restarts };
  if (state === 'complete' && job) return { restart: false, why: 'completed' };
  const failed = TASK_STATE_ORDER[state] >= TASK_STATE_ORDER.failed;
  if (policy.condition === 'none') return { restart: false, why: 'restart condition none' };
  if (policy.condition === 'on-failure' && !failed) return { restart: false, why: `restart condition on-failure and the task ended ${state}` };
  // The window is counted back from when this task ended, not from now: a slot given up stays
  // given up however much later (or by whichever leader) the question is asked again.
  const ended = endedAt(t);
  const history = policy.windowMs > 0 ? t.spec.restarts.filter((ts) => ts >= ended - policy.windowMs) : t.spec.restarts;
  if (policy.maxAttempts > 0 && history.length >= policy.maxAttempts) {
    return { restart: false, why: `restarted ${history.length} time(s)${policy.windowMs > 0 ? ` within ${policy.windowMs / 1000} s` : ''}, the policy's maximum` };
  }
  const at = ended + policy.delayMs;
  // Only as many timestamps as the policy can count are kept, so the list stays short.
  const keep = policy.maxAttempts > 0 ? policy.maxAttempts : 10;
  return { restart: true, at, restarts: [...history, at].slice(-keep) };
}
