// The allocator's decision: a new task gets what it needs from the cluster's pools before the
// scheduler sees it, and moves NEW -> PENDING. Today a task needs nothing from a pool yet (the
// network issue adds addresses here), so it only moves tasks on; a task let go before it was
// placed ends as shutdown here, since no agent will ever report on it.
import { TASK_STATE_ORDER, type TaskObject } from '../services/model.js';

export interface AllocUpdate {
  task: TaskObject;
  state: 'pending' | 'shutdown';
  message: string;
}

export function allocate(tasks: TaskObject[]): AllocUpdate[] {
  const out: AllocUpdate[] = [];
  for (const t of tasks) {
    const s = t.status.state;
    if (TASK_STATE_ORDER[s] > TASK_STATE_ORDER.pending) continue;
    if (t.spec.desiredState !== 'running') out.push({ task: t, state: 'shutdown', message: 'stopped before it was placed' });
    else if (s === 'new') out.push({ task: t, state: 'pending', message: t.nodeId ? 'waiting for its node' : 'waiting for a node' });
  }
  return out;
}
