// One orchestration pass over a view of the store: each service by its mode, the tasks of
// removed services stopped and deleted, and old task history reaped (SwarmKit's task reaper
// keeps 5 per slot). Pure: the leader's loop (loop.ts) commits what this returns.
import type { NodeObject } from '../control/model.js';
import { isTerminal, type TaskObject } from '../services/model.js';
import { reconcileGlobal } from './global.js';
import { reconcileReplicatedJob } from './jobs.js';
import { reconcileReplicated } from './replicated.js';
import { reconcileScheduled } from './scheduled.js';
import { reconcileUpdate } from './updater.js';
import { byId, emptyDecisions, groupTasks, nodeLost, remove, shutdown, type Decisions, type View } from './view.js';

/** Ended tasks kept per slot (or node) so `service ps` shows recent history. */
export const TASK_HISTORY = 5;

/** A task that no longer holds containers anywhere (or never did, or its node is gone). */
function released(t: TaskObject, nodes: Map<string, NodeObject>): boolean {
  if (isTerminal(t.status.state)) return true;
  if (!t.nodeId || t.status.state === 'new' || t.status.state === 'pending') return true;
  return nodeLost(nodes.get(t.nodeId));
}

export function orchestrate(v: View): Decisions {
  const d = emptyDecisions();
  const nodes = new Map(v.nodes.map((n) => [n.id, n]));
  const services = new Map(v.services.map((s) => [s.id, s]));
  // A task always belongs to a service; anything else in the store is not ours to manage.
  const byService = groupTasks(v.tasks.filter((t) => t.serviceId), (t) => t.serviceId!, false);
  for (const s of byId(v.services)) {
    const tasks = byService.get(s.id) ?? [];
    // A scheduled job: each run is reconciled on its own, and keeps its own history.
    if (s.spec.schedule) {
      reconcileScheduled(v, d, s, tasks, nodes);
      continue;
    }
    switch (s.spec.mode.type) {
      case 'replicated':
        reconcileReplicated(v, d, s, tasks, nodes);
        break;
      case 'global':
      case 'global-job':
        reconcileGlobal(v, d, s, tasks, nodes);
        break;
      case 'replicated-job':
        reconcileReplicatedJob(v, d, s, tasks, nodes);
        break;
    }
    reconcileUpdate(v, d, s, tasks);
  }
  for (const [sid, tasks] of byService) {
    if (services.has(sid as string)) continue;
    // The service was removed: its tasks stop, and go once nothing of them runs.
    for (const t of tasks) {
      if (released(t, nodes) && (t.spec.desiredState === 'remove' || !t.nodeId || t.status.state === 'new' || t.status.state === 'pending')) remove(d, t);
      else shutdown(d, t, 'its service was removed', 'remove');
    }
  }
  // History: per slot (or node), only the newest TASK_HISTORY tasks are kept, and only ended
  // ones go (an older task still wanted running is a duplicate the orchestrator stops first).
  // A removed node's tasks all go once they were let go: nothing will run there again.
  for (const [sid, tasks] of byService) {
    // Scheduled jobs keep their history per run (scheduled.ts).
    if (!services.has(sid as string) || services.get(sid as string)!.spec.schedule) continue;
    // Counted first: only groups over the limit (or a removed node's) are sorted and looked at.
    const size = new Map<string | number, number>();
    const key = (t: TaskObject) => (t.spec.slot > 0 ? t.spec.slot : `n${t.nodeId}`);
    for (const t of tasks) {
      const k = key(t);
      size.set(k, (size.get(k) ?? 0) + 1);
    }
    const look = (k: string | number) => size.get(k)! > TASK_HISTORY || (typeof k === 'string' && !nodes.has(k.slice(1)));
    const groups = groupTasks(tasks.filter((t) => look(key(t))), key);
    for (const ts of groups.values()) {
      const gone = ts[0]!.spec.slot === 0 && !nodes.has(ts[0]!.nodeId ?? '');
      const old = gone ? ts.filter((t) => t.spec.desiredState !== 'running') : ts.slice(0, Math.max(0, ts.length - TASK_HISTORY));
      for (const t of old) if (released(t, nodes) && !d.touched.has(t.id)) remove(d, t);
    }
  }
  return d;
}
