// The replicated-job orchestrator: runs tasks until `completions` of them have completed, at
// most `maxConcurrent` at a time. Each completion fills a slot (1..completions) for good; a
// failed task is restarted in its slot per the restart policy; a lost node's task is replaced.
import type { NodeObject } from '../control/model.js';
import type { ServiceObject, TaskObject } from '../services/model.js';
import { reconcileSlot } from './replicated.js';
import { groupTasks, latest, newTask, type Decisions, type View } from './view.js';

export function jobProgress(tasks: TaskObject[]): { completed: number; active: number } {
  const bySlot = groupTasks(tasks.filter((t) => t.spec.slot > 0), (t) => t.spec.slot);
  let completed = 0;
  let active = 0;
  for (const ts of bySlot.values()) {
    if (ts.some((t) => t.status.state === 'complete')) completed++;
    else if (latest(ts)!.spec.desiredState === 'running') active++;
  }
  return { completed, active };
}

export function reconcileReplicatedJob(v: View, d: Decisions, s: ServiceObject, tasks: TaskObject[], nodes: Map<string, NodeObject>): void {
  if (s.spec.mode.type !== 'replicated-job') return;
  const { completions, maxConcurrent } = s.spec.mode;
  const bySlot = groupTasks(tasks.filter((t) => t.spec.slot > 0), (t) => t.spec.slot);
  let active = 0;
  for (const [slot, ts] of bySlot) {
    if (ts.some((t) => t.status.state === 'complete')) continue;
    reconcileSlot(v, d, s, slot as number, ts, nodes, true);
    if (latest(ts)!.spec.desiredState === 'running') active++;
  }
  let slot = 1;
  for (let room = maxConcurrent - active; room > 0; room--) {
    while (slot <= completions && bySlot.has(slot)) slot++;
    if (slot > completions) break;
    d.creates.push(newTask(v, s, slot, undefined, [], `job run ${slot} of ${completions}`));
    slot++;
  }
}
