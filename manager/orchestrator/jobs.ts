// The replicated-job orchestrator: runs tasks until `completions` of them have completed, at
// most `maxConcurrent` at a time. Each completion fills a slot (1..completions) for good; a
// failed task is restarted in its slot per the restart policy; a lost node's task is replaced.
// A slot whose run failed and may not restart (condition none, attempts used up) is over too:
// it no longer takes a place among the concurrent runs, and the job ends short of completions.
import type { NodeObject } from '../control/model.js';
import { isTerminal, type RestartPolicy, type ServiceObject, type TaskObject } from '../services/model.js';
import { reconcileSlot } from './replicated.js';
import { restartDue } from './restart.js';
import { groupTasks, latest, newTask, type Decisions, type View } from './view.js';

/** True while a job slot still runs or will run again (its latest task wanted, not given up). */
function slotActive(ts: TaskObject[], policy: RestartPolicy, now: number): boolean {
  const last = latest(ts)!;
  if (last.spec.desiredState !== 'running') return false;
  if (!isTerminal(last.status.state)) return true;
  return restartDue(last, policy, now, true).restart;
}

export function jobProgress(tasks: TaskObject[], policy?: RestartPolicy, now = Date.now()): { completed: number; active: number; failed: number } {
  const bySlot = groupTasks(tasks.filter((t) => t.spec.slot > 0), (t) => t.spec.slot);
  let completed = 0;
  let active = 0;
  let failed = 0;
  for (const ts of bySlot.values()) {
    if (ts.some((t) => t.status.state === 'complete')) completed++;
    else if (!policy || slotActive(ts, policy, now)) active++;
    else if (latest(ts)!.spec.desiredState === 'running') failed++;
  }
  return { completed, active, failed };
}

export function reconcileReplicatedJob(v: View, d: Decisions, s: ServiceObject, tasks: TaskObject[], nodes: Map<string, NodeObject>): void {
  if (s.spec.mode.type !== 'replicated-job') return;
  const { completions, maxConcurrent } = s.spec.mode;
  const bySlot = groupTasks(tasks.filter((t) => t.spec.slot > 0), (t) => t.spec.slot);
  let active = 0;
  for (const [slot, ts] of bySlot) {
    if (ts.some((t) => t.status.state === 'complete')) continue;
    reconcileSlot(v, d, s, slot as number, ts, nodes, true);
    if (slotActive(ts, s.spec.task.restart, v.now)) active++;
  }
  let slot = 1;
  for (let room = maxConcurrent - active; room > 0; room--) {
    while (slot <= completions && bySlot.has(slot)) slot++;
    if (slot > completions) break;
    d.creates.push(newTask(v, s, slot, undefined, [], `job run ${slot} of ${completions}`));
    slot++;
  }
}
