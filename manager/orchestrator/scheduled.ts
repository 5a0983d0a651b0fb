// The orchestrator's part for scheduled jobs: each run still going (the service's schedule status
// says which) is a job of its own, reconciled by the job orchestrators over that run's tasks only,
// so completions and concurrency are counted per run. Tasks of runs that ended keep their history
// (logs, exit codes) while the run is kept; once it is trimmed they go, and what still runs of a
// replaced run is stopped.
import type { NodeObject } from '../control/model.js';
import { isRunnable, isTerminal, type ServiceObject, type TaskObject } from '../services/model.js';
import { reconcileGlobal } from './global.js';
import { reconcileReplicatedJob } from './jobs.js';
import { groupTasks, nodeLost, remove, shutdown, type Decisions, type View } from './view.js';

/** Tasks of one slot (or node) of a run kept, newest last (as the reaper keeps for services). */
const SLOT_HISTORY = 5;

/** Holds no containers anywhere (ended, never placed, or its node is gone). */
function released(t: TaskObject, nodes: Map<string, NodeObject>): boolean {
  if (isTerminal(t.status.state)) return true;
  if (!t.nodeId || t.status.state === 'new' || t.status.state === 'pending') return true;
  return nodeLost(nodes.get(t.nodeId));
}

export function reconcileScheduled(v: View, d: Decisions, s: ServiceObject, tasks: TaskObject[], nodes: Map<string, NodeObject>): void {
  const runs = s.status?.schedule?.runs ?? [];
  const going = runs.filter((r) => !r.result).map((r) => r.iteration);
  const kept = new Map(runs.map((r) => [r.iteration, r]));
  const byRun = groupTasks(tasks, (t) => t.spec.iteration ?? 0);
  for (const it of going) {
    const ts = byRun.get(it) ?? [];
    const n0 = d.creates.length;
    if (s.spec.mode.type === 'replicated-job') reconcileReplicatedJob(v, d, s, ts, nodes);
    else reconcileGlobal(v, d, s, ts, nodes);
    for (const c of d.creates.slice(n0)) {
      (c.spec as TaskObject['spec']).iteration = it;
      const st = c.status as TaskObject['status'];
      st.message = `run ${it}: ${st.message}`;
    }
  }
  for (const [it, ts] of byRun) {
    const run = kept.get(it as number);
    if (run && !run.result) {
      // A run going: only its slots' old history goes (a slot restarting again and again).
      const bySlot = groupTasks(ts, (t) => (t.spec.slot > 0 ? `s${t.spec.slot}` : `n${t.nodeId}`));
      for (const g of bySlot.values()) {
        for (const t of g.slice(0, Math.max(0, g.length - SLOT_HISTORY))) {
          if (t.spec.desiredState !== 'running' && released(t, nodes)) remove(d, t);
        }
      }
      continue;
    }
    // (A task decided about already in this pass is left alone: remove and shutdown skip it.)
    for (const t of ts) {
      if (run) {
        // Ended and kept: what still runs of it (a replaced run) stops; the rest stays for ps and logs.
        if (isRunnable(t)) shutdown(d, t, `run ${it} ${run.result}${run.message ? `: ${run.message}` : ''}`);
      } else if (released(t, nodes)) remove(d, t);
      else shutdown(d, t, `run ${it} is no longer kept`);
    }
  }
}
