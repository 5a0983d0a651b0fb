// The allocator's first decision: a new task moves NEW -> PENDING; a task let go before it was
// placed ends as shutdown here, since no agent will ever report on it. Its addresses are decided
// with its placement (placement.ts), since they come from its node's subnet of each network.
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
